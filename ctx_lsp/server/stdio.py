"""The server's own ends of stdio: a reader straight on the descriptor, a writer thread, and a
child watcher that needs no thread. See `inbox`, which uses them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sys
import threading
from typing import BinaryIO

log = logging.getLogger(__name__)


class FdReader:
    """`readline()` and `read(n)` straight on a file descriptor. The reader thread is a daemon
    blocked in a read when `exit` ends the process; blocked inside a buffered stream's lock,
    it would make the interpreter abort at shutdown (Python's "could not acquire lock for
    <stdin>"), blocked in `os.read` it does not."""

    def __init__(self, fd: int, chunk: int = 1 << 16) -> None:
        self._fd, self._chunk = fd, chunk
        self._buf = bytearray()
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = os.read(self._fd, self._chunk)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def readline(self) -> bytes:
        start = 0
        while (end := self._buf.find(b"\n", start)) < 0:
            start = len(self._buf)
            if not self._fill():
                end = len(self._buf) - 1
                break
        line = bytes(self._buf[: end + 1])
        del self._buf[: end + 1]
        return line

    def read(self, n: int) -> bytes:
        if not self._buf:
            self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data


def pidfd_child_watcher() -> None:
    """Python 3.11's default child watcher starts a thread for every subprocess (git), and the
    loop waits for that thread to start; a pidfd watcher (Linux 5.3+) needs none. 3.12 and
    later choose it themselves."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    except OSError:  # an older kernel: keep the default
        pass


class QueuedWriter:
    """pygls' writer interface (`write`, `close`) over a thread that does the writing: a client
    slow to read (a full pipe) holds that thread, not the event loop. Order is kept."""

    def __init__(self, stdout: BinaryIO) -> None:
        self._out = stdout
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ctx-writer")
        self._thread.start()
        self.broken = False

    def write(self, data: bytes) -> None:
        self._queue.put(data)

    def close(self) -> None:
        """Write what is queued, then close (as pygls' `exit` does before the process ends)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(5)

    def _run(self) -> None:
        out = self._out
        while (data := self._queue.get()) is not None:
            if self.broken:
                continue
            try:
                out.write(data)
                if self._queue.empty():
                    out.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                self.broken = True  # the client is gone: the end of input ends the server
                log.error("cannot write to the client: %s", exc)
        with contextlib.suppress(OSError, ValueError):
            out.flush()
            out.close()
