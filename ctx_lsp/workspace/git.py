"""Git awareness for the workspace: the branch (read from files) and diffs (async git runs).

The branch is wanted on every request, so it is parsed from HEAD and the refs instead of
spawning git. Other queries run git as a subprocess that never blocks the event loop, never
inherits the server's stdin (the LSP channel) and is killed, with its children, on timeout.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ctx_lsp.workspace.stamps import settled, stat_key

_POSIX = os.name == "posix"
_HASH = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1 or SHA-256
# Set e.g. when the editor was started from a git hook; they would make git ignore cwd.
_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")
_STDERR_CAP = 16_384
_NUMSTAT_CAP = 1_000_000
_STATUS_CAP = 256_000
_SUMMARY_LINES = 50


class GitError(Exception):
    """A git operation failed; the message is fit to show to the user."""


@dataclass(frozen=True)
class BranchInfo:
    branch: str | None  # None when detached, unknown or no repo
    head: str | None  # short hash of HEAD; None when unborn (no commits) or unknown
    detached: bool
    has_repo: bool

    def label(self) -> str:
        if not self.has_repo:
            return "no git"
        if self.detached:
            return f"detached at {self.head or 'unknown commit'}"
        if self.branch is None:
            return "unknown branch"
        return self.branch if self.head else f"{self.branch} (no commits yet)"


NO_REPO = BranchInfo(branch=None, head=None, detached=False, has_repo=False)


@dataclass(frozen=True)
class FileStat:
    path: str  # relative to the repository top; the new path of a rename
    added: int
    deleted: int
    binary: bool
    old_path: str | None = None  # set for renames and copies


@dataclass(frozen=True)
class Diff:
    text: str
    files: list[FileStat]
    staged: bool
    truncated: bool

    @property
    def empty(self) -> bool:
        return not self.files and not self.text.strip()


@dataclass(frozen=True)
class Commit:
    hash: str
    subject: str
    author: str
    time: int  # unix seconds, author date


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # missing, a directory, unreadable
        return None


def find_git_dir(path: Path) -> Path | None:
    """The git dir (folder holding HEAD) of the repository containing `path`, or None."""
    path = Path(path).resolve()
    if not path.is_dir():
        path = path.parent
    for folder in (path, *path.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            if (dot_git / "HEAD").is_file():
                return dot_git
            continue  # a stray empty .git folder: git looks further up too
        if dot_git.is_file():  # worktrees and submodules: "gitdir: <path>"
            first = ((_read(dot_git) or "").splitlines() or [""])[0]
            if not first.startswith("gitdir:"):
                return None
            target = folder / first[len("gitdir:") :].strip()  # relative to the .git file
            target = target.resolve()
            return target if (target / "HEAD").is_file() else None
    return None


def _common_dir(git_dir: Path) -> Path:
    """Where shared refs live: a linked worktree's git dir names it in its `commondir` file."""
    rel = _read(git_dir / "commondir")
    return (git_dir / rel.strip()).resolve() if rel else git_dir


def _resolve_ref(git_dir: Path, ref: str, depth: int = 0) -> str | None:
    """Full hash a ref points to, from loose refs then packed-refs; None if unborn."""
    common = _common_dir(git_dir)
    for base in dict.fromkeys((git_dir, common)):  # per-worktree refs first, then shared
        value = _read(base / ref)
        if value is None:
            continue
        value = value.strip()
        if value.startswith("ref:") and depth < 5:
            return _resolve_ref(git_dir, value[4:].strip(), depth + 1)
        return value if _HASH.fullmatch(value) else None
    for line in (_read(common / "packed-refs") or "").splitlines():
        sha, _, name = line.partition(" ")  # also "# header" and "^peeled" lines: no match
        if name == ref and _HASH.fullmatch(sha):
            return sha
    return None


