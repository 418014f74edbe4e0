"""The active file context of one workspace folder, and its human summary."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ctx_lsp.config.settings import Settings
from ctx_lsp.text.documents import Document
from ctx_lsp.workspace.environment import allowed_environment
from ctx_lsp.workspace.folder import Folder
from ctx_lsp.workspace.git import BranchInfo
from ctx_lsp.workspace.tree import human_size


@dataclass(frozen=True)
class FileInfo:
    path: str
    language_id: str
    size: int
    version: int | None
    modified: float
    dirty: bool
    open: bool


@dataclass(frozen=True)
class ContextSnapshot:
    root: Path
    branch: BranchInfo
    active: list[FileInfo]
    pinned: list[FileInfo]
    env: dict[str, str]
    history_messages: int
    user: str


def _pinned_info(folder: Folder, rel: str) -> FileInfo:
    path = folder.root / rel
    try:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        size, mtime = -1, 0.0
    return FileInfo(rel, "", size, None, mtime, False, False)


def snapshot(
    folder: Folder,
    documents: Iterable[tuple[str, Document, bool]],
    settings: Settings,
    env: Mapping[str, str],
) -> ContextSnapshot:
    """documents: (path relative to the folder, document, has unsaved edits)."""
    active = [
        FileInfo(rel, d.language_id, d.size, d.version, d.modified, dirty, True)
        for rel, d, dirty in documents
    ]
    active.sort(key=lambda f: f.modified, reverse=True)
    return ContextSnapshot(
        root=folder.root,
        branch=folder.git.branch(),
        active=active,
        pinned=[_pinned_info(folder, rel) for rel in folder.pinned],
        env=allowed_environment(env, settings.env_allowlist),
        history_messages=len(folder.history),
        user=folder.user,
    )


def context_file_json(f: FileInfo, folder: Folder) -> dict[str, object]:
    return {
        "path": f.path,
        "root": str(folder.root),
        "languageId": f.language_id,
        "size": f.size,
        "version": f.version,
        "modified": f.modified,
        "unsaved": f.dirty,
        "open": f.open,
        "pinned": f.path in folder.pinned,
    }


def _size(n: int) -> str:
    return "missing" if n < 0 else human_size(n)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "unknown"


def summary_text(snap: ContextSnapshot) -> str:
    lines = [f"Workspace: {snap.root}", f"Branch: {snap.branch.label()}", f"User: {snap.user}"]
    lines.append(f"Active files ({len(snap.active)}):")
    for f in snap.active:
        state = ", unsaved edits" if f.dirty else ""
        lines.append(
            f"  {f.path}  [{f.language_id or 'text'}]  {_size(f.size)}  "
            f"v{f.version}  modified {_when(f.modified)}{state}"
        )
    lines.append(f"Pinned files ({len(snap.pinned)}):")
    lines += [f"  {f.path}  {_size(f.size)}" for f in snap.pinned]
    if snap.env:
        lines.append("Environment (allowlisted):")
        lines += [f"  {k}={v}" for k, v in snap.env.items()]
    else:
        lines.append("Environment (allowlisted): none")
    lines.append(f"History: {snap.history_messages} messages")
    return "\n".join(lines)


def prompt_summary(snap: ContextSnapshot) -> str:
    """The project summary for prompts: stable across identical requests (no clocks or
    counters), so repeated prompts hit the cache."""
    lines = [f"Workspace: {snap.root.name}", f"Branch: {snap.branch.label()}"]
    if snap.active:
        files = sorted(snap.active, key=lambda f: f.path)
        lines.append(
            "Open files: " + ", ".join(f"{f.path} ({f.language_id or 'text'})" for f in files)
        )
    if snap.pinned:
        lines.append("Pinned files: " + ", ".join(sorted(f.path for f in snap.pinned)))
    if snap.env:
        lines.append("Environment: " + ", ".join(f"{k}={v}" for k, v in snap.env.items()))
    return "\n".join(lines)
