"""Item 3, damaged or foreign `.ctx/` files: the server starts, moves the file aside into
`.ctx/corrupt/`, tells the user once, and carries on with what is intact.

Table-driven: each row damages one file of a workspace that holds a good history (2 exchanges)
and a good session (README.md pinned), starts a real server on it, checks what it says and
what it kept, then makes one more exchange and checks nothing more is said.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctx_lsp.config.settings import Settings
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from ctx_lsp.store.session import Session, SessionStore
from ctx_lsp.text.messages import ChatMessage
from tests.conftest import command, open_doc
from tests.fake_openai import FakeOpenAI

ROOT_USER = os.geteuid() == 0


@dataclass(frozen=True)
class Case:
    damage: Callable[[Path], None]  # gets the user's scope dir (.ctx/users/<user>)
    said: str | None  # a word of the one message, None: nothing is said
    moved: str | None  # glob in .ctx/corrupt/ for the moved file, None: nothing moved
    history: int  # messages loaded
    pinned: int  # pinned files loaded
    cache_row: bool = False  # the cache is only opened by a model call


def _session(scope: Path) -> Path:
    return scope / "session.json"


def _history(scope: Path) -> Path:
    return scope / "history.jsonl"


def _cache(scope: Path) -> Path:
    return scope / "cache" / "responses.sqlite"


def _write(path_of: Callable[[Path], Path], data: bytes | str) -> Callable[[Path], None]:
    def damage(scope: Path) -> None:
        path = path_of(scope)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)

    return damage


def _truncate(path_of: Callable[[Path], Path], keep: float) -> Callable[[Path], None]:
    def damage(scope: Path) -> None:
        path = path_of(scope)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return damage


def _chop(path_of: Callable[[Path], Path], nbytes: int) -> Callable[[Path], None]:
    def damage(scope: Path) -> None:
        path = path_of(scope)
        path.write_bytes(path.read_bytes()[:-nbytes])

    return damage


def _directory(path_of: Callable[[Path], Path]) -> Callable[[Path], None]:
    def damage(scope: Path) -> None:
        path = path_of(scope)
        path.unlink()
        (path / "inner").mkdir(parents=True)

    return damage


def _unreadable(path_of: Callable[[Path], Path]) -> Callable[[Path], None]:
    def damage(scope: Path) -> None:
        path_of(scope).chmod(0)

    return damage


def _binary(seed: int) -> bytes:
    return bytes(random.Random(seed).randrange(256) for _ in range(512))


def _history_garbage_line(scope: Path) -> None:
    path = _history(scope)
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(2, b"\x00\xff garbage {{{\n")
    path.write_bytes(b"".join(lines))


def _newer_history(scope: Path) -> None:
    path = _history(scope)
    path.write_bytes(path.read_bytes().replace(b'{"ctx_history":1}', b'{"ctx_history":99}'))


def _real_cache_then_truncate(scope: Path) -> None:
    path = _cache(scope)
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, created REAL, text TEXT)")
    db.executemany(
        "INSERT INTO responses VALUES (?, ?, ?)",
        [(f"k{i:05d}", 1e9 + i, "answer " * 200) for i in range(2000)],
    )
    db.commit()
    db.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


GOOD = {"history": 4, "pinned": 1}


def session_moved(damage: Callable[[Path], None]) -> Case:
    """The session is moved aside, the history stays."""
    return Case(damage, "session.json", "*session.json*", history=4, pinned=0)


def history_moved(damage: Callable[[Path], None]) -> Case:
    """The history is moved aside, the session stays."""
    return Case(damage, "history.jsonl", "*history.jsonl*", history=0, pinned=1)


def cache_moved(damage: Callable[[Path], None]) -> Case:
    """Only re-creatable data: moved aside at its first use, everything else stays."""
    return Case(damage, "cache", "*responses.sqlite*", cache_row=True, **GOOD)


def lines_skipped(damage: Callable[[Path], None], n: int, history: int) -> Case:
    """Damaged lines are set aside into `.ctx/corrupt/` and reported once; the rest stays."""
    return Case(damage, f"{n} damaged line", "*history.jsonl.*", history=history, pinned=1)


def unreadable(path_of: Callable[[Path], Path], moved: Callable[..., Case]) -> Case:
    # root reads a mode-000 file anyway: nothing to report, nothing lost
    return (
        Case(_unreadable(path_of), None, None, **GOOD) if ROOT_USER else moved(_unreadable(path_of))
    )


CASES = {
    "session-truncated-json": session_moved(_truncate(_session, 0.5)),
    "session-empty-file": session_moved(_write(_session, b"")),
    "session-wrong-types": session_moved(
        _write(_session, json.dumps({"version": 1, "data": {"pinned": 5, "open_files": "x"}}))
    ),
    "session-not-an-envelope": session_moved(_write(_session, "[1, 2, 3]")),
    "session-binary": session_moved(_write(_session, _binary(1))),
    "session-newer-version": session_moved(
        _write(_session, json.dumps({"version": 99, "data": {"pinned": ["README.md"]}}))
    ),
    "session-is-a-directory": session_moved(_directory(_session)),
    "session-unreadable": unreadable(_session, session_moved),
    "history-torn-last-line": lines_skipped(_chop(_history, 10), 1, history=3),
    "history-garbage-line": lines_skipped(_history_garbage_line, 1, history=4),
    # a valid header: the records that do not parse are skipped, the file stays
    "history-wrong-types": lines_skipped(
        _write(_history, '{"ctx_history":1}\n{"role":5,"content":[]}\n[1,2]\n"text"\n'),
        3,
        history=0,
    ),
    "history-binary": history_moved(_write(_history, _binary(2))),
    "history-newer-format": history_moved(_newer_history),
    "history-is-a-directory": history_moved(_directory(_history)),
    "history-unreadable": unreadable(_history, history_moved),
    "cache-garbage": cache_moved(_write(_cache, _binary(3) * 8)),
    "cache-truncated-db": cache_moved(_real_cache_then_truncate),
    "cache-is-a-directory": cache_moved(_directory(_cache)),
}


@pytest.fixture
def workspace(repo: Path) -> tuple[Path, Path]:
    """The repo with a good history, session and cache for the OS user; returns (repo, scope)."""
    store = CtxStore(repo, ("users", Settings().effective_user()))
    history = History(store)
    for i in range(2):
        history.append(
            ChatMessage("user", f"question {i}", kind="chat"),
            ChatMessage("assistant", f"answer {i}", kind="chat"),
        )
    SessionStore(store).save(Session(pinned=["README.md"]))
    cache = store.path("cache/responses.sqlite")
    cache.parent.mkdir(parents=True)
    db = sqlite3.connect(cache)
    db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, created REAL, text TEXT)")
    db.commit()
    db.close()
    return repo, store.dir


def _corrupt(repo: Path) -> list[str]:
    corrupt = repo / ".ctx" / "corrupt"
    return sorted(p.name for p in corrupt.iterdir()) if corrupt.is_dir() else []


@pytest.mark.parametrize("name", list(CASES))
async def test_damaged_file(lsp, workspace, fake_openai: FakeOpenAI, name: str):
    case = CASES[name]
    repo, scope = workspace
    case.damage(scope)
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": "test-model"})
    uri = open_doc(client, repo / "app.py")

    if case.cache_row:  # the cache is opened by the first model call
        result = await command(client, "ctx.explain", {"uri": uri, "range": _range()})
        assert result["text"] == fake_openai.reply
    text = (await command(client, "ctx.showContext"))["text"]
    said = [m.message for m in client.messages]
    moved = _corrupt(repo)
    print(f"\n[damaged .ctx: {name}] said={said} moved={moved}")

    history = case.history + (2 if case.cache_row else 0)
    assert f"History: {history} messages" in text
    assert f"Pinned files ({case.pinned})" in text
    if case.said is None:
        assert said == []
    else:
        assert len(said) == 1, said
        assert case.said in said[0]
    if case.moved is None:
        assert moved == []
    else:
        # the cache may take its -wal/-shm files along
        assert moved and all(Path(m).match(case.moved) for m in moved), moved
        assert len(moved) == 1 or case.cache_row, moved

    # it carries on: one more exchange is recorded, and nothing more is said
    if not case.cache_row:
        await command(client, "ctx.explain", {"uri": uri, "range": _range()})
    await command(client, "ctx.addFile", {"path": "app.py"})
    text = (await command(client, "ctx.showContext"))["text"]
    assert f"History: {case.history + 2} messages" in text
    assert len(client.messages) == len(said), [m.message for m in client.messages]
    assert _corrupt(repo) == moved


def _range() -> dict:
    return {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}


async def test_invalid_workspace_config_is_reported_once_and_kept(lsp, repo: Path, fake_openai):
    """`.ctx/config.toml` is the user's own file: reported, ignored, never moved."""
    config = repo / ".ctx" / "config.toml"
    config.parent.mkdir()
    config.write_bytes(b'model = "x\n\xff\xfe[[[')
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": "test-model"})
    uri = open_doc(client, repo / "app.py")
    await command(client, "ctx.explain", {"uri": uri, "range": _range()})
    said = [m.message for m in client.messages]
    print(f"\n[damaged .ctx: config.toml] said={said}")
    assert len(said) == 1 and "config.toml" in said[0]
    assert config.exists() and _corrupt(repo) == []
