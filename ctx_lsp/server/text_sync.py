"""didOpen / didChange / didSave / didClose: the active file context.

The three plain functions below are the handlers' work; `inbox` calls them straight from the
JSON of a text-sync notification, without building lsprotocol objects, and the registered
features (for anything `inbox` leaves to pygls) call them from the typed params.
"""

from __future__ import annotations

from lsprotocol import types

from ctx_lsp.server import CtxServer, indexing
from ctx_lsp.text.documents import Range

#: A document this large leaves its message's bytes and parse as freed heap: trim after it.
LARGE_CHARS = 64 * 1024


def open_document(ls: CtxServer, uri: str, text: str, language_id: str, version: int) -> None:
    ls.documents.open(uri, text, language_id, version)
    ls.saved_versions[uri] = version
    ls.schedule_session_save()
    ls.warm_up_once()
    ls.ahead.soon(uri)
    if len(text) >= LARGE_CHARS:
        ls.release_memory_soon()


def change_document(
    ls: CtxServer, uri: str, version: int, changes: list[tuple[str, Range | None]]
) -> None:
    ls.document_changed(uri)
    try:
        ls.documents.change(uri, changes, version)
    except KeyError:
        ls.tell(f"ignored edits to {uri}: it was never opened")
        return
    ls.ahead.soon(uri)


def close_document(ls: CtxServer, uri: str) -> None:
    ls.document_changed(uri)
    ls.documents.close(uri)
    ls.saved_versions.pop(uri, None)
    ls.schedule_session_save()


def _range(change: types.TextDocumentContentChangeEvent) -> Range | None:
    r = getattr(change, "range", None)
    if r is None:
        return None
    return (r.start.line, r.start.character, r.end.line, r.end.character)


def register(server: CtxServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CtxServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        open_document(ls, item.uri, item.text, item.language_id, item.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CtxServer, params: types.DidChangeTextDocumentParams) -> None:
        doc = params.text_document
        changes = [(c.text, _range(c)) for c in params.content_changes]
        change_document(ls, doc.uri, doc.version, changes)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.TextDocumentSaveRegistrationOptions())
    def did_save(ls: CtxServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        doc = ls.documents.get(uri)
        if doc is None:
            return
        if params.text is not None and params.text != doc.text:
            doc.apply_change(params.text, None, doc.version)
        ls.saved_versions[uri] = doc.version
        folder, rel = ls.place(uri)
        if folder is not None:
            indexing.refresh_soon(ls, folder, [rel])

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CtxServer, params: types.DidCloseTextDocumentParams) -> None:
        close_document(ls, params.text_document.uri)
