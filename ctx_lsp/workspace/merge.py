"""Merge another session (and its history) into a workspace folder's own.

Rules, applied by `merge_sessions` and `merge_histories` (pure) and `merge_into` (on disk):

* open files: the union by path; when both have a file, the record with the newer
  `last_modified` wins (ours on a tie);
* pinned files and environment names: the union, ours first;
* settings overrides: the union; a key set to different values on both sides is a conflict,
  resolved for `prefer` ("ours" by default) and reported;
* branch: ours, else theirs; `created` the earlier, `last_active` the later;
* history: both sides interleaved by time (ours first on equal times), without duplicates
  (the same id, or the same role, content and time). Summaries are kept as they are; the next
  summary condenses the merged conversation.

Before anything is written, both inputs are copied to `.ctx/backups/<timestamp>/{ours,theirs}/`
with a `merge.json` that says what was merged; then the history and the session are each
replaced atomically (the history under its lock, so a server appending meanwhile loses nothing).

OTHER (`locate_other`) is a `session.json` file (its `history.jsonl` beside it, if any), a folder
holding them (e.g. a `ctx-lsp session save` snapshot), a `.ctx` folder, or a workspace holding a
`.ctx` folder; in the last two the same user (and branch) scope as ours is used, else the only
user there, else `user` must name one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ctx_lsp.store.ctxdir import CTX_DIR, CtxStore, scope_part
from ctx_lsp.store.history import History
from ctx_lsp.store.session import FileRecord, Session, SessionStore
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.workspace.folder import Folder

SESSION_FILE = "session.json"
HISTORY_FILE = "history.jsonl"
BACKUPS = "backups"
PREFER = ("ours", "theirs")


class MergeError(Exception):
    """A merge that cannot be done. `damaged`: OTHER exists but cannot be read."""

    def __init__(self, message: str, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


@dataclass(frozen=True)
class Conflict:
    key: str
    ours: Any
    theirs: Any
    kept: str  # "ours" or "theirs"

    def describe(self) -> str:
        dropped = "theirs" if self.kept == "ours" else "ours"
        kept_value = self.ours if self.kept == "ours" else self.theirs
        dropped_value = self.theirs if self.kept == "ours" else self.ours
        return (
            f"setting {self.key!r}: kept {self.kept} ({json.dumps(kept_value)}), "
            f"dropped {dropped} ({json.dumps(dropped_value)})"
        )


@dataclass
class MergeReport:
    session: Session
    messages: list[ChatMessage]
    conflicts: list[Conflict] = field(default_factory=list)
    files_added: list[str] = field(default_factory=list)
    files_updated: list[str] = field(default_factory=list)
    pinned_added: list[str] = field(default_factory=list)
    messages_added: int = 0
    duplicates: int = 0
    other_session: Path | None = None
    other_history: Path | None = None
    backup: Path | None = None
    problems: list[str] = field(default_factory=list)  # their damaged history lines, skipped

    def to_json(self) -> dict[str, Any]:
        return {
            "conflicts": [
                {"key": c.key, "ours": c.ours, "theirs": c.theirs, "kept": c.kept}
                for c in self.conflicts
            ],
            "filesAdded": self.files_added,
            "filesUpdated": self.files_updated,
            "pinnedAdded": self.pinned_added,
            "messagesAdded": self.messages_added,
            "duplicates": self.duplicates,
            "messages": len(self.messages),
            "otherSession": str(self.other_session) if self.other_session else None,
            "otherHistory": str(self.other_history) if self.other_history else None,
            "backup": str(self.backup) if self.backup else None,
            "problems": self.problems,
        }


# -- pure rules ------------------------------------------------------------------------------


def _union(ours: list[str], theirs: list[str]) -> tuple[list[str], list[str]]:
    added = [x for x in dict.fromkeys(theirs) if x not in ours]
    return [*ours, *added], added


def merge_sessions(
    ours: Session, theirs: Session, prefer: str = "ours"
) -> tuple[Session, list[Conflict], list[str], list[str]]:
    """(merged session, settings conflicts, files added, files updated from theirs)."""
    if prefer not in PREFER:
        raise ValueError(f"prefer must be one of {PREFER}")
    files: dict[str, FileRecord] = {f.path: f for f in ours.open_files}
    added, updated = [], []
    for f in theirs.open_files:
        mine = files.get(f.path)
        if mine is None:
            files[f.path] = f
            added.append(f.path)
        elif f.last_modified > mine.last_modified:
            files[f.path] = f
            updated.append(f.path)
    overrides = dict(ours.settings_overrides)
    conflicts: list[Conflict] = []
    for key, value in theirs.settings_overrides.items():
        if key not in overrides:
            overrides[key] = value
        elif overrides[key] != value:
            conflicts.append(Conflict(key, overrides[key], value, prefer))
            if prefer == "theirs":
                overrides[key] = value
    pinned, _ = _union(ours.pinned, theirs.pinned)
    env_names, _ = _union(ours.env_names, theirs.env_names)
    created = [t for t in (ours.created, theirs.created) if t]
    merged = replace(
        ours,
        open_files=list(files.values()),
        pinned=pinned,
        branch=ours.branch or theirs.branch,
        settings_overrides=overrides,
        env_names=env_names,
        last_active=max(ours.last_active, theirs.last_active),
        created=min(created) if created else 0.0,
    )
    return merged, conflicts, added, updated


def merge_histories(
    ours: list[ChatMessage], theirs: list[ChatMessage]
) -> tuple[list[ChatMessage], int]:
    """(both interleaved by time without duplicates, how many duplicates were dropped)."""
    tagged = [(m.time, 0, i, m) for i, m in enumerate(ours)]
    tagged += [(m.time, 1, i, m) for i, m in enumerate(theirs)]
    tagged.sort(key=lambda t: t[:3])
    seen_ids: set[str] = set()
    seen_keys: set[tuple[str, str, float]] = set()
    out: list[ChatMessage] = []
    for *_, m in tagged:
        key = (m.role, m.content, m.time)
        if m.id in seen_ids or key in seen_keys:
            continue
        seen_ids.add(m.id)
        seen_keys.add(key)
        out.append(m)
    return out, len(tagged) - len(out)


# -- finding and reading OTHER ---------------------------------------------------------------


def _has_state(directory: Path) -> bool:
    return (directory / SESSION_FILE).is_file() or (directory / HISTORY_FILE).is_file()


def locate_other(
    arg: Path, scope: tuple[str, ...], user: str | None = None
) -> tuple[Path | None, Path | None]:
    """(session file, history file) of OTHER; either may be None, not both."""
    path = Path(arg).expanduser()
    if path.is_file():
        directory = path.parent
        session = path if path.name != HISTORY_FILE else directory / SESSION_FILE
        history = path if path.name == HISTORY_FILE else directory / HISTORY_FILE
        return (session if session.is_file() else None), (history if history.is_file() else None)
    if not path.is_dir():
        raise MergeError(f"{arg}: no such file or folder")
    if _has_state(path) and path.name != CTX_DIR:
        directory = path
    else:
        ctx = path if path.name == CTX_DIR or (path / "users").is_dir() else path / CTX_DIR
        if not ctx.is_dir():
            raise MergeError(
                f"{arg}: neither a session.json, a folder holding one, nor a .ctx folder"
            )
        directory = _scope_dir(ctx, scope, user, arg)
    session, history = directory / SESSION_FILE, directory / HISTORY_FILE
    return (session if session.is_file() else None), (history if history.is_file() else None)


def _scope_dir(ctx: Path, scope: tuple[str, ...], user: str | None, arg: Path) -> Path:
    if user is not None:
        scope = ("users", scope_part(user), *scope[2:])
        if not _has_state(ctx.joinpath(*scope)):
            raise MergeError(f"{arg}: no session or history for user {user!r}")
        return ctx.joinpath(*scope)
    if _has_state(ctx.joinpath(*scope)):
        return ctx.joinpath(*scope)
    users_dir = ctx / "users"
    users = (
        sorted(
            d.name for d in users_dir.iterdir() if d.is_dir() and _has_state(d.joinpath(*scope[2:]))
        )
        if users_dir.is_dir()
        else []
    )
    if len(users) == 1:
        return users_dir.joinpath(users[0], *scope[2:])
    if not users:
        raise MergeError(f"{arg}: holds no session or history")
    names = ", ".join(unquote(u) for u in users)  # the names --user takes
    raise MergeError(f"{arg}: holds several users' sessions ({names}): choose one")


def read_other(
    session_path: Path | None, history_path: Path | None
) -> tuple[Session, History, list[str]]:
    """OTHER's session and history, read from a private copy so that nothing of OTHER is ever
    moved or changed. A damaged session raises MergeError(damaged=True); damaged history lines
    are skipped and returned as problems."""
    with tempfile.TemporaryDirectory(prefix="ctx-merge-") as tmp:
        store = CtxStore(Path(tmp))
        store.dir.mkdir()
        for src, name in ((session_path, SESSION_FILE), (history_path, HISTORY_FILE)):
            if src is not None:
                try:
                    shutil.copyfile(src, store.path(name))
                except OSError as exc:
                    raise MergeError(f"cannot read {src}: {exc.strerror or exc}") from exc
        session = SessionStore(store).load()
        if problems := store.take_problems():
            why = problems[0].split(";")[0].removeprefix(f"{CTX_DIR}/{SESSION_FILE} ")
            raise MergeError(f"{session_path}: {why}", damaged=True)
        history = History(store, max_bytes=2**62)
        history.load()
        # (the copy's damaged lines were set aside in the copy: OTHER keeps them)
        problems = [
            p.replace(f"{CTX_DIR}/{HISTORY_FILE}", str(history_path)).split("; moved to")[0]
            for p in store.take_problems()
        ]
    return session, history, problems


# -- writing ---------------------------------------------------------------------------------


def _covers(history: History) -> dict[str, str]:
    """Summary id → id of the last message it condenses (kept by History, not public)."""
    return dict(getattr(history, "_covers", {}))


def _backup(folder: Folder, inputs: dict[str, list[Path | None]], manifest: dict[str, Any]) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name, n = stamp, 1
    while (folder.store.ctx_dir / BACKUPS / name).exists():
        n += 1
        name = f"{stamp}-{n}"
    store = CtxStore(folder.root, (BACKUPS, name))
    for side, paths in inputs.items():
        for path in paths:
            if path is not None and path.is_file():
                store.write_bytes_atomic(f"{side}/{path.name}", path.read_bytes())
    store.write_text_atomic("merge.json", json.dumps(manifest, indent=1, default=str) + "\n")
    return store.dir


def _write_history(folder: Folder, messages: list[ChatMessage], covers: dict[str, str]) -> None:
    """Replace the history file with `messages` (caller holds the history lock)."""
    staging_name = f"{HISTORY_FILE}.merging"
    staging = History(folder.store, name=staging_name, max_bytes=2**62)
    staging.clear()
    batch: list[ChatMessage] = []
    for m in messages:
        if m.kind == "summary" and m.id in covers:
            staging.append(*batch)
            batch = []
            fields = {k: v for k, v in m.to_json().items() if k not in ("role", "content")}
            staging.add_summary(m.content, covers[m.id], **fields)
        else:
            batch.append(m)
    staging.append(*batch)
    target = folder.history.path
    if messages:
        os.replace(staging.path, target)
    else:
        staging.path.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        Path(f"{staging.path}.lock").unlink()


def merge_into(
    folder: Folder,
    other: Path,
    *,
    prefer: str = "ours",
    user: str | None = None,
    dry_run: bool = False,
) -> MergeReport:
    """Merge OTHER into `folder`'s session and history (see the module docstring)."""
    session_path, history_path = locate_other(other, folder.scope, user)
    if session_path is None and history_path is None:
        raise MergeError(f"{other}: holds no session or history")
    ours_session = folder.sessions.store.path(folder.sessions.name)
    for theirs in (session_path, history_path):
        if theirs is not None and theirs.resolve() in (
            ours_session.resolve(),
            folder.history.path.resolve(),
        ):
            raise MergeError(f"{other}: is this workspace's own session; nothing to merge")
    their_session, their_history, problems = read_other(session_path, history_path)

    with folder.store.lock(HISTORY_FILE):
        folder.history.refresh()  # lines another process appended since we loaded
        session, conflicts, added, updated = merge_sessions(folder.session, their_session, prefer)
        ours = folder.history.messages()
        messages, dups = merge_histories(ours, their_history.messages())
        report = MergeReport(
            session=session,
            messages=messages,
            conflicts=conflicts,
            files_added=added,
            files_updated=updated,
            pinned_added=[p for p in session.pinned if p not in folder.session.pinned],
            messages_added=len(messages) - len(ours),
            duplicates=dups,
            other_session=session_path,
            other_history=history_path,
            problems=problems,
        )
        if dry_run:
            return report
        manifest = {
            "time": time.time(),
            "prefer": prefer,
            "other": str(other),
            **report.to_json(),
        }
        report.backup = _backup(
            folder,
            {
                "ours": [ours_session, folder.history.path],
                "theirs": [session_path, history_path],
            },
            manifest,
        )
        _write_history(folder, messages, {**_covers(their_history), **_covers(folder.history)})
        folder.history.load()
    folder.session = session
    folder.sessions.save(session)
    return report
