"""Completion exchanges written to the history in batches.

Every inline suggestion is an exchange for the history, and writing one (file lock, write,
fsync) takes half a millisecond of a worker thread that competes with the next request for the
interpreter. Typing brings a request every few keystrokes, so they are collected and written
together, at most `DELAY_S` after the first of a batch, and at shutdown. They are not part of
the conversation in prompts, so nothing waits for them; a crash loses at most that last batch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from ctx_lsp.store.history import History
from ctx_lsp.text.messages import ChatMessage

if TYPE_CHECKING:
    from ctx_lsp.assist.assistant import MakeRecord

log = logging.getLogger(__name__)

#: Seconds between a completion and the write that takes it (with those after it).
DELAY_S = 1.0


class DeferredRecords:
    def __init__(self, delay_s: float = DELAY_S) -> None:
        self.delay_s = delay_s
        self._pending: list[tuple[History, MakeRecord]] = []
        self._lock = threading.Lock()  # the shutdown flush may run on another thread
        self._handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, history: History, messages: MakeRecord) -> None:
        """Keep `messages` (made when written) for `history` until the next write (on the
        running loop)."""
        with self._lock:
            self._pending.append((history, messages))
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_later(self.delay_s, self._write_soon, loop)

    def _write_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        loop.run_in_executor(None, self.flush)

    def flush(self) -> None:
        """Write everything pending now, one append per history."""
        with self._lock:
            pending, self._pending = self._pending, []
        batches: dict[int, tuple[History, list[ChatMessage]]] = {}
        for history, make in pending:
            try:
                messages = make()
            except Exception as exc:  # the answer reached the user already
                log.error("cannot make a completion's record: %r", exc)
                continue
            batches.setdefault(id(history), (history, []))[1].extend(messages)
        for history, messages in batches.values():
            try:
                history.append(*messages)
            except Exception as exc:  # the answers reached the user already
                log.error("cannot record %d completion messages: %s", len(messages), exc)
