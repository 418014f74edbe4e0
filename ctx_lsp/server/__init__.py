"""The language server: typed state on one `LanguageServer` subclass, thin handlers.

This package is the only place that imports pygls. Handler modules register
their features on a server built by `build_server()`.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import os
import sys
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.protocol.language_server import lsp_method
from pygls.uris import to_fs_path

from ctx_lsp import __version__
from ctx_lsp.assist.assistant import Assistant
from ctx_lsp.assist.tasks import View
from ctx_lsp.backends.openai_compat import BackendError, warm_up
from ctx_lsp.config.settings import Layer, Settings
from ctx_lsp.runtime import Runtime
from ctx_lsp.server import memory
from ctx_lsp.server.ahead import Ahead
from ctx_lsp.server.reader import answer_without_id
from ctx_lsp.server.records import DeferredRecords
from ctx_lsp.server.scheduling import LatestOnly
from ctx_lsp.text.documents import Document, DocumentStore
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.textkey import LruMemo
from ctx_lsp.workspace.folder import Folder

log = logging.getLogger(__name__)

#: Seconds between a change and the session save it triggers.
SESSION_SAVE_DELAY_S = 1.0
#: The executeCommand request a command handler answers (its work-done token), set in the
#: request's own task.
COMMAND_PARAMS: contextvars.ContextVar[types.ExecuteCommandParams | None] = contextvars.ContextVar(
    "ctx_command_params", default=None
)
#: Seconds after the last large message before freed memory is handed back.
TRIM_DELAY_S = 0.5
#: Writes session files for the event loop, one at a time (an atomic write ends in fsync).
_SESSION_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctx-session")
#: Finished suggestions remembered in memory (the persistent cache backs them up).
SUGGESTION_MEMO_SIZE = 256


class AlreadyAnswered(JsonRpcInvalidParams):
    """A malformed request that has had its error response: nothing more to tell."""


class CtxProtocol(LanguageServerProtocol):
    """Skips pygls' own text documents: they re-split the whole text on every
    keystroke. Our `DocumentStore` (fed by our handlers) owns the text instead.

    Every method here overrides pygls 2 (checked against 2.1.1; pyproject pins `<3`). Those
    of pygls' own `@lsp_method` handlers are the way pygls documents for replacing a built-in
    feature; `structure_message`, `handle_message` and `_execute_handler` are internals with
    no public hook, each kept for the reason in its docstring (no upstream issue found for
    any of the three; `tests/reliability/test_framing.py`, `test_fuzz.py` and
    `test_server_notifications.py` fail if pygls changes under them). The stdio loop itself
    is ours (`inbox`), not an override."""

    def structure_message(self, data: Any) -> Any:
        """pygls drops a request whose params do not fit the LSP types without answering
        it, leaving the client waiting forever: answer it with an error instead. (pygls
        2.1.1; `_send_response` is private, and no public call answers a request by id.)"""
        try:
            return super().structure_message(data)
        except Exception:
            msg_id = data.get("id") if isinstance(data, dict) else None
            if (
                isinstance(data, dict)
                and isinstance(data.get("method"), str)
                and isinstance(msg_id, (int, str))
                and not isinstance(msg_id, bool)
            ):
                method = data["method"]
                known = self.get_message_type(method) is not None or method in self.fm.features
                error = (
                    JsonRpcInvalidParams(f"invalid params for {method}")
                    if known
                    else JsonRpcMethodNotFound(f"unknown method {method}")
                )
                self._send_response(msg_id, error=error.to_response_error())
                raise AlreadyAnswered(str(error)) from None
            raise

    def handle_message(self, message: Any) -> None:
        """JSON that is not an object, or an object without "jsonrpc", comes here as plain
        data, which pygls fails on: answer it as JSON-RPC says, Invalid Request with id null.
        (pygls 2.1.1 reads `message.jsonrpc` of whatever `json.loads` gave.)"""
        if message is None or isinstance(message, (dict, list, str, int, float)):
            log.warning("not a JSON-RPC message: %.80r", message)
            answer_without_id(self, JsonRpcInvalidRequest())
            return
        super().handle_message(message)

    def _execute_handler(self, msg_id: Any, handler: Any, callback: Any, *a: Any, **kw: Any):
        """pygls keeps the future of every notification whose handler is a generator, a
        coroutine or a thread function under a fresh id, and forgets to drop it: one per
        didChange, for the life of the server. Drop it when it is done. (pygls 2.1.1,
        `JsonRPCProtocol._handle_notification`; a private method, and the only place that
        sees the id. The text-sync notifications no longer come here (`inbox`), others do.)"""
        super()._execute_handler(msg_id, handler, callback, *a, **kw)
        if callback != self._check_handler_result:  # a request: pygls pops it as it answers
            return
        future = self._request_futures.get(msg_id)
        if future is None:
            return
        if future.done():
            del self._request_futures[msg_id]
        else:
            future.add_done_callback(lambda _: self._request_futures.pop(msg_id, None))

    def _user(self, method: str, params: Any):
        if (handler := self.fm.features.get(method)) is not None:
            yield handler, (params,), None

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any):
        """pygls 2.1.1's own, iterating over a copy: it cancels the pending request futures
        while iterating over their dict, which a done callback can change meanwhile
        ("dictionary changed size during iteration"): the client then never gets the answer.
        The request's own id is taken before the user handler runs (others arrive meanwhile)."""
        current_id = self.msg_id
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self._shutdown = True

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_CLOSE, params)

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    async def lsp_workspace__execute_command(self, params: types.ExecuteCommandParams) -> Any:
        """pygls runs commands as a sub-task that $/cancelRequest never reaches; running
        the command in the request's own task makes cancel abort the model call. (pygls
        2.1.1, `LanguageServerProtocol.lsp_workspace__execute_command`.)"""
        handler = self.fm.commands.get(params.command)
        if handler is None:
            raise JsonRpcInvalidParams(f"unknown command {params.command!r}")
        COMMAND_PARAMS.set(params)
        result = handler(*(params.arguments or []))
        return await result if inspect.isawaitable(result) else result


