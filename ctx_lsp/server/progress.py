"""window/workDoneProgress around a model call: begin, streamed reports, end; the
client's cancel button cancels the task doing the work."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from lsprotocol import types

from ctx_lsp.server import CtxServer
from ctx_lsp.text.redact import redact

#: Reports are throttled: a streamed answer would otherwise send one per token.
REPORT_INTERVAL_S = 0.1
#: The tail of a streamed answer shown in the progress message.
TAIL_CHARS = 120


def _tail(text: str) -> str:
    """The end of a streamed answer, masked before it is cut (a cut secret would not match)."""
    return " ".join(redact(text)[-TAIL_CHARS:].split())


class Progress:
    def __init__(self, ls: CtxServer, title: str, token: Any = None) -> None:
        self.ls = ls
        self.title = title
        self.token = token
        self.text = ""
        self._last = 0.0
        self._active = False

    async def __aenter__(self) -> Progress:
        ls = self.ls
        window = ls.client_capabilities.window
        if self.token is None and window is not None and window.work_done_progress:
            self.token = f"ctx-{uuid.uuid4().hex}"
            try:
                await ls.work_done_progress.create_async(self.token)
            except Exception:  # a client that refuses: run without progress
                self.token = None
        if self.token is None:
            return self
        self._active = True
        ls.work_done_progress.begin(
            self.token,
            types.WorkDoneProgressBegin(
                title=self.title, cancellable=True, message="asking the model…"
            ),
        )
        task = asyncio.current_task()
        cancelled = ls.work_done_progress.tokens.get(self.token)
        if cancelled is not None and task is not None:
            cancelled.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
        return self

    def report(self, message: str) -> None:
        if self._active:
            self.ls.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message)
            )

    def stream(self, delta: str) -> None:
        """on_delta for streamed answers: the answer's tail shows as it arrives."""
        self.text += delta
        now = time.monotonic()
        if now - self._last >= REPORT_INTERVAL_S:
            self._last = now
            self.report(_tail(self.text))

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._active:
            return
        if exc_type is None:
            message = "done"
            if self.text:  # the whole streamed answer's tail, whatever the throttle skipped
                self.report(_tail(self.text))
        elif issubclass(exc_type, asyncio.CancelledError):
            message = "cancelled"
        else:
            message = f"failed: {exc}"
        self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
        self.ls.work_done_progress.tokens.pop(self.token, None)
