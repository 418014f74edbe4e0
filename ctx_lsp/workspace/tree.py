"""The project's structure as an ASCII tree with sizes: `ctx-lsp tree`, and the same view
for a prompt's project summary.

`render_tree` is pure (paths and sizes in, text out). `list_files` gathers the paths: git's own
listing in a repository (tracked plus untracked-but-not-ignored files), else a walk that honours
every `.gitignore` and `.ctxignore`; either way files that never enter the context (secrets,
`.ctx/`, `.git/`) are left out when an `exclude` test is given.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctx_lsp.workspace.git import GitRepo

#: Most files listed; a larger project is cut (and says so).
MAX_FILES = 20_000
#: Folders never walked into, whatever the ignore files say.
ALWAYS_SKIPPED = frozenset({".git", ".ctx", ".hg", ".svn"})

#: `exclude(rel)` → True when `rel` (posix, relative; folders end in "/") is left out.
Exclude = Callable[[str], bool]


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    if n < 1024**3:
        return f"{n / 1024 / 1024:.1f} MB"
    return f"{n / 1024**3:.1f} GB"


@dataclass
class Node:
    name: str
    size: int = 0  # a folder: the total of the files below it
    files: int = 0  # a folder: how many files are below it
    children: dict[str, Node] = field(default_factory=dict)
    is_dir: bool = False


def build_tree(files: Iterable[tuple[str, int]], root_name: str = ".") -> Node:
    """A tree of folders from (posix relative path, size) pairs."""
    root = Node(root_name, is_dir=True)
    for rel, size in files:
        parts = [p for p in rel.split("/") if p and p != "."]
        if not parts:
            continue
        node = root
        node.size += size
        node.files += 1
        for part in parts[:-1]:
            child = node.children.get(part)
            if child is None or not child.is_dir:
                child = node.children[part] = Node(part, is_dir=True)
            child.size += size
            child.files += 1
            node = child
        node.children[parts[-1]] = Node(parts[-1], size=size, files=1)
    return root


def _label(node: Node, sizes: bool) -> str:
    if node.is_dir:
        count = f"{node.files} file" + ("" if node.files == 1 else "s")
        return f"{node.name}/  ({count}, {human_size(node.size)})" if sizes else f"{node.name}/"
    return f"{node.name}  ({human_size(node.size)})" if sizes else node.name


def _ordered(node: Node) -> list[Node]:
    """Folders first, then files; each by name, case-insensitively."""
    return sorted(node.children.values(), key=lambda n: (not n.is_dir, n.name.lower(), n.name))


def render_tree(
    files: Iterable[tuple[str, int]],
    *,
    root_name: str = ".",
    depth: int | None = None,
    max_lines: int | None = None,
    sizes: bool = True,
) -> str:
    """The tree of `files` ((posix relative path, size) pairs) as text.

    `depth`: levels shown below the root (folders at the last level show their totals only);
    None shows all. `max_lines`: the text is cut there and ends with a line saying how many
    entries were left out (for prompts)."""
    root = build_tree(files, root_name)
    lines = [_label(root, sizes)]
    total = [0]

    def walk(node: Node, prefix: str, level: int) -> None:
        children = _ordered(node)
        for i, child in enumerate(children):
            last = i == len(children) - 1
            total[0] += 1
            lines.append(prefix + ("└── " if last else "├── ") + _label(child, sizes))
            if child.is_dir and (depth is None or level < depth):
                walk(child, prefix + ("    " if last else "│   "), level + 1)

    if depth is None or depth > 0:
        walk(root, "", 1)
    if max_lines is not None and len(lines) > max(max_lines, 2):
        kept = max(max_lines, 2) - 1
        left = len(lines) - kept
        lines = [*lines[:kept], f"… {left} more entries"]
    return "\n".join(lines)


def _stat_size(root: Path, rel: str) -> int | None:
    """Size of a regular file (symlinks followed only when they stay files); None otherwise."""
    try:
        st = os.stat(root / rel)
    except OSError:
        return None  # deleted from the work tree but still in the index, broken link...
    return st.st_size if stat.S_ISREG(st.st_mode) else None


async def _git_listing(git: GitRepo) -> list[str] | None:
    from ctx_lsp.workspace.git import GitError

    try:
        out = await git.run(
            "ls-files", "-z", "--cached", "--others", "--exclude-standard", max_bytes=64_000_000
        )
    except GitError:
        return None
    # --cached lists files with merge conflicts once per stage: keep the first
    return list(dict.fromkeys(p for p in out.split("\0") if p))


def _walk(root: Path, exclude: Exclude | None, limit: int) -> list[str]:
    out: list[str] = []
    for current, dirs, names in os.walk(root):
        base = Path(current).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in ALWAYS_SKIPPED and not (exclude and exclude(f"{prefix}{d}/"))
        )
        for name in sorted(names):
            out.append(prefix + name)
            if len(out) >= limit:
                return out
    return out


async def list_files(
    root: Path,
    git: GitRepo | None = None,
    exclude: Exclude | None = None,
    max_files: int = MAX_FILES,
) -> tuple[list[tuple[str, int]], str, bool]:
    """(files as (rel, size), "git" or "walk", whether the list was cut at `max_files`).

    In a git work tree `git ls-files` answers (it knows every ignore rule git applies); outside
    one, or when git fails, the folder is walked with `exclude` deciding (pass an Excluder's
    test so nested `.gitignore` files count)."""
    root = Path(root)
    paths = await _git_listing(git) if git is not None and git.branch().has_repo else None
    source = "git"
    if paths is None:
        source = "walk"
        paths = _walk(root, exclude, max_files + 1)
    files: list[tuple[str, int]] = []
    cut = False
    for rel in paths:
        if rel.split("/", 1)[0] in ALWAYS_SKIPPED or (exclude and exclude(rel)):
            continue
        size = _stat_size(root, rel)
        if size is None:
            continue
        if len(files) >= max_files:
            cut = True
            break
        files.append((rel, size))
    return files, source, cut
