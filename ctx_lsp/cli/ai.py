"""Commands that ask the model (chat, commit, explain) and the prompt dry run."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ctx_lsp.assist import chat as chat_turns
from ctx_lsp.assist import tasks
from ctx_lsp.assist.assistant import Answer
from ctx_lsp.assist.completion import completion_request
from ctx_lsp.cli.common import (
    FAILED,
    USAGE,
    CliError,
    Spinner,
    Streamer,
    Workspace,
    emit_json,
    note,
)
from ctx_lsp.prompting.regions import Region, line_span
from ctx_lsp.text.tokens import count_tokens

#: `explain FILE` without a range: the whole file, up to this share of the prompt budget.
WHOLE_FILE_SHARE = 0.5


def _usage(answer: Answer | chat_turns.Outcome) -> dict[str, int]:
    return {
        "promptTokens": answer.usage.prompt_tokens,
        "completionTokens": answer.usage.completion_tokens,
    }


async def _ask(ws: Workspace, label: str, as_json: bool, job: Any) -> Any:
    """`job(on_delta)` with a spinner until the first text; the text streams to stdout as it
    arrives, unless --json (then the caller prints the final answer)."""
    async with Spinner(f"{label} ({ws.settings.model})…") as spinner:
        streamer = None if as_json else Streamer(spinner)
        answer = await job(streamer)
    if streamer is not None:
        streamer.finish()
    return answer


# -- chat ------------------------------------------------------------------------------------


async def chat(ws: Workspace, args: argparse.Namespace) -> int:
    question = args.question
    if question is None or question == "-":
        if sys.stdin.isatty():
            raise CliError("no question: give one as an argument or on stdin", USAGE)
        question = sys.stdin.read()
    if not question.strip():
        raise CliError("the question is empty", USAGE)
    named = [(rel, ws.document(rel)) for rel in dict.fromkeys(ws.rel(f) for f in args.file)]
    view = ws.view(named)
    current = ws.open_doc(*named[0]) if named else None
    a = ws.rt.assistant(ws.folder)
    q = chat_turns.parse(question)
    try:
        mentioned = chat_turns.read_files(ws.folder, q.mentions, {})
    except tasks.TaskError as exc:
        raise CliError(exc.args[0], USAGE) from None
    others = [ws.open_doc(rel, doc) for rel, doc in named[1:]]
    turn = chat_turns.Turn(q, current, None, [*others, *mentioned])
    answer = await _ask(
        ws, "thinking", args.json, lambda d: chat_turns.ask(a, view, turn, d or (lambda _: None))
    )
    if args.json:
        emit_json(
            {
                "text": answer.text,
                "question": question.strip(),
                "files": [rel for rel, _ in named] + [d.path for d in mentioned],
                "historyId": answer.history_id,
                "cut": answer.cut,
                "cached": answer.cached,
                "model": ws.settings.model,
                "usage": _usage(answer),
            }
        )
    return 0


# -- explain ---------------------------------------------------------------------------------

_RANGE = re.compile(r"^(?P<file>.+?):(?P<start>\d+)(?:-(?P<end>\d+))?$")


def parse_range(target: str) -> tuple[str, int | None, int | None]:
    """FILE[:START[-END]] → (file, start, end), lines 1-based; (file, None, None) without."""
    m = _RANGE.match(target)
    if m is None or Path(target).exists():
        return target, None, None
    start = int(m["start"])
    return m["file"], start, int(m["end"]) if m["end"] else start


def _trim_eol(text: str, end: int) -> int:
    """A region ends before its last line's ending, as the server's regions do."""
    if end and text[end - 1] == "\n":
        end -= 1
    if end and text[end - 1] == "\r":
        end -= 1
    return end


async def explain(ws: Workspace, args: argparse.Namespace) -> int:
    arg, first, last = parse_range(args.target)
    rel = ws.rel(arg)
    doc = ws.document(rel)
    text = doc.text
    lines = doc.line_count - (1 if text.endswith("\n") or not text else 0)
    if first is None or last is None:
        budget = int(ws.settings.context_tokens * WHOLE_FILE_SHARE)
        tokens = count_tokens(text)
        if tokens > budget:
            raise CliError(
                f"{rel} is too large to explain whole ({lines} lines, about {tokens} tokens; "
                f"the limit is {budget}): give a range, e.g. {arg}:1-40",
                USAGE,
            )
        region = Region(0, _trim_eol(text, len(text)), None, "file")
    else:
        if first < 1 or last < first:
            raise CliError(f"bad range {first}-{last}: lines are 1-based, START <= END", USAGE)
        if first > lines:
            raise CliError(f"{rel} has {lines} lines; line {first} is past its end", USAGE)
        start, end = line_span(text, first - 1, min(last, lines) - 1)
        kind = "file" if (first, min(last, lines)) == (1, lines) else "selection"
        region = Region(start, _trim_eol(text, end), None, kind)
    view = ws.view([(rel, doc)])
    a = ws.rt.assistant(ws.folder)
    answer = await _ask(
        ws,
        "explaining",
        args.json,
        lambda d: tasks.explain(a, view, ws.open_doc(rel, doc), region, d),
    )
    if args.json:
        first_line = text.count("\n", 0, region.start) + 1
        last_line = text.count("\n", 0, max(region.start, region.end - 1)) + 1
        emit_json(
            {
                "text": answer.text,
                "file": rel,
                "lines": [first_line, last_line],
                "cached": answer.cached,
                "model": ws.settings.model,
                "usage": _usage(answer),
            }
        )
    return 0


# -- commit ----------------------------------------------------------------------------------


async def commit(ws: Workspace, args: argparse.Namespace) -> int:
    a = ws.rt.assistant(ws.folder)
    view = ws.view([])
    async with Spinner(f"writing the commit message ({ws.settings.model})…"):
        message, staged = await tasks.commit_message(a, view, args.staged)
    if args.edit:
        message = _edit(message, ws.cwd)
    path = None
    if args.write:
        path = Path(args.write).expanduser()
        if not path.is_absolute():
            path = ws.cwd / path
        try:
            path.write_text(message if message.endswith("\n") else message + "\n", "utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.write}: {exc.strerror or exc}", USAGE) from None
        if not args.json:
            note(f"wrote {args.write}; commit with: git commit -F {shlex.quote(args.write)}")
    if args.json:
        emit_json(
            {
                "text": message,
                "staged": staged,
                "root": str(ws.root),
                "path": str(path) if path else None,
            }
        )
    else:
        sys.stdout.write(message.rstrip("\n") + "\n")
    return 0


def _edit(message: str, cwd: Path) -> str:
    """The message after the user edited it in $EDITOR ($VISUAL, else vi)."""
    editor = os.environ.get("EDITOR") or os.environ.get("VISUAL") or "vi"
    fd, name = tempfile.mkstemp(prefix="ctx-commit-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(message.rstrip("\n") + "\n")
        with contextlib.ExitStack() as stack:
            # The editor talks to the terminal even when our stdout is captured ($(...)).
            tty = None
            if not sys.stdout.isatty():
                with contextlib.suppress(OSError):
                    tty = stack.enter_context(open("/dev/tty", "r+b", buffering=0))
            try:
                done = subprocess.run(
                    [*shlex.split(editor), name],
                    cwd=cwd,
                    stdin=tty,
                    stdout=tty if tty is not None else sys.stderr,
                    check=False,
                )
            except (OSError, ValueError) as exc:
                raise CliError(f"cannot run the editor {editor!r}: {exc}", FAILED) from None
        if done.returncode != 0:
            raise CliError(f"the editor {editor!r} failed (exit {done.returncode})", FAILED)
        edited = Path(name).read_text(encoding="utf-8")
    finally:
        Path(name).unlink(missing_ok=True)
    if not edited.strip():
        raise CliError("aborted: the edited commit message is empty", FAILED)
    return edited.rstrip("\n") + "\n"


# -- prompt (dry run) ------------------------------------------------------------------------


_POSITION = re.compile(r"^(?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?$")


async def prompt(ws: Workspace, args: argparse.Namespace) -> int:
    m = _POSITION.match(args.target)
    if m is None:
        raise CliError(f"{args.target}: expected FILE:LINE or FILE:LINE:COL", USAGE)
    rel = ws.rel(m["file"])
    doc = ws.document(rel)
    line, col = int(m["line"]), int(m["col"]) if m["col"] else None
    lines = doc.line_count
    if line < 1 or line > lines:
        raise CliError(f"line {line} is outside {rel} (lines 1-{lines})", USAGE)
    content = doc.line(line - 1).rstrip("\r\n")
    if col is not None and not 1 <= col <= len(content) + 1:
        raise CliError(f"column {col} is outside line {line} (columns 1-{len(content) + 1})", USAGE)
    offset = doc.offset_at(line - 1, len(content) if col is None else col - 1)
    req = completion_request(ws.settings, doc.uri, doc, rel, offset)
    view = ws.view([(rel, doc)])
    ws.rt.index(ws.folder).build()  # persisted: re-parses only what changed since
    built = ws.rt.assistant(ws.folder).build(req, view.docs, view.summary)
    text = "\n\n".join(f"--- {m.role} ---\n{m.content}" for m in built.messages)
    if built.picks:
        text += "\n\n--- definitions chosen, and why ---\n" + "\n".join(built.picks)
    if args.json:
        emit_json(
            {
                "text": text,
                "messages": [m.as_api() for m in built.messages],
                "tokens": built.tokens,
                "dropped": built.dropped,
                "definitions": list(built.picks),
                "file": rel,
                "position": {"line": line, "column": offset - doc.offset_at(line - 1, 0) + 1},
            }
        )
    else:
        sys.stdout.write(text + "\n")
    return 0
