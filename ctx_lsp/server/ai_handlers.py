"""Inline completions and completion items: debounced, latest-wins, never stale."""

from __future__ import annotations

import logging

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ctx_lsp.assist.completion import completion_request
from ctx_lsp.assist.suggestions import clean_completion, word_before
from ctx_lsp.backends.openai_compat import BackendError
from ctx_lsp.server import CtxServer
from ctx_lsp.text.documents import Document, DocumentError
from ctx_lsp.workspace.folder import Folder

log = logging.getLogger(__name__)


def _cursor(doc: Document, position: types.Position) -> tuple[int, int, int]:
    try:
        offset = doc.offset_at(position.line, position.character)
    except DocumentError as exc:
        raise JsonRpcInvalidParams(f"bad position: {exc}") from exc
    line, char = doc.position_at(offset)  # clamped, in the negotiated encoding
    return offset, line, char


def _memo_key(ls: CtxServer, folder: Folder, uri: str, version: int, offset: int) -> tuple:
    """Everything a completion prompt depends on, cheap to compute: documents and their
    versions, settings, branch, pins, conversation and templates."""
    docs = tuple((d.uri, d.version) for d in ls.documents)
    settings = ls.settings_for(folder)
    history = folder.history.for_prompt(settings.history_messages)
    return (
        uri,
        version,
        offset,
        docs,
        settings,
        folder.git.branch(),
        tuple(folder.pinned),
        tuple(m.id for m in history),
        ls.rt.config_stamp,
    )


async def suggest(ls: CtxServer, uri: str, position: types.Position, channel: str) -> str:
    """The suggestion at the cursor, or "" when there is none, it went stale, or it failed."""
    doc = ls.documents.get(uri)
    if doc is None:
        return ""
    owner, rel = ls.place(uri)
    folder = owner or ls.default_folder()
    if folder.excluder.reason(rel) is not None:
        return ""  # never read secrets files into a prompt
    offset, _, _ = _cursor(doc, position)
    version = doc.version
    settings = ls.settings_for(folder)
    key = _memo_key(ls, folder, uri, version, offset) if settings.cache else None
    if key is not None and (hit := ls.suggestions.get(key)) is not None:
        return hit

    async def work() -> str:
        req = completion_request(ls.settings_for(folder), uri, doc, rel, offset)
        assistant = ls.assistant(folder)  # takes edited config files in first
        view = await ls.view(folder, refresh=False)
        answer = await assistant.run(req, view.docs, view.summary)
        assert req.window is not None
        return clean_completion(answer.text, *req.window)

    try:
        text = await ls.scheduler.run(f"{channel}:{uri}", settings.debounce_ms / 1000, work)
    except BackendError as exc:
        ls.backend_failed(exc)
        return ""
    ls.backend_recovered()
    if not text or doc.version != version or ls.documents.get(uri) is not doc:
        return ""
    if key is not None:
        ls.suggestions.put(key, text)
    return text


def _snippet_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("}", "\\}")


def register(server: CtxServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: CtxServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        text = await suggest(ls, params.text_document.uri, params.position, "inline")
        if not text:
            return types.InlineCompletionList(items=[])
        at = types.Range(start=params.position, end=params.position)
        item = types.InlineCompletionItem(insert_text=text, range=at)
        return types.InlineCompletionList(items=[item])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
    async def completion(ls: CtxServer, params: types.CompletionParams) -> types.CompletionList:
        uri = params.text_document.uri
        text = await suggest(ls, uri, params.position, "completion")
        if not text:
            return types.CompletionList(is_incomplete=True, items=[])
        doc = ls.documents.get(uri)
        assert doc is not None
        # the item replaces the word being typed, so the client's filter keeps it; the line
        # is sliced by code points, never by the client's position units
        offset, line, char = _cursor(doc, params.position)
        word = word_before(doc.line(line)[: offset - doc.offset_at(line, 0)])
        start = types.Position(*doc.position_at(offset - len(word)))
        cursor = types.Position(line, char)
        td = ls.client_capabilities.text_document
        item_caps = td.completion.completion_item if td and td.completion else None
        snippets = bool(item_caps and item_caps.snippet_support)
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())
        item = types.CompletionItem(
            label=(word + first)[:80],
            kind=types.CompletionItemKind.Snippet,
            detail="ctx-lsp suggestion",
            documentation=types.MarkupContent(
                kind=types.MarkupKind.Markdown, value=f"```\n{word + text}\n```"
            ),
            filter_text=word + text,
            sort_text="0",
            # some clients (Neovim) insert only the first word of a multi-word plain item
            insert_text_format=types.InsertTextFormat.Snippet
            if snippets
            else types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(
                range=types.Range(start=start, end=cursor),
                new_text=_snippet_escape(word + text) if snippets else word + text,
            ),
        )
        return types.CompletionList(is_incomplete=True, items=[item])
