"""Item 2, crash safety: SIGKILL at random moments during history appends and session saves.

Two harnesses (see `_crash.py`):

* 200 kills against the light harness: a subprocess running the server's own store code
  (`History.append`, `SessionStore.save`) in a loop, printing an ack after each durable write.
  A server process needs ~1 s to start, so 200 kills through it would take ~8 minutes.
* 20 kills through the real server (`python -m ctx_lsp` over raw stdio): `ctx.explain`
  against the fake backend (every answer that reached the client is an acknowledged exchange)
  and `ctx.addFile` (a session save a second later).

After every kill the `.ctx/` files must load (only torn-line reports, never a quarantine),
every acknowledged exchange must be in the history, and the session must hold the last
acknowledged save. `bench/crash_safety.py` runs the long versions.
"""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import pytest

from ctx_lsp.config.settings import Settings
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from ctx_lsp.text.messages import ChatMessage
from tests.conftest import git
from tests.fake_openai import FakeOpenAI

from ._crash import cache_integrity, light_kills, load_state, server_kills
from ._rpc import RawServer, isolated_env, rng_json

LIGHT_KILLS = 200
SERVER_KILLS = 20


def test_light_harness_200_kills(tmp_path: Path, home: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    t0 = time.monotonic()
    fig = light_kills(root, "tester", LIGHT_KILLS, seed=20240611, env=isolated_env(home))
    print(f"\n{fig.line('store code')} in {time.monotonic() - t0:.1f} s")
    assert fig.kills == LIGHT_KILLS and fig.restarts == LIGHT_KILLS - 1
    assert fig.exchanges_found == fig.exchanges_acked > 0
    assert fig.session_saves_acked > 0
    assert fig.torn_reported >= fig.torn_injected > 0
    # the history file stays usable: a new append after all this reads back
    store = CtxStore(root, ("users", "tester"))
    history = History(store)
    before = len(history.load())
    history.append(ChatMessage("user", "after"), ChatMessage("assistant", "the crashes"))
    assert len(History(store).load()) == before + 2


def test_real_server_kills(tmp_path: Path, repo: Path, home: Path) -> None:
    for i in range(SERVER_KILLS):
        (repo / f"pin{i}.py").write_text(f"PIN = {i}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pins")
    counter = itertools.count()
    user = Settings().effective_user()
    with FakeOpenAI(reply=lambda body: f"answer-{next(counter)}") as fake:
        env = isolated_env(home, fake.env())
        t0 = time.monotonic()
        fig = server_kills(repo, user, SERVER_KILLS, seed=7, env=env)
        elapsed = time.monotonic() - t0
        integrity = cache_integrity(repo)
        print(f"\n{fig.line('real server')} cache={integrity} in {elapsed:.1f} s")
        assert fig.kills == SERVER_KILLS
        assert fig.exchanges_found == fig.exchanges_acked > 0
        assert fig.pins_found == fig.pins_expected
        assert integrity in ("ok", "absent")

        # and the server itself starts on what the kills left, without complaint
        with RawServer(env, cwd=repo) as server:
            server.initialize(repo, {"model": "test-model", "debounceMs": 0})
            text = server.command("ctx.showContext")["text"]
            state = load_state(repo, user)
            assert f"History: {2 * state.exchanges} messages" in text
            assert not [m for m in server.messages() if "moved" in m], server.messages()
            server.close()


def test_torn_last_line_is_skipped_reported_and_never_glued(tmp_path: Path) -> None:
    """The state a crash mid-append leaves, made by hand: the next load skips and reports the
    torn line, the next append starts on a line of its own."""
    store = CtxStore(tmp_path, ("users", "u"))
    history = History(store)
    history.append(ChatMessage("user", "q1"), ChatMessage("assistant", "a1"))
    rnd = random.Random(3)
    record = b'{"role":"user","content":"never acknowledged","kind":"chat"}'
    for cut in sorted(rnd.sample(range(1, len(record)), 8)):
        path = store.path("history.jsonl")
        with open(path, "ab") as fh:
            fh.write(record[:cut])
        fresh = History(CtxStore(tmp_path, ("users", "u")))
        messages = fresh.load()
        contents = [m.content for m in messages]
        assert "a1" in contents and "never acknowledged" not in contents
        problems = fresh.store.take_problems()
        assert problems and all("skipped" in p and "damaged line" in p for p in problems)
        assert "moved to .ctx/corrupt/" in " ".join(problems)  # set aside: told once
        fresh.append(ChatMessage("user", f"q-after-{cut}"))
        again = History(CtxStore(tmp_path, ("users", "u")))
        assert again.load()[-1].content == f"q-after-{cut}"


def test_kill_at_each_step_of_a_rotation_keeps_the_recent_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotation takes several renames (and fsyncs); a SIGKILL may land before any of them.
    Simulated by interrupting the k-th os.replace/os.rename/os.link call of a rotation, for
    every k: the next load must still hold the last acknowledged exchange.

    History._rotate writes the seeded history.jsonl.rotating, gives the full file its second
    name history.1.jsonl by a hard link, and only then renames the seeded file onto
    history.jsonl: at every step history.jsonl holds every acknowledged exchange."""
    import os

    class Killed(BaseException):
        pass

    real = {name: getattr(os, name) for name in ("replace", "rename", "link")}
    outcomes = {}
    for kill_at in range(1, 8):
        store = CtxStore(tmp_path / f"k{kill_at}", ("users", "u"))
        history = History(store, max_bytes=4000, keep_on_rotate=10)
        n = 0
        while not store.path("history.1.jsonl").exists():  # one normal rotation first
            n += 1
            history.append(
                ChatMessage("user", f"q{n}"), ChatMessage("assistant", f"a{n} " + "x" * 80)
            )
        calls = []

        def step(name: str, kill_at: int = kill_at, calls: list = calls):
            def call(*args, **kwargs):
                calls.append(name)
                if len(calls) == kill_at:
                    raise Killed
                return real[name](*args, **kwargs)

            return call

        for name in real:
            monkeypatch.setattr(os, name, step(name))
        rotations_before = store.path("history.1.jsonl").stat().st_ino
        killed = False
        try:
            while store.path("history.1.jsonl").stat().st_ino == rotations_before:
                n += 1
                history.append(ChatMessage("user", f"q{n}"), ChatMessage("assistant", f"a{n}"))
        except Killed:
            killed = True
        finally:
            for name, fn in real.items():
                monkeypatch.setattr(os, name, fn)
        if not killed:
            break  # the rotation takes fewer steps than kill_at
        acked = n - 1  # the append that rotated was written before the rotation began
        after = History(CtxStore(tmp_path / f"k{kill_at}", ("users", "u"))).load()
        found = f"a{acked}" in [m.content.split(" ")[0] for m in after]
        # and what the killed rotation left is gone
        left = [p.name for p in store.dir.iterdir() if p.name.endswith((".rotating", ".tmp"))]
        outcomes[f"{kill_at}:{calls[-1]}"] = (
            f"lost ({len(after)} loaded)" if not found else f"left {left}" if left else "ok"
        )
    print(f"\n[rotation crash] kill before step: outcome {outcomes}")
    assert outcomes and all(v == "ok" for v in outcomes.values()), outcomes


def test_temp_files_left_by_kills_are_cleaned_up(repo: Path, home: Path) -> None:
    """A kill inside `CtxStore._write_bytes` (between mkstemp and os.replace) leaves a
    `.<name>.<random>.tmp` beside the file; 200 kills of the light harness left ~20. Nothing
    removes them, so `.ctx/` grows with every crash. Old ones should go at the next start."""
    import os

    user = Settings().effective_user()
    scope = repo / ".ctx" / "users" / user
    (scope / "answers").mkdir(parents=True)
    strays = [
        scope / ".session.json.k2x9a1.tmp",
        scope / ".history.jsonl.rotating.m3v8q0.tmp",
        scope / "answers" / ".20240101-101010-explain-app.py-1-add.md.p0o9i8.tmp",
    ]
    hour_ago = time.time() - 3600
    for p in strays:
        p.write_text("partial")
        os.utime(p, (hour_ago, hour_ago))
    counter = itertools.count()
    with (
        FakeOpenAI(reply=lambda body: f"answer-{next(counter)}") as fake,
        RawServer(isolated_env(home, fake.env()), cwd=repo) as server,
    ):
        server.initialize(repo, {"model": "test-model", "debounceMs": 0})
        uri = server.open(repo / "app.py")
        server.command("ctx.addFile", {"path": "README.md"})
        server.command("ctx.explain", {"uri": uri, "range": rng_json(0, 0, 1, 0)})
        server.close()
    left = [p.name for p in strays if p.exists()]
    assert not left, f"stray temp files never removed: {left}"
