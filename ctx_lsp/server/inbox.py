"""The stdio server loop: frames read on a thread, handled on the event loop in batches, and
text-sync notifications applied straight from their JSON.

pygls' own stdio loop (`pygls.io_.run_async`) hops to a worker thread and back for every
header line and every body (three hops a message) and structures every message into
lsprotocol objects through cattrs: about 0.4 ms a `didChange`, however small. Here one
thread reads frames (`Reframed`) and queues their bodies; the loop takes all that is queued
in one callback, up to `BATCH_S` of work or the first request (whose task then starts before
the next message, as it did under pygls). `didOpen`, `didChange` and `didClose` of the usual
shape go from `json.loads` to `text_sync` without lsprotocol; anything else, or anything of
an unusual shape, takes pygls' path (`structure_message`, `handle_message`) unchanged.

`CTX_LSP_SLOW_CALLBACK_MS=<ms>` logs every callback that holds the loop longer than that
(`loopwatch`); the tests use it to show that nothing waits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, BinaryIO

from pygls.exceptions import FeatureNotificationError, JsonRpcException

from ctx_lsp.server import text_sync
from ctx_lsp.server.reader import Reframed
from ctx_lsp.server.stdio import FdReader, QueuedWriter, pidfd_child_watcher

if TYPE_CHECKING:
    from ctx_lsp.server import CtxServer

log = logging.getLogger(__name__)

#: Seconds of message handling in one callback before other callbacks get their turn.
BATCH_S = 0.005
#: Bodies, and bytes of them, read ahead of the loop at most: beyond that the reader waits
#: (and the client with it, as a full pipe makes it), so a burst of large didOpens is not all
#: held at once (freed, that peak would stay in the process as heap it cannot give back).
MAX_PENDING = 4096
MAX_PENDING_BYTES = 1 << 20
#: How long a thread holds the interpreter before one that waits gets it (Python's default:
#: 5 ms). The loop thread gives it up at every read, write and stat, and waits up to this long
#: to get it back while a worker thread builds a prompt or imports a module: five syscalls in
#: one callback could hold the loop 25 ms. 1 ms keeps that wait short.
SWITCH_INTERVAL_S = 0.001
#: Position fields are LSP uintegers, versions integers: what lsprotocol would accept.
_UINT_MAX = 2**31 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_TEXT_SYNC = b'"textDocument/did'


def serve_stdio(ls: CtxServer, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """What pygls' `start_io` does, with this module's loop."""
    writer = QueuedWriter(stdout)
    ls.protocol.set_writer(writer)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    pidfd_child_watcher()
    slow_ms = os.environ.get("CTX_LSP_SLOW_CALLBACK_MS", "")
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    frames = Reframed(FdReader(fd) if fd >= 0 else stdin)
    try:
        asyncio.run(_serve(ls, frames, slow_ms))
    except BrokenPipeError:
        log.error("the connection to the client is lost: shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass  # `exit` ends the process this way, as under pygls
    finally:
        ls.shutdown()
        writer.close()


async def _serve(ls: CtxServer, frames: Reframed, slow_ms: str) -> None:
    loop = asyncio.get_running_loop()
    if slow_ms:
        from ctx_lsp.server.loopwatch import watch

        watch(loop, float(slow_ms) / 1000)
    inbox = Inbox(ls, loop)
    threading.Thread(target=inbox.read, args=(frames,), daemon=True, name="ctx-reader").start()
    await inbox.finished


class Inbox:
    def __init__(self, ls: CtxServer, loop: asyncio.AbstractEventLoop) -> None:
        self.ls = ls
        self.loop = loop
        self.finished: asyncio.Future[None] = loop.create_future()
        self._pending: deque[bytes | None] = deque()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._queued_bytes = 0
        self._scheduled = False
        self._fast = {
            "textDocument/didChange": self._did_change,
            "textDocument/didOpen": self._did_open,
            "textDocument/didClose": self._did_close,
        }

    # -- the reader thread -----------------------------------------------------------------
    def read(self, frames: Reframed) -> None:
        body: bytes | None = None
        try:
            while True:
                body = frames.next_body()
                self._push(body)
                if body is None:
                    return
        except Exception as exc:  # stdin broke: as its end
            log.error("cannot read from the client: %s", exc)
            if body is not None:
                self._push(None)

    def _push(self, body: bytes | None) -> None:
        with self._room:
            self._room.wait_for(self._has_room)
            self._pending.append(body)
            self._queued_bytes += len(body or b"")
            wake, self._scheduled = not self._scheduled, True
        if wake:
            self.loop.call_soon_threadsafe(self._drain)

    def _has_room(self) -> bool:
        pending = self._pending
        return not pending or (
            len(pending) < MAX_PENDING and self._queued_bytes < MAX_PENDING_BYTES
        )

    # -- the event loop ----------------------------------------------------------------------
    def _drain(self) -> None:
        deadline = time.perf_counter() + BATCH_S
        while True:
            with self._lock:
                if not self._pending:
                    self._scheduled = False
                    return
                body = self._pending.popleft()
                self._queued_bytes -= len(body or b"")
                self._room.notify()
            if body is None:  # end of input
                if not self.finished.done():
                    self.finished.set_result(None)
                return
            request = self._handle(body)
            if request or time.perf_counter() > deadline:
                self.loop.call_soon(self._drain)  # still scheduled: the reader leaves it to us
                return

    def _handle(self, body: bytes) -> bool:
        """Handle one message; True when it may have been a request or a response."""
        if _TEXT_SYNC in body and self._fast_path(body):
            return False
        protocol = self.ls.protocol
        try:  # pygls' own path, as `pygls.io_.run_async` takes it
            message = json.loads(body, object_hook=protocol.structure_message)
            protocol.handle_message(message)
        except Exception as exc:
            log.debug("message not handled: %r", exc)
            self._report(exc, JsonRpcException)
        return b'"id"' in body

    def _report(self, exc: Exception, source: Any) -> None:
        try:
            self.ls.report_server_error(exc, source)
        except Exception as again:  # as pygls: never let the report end the loop
            log.warning("failed to report an error: %r", again)

    def _fast_path(self, body: bytes) -> bool:
        """Apply a text-sync notification of the usual shape; False leaves it to pygls."""
        if self.ls.shut_down:  # pygls' path says why it is ignored
            return False
        try:
            msg = json.loads(body)
        except ValueError:
            return False
        if type(msg) is not dict or msg.get("jsonrpc") != "2.0" or "id" in msg:
            return False
        handler = self._fast.get(msg.get("method"))  # type: ignore[arg-type]
        params = msg.get("params")
        if handler is None or type(params) is not dict:
            return False
        try:
            return handler(params)
        except Exception as exc:  # as pygls reports a failed notification handler
            log.error("failed to handle %s: %r", msg.get("method"), exc)
            self._report(exc, FeatureNotificationError)
            return True

    def _did_change(self, params: dict[str, Any]) -> bool:
        doc = params.get("textDocument")
        raw = params.get("contentChanges")
        if type(doc) is not dict or type(raw) is not list:
            return False
        uri, version = doc.get("uri"), doc.get("version")
        if type(uri) is not str or not _int(version) or len(doc) != 2:
            return False
        changes = []
        for c in raw:
            if type(c) is not dict or type(text := c.get("text")) is not str:
                return False
            if len(c) == 1:
                changes.append((text, None))
                continue
            rng = _range(c.get("range"))
            if rng is None or len(c) != 2 + ("rangeLength" in c):
                return False
            if "rangeLength" in c and not _uint(c["rangeLength"]):
                return False
            changes.append((text, rng))
        text_sync.change_document(self.ls, uri, version, changes)
        return True

    def _did_open(self, params: dict[str, Any]) -> bool:
        item = params.get("textDocument")
        if type(item) is not dict or len(item) != 4:
            return False
        uri, lang, version, text = (item.get(k) for k in ("uri", "languageId", "version", "text"))
        if not (type(uri) is str and type(lang) is str and type(text) is str and _int(version)):
            return False
        text_sync.open_document(self.ls, uri, text, lang, version)
        return True

    def _did_close(self, params: dict[str, Any]) -> bool:
        doc = params.get("textDocument")
        if type(doc) is not dict or len(doc) != 1 or type(uri := doc.get("uri")) is not str:
            return False
        text_sync.close_document(self.ls, uri)
        return True


def _uint(v: Any) -> bool:
    return type(v) is int and 0 <= v <= _UINT_MAX


def _int(v: Any) -> bool:
    return type(v) is int and _INT_MIN <= v <= _INT_MAX


def _range(r: Any) -> tuple[int, int, int, int] | None:
    if type(r) is not dict or len(r) != 2:
        return None
    start, end = r.get("start"), r.get("end")
    if type(start) is not dict or type(end) is not dict or len(start) != 2 or len(end) != 2:
        return None
    sl, sc, el, ec = (
        start.get("line"),
        start.get("character"),
        end.get("line"),
        end.get("character"),
    )
    if _uint(sl) and _uint(sc) and _uint(el) and _uint(ec):
        return (sl, sc, el, ec)
    return None
