"""Latest-wins scheduling for requests that go stale as the user types."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class LatestOnly:
    """Per key (a document), only the newest call runs.

    A call waits `delay_s` (debounce) before it starts its work; a newer call for the
    same key, or `supersede(key)` (the document changed), cancels the older work at
    once, so its backend call is never made or is aborted, and the older call returns
    None straight away instead of raising.
    """

    def __init__(self) -> None:
        self._work: dict[str, asyncio.Task[object]] = {}

    def supersede(self, key: str) -> None:
        task = self._work.pop(key, None)
        if task is not None and not task.done():
            task.cancel()

    async def run(self, key: str, delay_s: float, factory: Callable[[], Awaitable[T]]) -> T | None:
        self.supersede(key)

        async def work() -> T:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            # one more turn of the loop: edits already queued supersede us before we start
            await asyncio.sleep(0)
            return await factory()

        task: asyncio.Task[T] = asyncio.ensure_future(work())
        self._work[key] = task  # type: ignore[assignment]
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the request itself was cancelled ($/cancelRequest)
            return None  # superseded: answer empty, promptly
        finally:
            if self._work.get(key) is task:
                del self._work[key]