def read_branch(git_dir: Path) -> BranchInfo:
    """Branch and short HEAD hash, from files only (no subprocess)."""
    head = _read(git_dir / "HEAD")
    if head is None:
        return NO_REPO
    head = head.strip()
    unknown = BranchInfo(branch=None, head=None, detached=False, has_repo=True)
    if head.startswith("ref:"):
        ref = head[4:].strip()
        if ref == "refs/heads/.invalid":  # reftable repos keep the real HEAD elsewhere
            return unknown
        sha = _resolve_ref(git_dir, ref)
        name = ref.removeprefix("refs/heads/")
        return BranchInfo(branch=name, head=sha[:7] if sha else None, detached=False, has_repo=True)
    if _HASH.fullmatch(head):
        return BranchInfo(branch=None, head=head[:7], detached=True, has_repo=True)
    return unknown


class GitRepo:
    """Branch with a cheap freshness check: re-read HEAD only when its stat (mtime_ns, size,
    inode) changed. Git commands run asynchronously, each with a timeout."""

    def __init__(self, root: Path, timeout_s: float = 5.0) -> None:
        self.root = Path(root).resolve()
        self.timeout_s = timeout_s
        self.git_dir: Path | None = find_git_dir(self.root)
        self._watched: tuple[Path | None, ...] = ()  # HEAD, branch's loose ref, packed-refs
        self._cache: tuple[tuple[object, ...], BranchInfo] | None = None

    def branch(self) -> BranchInfo:
        """Current branch; a few stats unless HEAD or the branch's ref changed since last time."""
        # HEAD is watched: a repository removed or replaced changes the stats too
        if self._cache and self._cache[0] == tuple(stat_key(p) for p in self._watched):
            return self._cache[1]
        if self.git_dir is None or not (self.git_dir / "HEAD").is_file():
            self.git_dir, self._cache = find_git_dir(self.root), None  # repo created/removed
            if self.git_dir is None:
                return NO_REPO
        # Stat before reading: a write racing with us then shows up as a change next time.
        head_key = stat_key(self.git_dir / "HEAD")
        head = (_read(self.git_dir / "HEAD") or "").strip()
        common = _common_dir(self.git_dir)
        ref_file = common / head[4:].strip() if head.startswith("ref:") else None
        self._watched = (self.git_dir / "HEAD", ref_file, common / "packed-refs")
        key = (head_key, stat_key(ref_file), stat_key(common / "packed-refs"))
        info = read_branch(self.git_dir)
        now = time.time_ns()
        racy = any(k is not None and not settled(k[0], now) for k in key)
        self._cache = None if racy else (key, info)
        return info

    def head_paths(self) -> list[Path]:
        """Files whose change means a branch switch (for didChangeWatchedFiles)."""
        return [self.git_dir / "HEAD"] if self.git_dir is not None else []

    async def run(
        self,
        *args: str,
        max_bytes: int | None = None,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """`git <args>` in root; stdout cut at max_bytes (git is then stopped). GitError on a
        non-zero exit, a timeout or a missing git. Paths in the output are not quoted."""
        return _decode(*await self._exec(args, max_bytes, stdin, timeout_s))

    async def _exec(
        self,
        args: tuple[str, ...],
        max_bytes: int | None = None,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
        ok_codes: tuple[int, ...] = (0,),
    ) -> tuple[bytes, bool]:
        """(stdout, whether it was cut at max_bytes and git stopped)."""
        if not self.root.is_dir():
            raise GitError(f"folder {self.root} does not exist")
        try:
            proc = await asyncio.create_subprocess_exec(
                *("git", "-c", "core.quotepath=off", *args),  # raw UTF-8 paths, not "\303\251"
                cwd=self.root,
                env=_git_env(),
                # Never inherit stdin: the server's own stdin is the LSP channel.
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=_POSIX,  # own process group, so a kill reaches its children
            )
        except FileNotFoundError:
            raise GitError("git is not installed (not found on PATH)") from None
        except OSError as e:
            raise GitError(f"cannot run git: {e}") from e
        # The subcommand, for messages: skips options and "-c key=value".
        name = next((a for a in args if not a.startswith("-") and "=" not in a), "git")
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            out, truncated, code, err = await asyncio.wait_for(
                _communicate(proc, stdin, max_bytes), timeout
            )
        except TimeoutError:
            raise GitError(f"git {name} timed out after {timeout:g}s") from None
        finally:
            if proc.returncode is None:  # timed out or cancelled: kill, then reap briefly
                _kill(proc)
                with contextlib.suppress(asyncio.TimeoutError, OSError):
                    await asyncio.wait_for(
                        asyncio.gather(_drain(proc.stdout), _drain(proc.stderr), proc.wait()), 2
                    )
        if not truncated and code not in ok_codes:
            msg = err.decode("utf-8", errors="replace").strip().removeprefix("fatal: ")
            msg = " ".join(msg.splitlines()[:3])[:300] or f"exit code {code}"
            raise GitError(f"git {name} failed: {msg}")
        return out, truncated

    def _require_repo(self) -> BranchInfo:
        info = self.branch()
        if not info.has_repo:
            raise GitError(f"no git repository at {self.root}")
        return info

    async def diff(self, staged: bool, max_bytes: int = 2_000_000) -> Diff:
        """Staged (index vs HEAD, or vs the empty tree with no commits) or working-tree diff."""
        self._require_repo()
        return await self._diff(staged, await self._numstat(staged), max_bytes)

    async def diff_auto(self, max_bytes: int = 2_000_000) -> Diff:
        """The staged diff if anything is staged, else the tracked working-tree changes."""
        self._require_repo()
        staged = await self._numstat(True)
        if staged[0]:
            return await self._diff(True, staged, max_bytes)
        return await self._diff(False, await self._numstat(False), max_bytes)

    async def _numstat(self, staged: bool) -> tuple[bytes, bool]:
        args = ("diff", *(["--cached"] if staged else []), "--numstat", "-z", "--find-renames")
        return await self._exec(args, max_bytes=_NUMSTAT_CAP)

    async def _diff(self, staged: bool, numstat: tuple[bytes, bool], max_bytes: int) -> Diff:
        args = ("diff", *(["--cached"] if staged else []), "--no-color", "--no-ext-diff")
        out, cut = await self._exec((*args, "--find-renames"), max_bytes=max_bytes)
        if cut and b"\n" in out:
            out = out[: out.rindex(b"\n") + 1]  # end on a whole line
        files = _parse_numstat(numstat[0])
        return Diff(_decode(out, cut), files, staged, truncated=cut or numstat[1])

    async def recent_commits(self, n: int = 10) -> list[Commit]:
        """Newest first; [] in a repository without commits."""
        info = self._require_repo()
        if info.branch is not None and info.head is None:
            return []  # unborn branch: git log would fail
        fmt = "--format=%H%x1f%an%x1f%at%x1f%s"
        out, _ = await self._exec(("log", "-z", f"-n{n}", "--no-show-signature", fmt))
        commits = []
        for record in _decode(out, False).split("\0"):
            parts = record.strip("\n").split("\x1f")
            if len(parts) == 4:
                sha, author, at, subject = parts
                commits.append(Commit(sha, subject, author, _int(at)))
        return commits

    async def changes_summary(self) -> str:
        """Short working-tree status, one "XY path" per line ("M a.py", "?? new.txt"), capped."""
        self._require_repo()
        args = ("status", "--porcelain=v1", "-z", "--untracked-files=normal")
        out, cut = await self._exec(args, max_bytes=_STATUS_CAP)
        it = iter(_decode(out, False).split("\0")[:-1])  # drop "" or a cut entry
        lines = []
        for entry in it:
            code, path = entry[:2], entry[3:]
            if code[0] in "RC":  # a rename's original path comes as the next entry
                path = f"{next(it, '?')} -> {path}"
            lines.append(f"{code.strip()} {path}")
        shown = lines[:_SUMMARY_LINES]
        if cut:
            shown.append("… and more")
        elif len(lines) > _SUMMARY_LINES:
            shown.append(f"… and {len(lines) - _SUMMARY_LINES} more")
        return "\n".join(shown) or "working tree clean"

    async def check_ignored(self, paths: list[str]) -> set[str]:
        """Those of `paths` (relative to root) that git ignores; empty set without a repo.
        Tracked files are never reported, as for git itself."""
        if not paths or not self.branch().has_repo:
            return set()
        data = b"".join(p.encode("utf-8") + b"\0" for p in paths)
        # Exit code 1 means "nothing ignored", not an error.
        out, _ = await self._exec(("check-ignore", "--stdin", "-z"), stdin=data, ok_codes=(0, 1))
        return {p for p in _decode(out, False).split("\0") if p}


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_VARS}
    # No optional locks (never fight the user's own git), C messages, no pager, no prompts.
    env.update(
        GIT_OPTIONAL_LOCKS="0", LC_ALL="C", GIT_PAGER="cat", PAGER="cat", GIT_TERMINAL_PROMPT="0"
    )
    return env


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill git and whatever it started (aliases, hooks, helpers) so no pipe stays open."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _POSIX:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()


