"""Hand memory the process freed back to the system.

A long-lived server allocates and frees many large strings (documents, windows, prompts,
HTTP bodies). glibc keeps freed heap pages mapped, so resident memory ratchets up after every
transient peak even when nothing is retained; `malloc_trim` returns them. Elsewhere (macOS,
musl, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds between trims while the server runs.
TRIM_EVERY_S = 30.0


def _find_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_trim = _find_trim()


def release() -> bool:
    """Return freed heap memory to the system; False where that is not possible."""
    if _trim is None:
        return False
    try:
        _trim(0)
    except OSError as exc:  # never fatal: memory is only kept longer
        log.debug("malloc_trim failed: %s", exc)
        return False
    return True
