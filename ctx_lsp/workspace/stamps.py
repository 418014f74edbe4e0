"""File stamps: whether a file changed since it was read, from its stat alone.

A stamp taken within `RACY_NS` of a write may not show the next write: file systems keep
mtimes at a coarse grain, so a second write in the same tick leaves the stamp as it was
(git calls this "racily clean"). A cache keyed by stamps keeps nothing read in that window.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: Nanoseconds after a write during which a file's stamp is not trusted.
RACY_NS = 2_000_000_000

#: (mtime_ns, size, inode)
Stamp = tuple[int, int, int]


def stat_key(path: Path | None) -> Stamp | None:
    """The file's stamp; None when there is no such file."""
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino) if st else None


def mtime_ns(path: Path) -> int:
    """The modification time, -1 for a missing file (a stamp entry either way)."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def settled(mtime: int, now_ns: int | None = None) -> bool:
    """True when a stamp with this mtime will show the next write (see the module's doc)."""
    return (time.time_ns() if now_ns is None else now_ns) - mtime > RACY_NS
