"""History append cost on a small vs a 100,000-message history, and session save cost.

Run: .venv/bin/python bench/bench_history.py
Appends are append-only, so the cost should be flat (ratio ~1). fsync dominates; the figures are
printed with fsync as used, and again with fsync stubbed out to show the code's own overhead.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import HISTORY_VERSION, History
from ctx_lsp.store.session import FileRecord, Session, SessionStore
from ctx_lsp.text.messages import ChatMessage

APPENDS = 300
SAVES = 100


def make_history(root: Path, count: int) -> tuple[History, float]:
    """A history of `count` messages, written directly; returns it loaded and the load time."""
    store = CtxStore(root)
    store.ensure()
    with open(store.path("history.jsonl"), "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"ctx_history": HISTORY_VERSION}) + "\n")
        for i in range(count):
            role = "user" if i % 2 else "assistant"
            m = ChatMessage(role=role, content=f"message {i} " + "lorem ipsum " * 20)
            fh.write(json.dumps(m.to_json(), separators=(",", ":")) + "\n")
    hist = History(store, max_bytes=10**10)  # no rotation during the measurement
    t0 = time.perf_counter()
    hist.load()
    return hist, time.perf_counter() - t0


def timings(fn: Callable[[int], None], n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def stats(us: list[float]) -> tuple[float, float]:
    ordered = sorted(us)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def bench_appends(small: History, big: History) -> tuple[tuple[float, float], tuple[float, float]]:
    def appender(h: History) -> Callable[[int], None]:
        return lambda i: h.append(ChatMessage(role="user", content=f"bench {i} " + "x" * 200))

    appender(small)(-1)  # warm up (first append opens the lock file etc.)
    appender(big)(-1)
    # Interleave so disk noise hits both sides alike.
    s_us, b_us = [], []
    for i in range(APPENDS):
        s_us += timings(lambda _i, i=i: appender(small)(i), 1)
        b_us += timings(lambda _i, i=i: appender(big)(i), 1)
    return stats(s_us), stats(b_us)


def bench_session(root: Path) -> tuple[float, float]:
    sessions = SessionStore(CtxStore(root))
    session = Session(
        open_files=[FileRecord(f"src/mod{i}.py", "python", 1.0, 2.0) for i in range(30)],
        pinned=["src/mod1.py"],
        settings_overrides={"model": "small"},
    )
    return stats(timings(lambda _i: sessions.save(session), SAVES))


def row(label: str, small: tuple[float, float], big: tuple[float, float]) -> str:
    return (
        f"{label:<26}{small[0]:>10.1f}{small[1]:>10.1f}{big[0]:>12.1f}{big[1]:>10.1f}"
        f"{big[0] / small[0]:>9.2f}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        small, _ = make_history(root / "small", 10)
        big, load_s = make_history(root / "big", 100_000)
        size_mb = big.path.stat().st_size / 1e6
        print(f"dir: {root}  (set BENCH_DIR to measure another disk)")
        print(f"big history: {len(big):,} messages, {size_mb:.1f} MB, full load {load_s:.2f} s")
        print(f"history append, {APPENDS} appends each, µs per append")
        print(f"{'':<26}{'10 msgs':>20}{'100,000 msgs':>22}{'ratio':>9}")
        print(f"{'':<26}{'median':>10}{'p99':>10}{'median':>12}{'p99':>10}{'(med)':>9}")
        print(row("with fsync (as used)", *bench_appends(small, big)))
        real_fsync = os.fsync
        os.fsync = lambda _fd: None  # the code's own overhead, without the disk
        try:
            print(row("fsync stubbed", *bench_appends(small, big)))
        finally:
            os.fsync = real_fsync
        med, p99 = bench_session(root / "session")
        print(f"session save (30 open files, atomic + lock): median {med:.1f} µs, p99 {p99:.1f} µs")


if __name__ == "__main__":
    main()
