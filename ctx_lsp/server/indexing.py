"""The code index of each workspace folder: built after `initialized` on its own thread (with
progress on a large workspace), updated from `workspace/didChangeWatchedFiles` (registered
when the client can), from saves, and by a stat scan for clients that watch nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsprotocol import types

from ctx_lsp.prompting.index.workspace import WorkspaceIndex, list_sources
from ctx_lsp.server import CtxServer, uri_path
from ctx_lsp.server.progress import Progress
from ctx_lsp.workspace.folder import Folder

log = logging.getLogger(__name__)

#: The one thread that parses and writes indexes: never the event loop.
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctx-index")
#: A workspace with at least this many source files shows progress while it is indexed.
LARGE_WORKSPACE = 1000
#: Jobs asked while a folder's index is first built (or read back from `.ctx/`) wait for it,
#: until this long after the build started: a completion typed right after the editor
#: opened gets the definitions of files that are not open, and the same prompt a restart
#: gives. Later jobs never wait.
FIRST_BUILD_WAIT_S = 1.0
_WATCH_ID = "ctx-index-watch"


def register(server: CtxServer) -> None:
    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: CtxServer, params: types.DidChangeWatchedFilesParams) -> None:
        by_folder: dict[Path, list[str]] = {}
        for change in params.changes:
            path = uri_path(change.uri)
            folder = ls.folder_for_path(path) if path is not None else None
            if folder is not None and path is not None:
                by_folder.setdefault(folder.root, []).append(folder.relpath(path))
        for root, rels in by_folder.items():
            refresh_soon(ls, ls.folders[root], rels)


async def start(ls: CtxServer) -> None:
    """After `initialized`: watch files if the client can, and build every folder's index."""
    caps = ls.client_capabilities.workspace
    watched = caps.did_change_watched_files if caps else None
    if watched is not None and watched.dynamic_registration:
        ls.run_task(_watch(ls), "register file watching")
    for folder in list(ls.folders.values()):
        build_soon(ls, folder)


async def _watch(ls: CtxServer) -> None:
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern="**/*")]
    )
    registration = types.Registration(
        id=_WATCH_ID, method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options
    )
    try:
        await ls.client_register_capability_async(
            types.RegistrationParams(registrations=[registration])
        )
        ls.watching_files = True
    except Exception as exc:  # the stat scan keeps the index current instead
        log.info("the client did not take the file watcher: %s", exc)


def expect_builds(ls: CtxServer) -> None:
    """At `initialized`, before it asks the client for settings: jobs asked meanwhile wait
    for the builds about to start too."""
    for folder in ls.folders.values():
        _build_done(ls, folder)


def _build_done(ls: CtxServer, folder: Folder) -> asyncio.Event:
    """The event set when the folder's first build ends (made at the first ask)."""
    entry = ls.first_builds.get(folder.root)
    if entry is None:
        deadline = asyncio.get_running_loop().time() + FIRST_BUILD_WAIT_S
        entry = ls.first_builds[folder.root] = (deadline, asyncio.Event())
    return entry[1]


def build_soon(ls: CtxServer, folder: Folder) -> None:
    done = _build_done(ls, folder)
    ls.run_task(_build(ls, folder, ls.rt.index(folder), done), f"index {folder.root}")


async def first_build(ls: CtxServer, folder: Folder) -> None:
    """Wait for the folder's first index build, at most until `FIRST_BUILD_WAIT_S` after it
    started."""
    started = ls.first_builds.get(folder.root)
    if started is None or started[1].is_set():
        return
    left = started[0] - asyncio.get_running_loop().time()
    if left > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(started[1].wait(), left)


async def _build(ls: CtxServer, folder: Folder, index: WorkspaceIndex, done: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    try:
        count = len(await loop.run_in_executor(_POOL, list_sources, folder.root))
        if count < LARGE_WORKSPACE:
            await loop.run_in_executor(_POOL, index.build)
        else:
            await _build_large(ls, index, loop)
    finally:
        done.set()  # built or failed: nobody waits for it any more
    ls.ahead.all_open()  # what the open documents' imports resolve to is known now


async def _build_large(
    ls: CtxServer, index: WorkspaceIndex, loop: asyncio.AbstractEventLoop
) -> None:
    async with Progress(ls, "ctx-lsp: indexing the workspace") as progress:

        def report(done: int, total: int) -> None:
            loop.call_soon_threadsafe(progress.report, f"{done:,} of {total:,} files")

        await loop.run_in_executor(_POOL, index.build, report)
        progress.report(f"{len(index):,} files indexed")


def refresh_soon(ls: CtxServer, folder: Folder, rels: list[str]) -> None:
    index = ls.rt.index(folder)
    _POOL.submit(_logged, index.refresh, rels)


def scan_soon(ls: CtxServer, folder: Folder) -> None:
    """A stat scan when one is due and the client watches no files for us."""
    index = ls.rt.indexes.get(folder.root)
    if index is None or getattr(ls, "watching_files", False) or not index.scan_due():
        return
    index.last_scan = float("inf")  # one at a time; scan() sets the real time
    _POOL.submit(_logged, index.scan)


def _logged(fn, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except Exception as exc:  # a failed update costs freshness, never the server
        log.error("code index update failed: %r", exc, exc_info=exc)
