"""Code actions (listed without the model, resolved with it) and the AI commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams

from ctx_lsp import commands
from ctx_lsp.assist import tasks
from ctx_lsp.assist.assistant import Assistant
from ctx_lsp.assist.completion import completion_request
from ctx_lsp.backends.openai_compat import BackendError
from ctx_lsp.prompting.prompt import BudgetError
from ctx_lsp.server import CtxServer, folder_arg, plugin_handlers
from ctx_lsp.server.edits import (
    fix_edit,
    offsets,
    region_for,
    save_answer,
    show,
    target,
    tests_edit,
    view,
)
from ctx_lsp.server.progress import Progress
from ctx_lsp.text.documents import DocumentError
from ctx_lsp.workspace.folder import Folder, PathError

T = TypeVar("T")
EXPLAIN_KIND = types.CodeActionKind.Refactor + ".ctx.explain"
TESTS_KIND = types.CodeActionKind.Refactor + ".ctx.tests"


async def with_view(
    ls: CtxServer, folder: Folder, job: Callable[[Assistant, tasks.View], Awaitable[T]]
) -> T:
    """`job` with the folder's assistant (settings refreshed first) and its view."""
    assistant = ls.assistant(folder)
    return await job(assistant, await view(ls, folder))


async def guarded(ls: CtxServer, work: Callable[[], Awaitable[T]]) -> T:
    """Job failures become a JSON-RPC error with a clear message (and, for the backend,
    one window/showMessage per kind of failure)."""
    try:
        result = await work()
    except tasks.TaskError as exc:
        raise JsonRpcInvalidParams(str(exc)) from None
    except BackendError as exc:
        ls.backend_failed(exc)
        error = JsonRpcInternalError(exc.message)
        error._ctx_expected = True  # told once already: not an internal error
        raise error from None
    # the caller's mistakes; any other error is a bug: pygls answers it as an internal error
    # and `report_server_error` logs its traceback
    except (commands.ArgumentError, DocumentError, PathError, BudgetError) as exc:
        raise JsonRpcInvalidParams(str(exc)) from None
    ls.backend_recovered()
    return result


def _resolves_edits(ls: CtxServer) -> bool:
    td = ls.client_capabilities.text_document
    ca = td.code_action if td else None
    support = ca.resolve_support if ca else None
    return bool(support and "edit" in support.properties)


def _structure(ls: CtxServer, value: Any, kind: type[T], name: str) -> T:
    try:
        return ls.converter.structure(value, kind)
    except Exception as exc:
        raise JsonRpcInvalidParams(f"'{name}' is malformed: {exc}") from None


def _range_arg(ls: CtxServer, obj: dict[str, Any]) -> types.Range:
    return _structure(ls, obj.get("range"), types.Range, "range")