async def _drain(
    stream: asyncio.StreamReader | None, cap: int | None = None, stop: bool = False
) -> tuple[bytes, bool]:
    """Read to EOF (with `stop`: only until past `cap`) keeping at most `cap` bytes; returns
    (bytes, whether more came). Unwanted bytes are still read: a pipe not read to EOF keeps
    the subprocess transport open."""
    buf = bytearray()
    more = False
    while stream is not None and (chunk := await stream.read(65_536)):
        buf += chunk
        if cap is not None and len(buf) > cap:
            del buf[cap:]
            more = True
            if stop:
                break
    return bytes(buf), more


async def _communicate(
    proc: asyncio.subprocess.Process, stdin: bytes | None, max_bytes: int | None
) -> tuple[bytes, bool, int, bytes]:
    """Feed stdin and read stdout and stderr concurrently (so git never blocks on a full pipe);
    returns (stdout, truncated, exit code, stderr)."""

    async def feed() -> None:
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin or b"")
                await proc.stdin.drain()
            proc.stdin.close()

    helpers = (
        asyncio.ensure_future(feed()),
        asyncio.ensure_future(_drain(proc.stderr, _STDERR_CAP)),
    )
    try:
        out, truncated = await _drain(proc.stdout, max_bytes, stop=True)
        if truncated:  # stop git now, then read on to EOF so the pipe closes
            _kill(proc)
            await _drain(proc.stdout, 0)
        await helpers[0]
        err, _ = await helpers[1]
        code = await proc.wait()
    finally:
        for task in helpers:
            task.cancel()
        # Let them finish cancelling before anyone else reads these streams.
        await asyncio.gather(*helpers, return_exceptions=True)
    return out, truncated, code, err


def _decode(data: bytes, truncated: bool) -> str:
    # Without `final`, the decoder drops a multi-byte character cut by truncation.
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=not truncated)


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0  # numstat says "-" for binary files


def _parse_numstat(data: bytes) -> list[FileStat]:
    """Parse `--numstat -z`: "A\\tD\\tpath\\0", or "A\\tD\\t\\0old\\0new\\0" for renames."""
    # The last token is "" after the final NUL, or a record cut by truncation: drop it.
    it = iter(data.decode("utf-8", errors="replace").split("\0")[:-1])
    files: list[FileStat] = []
    for token in it:
        added, _, rest = token.partition("\t")
        deleted, _, path = rest.partition("\t")
        old = None
        if not path:
            old, path = next(it, ""), next(it, "")
            if not path:
                break
        files.append(FileStat(path, _int(added), _int(deleted), added == "-", old))
    return files
