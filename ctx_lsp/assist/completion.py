"""The request behind an inline suggestion, shared by the server and `ctx-lsp prompt`."""

from __future__ import annotations

import functools

from ctx_lsp.assist.assistant import Request
from ctx_lsp.config.settings import Settings
from ctx_lsp.prompting.templates import TemplateLibrary
from ctx_lsp.text.documents import Document
from ctx_lsp.text.opendoc import MAX_RELATED_CHARS, OpenDoc
from ctx_lsp.text.redact import redact, redact_window
from ctx_lsp.text.tokens import chars_per_token, window_at_pieces

#: Share of the prompt budget for the cursor window: the rest is for related code from
#: other files, the conversation and the project summary (all trimmed to fit).
WINDOW_SHARE = 0.55
#: Characters beyond the window masked with it (a private key block is ~3 KB).
MASK_MARGIN = 8192
#: Of the window, the share before the cursor.
PREFIX_SHARE = 0.75


@functools.cache
def _template_reply() -> int | None:
    return TemplateLibrary.builtin().get("completion").max_tokens


def completion_reply(settings: Settings) -> int:
    """Room kept for the suggestion when the window is sized: the built-in completion
    template's `max_tokens` under the `maxTokens` cap (a user's template changes the exact
    figure; the builder then trims the window to fit)."""
    return min(_template_reply() or settings.max_tokens, settings.max_tokens)


def cursor_window(doc: Document, line: int, char: int, settings: Settings) -> tuple[str, str]:
    """Prefix and suffix sized in tokens up front, so the builder seldom has to trim the
    window (a trimmed window leaves no room for related code). Sized by the characters per
    token of the code counted lately, not by encoding it: the builder counts the task exactly
    and trims it if the estimate was short."""
    tokens = int((settings.context_tokens - completion_reply(settings)) * WINDOW_SHARE)
    cpt = chars_per_token()
    before = int(int(tokens * PREFIX_SHARE) * cpt)
    after = int((tokens - int(tokens * PREFIX_SHARE)) * cpt)
    # a margin so a secret across the cut is masked whole first
    prefix, suffix = doc.window(line, char, before + MASK_MARGIN, after + MASK_MARGIN)
    # The whole text's masking is memoized (every open document up to MAX_RELATED_CHARS is
    # masked for the context anyway): when it has nothing to mask, neither has any piece of
    # it; when it has, the window is cut of the masked text.
    if len(doc.text) > MAX_RELATED_CHARS:
        prefix, suffix = redact(prefix), redact(suffix)
    elif redact(doc.text) is not doc.text:
        cursor = doc.offset_at(line, char)
        cut = redact_window(doc.text, cursor - len(prefix), cursor, cursor + len(suffix))
        prefix, suffix = cut if cut is not None else (redact(prefix), redact(suffix))
    # the far ends where the document's pieces end: their token counts are known already
    return window_at_pieces(prefix, suffix, before, after)


def completion_request(
    settings: Settings, uri: str, doc: Document, rel: str, offset: int
) -> Request:
    """The request behind a suggestion at `offset` (also the prompt dry run's)."""
    line, char = doc.position_at(offset)
    prefix, suffix = cursor_window(doc, line, char, settings)
    current_line = prefix[prefix.rfind("\n") + 1 :].strip()
    return Request(
        kind="completion",
        template="completion",
        values={"language": doc.language_id or "text", "code": ""},
        summary=f"Complete {rel}:{line + 1} after: {current_line[-120:]}",
        file=rel,
        current=OpenDoc(uri, rel, doc.language_id, doc.text, doc.modified),
        cursor=offset,
        window=(prefix, suffix),
        allow_empty=True,
    )
