"""Chat in the editor: `ctx.chat` (streamed as progress reports), `ctx.applyCode` and
`ctx.chatHistory`, on the conversation the CLI's `ctx-lsp chat` shares."""

from __future__ import annotations

import asyncio
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ctx_lsp import commands
from ctx_lsp.assist import chat
from ctx_lsp.server import COMMAND_PARAMS, CtxServer
from ctx_lsp.server.action_handlers import _structure, guarded
from ctx_lsp.server.edits import lsp_range, offsets, target
from ctx_lsp.server.progress import Progress
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.workspace.folder import Folder

#: Characters of the question named in an applied edit's label.
LABEL_QUESTION_CHARS = 50


def _parse(parse: Any, args: tuple[Any, ...]) -> Any:
    try:
        return parse(list(args))
    except commands.ArgumentError as exc:
        raise JsonRpcInvalidParams(str(exc)) from None


def _token(args: tuple[Any, ...]) -> Any:
    """The request's work-done token; the argument object's for clients that put it there."""
    params = COMMAND_PARAMS.get()
    if params is not None and params.work_done_token is not None:
        return params.work_done_token
    obj = args[0] if args and isinstance(args[0], dict) else {}
    return obj.get("workDoneToken")


def _range(ls: CtxServer, value: dict[str, Any]) -> types.Range:
    return _structure(ls, value, types.Range, "range")


async def _find(ls: CtxServer, first: Folder, history_id: str) -> tuple[ChatMessage, str]:
    """The answer with this id and its question, from the document's folder first."""
    for folder in dict.fromkeys([first, *ls.folders.values()]):
        answer, before = await asyncio.to_thread(folder.history.find, history_id)
        if answer is not None and answer.role == "assistant":
            return answer, before.content if before is not None else ""
    raise JsonRpcInvalidParams(f"no answer {history_id!r} in the chat history")


def _annotates(ls: CtxServer) -> bool:
    ws = ls.client_capabilities.workspace
    edit = ws.workspace_edit if ws else None
    return bool(edit and edit.change_annotation_support)


def register(server: CtxServer) -> None:
    @server.command(commands.CHAT)
    async def chat_turn(ls: CtxServer, *args: Any) -> dict[str, Any]:
        a: commands.ChatArgs = _parse(commands.ChatArgs.parse, args)
        doc, selection = None, None
        if a.uri is not None:
            t = target(ls, a.uri)
            folder, doc = t.folder, t.open_doc()
            if a.range is not None:
                start, end = offsets(t.doc, _range(ls, a.range))
                selection = (start, end) if end > start else None
        else:
            folder = ls.default_folder()
        view = await ls.view(folder)
        question = chat.parse(a.question)
        names = [*a.files, *question.mentions]
        open_docs = {d.path: d for d in view.docs}
        files = []
        if names:  # reads the disk
            files = await guarded(
                ls, lambda: asyncio.to_thread(chat.read_files, folder, names, open_docs)
            )
        turn = chat.Turn(question, doc, selection, files)
        assistant = ls.assistant(folder)
        outcome = chat.Outcome()
        progress = Progress(ls, "ctx chat", _token(args))
        try:
            async with progress:
                await guarded(ls, lambda: chat.ask(assistant, view, turn, progress.delta, outcome))
        except asyncio.CancelledError:
            if not progress.cancelled_by_user:
                raise  # $/cancelRequest: the request ends as cancelled
        return {
            "text": outcome.text,
            "historyId": outcome.history_id,
            "cut": outcome.cut,
            "cached": outcome.cached,
        }

    @server.command(commands.APPLY_CODE)
    async def apply_code(ls: CtxServer, *args: Any) -> dict[str, Any]:
        a: commands.ApplyCodeArgs = _parse(commands.ApplyCodeArgs.parse, args)
        t = target(ls, a.uri)
        answer, question = await _find(ls, t.folder, a.history_id)
        blocks = chat.code_blocks(answer.content, chat.is_code_answer(question))
        if not blocks:
            raise JsonRpcInvalidParams("that answer holds no code block")
        if a.block >= len(blocks):
            raise JsonRpcInvalidParams(
                f"that answer has {len(blocks)} code block(s): block {a.block} is not one "
                "(blocks count from 0)"
            )
        code = blocks[a.block]
        start, end = offsets(t.doc, _range(ls, a.range)) if a.range else (0, t.doc.size)
        if end < t.doc.size and t.doc.position_at(end)[1] != 0:
            code = code.rstrip("\n")  # the range ends inside a line: keep that line's rest
        short = " ".join(question.split())
        if len(short) > LABEL_QUESTION_CHARS:
            short = short[:LABEL_QUESTION_CHARS] + "…"
        label = f"ctx: code block {a.block + 1} of the answer to “{short}”"
        at = lsp_range(t.doc, start, end)
        text_edit: types.TextEdit = types.TextEdit(range=at, new_text=code)
        annotations = None
        if a.confirm and _annotates(ls):  # the client shows the edit and asks first
            text_edit = types.AnnotatedTextEdit(range=at, new_text=code, annotation_id="ctx")
            annotations = {"ctx": types.ChangeAnnotation(label=label, needs_confirmation=True)}
        edit = types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(
                uri=t.uri, version=t.doc.version
            ),
            edits=[text_edit],
        )
        result = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(
                edit=types.WorkspaceEdit(document_changes=[edit], change_annotations=annotations),
                label=label,
            )
        )
        return {"text": code, "applied": bool(result and result.applied), "label": label}

    @server.command(commands.CHAT_HISTORY)
    async def chat_history(ls: CtxServer, *args: Any) -> dict[str, Any]:
        a: commands.ChatHistoryArgs = _parse(commands.ChatHistoryArgs.parse, args)
        folder = ls.default_folder()
        ls.refresh(folder)
        messages = await asyncio.to_thread(folder.history.messages)
        turns = chat.past_turns(messages, a.limit)
        return {"text": chat.transcript(turns), "turns": [t.to_json() for t in turns]}
