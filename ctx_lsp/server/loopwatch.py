"""`CTX_LSP_SLOW_CALLBACK_MS=<ms>`: which callbacks hold the event loop, and where.

Each callback that holds the loop longer than that is logged, as asyncio's debug mode does
(`slow_callback_duration`), less the time the loop's thread spent waiting for a CPU (Linux's
per-thread schedstat): on a machine busier than its cores, even a trivial callback can take
30 ms of wall time. asyncio's own debug mode is not used because it records a stack, reading
source files, at every `call_soon`: on such a machine that alone makes callbacks slow. While
the loop is held, the stack it is at is logged too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)


def watch(loop: asyncio.AbstractEventLoop, limit_s: float) -> None:
    """Both checks, for `loop` (the running one, on this thread)."""
    _time_callbacks(limit_s)
    _watch(loop, limit_s)
    log.warning("slow-callback detection on: %g ms", limit_s * 1000)


def _time_callbacks(limit_s: float) -> None:
    """Log each callback of this thread's loop that runs longer than `limit_s`, not counting
    the time its thread waited for a CPU (see the module's doc)."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)  # this thread's, from now on
    except OSError:
        fd = -1
    loop_thread = threading.get_ident()
    run = asyncio.events.Handle._run

    def waited_ns() -> int:
        return int(os.pread(fd, 64, 0).split()[1]) if fd >= 0 else 0

    def timed(handle: asyncio.Handle) -> None:
        if threading.get_ident() != loop_thread:
            return run(handle)
        t0, w0 = time.perf_counter(), waited_ns()
        try:
            return run(handle)
        finally:
            wall = time.perf_counter() - t0
            if wall > limit_s:
                wait = (waited_ns() - w0) / 1e9
                held = wall - wait
                level = logging.WARNING if held > limit_s else logging.INFO
                log.log(
                    level,
                    "callback %s held the loop %.1f ms (and waited %.1f ms for a CPU)",
                    _describe(handle),
                    held * 1000,
                    wait * 1000,
                )

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def _describe(handle: asyncio.Handle) -> str:
    owner = getattr(handle._callback, "__self__", None)  # a task's step: name its coroutine
    if isinstance(owner, asyncio.Task):
        return f"<task {owner.get_name()} {owner.get_coro().__qualname__}>"
    return repr(handle)[:200]


def _watch(loop: asyncio.AbstractEventLoop, limit_s: float) -> None:
    """Log where the loop is while it is held past `limit_s`: asyncio says which callback
    was slow, this says what it was doing (the stack once per stall)."""

    beat = [time.monotonic()]
    loop_thread = threading.get_ident()

    def tick() -> None:
        beat[0] = time.monotonic()
        loop.call_later(limit_s / 4, tick)

    def watchdog() -> None:
        told = 0.0
        while not loop.is_closed():
            time.sleep(limit_s / 4)
            last = beat[0]
            if time.monotonic() - last > limit_s and last != told:
                told = last
                frame = sys._current_frames().get(loop_thread)
                stack = "".join(traceback.format_stack(frame)[-12:]) if frame else "?"
                log.warning("event loop held over %.0f ms, at:\n%s", limit_s * 1000, stack)

    tick()
    threading.Thread(target=watchdog, daemon=True, name="ctx-loop-watch").start()
