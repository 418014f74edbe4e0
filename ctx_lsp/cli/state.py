"""Commands on the remembered state: the session and the chat history."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from ctx_lsp.assist import tasks
from ctx_lsp.cli.common import USAGE, CliError, Spinner, Workspace, emit_json, note, warn
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.workspace import merge


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "never"


# -- session ---------------------------------------------------------------------------------


def _session_path(ws: Workspace) -> Path:
    return ws.folder.sessions.store.path(ws.folder.sessions.name)


async def session_show(ws: Workspace, args: argparse.Namespace) -> int:
    s = ws.folder.session
    path = _session_path(ws)
    if args.json:
        emit_json(
            {
                "path": str(path),
                "saved": path.is_file(),
                "user": ws.folder.user,
                "root": str(ws.root),
                **s.to_json(),
            }
        )
        return 0
    shown = ws.folder.store.rel(path)
    out = [f"Session: {shown}" + ("" if path.is_file() else " (not saved yet)")]
    out += [f"User: {ws.folder.user}", f"Branch: {s.branch or 'unknown'}"]
    out.append(f"Last active: {_when(s.last_active)}")
    out.append(f"Open files ({len(s.open_files)}):")
    out += [
        f"  {f.path}  [{f.language_id or 'text'}]  modified {_when(f.last_modified)}"
        for f in sorted(s.open_files, key=lambda f: f.last_active, reverse=True)
    ]
    out.append(f"Pinned files ({len(s.pinned)}):")
    out += [f"  {p}" for p in s.pinned]
    if s.settings_overrides:
        out.append("Settings overrides:")
        out += [f"  {k} = {json.dumps(v)}" for k, v in sorted(s.settings_overrides.items())]
    else:
        out.append("Settings overrides: none")
    out.append("Environment names: " + (", ".join(s.env_names) or "none"))
    sys.stdout.write("\n".join(out) + "\n")
    return 0


async def session_save(ws: Workspace, args: argparse.Namespace) -> int:
    """A snapshot of the session and history that `session merge` can take back."""
    session_file = _session_path(ws)
    if not session_file.is_file():
        ws.folder.sessions.save(ws.folder.session)  # what the server would write
    sources = [p for p in (session_file, ws.folder.history.path) if p.is_file()]
    if args.dest is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        store = CtxStore(ws.root, (merge.BACKUPS, f"{stamp}-saved"))
        for src in sources:
            store.write_bytes_atomic(src.name, src.read_bytes())
        dest = store.dir
    else:
        dest = args.dest if args.dest.is_absolute() else ws.cwd / args.dest
        if dest.exists() and not dest.is_dir():
            raise CliError(f"{args.dest}: exists and is not a folder", USAGE)
        dest.mkdir(parents=True, exist_ok=True)
        for src in sources:
            shutil.copyfile(src, dest / src.name)
    n = len(ws.folder.history)
    if args.json:
        emit_json({"path": str(dest), "files": [p.name for p in sources], "messages": n})
    else:
        note(f"saved the session and {n} messages to {dest}")
        sys.stdout.write(f"{dest}\n")
    return 0


async def session_clear(ws: Workspace, args: argparse.Namespace) -> int:
    ws.folder.clear_session()
    note("session cleared (the history is kept: `ctx-lsp history clear` clears it)")
    return 0


async def session_merge(ws: Workspace, args: argparse.Namespace) -> int:
    other = args.other if args.other.is_absolute() else ws.cwd / args.other
    report = merge.merge_into(
        ws.folder, other, prefer=args.prefer, user=args.user, dry_run=args.dry_run
    )
    for problem in report.problems:
        warn(problem)
    if args.json:
        emit_json({"dryRun": args.dry_run, "prefer": args.prefer, **report.to_json()})
        return 0
    for c in report.conflicts:
        warn(f"conflict: {c.describe()}")
    lines = [
        ("Would merge" if args.dry_run else "Merged")
        + f" {report.other_session or report.other_history}",
        f"  open files: {len(report.files_added)} added, {len(report.files_updated)} updated "
        "(newer wins)",
        f"  pinned files: {len(report.pinned_added)} added",
        f"  history: {report.messages_added} messages added, {report.duplicates} duplicates "
        f"dropped, {len(report.messages)} in all",
        f"  settings conflicts: {len(report.conflicts)} ({args.prefer} kept)",
    ]
    if report.backup is not None:
        lines.append(f"  backup of both inputs: {ws.folder.store.rel(report.backup)}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


# -- history ---------------------------------------------------------------------------------


def _meta(m: ChatMessage) -> str:
    parts = [m.kind] + [p for p in (m.file, m.branch) if p]
    return ", ".join(parts)


async def history_show(ws: Workspace, args: argparse.Namespace) -> int:
    history = ws.folder.history
    messages = history.recent(args.last) if args.last else history.messages()
    if args.json:
        emit_json(
            {
                "path": str(history.path),
                "total": len(history),
                "messages": [m.to_json() for m in messages],
            }
        )
        return 0
    if not messages:
        note("the history is empty")
        return 0
    out = []
    for m in messages:
        out.append(f"[{_when(m.time)}] {m.role} ({_meta(m)})")
        out += [f"  {line}" for line in m.content.splitlines() or [""]]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


async def history_clear(ws: Workspace, args: argparse.Namespace) -> int:
    n = len(ws.folder.history)
    ws.folder.history.clear()
    note(f"history cleared ({n} messages)")
    return 0


async def history_summarize(ws: Workspace, args: argparse.Namespace) -> int:
    a = ws.rt.assistant(ws.folder)
    async with Spinner(f"summarizing the history ({ws.settings.model})…"):
        text = await tasks.summarize(a, ws.view([]))
    if args.json:
        emit_json({"text": text, "messages": len(ws.folder.history)})
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")
    return 0


def export_text(messages: list[ChatMessage], fmt: str, title: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(m.to_json(), ensure_ascii=False) + "\n" for m in messages)
    out = [f"# ctx-lsp history: {title}", ""]
    for m in messages:
        out += [f"## {m.role} · {_meta(m)} · {_when(m.time)}", "", m.content.rstrip("\n"), ""]
    return "\n".join(out)


async def history_export(ws: Workspace, args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None:
        suffix = args.output.suffix.lower() if args.output else ""
        fmt = "md" if suffix in (".md", ".markdown") else "jsonl"
    text = export_text(ws.folder.history.messages(), fmt, ws.root.name)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    path: Path = args.output if args.output.is_absolute() else ws.cwd / args.output
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}", USAGE) from None
    note(f"exported {len(ws.folder.history)} messages to {args.output}")
    return 0
