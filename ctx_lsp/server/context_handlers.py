"""Commands on the context itself: show it, pin and unpin files, clear state."""

from __future__ import annotations

from typing import Any

from ctx_lsp import commands
from ctx_lsp.server import CtxServer
from ctx_lsp.workspace.context import context_file_json, snapshot, summary_text
from ctx_lsp.workspace.folder import Folder, PathError


def _folder_for_path(ls: CtxServer, arg: str) -> tuple[Folder, str]:
    """The folder a path argument belongs to, and the path relative to it."""
    errors = []
    for folder in ls.folders.values() or [ls.default_folder()]:
        try:
            path = folder.resolve_path(arg)
        except PathError as exc:
            errors.append(str(exc))
            continue
        ls.refresh(folder)
        return folder, folder.relpath(path)
    raise PathError(errors[0] if errors else f"{arg}: no workspace folder")


def _fail(message: str) -> None:
    from pygls.exceptions import JsonRpcInvalidParams

    raise JsonRpcInvalidParams(message)


def register(server: CtxServer) -> None:
    @server.command(commands.SHOW_CONTEXT)
    def show_context(ls: CtxServer, *args: Any) -> dict[str, Any]:
        try:
            opts = commands.one_object(list(args))
        except commands.ArgumentError as exc:
            _fail(f"{commands.SHOW_CONTEXT}: {exc}")
        folders = list(ls.folders.values()) or [ls.default_folder()]
        texts, files, indexes = [], [], []
        for folder in folders:
            ls.refresh(folder)
            snap = snapshot(folder, ls.folder_documents(folder), ls.settings_for(folder), ls.env)
            texts.append(summary_text(snap))
            files += [context_file_json(f, folder) for f in snap.active + snap.pinned]
            if (index := ls.rt.indexes.get(folder.root)) is not None:
                indexes.append({"root": str(folder.root), **index.summary()})
                texts[-1] += f"\nCode index: {index.summary_text()}"
        ls.report_store_problems()
        result: dict[str, Any] = {
            "text": "\n\n".join(texts),
            "folders": [str(f.root) for f in folders],
            "files": files,
            "indexes": indexes,
            "warming": ls.warming(),
            # the model that answers: ctx.model, or the one the server serves when unset
            "model": ls.rt.backend_for(folders[0]).model,
            "backend": ls.rt.backend_for(folders[0]).describe(),
        }
        # {"uri": …}: the text the server holds for that document, unsaved edits included
        uri = opts.get("uri")
        if isinstance(uri, str) and (doc := ls.documents.get(uri)) is not None:
            result["documentText"] = doc.text
        return result

    @server.command(commands.ADD_FILE)
    def add_file(ls: CtxServer, *args: Any) -> dict[str, Any]:
        try:
            arg = commands.string_arg(commands.one_object(list(args)), "path")
            folder, rel = _folder_for_path(ls, arg)
        except (commands.ArgumentError, PathError) as exc:
            _fail(f"{commands.ADD_FILE}: {exc}")
        if not (folder.root / rel).is_file():
            _fail(f"{commands.ADD_FILE}: {rel} is not a file in {folder.root}")
        if (why := folder.excluder.reason(rel)) is not None:
            _fail(f"{commands.ADD_FILE}: refused to pin {rel}: {why}")
        added = folder.pin(rel)
        ls.schedule_session_save()
        return {"text": f"Pinned {rel}" if added else f"{rel} was already pinned", "path": rel}

    @server.command(commands.REMOVE_FILE)
    def remove_file(ls: CtxServer, *args: Any) -> dict[str, Any]:
        try:
            arg = commands.string_arg(commands.one_object(list(args)), "path")
            folder, rel = _folder_for_path(ls, arg)
        except (commands.ArgumentError, PathError) as exc:
            _fail(f"{commands.REMOVE_FILE}: {exc}")
        removed = folder.unpin(rel)
        ls.schedule_session_save()
        return {"text": f"Unpinned {rel}" if removed else f"{rel} was not pinned", "path": rel}

    @server.command(commands.CLEAR_HISTORY)
    def clear_history(ls: CtxServer, *args: Any) -> dict[str, Any]:
        for folder in ls.folders.values():
            folder.history.clear()
        return {"text": "Chat history cleared"}

    @server.command(commands.CLEAR_SESSION)
    def clear_session(ls: CtxServer, *args: Any) -> dict[str, Any]:
        for folder in ls.folders.values():
            folder.clear_session()
        return {"text": "Session cleared"}
