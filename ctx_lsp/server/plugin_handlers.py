"""Plugin commands and code actions on the server; the hooks live in `ctx_lsp.plugins`.

Commands are registered when the server is built, so that `initialize` announces them in
`executeCommandProvider`; plugin problems are told once through `CtxServer.tell`.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams

from ctx_lsp import commands
from ctx_lsp.plugins import ActionRequest, CommandContext, PluginError
from ctx_lsp.server import CtxServer, folder_arg
from ctx_lsp.server.edits import Target
from ctx_lsp.workspace.folder import Folder

PLUGIN_KIND = types.CodeActionKind.Refactor + ".ctx.plugin"


def register(server: CtxServer) -> None:
    """Register every plugin command; call it after the modules that register `ctx.*`.

    Problems found here (name collisions) wait in the manager until `initialize` tells them."""
    taken = set(server.protocol.fm.commands)
    for name in server.rt.plugins.commands(reserved=taken):
        server.command(name)(_runner(name))


def _runner(name: str) -> Any:
    async def run(ls: CtxServer, *args: Any) -> dict[str, Any]:
        try:
            obj = commands.one_object(list(args))
        except commands.ArgumentError as exc:
            raise JsonRpcInvalidParams(f"{name}: {exc}") from None
        folder = folder_arg(ls, obj)
        ctx = CommandContext(root=folder.root, branch=branch_name(folder))
        try:
            return await ls.rt.plugins.run_command(name, ctx, obj)
        except PluginError as exc:
            raise JsonRpcInternalError(str(exc)) from None
        finally:
            report_problems(ls)

    return run


def code_actions(ls: CtxServer, t: Target, rng: types.Range) -> list[types.CodeAction]:
    """The plugins' code actions for a range of an open document: each runs a command."""
    plugins = ls.rt.plugins
    if not plugins.active():
        return []
    request = ActionRequest(
        root=t.folder.root,
        branch=branch_name(t.folder),
        file=t.rel,
        text=t.doc.text,
        start_line=rng.start.line,
        end_line=rng.end.line,
    )
    actions = plugins.code_actions(request)
    report_problems(ls)
    return [
        types.CodeAction(
            title=a.title,
            kind=PLUGIN_KIND,
            command=types.Command(title=a.title, command=a.command, arguments=[a.arguments]),
        )
        for a in actions
    ]


def report_problems(ls: CtxServer) -> None:
    for problem in ls.rt.plugins.take_problems():
        ls.tell(problem)


def branch_name(folder: Folder) -> str | None:
    return folder.git.branch().branch
