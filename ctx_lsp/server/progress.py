"""window/workDoneProgress around a model call: begin, streamed reports, end; the
client's cancel button cancels the task doing the work.

Two ways to stream: `stream` shows the answer's tail in each report (explain, tests…);
`delta` sends each report the text added since the previous one, so that the reports put
together are the answer (chat). Both send at most a few reports a second."""

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
#: Delta reports are batched: at most one per this interval (the first goes out at once).
DELTA_INTERVAL_S = 0.05


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
        #: the cancel button (not $/cancelRequest) stopped the work
        self.cancelled_by_user = False
        self._deltas = False
        self._pending = ""  # delta text not reported yet
        self._flush_at: asyncio.TimerHandle | None = None

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

            def cancel(f: Any) -> None:
                if f.cancelled() and not task.done():
                    self.cancelled_by_user = True
                    task.cancel()

            cancelled.add_done_callback(cancel)
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

    def delta(self, piece: str) -> None:
        """on_text for answers streamed whole (the text is masked already): each report holds
        what came since the previous one."""
        self._deltas = True
        self.text += piece
        self._pending += piece
        if not self._active or self._flush_at is not None:
            return
        wait = self._last + DELTA_INTERVAL_S - time.monotonic()
        if wait <= 0:
            self._flush()
        else:
            self._flush_at = asyncio.get_running_loop().call_later(wait, self._flush)

    def _flush(self) -> None:
        self._flush_at = None
        if self._pending:
            self._last = time.monotonic()
            piece, self._pending = self._pending, ""
            self.report(piece)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._active:
            return
        if self._deltas:  # the rest, then the end (and no tail: the reports are the answer)
            if self._flush_at is not None:
                self._flush_at.cancel()
            self._flush()
            self.text = ""
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
