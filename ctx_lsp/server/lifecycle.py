"""initialize / initialized / configuration / workspace folders / shutdown."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from lsprotocol import types

from ctx_lsp.server import CtxServer, indexing, memory, uri_path
from ctx_lsp.server.progress import Progress
from ctx_lsp.text.documents import Encoding

log = logging.getLogger(__name__)


def register(server: CtxServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: CtxServer, params: types.InitializeParams) -> None:
        ls.init_options = params.initialization_options or {}
        # not a setting: the editor's own trust in the workspace (VS Code's restricted mode)
        if isinstance(ls.init_options, dict) and "editorTrusted" in ls.init_options:
            ls.init_options = dict(ls.init_options)
            ls.rt.editor_trusted = ls.init_options.pop("editorTrusted") is not False
        roots = [uri_path(f.uri) for f in params.workspace_folders or []]
        if not roots and params.root_uri:
            roots = [uri_path(params.root_uri)]
        elif not roots and params.root_path:
            roots = [Path(params.root_path)]
        for root in roots:
            if root is not None:
                ls.add_folder(root)
        encoding = ls.workspace.position_encoding or "utf-16"
        ls.documents.encoding = Encoding(getattr(encoding, "value", encoding))
        ls.apply_settings()

    @server.feature(types.INITIALIZED)
    async def initialized(ls: CtxServer, params: types.InitializedParams) -> None:
        ls.initialized = True
        indexing.expect_builds(ls)
        if not await pull_configuration(ls):
            ls.apply_settings()  # asks about held-back workspace files, now that it may
        ls.run_task(indexing.start(ls), "index the workspace")
        ls.run_task(load_local_model(ls), "load the local model")
        ls.run_task(release_memory(), "release memory")

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: CtxServer, params: types.DidChangeConfigurationParams
    ) -> None:
        pushed = params.settings
        if isinstance(pushed, dict) and isinstance(pushed.get("ctx"), dict):
            ls.client_settings = pushed["ctx"]
            ls.apply_settings()
        else:
            await pull_configuration(ls)

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def did_change_folders(ls: CtxServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        for removed in params.event.removed:
            path = uri_path(removed.uri)
            folder = ls.remove_folder(path) if path else None
            if folder is not None:
                folder.save_session()
        for added in params.event.added:
            if (path := uri_path(added.uri)) is not None:
                indexing.build_soon(ls, ls.add_folder(path))
        ls.report_store_problems()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: CtxServer, params: None) -> None:
        ls.shut_down = True  # text-sync notifications go to pygls now, which ignores them
        ls.save_sessions()
        ls.records.flush()
        await ls.rt.aclose()  # the backends' HTTP connections


async def release_memory() -> None:
    """Every so often, give freed heap back: resident memory then follows what is in use."""
    while True:
        await asyncio.sleep(memory.TRIM_EVERY_S)
        if not memory.release():
            return


async def load_local_model(ls: CtxServer) -> None:
    """The embedded model loads once, off the event loop, with progress in the editor."""
    backend = await asyncio.to_thread(lambda: ls.rt.backend)  # imports the backend's modules
    from ctx_lsp.backends.local import LocalBackend
    from ctx_lsp.backends.openai_compat import BackendError

    if not isinstance(backend, LocalBackend):
        return
    async with Progress(ls, "ctx-lsp: loading the local model") as progress:
        try:
            await backend.ensure_loaded(lambda message, _fraction: progress.report(message))
        except BackendError as exc:
            ls.backend_failed(exc)


async def pull_configuration(ls: CtxServer) -> bool:
    """Ask the client for the `ctx` section; False when it has none to give."""
    caps = ls.client_capabilities.workspace
    if not (caps and caps.configuration):
        return False
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="ctx")])
        )
    except Exception as exc:  # a client that fails the request keeps the settings we have
        log.warning("workspace/configuration failed: %s", exc)
        return False
    ls.client_settings = result[0] if result and isinstance(result[0], dict) else {}
    await ls.apply_settings_off_loop()
    return True
