"""The server's own ends of stdio: a reader straight on the descriptor, a writer that writes
from the loop while the pipe takes it (a thread for the rest), and a child watcher that needs
no thread. See `inbox`, which uses them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import select
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
    """pygls' writer interface (`write`, `close`) on the stdout descriptor. A message goes
    out from the caller's thread (the loop) with one non-blocking write while the pipe has
    room for it: handing every answer to a thread cost a thread switch per answer, 0.1 to
    0.3 ms on a busy two-core machine. What the pipe cannot take (a client slow to read)
    goes to the writer thread, which waits for room, so the loop never does; later messages
    queue behind it, so order is kept. Without a descriptor (a stream in tests), every
    message goes to the thread."""

    def __init__(self, stdout: BinaryIO) -> None:
        self._out = stdout
        self._fd = -1
        try:
            stdout.flush()
            fd = stdout.fileno()
            self._was_blocking = os.get_blocking(fd)
            os.set_blocking(fd, False)
            self._fd = fd
        except (AttributeError, OSError, ValueError):
            pass
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._backlog = 0  # messages handed to the thread and not written yet
        self._thread = threading.Thread(target=self._run, daemon=True, name="ctx-writer")
        self._thread.start()
        self.broken = False

    def write(self, data: bytes) -> None:
        if self._fd < 0:
            self._queue.put(data)
            return
        with self._lock:
            if self.broken:
                return
            if not self._backlog:
                try:
                    sent = os.write(self._fd, data)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self._broke(exc)
                    return
                if sent == len(data):
                    return
                data = data[sent:]
            self._backlog += 1
            self._queue.put(data)

    def close(self) -> None:
        """Write what is queued, then close (as pygls' `exit` does before the process ends)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(5)

    def _broke(self, exc: Exception) -> None:
        self.broken = True  # the client is gone: the end of input ends the server
        log.error("cannot write to the client: %s", exc)

    def _run(self) -> None:
        out = self._out
        while (data := self._queue.get()) is not None:
            if self.broken:
                continue
            try:
                if self._fd >= 0:
                    self._write_all(data)
                else:
                    out.write(data)
                    if self._queue.empty():
                        out.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                self._broke(exc)
            finally:
                if self._fd >= 0:
                    with self._lock:
                        self._backlog -= 1
        with contextlib.suppress(OSError, ValueError):
            if self._fd >= 0:  # the descriptor may be shared with the process that started us
                os.set_blocking(self._fd, self._was_blocking)
            out.flush()
            out.close()

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                select.select([], [self._fd], [])  # until the client reads
