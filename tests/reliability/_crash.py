"""Crash safety: SIGKILL during history appends and session saves, restart, verify.

Two harnesses share the verification:

* `light_kills`: `_crash_child` runs the server's own store code (History.append,
  SessionStore.save) in a loop and prints an ack after each durable write; a process starts in
  ~0.1 s, so hundreds of kills take a minute or two.
* `server_kills`: the real `python -m ctx_lsp` over stdio; `ctx.explain` against the fake
  backend (each answer that reached the client is one acknowledged exchange, recorded in the
  history) and `ctx.addFile` (a session save one second later), killed at a random moment.

Also used by `bench/crash_safety.py` for the long runs.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from ctx_lsp.store.session import SessionStore

from ._rpc import RawServer, RpcError, rng_json

REPO = Path(__file__).resolve().parents[2]
#: The session is saved this long after the change that asked for it (SESSION_SAVE_DELAY_S
#: is 1 s); a pin acknowledged longer ago than this before the kill must be on disk.
PIN_DURABLE_AFTER_S = 2.0
CHILD = [sys.executable, "-m", "tests.reliability._crash_child"]
SKIP_REPORT = re.compile(r"skipped (\d+) damaged line")


class CrashCheckFailed(AssertionError):
    pass


@dataclass
class Figures:
    kills: int = 0
    restarts: int = 0
    exchanges_acked: int = 0
    exchanges_found: int = 0
    session_saves_acked: int = 0
    torn_injected: int = 0
    torn_reported: int = 0
    stray_temp_files: int = 0
    pins_expected: int = 0
    pins_found: int = 0
    killed_during_startup: int = 0
    real_server: bool = False  # sessions saved by the server's timer: pins are the evidence

    def line(self, label: str) -> str:
        if self.real_server:
            session = f"pins saved before the kill={self.pins_expected} found={self.pins_found}"
        else:
            session = f"session saves acknowledged={self.session_saves_acked} (last one found)"
        return (
            f"[crash safety: {label}] kills={self.kills} restarts={self.restarts} "
            f"exchanges acknowledged={self.exchanges_acked} found={self.exchanges_found} "
            f"{session} torn lines injected={self.torn_injected} reported={self.torn_reported} "
            f"killed during startup={self.killed_during_startup} "
            f"stray temp files={self.stray_temp_files}"
        )


@dataclass
class State:
    """What the files hold after a kill."""

    answers: set[str]  # assistant contents (one per exchange)
    exchanges: int  # user/assistant pairs
    session: Any
    problems: list[str]


def load_state(root: Path, user: str) -> State:
    """Load `.ctx/` the way the server does; raises if anything is fatal."""
    store = CtxStore(root, ("users", user))
    messages = History(store).load()
    session = SessionStore(store).load()
    answers = {m.content for m in messages if m.role == "assistant"}
    users = sum(1 for m in messages if m.role == "user")
    return State(answers, min(users, len(answers)), session, store.take_problems())


def set_aside(root: Path) -> int:
    """Damaged history lines moved to `.ctx/corrupt/` (told once, when they were moved)."""
    files = (root / ".ctx" / "corrupt").glob("*history.jsonl.*")
    return sum(len(p.read_bytes().splitlines()) for p in files)


def check_problems(state: State, allowed_skips: int, root: Path) -> int:
    """Only torn-line reports are acceptable (never a quarantine of a whole file); returns the
    torn lines reported now or set aside earlier."""
    skipped = set_aside(root)
    for problem in state.problems:
        m = SKIP_REPORT.search(problem)
        if m is None:
            raise CrashCheckFailed(f"unexpected problem after a kill: {problem}")
        skipped += int(m.group(1))
    if skipped < allowed_skips:
        raise CrashCheckFailed(f"{allowed_skips} torn line(s) injected, {skipped} reported")
    return skipped


def inject_torn_line(root: Path, user: str, rnd: random.Random) -> bool:
    """Append the start of a record without its newline: what a crash mid-append leaves.

    Only after a complete line: two torn tails in a row are one damaged line."""
    path = CtxStore(root, ("users", user)).path("history.jsonl")
    if not path.exists() or not path.read_bytes().endswith(b"\n"):
        return False
    record = b'{"role":"assistant","content":"torn-never-acked","kind":"explain","id":"0123"}'
    with open(path, "ab") as fh:
        fh.write(record[: rnd.randrange(1, len(record) - 1)])
    return True


def stray_temp_files(root: Path) -> int:
    return sum(1 for p in (root / ".ctx").rglob("*.tmp"))


def _number(text: str, prefix: str) -> int | None:
    m = re.match(prefix + r"(\d+)", text)
    return int(m.group(1)) if m else None


# -- light harness ------------------------------------------------------------------------------


def _read_acks(proc: subprocess.Popen[bytes], lines: list[bytes], ready: threading.Event) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.endswith(b"\n"):
            break  # cut off by the kill: not an ack
        lines.append(line.rstrip(b"\n"))
        if line == b"READY\n":
            ready.set()
    proc.stdout.close()


def light_kills(
    root: Path,
    user: str,
    kills: int,
    seed: int,
    env: dict[str, str],
    max_delay_s: float = 0.4,
    startup_share: float = 0.2,
) -> Figures:
    rnd = random.Random(seed)
    fig = Figures()
    acked: set[int] = set()
    last_saved: int | None = None
    injected = 0
    for life in range(kills):
        first = (life + 1) * 1_000_000
        proc = subprocess.Popen(
            [*CHILD, str(root), user, str(first), str(rnd.randrange(1 << 30))],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        fig.restarts += life > 0
        lines: list[bytes] = []
        ready = threading.Event()
        reader = threading.Thread(target=_read_acks, args=(proc, lines, ready), daemon=True)
        reader.start()
        if rnd.random() < startup_share:  # anywhere, startup and loading included
            time.sleep(rnd.uniform(0.0, max_delay_s))
        else:  # among the writes
            ready.wait(30)
            time.sleep(rnd.uniform(0.0, max_delay_s / 2))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(30)
        fig.kills += 1
        if b"READY" not in lines:
            fig.killed_during_startup += 1
        for line in lines:
            kind, _, value = line.decode().partition(" ")
            if kind == "H":
                acked.add(int(value))
            elif kind == "S":
                fig.session_saves_acked += 1
                last_saved = int(value)
        state = load_state(root, user)
        fig.torn_reported = check_problems(state, injected, root)
        found = {n for a in state.answers if (n := _number(a, "a")) is not None}
        missing = acked - found
        if missing:
            raise CrashCheckFailed(
                f"kill {life + 1}: {len(missing)} acknowledged exchange(s) lost, e.g. "
                f"{sorted(missing)[:5]}"
            )
        marker = state.session.settings_overrides.get("marker")
        if last_saved is not None and (not isinstance(marker, int) or marker < last_saved):
            raise CrashCheckFailed(
                f"kill {life + 1}: session holds marker {marker}, last acknowledged {last_saved}"
            )
        fig.exchanges_found = len(found & acked)
        if injected < (life + 5) // 10 and inject_torn_line(root, user, rnd):
            injected += 1
            fig.torn_injected = injected
    fig.exchanges_acked = len(acked)
    fig.stray_temp_files = stray_temp_files(root)
    return fig


# -- the real server ----------------------------------------------------------------------------


@dataclass
class Life:
    acked: list[str] = field(default_factory=list)
    pin: str | None = None
    pin_acked_at: float | None = None
    ready: bool = False
    error: BaseException | None = None


def _drive(server: RawServer, root: Path, pin: str, life: Life) -> None:
    """Editor traffic until the server dies under it."""
    try:
        server.initialize(root, {"model": "test-model", "debounceMs": 0})
        uri = server.open(root / "app.py")
        life.ready = True
        server.command("ctx.addFile", {"path": pin})
        life.pin, life.pin_acked_at = pin, time.monotonic()
        while True:
            result = server.command(
                "ctx.explain", {"uri": uri, "range": rng_json(0, 0, 1, 0)}, timeout=20
            )
            life.acked.append(result["text"])
    except (ConnectionError, OSError, ValueError):
        pass  # killed
    except (RpcError, TimeoutError) as exc:
        if server.alive():
            life.error = exc


def server_kills(
    root: Path,
    user: str,
    kills: int,
    seed: int,
    env: dict[str, str],
    max_delay_s: float = 3.0,
    startup_share: float = 0.25,
) -> Figures:
    """`root` must hold app.py and pin<i>.py for every life."""
    rnd = random.Random(seed)
    fig = Figures(real_server=True)
    acked: set[str] = set()
    expected_pins: set[str] = set()
    requested_pins: set[str] = set()
    for life_no in range(kills):
        pin = f"pin{life_no}.py"
        requested_pins.add(pin)
        server = RawServer(env, cwd=root)
        fig.restarts += life_no > 0
        life = Life()
        worker = threading.Thread(target=_drive, args=(server, root, pin, life), daemon=True)
        worker.start()
        if rnd.random() < startup_share:  # anywhere in startup and the first requests
            kill_at = time.monotonic() + rnd.uniform(0.0, max_delay_s)
        else:  # once answers flow, around the session save (due 1 s after the pin)
            deadline = time.monotonic() + 30
            while not life.acked and worker.is_alive() and time.monotonic() < deadline:
                time.sleep(0.005)
            kill_at = time.monotonic() + rnd.uniform(0.0, 3.0)
        while time.monotonic() < kill_at and worker.is_alive():
            time.sleep(0.005)
        server.kill()
        worker.join(30)
        fig.kills += 1
        if life.error is not None:
            raise CrashCheckFailed(f"kill {life_no + 1}: request failed: {life.error!r}")
        if not life.ready:
            fig.killed_during_startup += 1
        acked.update(life.acked)
        if life.pin_acked_at is not None and kill_at - life.pin_acked_at > PIN_DURABLE_AFTER_S:
            expected_pins.add(pin)
        state = load_state(root, user)
        check_problems(state, 0, root)
        missing = acked - state.answers
        if missing:
            raise CrashCheckFailed(
                f"kill {life_no + 1}: {len(missing)} acknowledged exchange(s) lost, e.g. "
                f"{sorted(missing)[:3]}"
            )
        pinned = set(state.session.pinned)
        if not pinned <= requested_pins:
            raise CrashCheckFailed(f"kill {life_no + 1}: unknown pins {pinned - requested_pins}")
        # a pin is lost only by a later save of the same session object; pins accumulate
        lost = expected_pins - pinned
        if lost:
            raise CrashCheckFailed(f"kill {life_no + 1}: saved pins lost: {sorted(lost)}")
        fig.exchanges_found = len(acked & state.answers)
        fig.pins_found = len(expected_pins & pinned)
    fig.exchanges_acked = len(acked)
    fig.pins_expected = len(expected_pins)
    fig.stray_temp_files = stray_temp_files(root)
    return fig


def cache_integrity(root: Path) -> str:
    """`PRAGMA integrity_check` of every response cache under `.ctx/` ("ok" when all are)."""
    results = []
    for path in sorted((root / ".ctx").rglob("responses.sqlite")):
        db = sqlite3.connect(path)
        try:
            results.append(str(db.execute("PRAGMA integrity_check").fetchone()[0]))
        finally:
            db.close()
    if not results:
        return "absent"
    return "ok" if all(r == "ok" for r in results) else "; ".join(results)
