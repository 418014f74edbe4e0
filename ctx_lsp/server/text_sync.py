"""didOpen / didChange / didSave / didClose: the active file context."""

from __future__ import annotations

from lsprotocol import types

from ctx_lsp.server import CtxServer, indexing


def _range(change: types.TextDocumentContentChangeEvent) -> tuple[int, int, int, int] | None:
    r = getattr(change, "range", None)
    if r is None:
        return None
    return (r.start.line, r.start.character, r.end.line, r.end.character)


def register(server: CtxServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CtxServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        ls.documents.open(item.uri, item.text, item.language_id, item.version)
        ls.saved_versions[item.uri] = item.version
        ls.schedule_session_save()

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CtxServer, params: types.DidChangeTextDocumentParams) -> None:
        doc = params.text_document
        changes = [(c.text, _range(c)) for c in params.content_changes]
        ls.document_changed(doc.uri)
        try:
            ls.documents.change(doc.uri, changes, doc.version)
        except KeyError:
            ls.tell(f"ignored edits to {doc.uri}: it was never opened")

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
        ls.document_changed(params.text_document.uri)
        ls.documents.close(params.text_document.uri)
        ls.saved_versions.pop(params.text_document.uri, None)
        ls.schedule_session_save()
