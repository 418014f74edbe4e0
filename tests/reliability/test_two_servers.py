"""Item 4, two servers on one workspace (two editor windows): 2 processes × 500 `ctx.explain`
exchanges at once, against the fake backend, leave 1,000 intact exchanges in the history
(2,000 messages), none torn, none lost, none doubled.

Figures printed beside: how stale each server's own view of the shared history is
(`ctx.showContext`), and how many answers' `.ctx/answers/` file holds another answer."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from pathlib import Path

from ctx_lsp.config.settings import Settings
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from tests.fake_openai import FakeOpenAI

from ._crash import cache_integrity
from ._rpc import RawServer, isolated_env, rng_json

PER_SERVER = 500
THREADS_PER_SERVER = 4  # requests in flight per server


def _explain_many(server: RawServer, uri: str, n: int, out: list[dict], errors: list) -> None:
    try:
        for _ in range(n):
            out.append(
                server.command("ctx.explain", {"uri": uri, "range": rng_json(0, 0, 1, 0)}, 60)
            )
    except Exception as exc:  # reported by the test
        errors.append(exc)


def test_two_servers_500_exchanges_each(repo: Path, home: Path) -> None:
    counter = itertools.count()
    user = Settings().effective_user()
    init = {"model": "test-model", "debounceMs": 0}
    with FakeOpenAI(reply=lambda body: f"answer-{next(counter)}") as fake:
        env = isolated_env(home, fake.env())
        servers = [RawServer(env, cwd=repo), RawServer(env, cwd=repo)]
        try:
            for s in servers:
                s.initialize(repo, init)
            results: list[list[dict]] = [[] for _ in servers]
            errors: list[Exception] = []
            threads = []
            for s, out in zip(servers, results, strict=True):
                uri = s.open(repo / "app.py")
                per_thread = PER_SERVER // THREADS_PER_SERVER
                threads += [
                    threading.Thread(target=_explain_many, args=(s, uri, per_thread, out, errors))
                    for _ in range(THREADS_PER_SERVER)
                ]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(600)
            elapsed = time.monotonic() - t0
            assert not errors, errors[:3]
            shown = [s.command("ctx.showContext")["text"] for s in servers]
            said = [m for s in servers for m in s.messages()]
            alive = [s.alive() for s in servers]
        finally:
            for s in servers:
                s.close()

    answers = [r for out in results for r in out]
    acked = Counter(r["text"] for r in answers)  # a cache hit repeats an earlier answer
    store = CtxStore(repo, ("users", user))
    messages = History(store).load()
    problems = store.take_problems()
    raw = store.path("history.jsonl").read_bytes()
    lines = raw.split(b"\n")
    torn = 0
    for line in lines[:-1]:
        try:
            json.loads(line)
        except ValueError:
            torn += 1
    assistant = [m.content for m in messages if m.role == "assistant"]
    user_msgs = [m for m in messages if m.role == "user"]
    overwritten = sum(
        1 for r in answers if (kept := _answer_file_text(r)) is not None and kept != r["text"]
    )
    counts = [next(ln for ln in text.splitlines() if ln.startswith("History:")) for text in shown]
    print(
        f"\n[two servers] exchanges answered={len(answers)} "
        f"(from the cache {sum(1 for r in answers if r['cached'])})"
        f" in {elapsed:.1f} s; history: exchanges={len(assistant)} messages={len(messages)} "
        f"lines={len(lines) - 1} torn/unparsable lines={torn} problems={problems} "
        f"lost={sum((acked - Counter(assistant)).values())} "
        f"extra={sum((Counter(assistant) - acked).values())} cache={cache_integrity(repo)} "
        f"servers' own counts={counts} answer files overwritten by a later answer={overwritten}"
    )
    assert all(alive) and said == []
    assert len(answers) == 2 * PER_SERVER
    assert raw.endswith(b"\n") and torn == 0 and problems == []
    assert len(lines) - 1 == 1 + 4 * PER_SERVER  # the header, then user + assistant lines
    assert Counter(assistant) == acked  # none lost, none doubled
    assert len(user_msgs) == 2 * PER_SERVER
    # each exchange is two adjacent lines: the question right before its answer
    for i, m in enumerate(messages):
        if m.role == "assistant":
            assert messages[i - 1].role == "user" and messages[i - 1].kind == m.kind == "explain"
    assert cache_integrity(repo) in ("ok", "absent")


def _answer_file_text(result: dict) -> str | None:
    path = Path(result["path"])
    try:
        text = path.read_text()
    except OSError:
        return None  # removed: only the latest 50 are kept
    return text.split("\n\n", 1)[-1].rstrip("\n")  # after the "# Explanation of" title