def register(server: CtxServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[
                types.CodeActionKind.QuickFix,
                EXPLAIN_KIND,
                TESTS_KIND,
                plugin_handlers.PLUGIN_KIND,
            ],
            resolve_provider=True,
        ),
    )
    def code_action(ls: CtxServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        """Answers in milliseconds: the model runs only on resolve or execution."""
        uri = params.text_document.uri
        try:
            t = target(ls, uri)
            region = region_for(t, params.range)
        except JsonRpcException:
            return []
        resolve = _resolves_edits(ls)
        rng = ls.converter.unstructure(params.range)
        what = f"{region.kind} {region.name}" if region.name else region.kind
        actions = [
            types.CodeAction(
                title=f"ctx: Explain {what}",
                kind=EXPLAIN_KIND,
                command=types.Command(
                    title=f"Explain {what}",
                    command=commands.EXPLAIN,
                    arguments=[{"uri": uri, "range": rng}],
                ),
            )
        ]
        for diag in params.context.diagnostics:
            message = (
                diag.message.strip().splitlines()[0][:100] if diag.message.strip() else "error"
            )
            args = {"uri": uri, "diagnostic": ls.converter.unstructure(diag)}
            action = types.CodeAction(
                title=f"Fix: {message}", kind=types.CodeActionKind.QuickFix, diagnostics=[diag]
            )
            if resolve:
                action.data = {"action": "fix", **args}
            else:
                action.command = types.Command(
                    title=f"Fix: {message}", command=commands.FIX_ERROR, arguments=[args]
                )
            actions.append(action)
        args = {"uri": uri, "range": rng}
        tests = types.CodeAction(title=f"ctx: Generate unit tests for {what}", kind=TESTS_KIND)
        if resolve:
            tests.data = {"action": "tests", **args}
        else:
            tests.command = types.Command(
                title=tests.title, command=commands.GENERATE_TESTS, arguments=[args]
            )
        actions.append(tests)
        actions += plugin_handlers.code_actions(ls, t, params.range)
        only = params.context.only
        if only:
            actions = [a for a in actions if any(str(a.kind).startswith(str(k)) for k in only)]
        return actions

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: CtxServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        if data.get("action") not in ("fix", "tests"):
            return action  # a command action (Explain): VS Code resolves it too, data empty
        t = target(ls, data.get("uri"))
        if data.get("action") == "fix":
            diagnostic = _structure(ls, data.get("diagnostic"), types.Diagnostic, "diagnostic")
            async with Progress(ls, "ctx: writing a fix") as p:
                action.edit, _ = await guarded(ls, lambda: fix_edit(ls, t, diagnostic, p))
        elif data.get("action") == "tests":
            rng = _range_arg(ls, data)
            async with Progress(ls, "ctx: writing unit tests") as p:
                action.edit, _, _ = await guarded(ls, lambda: tests_edit(ls, t, rng, p))
        return action

    @server.command(commands.EXPLAIN)
    async def explain(ls: CtxServer, *args: Any) -> dict[str, Any]:
        obj = commands.one_object(list(args))
        t = target(ls, obj.get("uri"))
        region = region_for(t, _range_arg(ls, obj))
        async with Progress(ls, "ctx: explaining", _token(obj)) as p:
            answer = await guarded(
                ls,
                lambda: with_view(
                    ls, t.folder, lambda a, v: tasks.explain(a, v, t.open_doc(), region, p.stream)
                ),
            )
        first, _ = t.doc.position_at(region.start)
        last, _ = t.doc.position_at(max(region.start, region.end - 1))
        title = f"{t.rel}:{first + 1} {region.name or region.kind}"
        name = f"explain {PurePosixPath(t.rel).name} {first + 1}-{last + 1}"
        text = f"# Explanation of {title}\n\n{answer.text}\n"
        path = await asyncio.to_thread(save_answer, t.folder, name, text)
        shown = await show(ls, path)
        return {"text": answer.text, "path": str(path), "shown": shown, "cached": answer.cached}

    @server.command(commands.FIX_ERROR)
    async def fix_error(ls: CtxServer, *args: Any) -> dict[str, Any]:
        obj = commands.one_object(list(args))
        t = target(ls, obj.get("uri"))
        diagnostic = _structure(ls, obj.get("diagnostic"), types.Diagnostic, "diagnostic")
        async with Progress(ls, "ctx: writing a fix", _token(obj)) as p:
            edit, fixed = await guarded(ls, lambda: fix_edit(ls, t, diagnostic, p))
        applied = False
        if obj.get("apply", True) is not False:
            result = await ls.workspace_apply_edit_async(
                types.ApplyWorkspaceEditParams(
                    edit=edit, label=f"ctx: fix {diagnostic.message[:60]}"
                )
            )
            applied = bool(result and result.applied)
        return {"text": fixed, "applied": applied, "edit": ls.converter.unstructure(edit)}

    @server.command(commands.GENERATE_TESTS)
    async def generate_tests(ls: CtxServer, *args: Any) -> dict[str, Any]:
        obj = commands.one_object(list(args))
        t = target(ls, obj.get("uri"))
        rng = _range_arg(ls, obj)
        async with Progress(ls, "ctx: writing unit tests", _token(obj)) as p:
            edit, code, path = await guarded(ls, lambda: tests_edit(ls, t, rng, p))
        result = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=f"ctx: tests in {path.name}")
        )
        applied = bool(result and result.applied)
        rel = t.folder.relpath(path)
        text = f"# Tests for {t.rel}\n\n```\n{code}```\n"
        name = f"tests {PurePosixPath(rel).name}"
        answer = await asyncio.to_thread(save_answer, t.folder, name, text)
        shown = await show(ls, path if applied else answer)
        return {"text": code, "path": rel, "applied": applied, "shown": shown}

    @server.command(commands.COMMIT_MESSAGE)
    async def commit_message(ls: CtxServer, *args: Any) -> dict[str, Any]:
        obj = commands.one_object(list(args))
        staged = obj.get("staged")
        if staged is not None and not isinstance(staged, bool):
            raise JsonRpcInvalidParams("'staged' must be true or false")
        folder = folder_arg(ls, obj)
        async with Progress(ls, "ctx: writing the commit message", _token(obj)) as p:
            message, was_staged = await guarded(
                ls,
                lambda: with_view(
                    ls, folder, lambda a, v: tasks.commit_message(a, v, staged, p.stream)
                ),
            )
        return {"text": message, "staged": was_staged, "root": str(folder.root)}

    @server.command(commands.SUMMARIZE_HISTORY)
    async def summarize_history(ls: CtxServer, *args: Any) -> dict[str, Any]:
        obj = commands.one_object(list(args))
        folder = folder_arg(ls, obj)
        async with Progress(ls, "ctx: summarizing the history", _token(obj)):
            text = await guarded(ls, lambda: with_view(ls, folder, tasks.summarize))
        return {"text": text}

    @server.command(commands.SHOW_PROMPT)
    async def show_prompt(ls: CtxServer, *args: Any) -> dict[str, Any]:
        """Dry run: exactly what a completion at {uri, position} would send, masked."""
        obj = commands.one_object(list(args))
        t = target(ls, obj.get("uri"))
        position = _structure(ls, obj.get("position"), types.Position, "position")
        start, _ = offsets(t.doc, types.Range(start=position, end=position))
        req = completion_request(ls.settings_for(t.folder), t.uri, t.doc, t.rel, start)
        assistant = ls.assistant(t.folder)
        v = await view(ls, t.folder)
        built = assistant.build(req, v.docs, v.summary)
        text = "\n\n".join(f"--- {m.role} ---\n{m.content}" for m in built.messages)
        if built.picks:
            text += "\n\n--- definitions chosen, and why ---\n" + "\n".join(built.picks)
        return {
            "text": text,
            "messages": [m.as_api() for m in built.messages],
            "tokens": built.tokens,
            "dropped": built.dropped,
            "definitions": list(built.picks),
        }


def _token(obj: dict[str, Any]) -> Any:
    return obj.get("workDoneToken")
