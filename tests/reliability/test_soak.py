"""Item 8, bounded memory: a 1-minute soak of mixed traffic (edits, inline completions,
completion items, code actions and resolve, commands) on 50 open documents holds the server's
resident memory within 10% of its level after warm-up. `bench/soak.py --minutes 10` is the
long version. Besides the ratio, the growth rate after warm-up, projected over the issue's
10 minutes, must stay within the same 10%."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from tests.conftest import GIT_ENV
from tests.fake_openai import FakeOpenAI

from ._rpc import RawServer, isolated_env, rng_json
from ._soak import make_workspace, run_soak

SECONDS = 60
WARMUP_S = 15
MAX_GROWTH = 0.10


@pytest.mark.xfail(
    reason="BUG: resident memory grows ~5-15 MiB/min under mixed traffic (10-minute soak: "
    "+42% after warm-up): every completion is appended to the history, which is kept whole in "
    "memory until the 20 MB rotation (~2.4x the file size in RAM); tokens._count_cached "
    "(lru_cache 4096) and redact._redact (lru_cache 512) are keyed by whole texts, bounded by "
    "count, not bytes",
    strict=True,
)
def test_soak_one_minute(tmp_path: Path, home: Path) -> None:
    root = tmp_path / "ws"
    files = make_workspace(root, {**os.environ, **GIT_ENV})
    counter = itertools.count()

    def reply(body: dict) -> str:
        n = next(counter)
        return f"result_{n % 97} = compute({n % 13})"

    with (
        FakeOpenAI(reply=reply) as fake,
        RawServer(isolated_env(home, fake.env()), cwd=root) as server,
    ):
        server.initialize(root, {"model": "test-model", "debounceMs": 0})
        result = run_soak(server, root, files, SECONDS, WARMUP_S, seed=11)
        said = server.messages()
        server.close()
    print(f"\n{result.line(f'{SECONDS} s, warm-up {WARMUP_S} s')} said={said}")
    print(f"[soak] RSS samples (s: MiB): {_samples(result)}")
    assert result.alive
    assert not result.errors, result.errors
    assert result.ratio <= 1 + MAX_GROWTH, f"resident memory grew {result.ratio - 1:.1%}"
    # the soak is 10 minutes: the growth rate after warm-up must not get there either
    projected = result.slope_mib_per_min * 10 * 1024 / result.warm_kb
    assert projected <= MAX_GROWTH, f"{projected:.0%} growth projected over 10 minutes"


def _samples(result) -> str:
    every = max(1, len(result.samples) // 12)
    return ", ".join(f"{t:.0f}: {kb / 1024:.1f}" for t, kb in result.samples[::every])


def test_typing_in_a_large_document_holds_memory(tmp_path: Path, home: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    lines = 900_000 // 33
    with (
        FakeOpenAI(reply="x = 1") as fake,
        RawServer(isolated_env(home, fake.env()), cwd=root) as server,
    ):
        server.initialize(root, {"model": "test-model", "debounceMs": 0})
        uri = server.open(root / "mid.py", "value = compute(1, 2)  # padding\n" * lines)
        rss = []
        for version in range(2, 122):  # a keystroke, then the completion it triggers
            server.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [
                        {"range": rng_json(lines - 1, 0, lines - 1, 0), "text": "x"}
                    ],
                },
            )
            server.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": lines - 1, "character": version - 1},
                    "context": {"triggerKind": 2},
                },
                timeout=60,
            )
            rss.append(server.rss_kb())
        server.close()
    warm, end = rss[19], rss[-1]
    print(
        f"\n[soak] typing in a 900 KB document: RSS after 20 keystrokes {warm / 1024:.1f} MiB, "
        f"after 120 {end / 1024:.1f} MiB ({end / warm - 1:+.0%})"
    )
    assert end <= warm * (1 + MAX_GROWTH)