class CtxServer(LanguageServer):
    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__("ctx-lsp", __version__, protocol_cls=CtxProtocol)
        self.env: dict[str, str] = dict(os.environ if env is None else env)
        self.documents = DocumentStore()
        self.rt = Runtime(self.env)
        #: uri → version last saved (didOpen counts as saved): anything newer is unsaved
        self.saved_versions: dict[str, int] = {}
        self._views_docs: dict[Path, dict[str, tuple[Document, int, OpenDoc]]] = {}
        self.init_options: Any = {}
        self.client_settings: Any = {}
        self._told: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._save_handle: asyncio.TimerHandle | None = None
        self._trim_handle: asyncio.TimerHandle | None = None
        self._warm_task: asyncio.Task[Any] | None = None  # see `warm_up_once`
        #: work for the first suggestion in each opened or edited document
        self.ahead = Ahead(self)
        self.scheduler = LatestOnly()
        self._places: dict[str, tuple[Folder | None, str]] = {}
        #: finished suggestions by everything their prompt depends on: a repeat costs a lookup
        self.suggestions: LruMemo[str] = LruMemo(SUGGESTION_MEMO_SIZE)
        self.records = DeferredRecords()
        #: the client has had the initialize answer: requests to it (asking trust) may go
        self.initialized = False
        self.asked_trust: set[str] = set()
        #: the client sends workspace/didChangeWatchedFiles: no stat scans of the index needed
        self.watching_files = False
        #: per folder, when its first index build stops being waited for, and its end
        self.first_builds: dict[Path, tuple[float, asyncio.Event]] = {}
        #: LSP types ⇄ JSON for command arguments and results (pygls' own factory)
        self.converter = default_converter()
        #: after the shutdown request: text-sync notifications go to pygls, which ignores them
        self.shut_down = False

    # -- messages to the user: once per distinct text --------------------------
    def tell(
        self,
        message: str,
        kind: types.MessageType = types.MessageType.Warning,
        key: str | None = None,
    ) -> None:
        """One window/showMessage per distinct `key` (default: the text), logged once too."""
        key = key or message
        if key in self._told:
            log.debug("%s", message)
            return
        self._told.add(key)
        log.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING, message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"ctx-lsp: {message}"))

    def backend_failed(self, exc: BackendError) -> None:
        self.tell(exc.message, types.MessageType.Error, key=f"backend:{exc.kind}")

    def backend_recovered(self) -> None:
        """After a success, the next failure is news again."""
        self._told = {k for k in self._told if not k.startswith("backend:")}

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        """Our own stdio loop (`inbox`) in place of pygls' `start_io` (a public method meant
        to be the entry point): frames read leniently on a thread (`reader`), every
        malformed one answered, text-sync notifications applied without lsprotocol objects.
        TCP (`start_tcp`) stays pygls' own."""
        from ctx_lsp.server.inbox import serve_stdio

        serve_stdio(self, stdin or sys.stdin.buffer, stdout or sys.stdout.buffer)

    def shutdown(self) -> None:
        """The end of the server, however it comes (shutdown request, exit, stdin closed)."""
        self.records.flush()
        super().shutdown()

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls' default shows every error; ours logs it and tells the user once. Errors we
        # raise on purpose (bad arguments, backend failures) already went back in the response.
        if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
            # a body that is not UTF-8 JSON: JSON-RPC's parse error, with a null id
            log.warning("unparseable message: %s", error)
            answer_without_id(self.protocol, JsonRpcParseError())
            return
        if isinstance(error, JsonRpcException) and not isinstance(error, JsonRpcInternalError):
            log.info("request failed: %s", error)
            return
        if isinstance(error, JsonRpcInternalError) and getattr(error, "_ctx_expected", False):
            return
        where = getattr(source, "__name__", source)
        log.error("internal error (%s): %r", where, error, exc_info=error)
        self.tell(
            f"internal error: {error.__class__.__name__}; see the log", types.MessageType.Error
        )

    def run_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Background work whose failure is logged, never lost or fatal."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and (exc := t.exception()) is not None:
                log.error("background task %s failed: %r", name, exc, exc_info=exc)

        task.add_done_callback(done)
        return task

    # -- settings ----------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The first folder's settings (for what belongs to no document)."""
        return self.rt.settings

    def settings_for(self, folder: Folder | None) -> Settings:
        """The settings in force for a folder: the user's, with its own `.ctx/` files."""
        return self.rt.config(folder).settings

    @property
    def folders(self) -> dict[Path, Folder]:
        return self.rt.folders

    def apply_settings(self) -> None:
        self._settings_loaded(self.rt.load(*self._client_layers()))

    async def apply_settings_off_loop(self) -> None:
        """`apply_settings` with the files read and the templates parsed on a worker thread
        (tens of milliseconds); jobs meanwhile use the settings in force."""
        self._settings_loaded(await asyncio.to_thread(self.rt.load, *self._client_layers()))

    def _client_layers(self) -> tuple[Layer, Layer]:
        return (
            Layer("initializationOptions", _ctx_section(self.init_options)),
            Layer("workspace/configuration", _ctx_section(self.client_settings)),
        )

    def _settings_loaded(self, problems: list[str]) -> None:
        for problem in problems:
            self.tell(problem)
        self.report_store_problems()
        if self.initialized:
            from ctx_lsp.server.trust_handlers import offer_trust

            offer_trust(self)

    def report_store_problems(self) -> None:
        for problem in self.rt.store_problems():
            self.tell(problem)

    # -- folders and documents -------------------------------------------------
    def add_folder(self, root: Path) -> Folder:
        self._places.clear()
        return self.rt.add_folder(root)

    def remove_folder(self, root: Path) -> Folder | None:
        self._places.clear()
        return self.folders.pop(root.resolve(), None)

    def place(self, uri: str) -> tuple[Folder | None, str]:
        """The folder a document belongs to and its path there; remembered per URI, since
        resolving paths for every open document on every keystroke adds up."""
        hit = self._places.get(uri)
        if hit is None:
            path = uri_path(uri)
            folder = self.folder_for_path(path) if path is not None else None
            rel = folder.relpath(path) if folder is not None and path is not None else uri
            hit = self._places[uri] = (folder, rel)
        return hit

    def folder_for_path(self, path: Path) -> Folder | None:
        return self.rt.folder_for_path(path)

    def folder_for_uri(self, uri: str) -> Folder | None:
        path = uri_path(uri)
        return self.folder_for_path(path) if path else None

    def default_folder(self) -> Folder:
        if not self.folders:
            self.add_folder(Path.cwd())
        return next(iter(self.folders.values()))

    def _open_docs(
        self, folder: Folder, documents: list[tuple[str, Document, bool]]
    ) -> list[OpenDoc]:
        """The view's copies of `documents`: the same objects while a document is unchanged,
        so that a view compares them by identity (every completion takes a view of every
        open document)."""
        before = self._views_docs.get(folder.root, {})
        now: dict[str, tuple[Document, int, OpenDoc]] = {}
        out = []
        for rel, d, _ in documents:
            kept = before.get(d.uri)
            if (
                kept is None
                or kept[0] is not d
                or kept[1] != d.version
                or (kept[2].path, kept[2].modified) != (rel, d.modified)
            ):
                kept = (d, d.version, OpenDoc(d.uri, rel, d.language_id, d.text, d.modified))
            now[d.uri] = kept
            out.append(kept[2])
        self._views_docs[folder.root] = now  # closed documents' copies go
        return out

    def folder_documents(self, folder: Folder) -> list[tuple[str, Document, bool]]:
        out = []
        for doc in self.documents:
            owner, rel = self.place(doc.uri)
            if owner is folder:
                dirty = doc.version != self.saved_versions.get(doc.uri, doc.version)
                out.append((rel, doc, dirty))
        return out

    def document_changed(self, uri: str) -> None:
        """Suggestions in flight for this document are stale now."""
        self.scheduler.supersede(f"inline:{uri}")
        self.scheduler.supersede(f"completion:{uri}")

    def warm_up_once(self) -> None:
        """What the first suggestion needs (`warm_up`: openai, the tokenizer, ~0.6 s), loaded
        on a worker thread when the first document is opened: loading holds the interpreter
        for long stretches, which would stall the answers to the first burst of typing. A
        server no document was opened in stays small."""
        if self._warm_task is None:
            self._warm_task = self.run_task(asyncio.to_thread(warm_up), "warm up")

    def warming(self) -> bool:
        """Still loading what suggestions need, or preparing them for the documents opened
        or edited last (told by ctx.showContext: answers meanwhile wait for the interpreter)."""
        return (self._warm_task is not None and not self._warm_task.done()) or self.ahead.busy()

    # -- AI ----------------------------------------------------------------------
    def assistant(self, folder: Folder) -> Assistant:
        self.refresh(folder)
        assistant = self.rt.assistant(folder)
        assistant.record_later = self.records.add
        return assistant

    def refresh(self, folder: Folder) -> None:
        """Before a job: edited config files or templates, and a branch switch (with
        per-branch sessions), take effect without a restart."""
        if self.rt.config_changed():
            log.info("configuration files changed: reloading settings and templates")
            self.apply_settings()
        elif folder.refresh_scope(self.settings_for(folder)):
            log.info("session switched to %s", "/".join(folder.scope))

    async def view(self, folder: Folder, refresh: bool = True) -> View:
        """What a job sees: open documents (unsaved text), pinned files, the summary. Built
        on a worker thread unless it costs nothing (`Runtime.quick_view`): it may mask
        edited documents, read pinned files and wait for plugins."""
        from ctx_lsp.server import indexing

        if refresh:
            self.refresh(folder)
        await indexing.first_build(self, folder)
        indexing.scan_soon(self, folder)
        documents = self.folder_documents(folder)
        docs = self._open_docs(folder, documents)
        if self.rt.quick_view(folder, docs):
            view = self.rt.view(folder, docs, documents)
        else:
            view = await asyncio.to_thread(self.rt.view, folder, docs, documents)
        for problem in self.rt.plugins.take_problems():  # a plugin's context() failed
            self.tell(problem)
        return view

    def release_memory_soon(self) -> None:
        """After a burst of large messages (opening many big files), hand the freed heap back
        once it is over (`memory.release` on a worker thread), not every 30 s later."""
        if self._trim_handle is not None:
            self._trim_handle.cancel()

        def trim() -> None:
            self._trim_handle = None
            self.run_task(asyncio.to_thread(memory.release), "release memory")

        self._trim_handle = asyncio.get_running_loop().call_later(TRIM_DELAY_S, trim)

    def schedule_session_save(self) -> None:
        if self._save_handle is not None:
            self._save_handle.cancel()
        loop = asyncio.get_running_loop()
        self._save_handle = loop.call_later(SESSION_SAVE_DELAY_S, self.save_sessions, True)

    def save_sessions(self, background: bool = False) -> list[Future[None]]:
        """Each folder's session as it is now; written on the session writer thread (one at a
        time, in order) when `background` (the futures of those writes), else here."""
        from ctx_lsp.store.session import FileRecord

        self._save_handle = None
        writes: list[Future[None]] = []
        for folder in self.folders.values():
            docs = self.folder_documents(folder)
            records = [FileRecord(rel, d.language_id, d.modified, d.modified) for rel, d, _ in docs]
            allowed = self.settings_for(folder).env_allowlist
            env_names = [n for n in allowed if n in self.env]
            branch = folder.git.branch()
            folder.update_session(records, env_names, branch.branch or branch.head)
            if background:
                writes.append(_SESSION_WRITER.submit(folder.save_session))
            else:
                folder.save_session()
        return writes


