"""The request behind an inline suggestion, shared by the server and `ctx-lsp prompt`."""

from __future__ import annotations

from .assistant import Request
from .documents import Document
from .redact import redact
from .relevance import OpenDoc
from .settings import Settings
from .tokens import truncate_to_tokens

#: Share of the prompt budget for the cursor window: the rest is for related code from
#: other files, the conversation and the project summary (all trimmed to fit).
WINDOW_SHARE = 0.55
#: Characters beyond the window masked with it (a private key block is ~3 KB).
MASK_MARGIN = 8192
#: Of the window, the share before the cursor.
PREFIX_SHARE = 0.75


def cursor_window(doc: Document, line: int, char: int, settings: Settings) -> tuple[str, str]:
    """Prefix and suffix sized in tokens up front, so the builder seldom has to trim the
    window (a trimmed window leaves no room for related code)."""
    tokens = int((settings.context_tokens - settings.max_tokens) * WINDOW_SHARE)
    before, after = int(tokens * PREFIX_SHARE), tokens - int(tokens * PREFIX_SHARE)
    # ≤ 4 chars a token, plus a margin so a secret across the cut is masked whole first
    prefix, suffix = doc.window(line, char, before * 4 + MASK_MARGIN, after * 4 + MASK_MARGIN)
    prefix, suffix = redact(prefix), redact(suffix)
    # sizing only: the builder counts the task exactly
    return (
        truncate_to_tokens(prefix, before, keep="end", exact=False),
        truncate_to_tokens(suffix, after, exact=False),
    )


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
