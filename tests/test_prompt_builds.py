"""Where prompts are built: on the event loop while builds are quick, on the builder thread
once one was slow, and never on both at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ctx_lsp.assist import assistant
from ctx_lsp.prompting.prompt import BuiltPrompt

EMPTY = BuiltPrompt([], 0, {})


def build_taking(seconds: float, seen: list[str], release: threading.Event | None = None):
    def build() -> BuiltPrompt:
        seen.append(threading.current_thread().name)
        if release is not None:
            release.wait(5)
        time.sleep(seconds)
        return EMPTY

    return build


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> assistant._Builds:
    fresh = assistant._Builds()
    monkeypatch.setattr(assistant, "_builds", fresh)
    return fresh


async def test_quick_builds_run_on_the_loop_and_a_slow_one_sends_the_next_away(builds):
    seen: list[str] = []
    loop_thread = threading.current_thread().name
    await builds.run(build_taking(0.0, seen), completion=True)  # the first: not known to be quick
    await builds.run(build_taking(0.0, seen), completion=True)
    await builds.run(
        build_taking(assistant.INLINE_BUILD_S * 3, seen), completion=True
    )  # slow, but inline
    await builds.run(build_taking(0.0, seen), completion=True)
    await builds.run(build_taking(0.0, seen), completion=True)
    assert seen[0] != loop_thread
    assert seen[1:3] == [loop_thread, loop_thread]
    assert seen[3] != loop_thread, "the build after a slow one goes to the builder thread"
    assert seen[4] == loop_thread


async def test_no_build_on_the_loop_while_one_runs_on_the_thread(builds):
    """A cancelled request does not stop its build: the next one waits for the thread."""
    seen: list[str] = []
    release = threading.Event()
    first = asyncio.ensure_future(builds.run(build_taking(0.0, seen, release), completion=True))
    await asyncio.sleep(0.05)
    first.cancel()
    builds.last_s = 0.0  # as if builds were quick
    second = asyncio.ensure_future(builds.run(build_taking(0.0, seen), completion=True))
    await asyncio.sleep(0.05)
    release.set()
    assert await second is EMPTY
    loop_thread = threading.current_thread().name
    assert seen[0] != loop_thread and seen[1] != loop_thread
    for _ in range(100):  # the thread's done callback runs as the build returns
        if builds.inline():
            break
        await asyncio.sleep(0.01)
    await builds.run(build_taking(0.0, seen), completion=True)
    assert seen[2] == loop_thread, "builds return to the loop once the thread is done"


async def test_other_tasks_are_built_on_the_thread_and_leave_the_timing_alone(builds):
    seen: list[str] = []
    loop_thread = threading.current_thread().name
    await builds.run(build_taking(0.0, seen), completion=True)
    await builds.run(build_taking(0.0, seen), completion=True)
    quick = builds.last_s
    await builds.run(build_taking(assistant.INLINE_BUILD_S * 3, seen), completion=False)
    assert seen[2] != loop_thread and builds.last_s == quick
    await builds.run(build_taking(0.0, seen), completion=True)
    assert seen[3] == loop_thread