def _ctx_section(value: Any) -> Any:
    """Settings may come bare or wrapped in {"ctx": {...}}."""
    if isinstance(value, dict) and isinstance(value.get("ctx"), dict):
        return value["ctx"]
    return value if value is not None else {}


def folder_arg(ls: CtxServer, obj: dict[str, Any]) -> Folder:
    """The workspace folder a command's {"uri"}, {"root"} or {"folder"} (a URI or a path)
    names; else the first one."""
    where = obj.get("uri") or obj.get("root") or obj.get("folder")
    if isinstance(where, str) and where:
        path = uri_path(where) if where.startswith("file:") else Path(where)
        folder = ls.folder_for_path(path) if path is not None else None
        if folder is not None:
            return folder
    return ls.default_folder()


def uri_path(uri: str) -> Path | None:
    if not isinstance(uri, str) or not uri.startswith("file:"):
        return None
    fs = to_fs_path(uri)
    return Path(fs) if fs else None


def build_server(env: dict[str, str] | None = None) -> CtxServer:
    from ctx_lsp.server import (
        action_handlers,
        ai_handlers,
        chat_handlers,
        context_handlers,
        indexing,
        lifecycle,
        plugin_handlers,
        text_sync,
        trust_handlers,
    )

    server = CtxServer(env)
    handlers = (
        lifecycle,
        text_sync,
        context_handlers,
        ai_handlers,
        action_handlers,
        trust_handlers,
        chat_handlers,
        indexing,
    )
    for module in handlers:
        module.register(server)
    plugin_handlers.register(server)  # last: plugin commands may not take the server's names
    return server
