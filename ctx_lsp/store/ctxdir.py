"""The workspace's private `.ctx/` folder: atomic writes, versioned JSON, quarantine of damage.

Reading never creates anything; the folder (with a `.gitignore` of `*`) appears on the first write.
Damaged files are moved aside into `.ctx/corrupt/` and reported, never raised, so a bad file can
cost the user some remembered state but never a working server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import string
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import filelock

CTX_DIR = ".ctx"
CORRUPT_DIR = "corrupt"
LOCK_TIMEOUT = 10.0
# filelock polls while waiting; its 50 ms default would dominate short critical sections.
LOCK_POLL = 0.005


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable; some platforms cannot open directories, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def private_dirs(path: Path) -> Path:
    """`path` and its missing parents, created 0700: `.ctx/` holds code, answers and the
    conversation, for its owner alone (files in it are created 0600)."""
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for p in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(p, 0o700)
    return path


_SCOPE_SAFE = frozenset(string.ascii_letters + string.digits + "-_.@+")
# Names Windows keeps for devices, with or without an extension ("nul", "COM1.txt").
_RESERVED = re.compile(r"(?i)(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?")
SCOPE_PART_MAX = 120


def _escape(c: str) -> str:
    return "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))


def scope_part(text: str) -> str:
    """Any text (a branch like "feature/x", a user name) as one folder name, one name per text.

    ASCII letters, digits and ``-_.@+`` stay, so plain names keep their folders; any other
    character, a leading or trailing dot and the first letter of a name Windows reserves
    become %XX escapes of their UTF-8 bytes (``feature/x`` is ``feature%2Fx``, never
    ``feature_x``), which ``urllib.parse.unquote`` reverses. A name too long for a folder keeps
    its start and a hash of the whole.
    """
    if not text:
        return "%"  # no escape is a lone "%"
    out = [c if c in _SCOPE_SAFE else _escape(c) for c in text]
    if text[0] == "." or _RESERVED.fullmatch(text):
        out[0] = _escape(text[0])
    if text[-1] == ".":  # Windows drops a trailing dot: "x." would be "x"
        out[-1] = _escape(text[-1])
    name = "".join(out)
    if len(name) > SCOPE_PART_MAX:  # "~" is always escaped otherwise
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = name[: SCOPE_PART_MAX - 17] + "~" + digest
    return name


class CtxStore:
    """Files under `root/.ctx/<scope...>/`."""

    def __init__(self, root: Path, scope: tuple[str, ...] = ()) -> None:
        for part in scope:
            if not part or part in (".", "..") or "/" in part or "\\" in part:
                raise ValueError(f"bad scope component: {part!r}")
        self.root = Path(root)
        self.ctx_dir = self.root / CTX_DIR
        self.dir = self.ctx_dir.joinpath(*scope)
        self.problems: list[str] = []
        self._unmovable: set[str] = set()  # damaged paths already reported as stuck
        self._locks: dict[str, filelock.FileLock] = {}
        self._private = False  # .ctx/ checked to be the owner's alone

    # -- problems ---------------------------------------------------------------------------

    def report(self, message: str) -> None:
        self.problems.append(message)

    def take_problems(self) -> list[str]:
        taken, self.problems = self.problems, []
        return taken

    # -- paths and writing ------------------------------------------------------------------

    def sweep_temp_files(self, older_than_s: float = 60.0) -> int:
        """Remove temp files a killed process left behind (never a live writer's)."""
        removed = 0
        cutoff = time.time() - older_than_s
        for tmp in self.dir.rglob(".*.tmp") if self.dir.is_dir() else ():
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed

    def ensure(self) -> Path:
        private_dirs(self.ctx_dir)
        if not self._private:
            # one made by an earlier version under the usual umask: others could read it
            with contextlib.suppress(OSError):
                if stat.S_IMODE(self.ctx_dir.stat().st_mode) & 0o077:
                    self.ctx_dir.chmod(0o700)
            self._private = True
        ignore = self.ctx_dir / ".gitignore"
        if not ignore.exists():
            self._write_bytes(ignore, b"*\n")
        private_dirs(self.dir)
        return self.dir

    def path(self, name: str) -> Path:
        parts = name.split("/")
        if any(p in ("", ".", "..") or "\\" in p or ":" in p for p in parts):
            raise ValueError(f"bad store file name: {name!r}")
        return self.dir.joinpath(*parts)

    def rel(self, path: Path) -> str:
        """A path as shown to users: relative to the workspace when possible."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def write_bytes_atomic(self, name: str, data: bytes) -> Path:
        self.ensure()
        target = self.path(name)
        private_dirs(target.parent)
        self._write_bytes(target, data)
        return target

    def write_text_atomic(self, name: str, text: str) -> Path:
        return self.write_bytes_atomic(name, text.encode("utf-8"))

    def write_json_atomic(self, name: str, obj: Any, version: int) -> Path:
        text = json.dumps({"version": version, "data": obj}, ensure_ascii=False, indent=1)
        return self.write_text_atomic(name, text + "\n")

    @staticmethod
    def _write_bytes(target: Path, data: bytes) -> None:
        # Same-directory temp file so os.replace is a rename on one filesystem: readers see the
        # old file or the new one, never a half-written one, even across a crash. mkstemp
        # creates it 0600, and the rename keeps that.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(target.parent)

    # -- reading ----------------------------------------------------------------------------

    def read_json_versioned(self, name: str, version: int) -> tuple[int, Any] | None:
        """(stored version, data), or None when absent or damaged (damage is quarantined)."""
        path = self.path(name)
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except IsADirectoryError:
            self.quarantine(path, "a directory stands where a file should be")
            return None
        except OSError as exc:  # PermissionError and friends
            self.quarantine(path, f"cannot be read ({exc.strerror or exc})")
            return None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            self.quarantine(path, "is not UTF-8 text")
            return None
        except ValueError as exc:
            self.quarantine(path, f"is not valid JSON ({exc})")
            return None
        if not isinstance(doc, dict) or "data" not in doc or "version" not in doc:
            self.quarantine(path, "lacks the version/data envelope")
            return None
        stored = doc["version"]
        if isinstance(stored, bool) or not isinstance(stored, int):
            self.quarantine(path, "has a non-integer version")
            return None
        if stored > version:
            self.quarantine(path, f"has format version {stored}, newer than supported {version}")
            return None
        return stored, doc["data"]

    def read_json(self, name: str, version: int) -> Any | None:
        got = self.read_json_versioned(name, version)
        return None if got is None else got[1]

    def size_of(self, name: str) -> int:
        try:
            st = self.path(name).stat()
        except OSError:
            return 0
        return st.st_size if stat.S_ISREG(st.st_mode) else 0

    # -- damage -----------------------------------------------------------------------------

    def quarantine(self, path: Path, reason: str, companions: Sequence[Path] = ()) -> bool:
        """Move a damaged file aside into `.ctx/corrupt/` and report it once; False when it
        could not be moved. `companions` (a database's -wal/-shm files, say) go with it, unreported,
        and are removed when they cannot be moved."""
        shown = self.rel(path)
        flat = self._flat(path)
        try:
            target = self.corrupt_target(path)
            corrupt = target.parent
            os.replace(path, target)
        except OSError as exc:
            # Cannot move it (read-only folder, ...): leave it, ignore it, say so once.
            if shown not in self._unmovable:
                self._unmovable.add(shown)
                self.report(f"{shown} {reason}; it could not be moved aside ({exc}), ignoring it")
            return False
        suffix = target.name[len(flat) :]  # the same stamp as the file they belong to
        for extra in companions:
            try:
                os.replace(extra, corrupt / f"{self._flat(extra)}{suffix}")
            except FileNotFoundError:
                pass
            except OSError:
                with contextlib.suppress(OSError):
                    extra.unlink()
        fsync_dir(path.parent)
        self._unmovable.discard(shown)
        self.report(f"{shown} {reason}; moved to {self.rel(target)}, starting from defaults")
        return True

    def corrupt_target(self, path: Path) -> Path:
        """A free name in `.ctx/corrupt/` for what is set aside from `path`."""
        self.ensure()
        corrupt = private_dirs(self.ctx_dir / CORRUPT_DIR)
        flat = self._flat(path)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = corrupt / f"{flat}.{stamp}"
        n = 1
        while target.exists() or target.is_symlink():
            n += 1
            target = corrupt / f"{flat}.{stamp}-{n}"
        return target

    def _flat(self, path: Path) -> str:
        """A file's place in `.ctx/` as one name: `users__me__history.jsonl`."""
        try:
            return "__".join(path.relative_to(self.ctx_dir).parts)
        except ValueError:
            return path.name

    # -- locking ----------------------------------------------------------------------------

    def lock(self, name: str) -> filelock.FileLock:
        """An inter-process lock for one file (`<name>.lock` beside it); reentrant per thread."""
        target = self.path(name)
        key = str(target)
        lock = self._locks.get(key)
        if lock is None:
            lock = filelock.FileLock(
                f"{key}.lock", timeout=LOCK_TIMEOUT, poll_interval=LOCK_POLL, mode=0o600
            )
            self._locks[key] = lock
        self.ensure()
        private_dirs(target.parent)
        return lock
