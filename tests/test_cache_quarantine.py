"""A damaged response cache goes to `.ctx/corrupt/` with its -wal/-shm files, reported once
with workspace-relative paths, and a new cache takes its place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctx_lsp.store.cache import ResponseCache
from ctx_lsp.store.ctxdir import CtxStore


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _truncated(path: Path) -> None:
    cache = ResponseCache(path)
    for i in range(500):
        cache.put(f"k{i}", "answer " * 100)
    cache.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _directory(path: Path) -> None:
    (path / "inner").mkdir(parents=True)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_garbage, id="garbage"),
        pytest.param(_truncated, id="truncated"),
        pytest.param(_directory, id="directory"),
    ],
)
def test_damaged_cache_is_moved_with_its_companions(tmp_path: Path, damage) -> None:
    store = CtxStore(tmp_path, ("users", "me"))
    path = store.path("cache/responses.sqlite")
    path.parent.mkdir(parents=True)
    damage(path)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).write_bytes(b"stale companion")
    cache = ResponseCache(path, ensure=store.ensure, quarantine=store.quarantine)

    cache.put("key", "answer")  # the first write meets the damage and starts over

    moved = {p.name for p in (tmp_path / ".ctx" / "corrupt").iterdir()}
    (main,) = [m for m in moved if "-wal" not in m and "-shm" not in m]
    stamp = main.removeprefix("users__me__cache__responses.sqlite")
    # SQLite may have removed the stale companions itself when it closed the damaged file
    companions = {f"users__me__cache__responses.sqlite-{c}{stamp}" for c in ("wal", "shm")}
    assert moved - {main} <= companions
    for suffix in ("-wal", "-shm"):
        beside = path.with_name(path.name + suffix)
        assert not beside.exists() or beside.read_bytes() != b"stale companion"
    (problem,) = store.take_problems()
    assert problem.startswith(".ctx/users/me/cache/responses.sqlite is not a usable")
    assert f"moved to .ctx/corrupt/{main}" in problem and str(tmp_path) not in problem
    assert cache.problems == []
    # a new cache works, and nothing more is said
    cache.put("key", "answer")
    assert cache.get("key") == "answer"
    cache.close()
    assert ResponseCache(path).get("key") == "answer"
    assert store.take_problems() == []
    assert not (store.dir / "corrupt").exists()


def test_cache_that_cannot_be_moved_is_disabled(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    _garbage(path)
    cache = ResponseCache(path, quarantine=lambda *_: False)
    cache.put("key", "answer")
    assert cache.path is None and path.exists()
    assert cache.get("key") == "answer"  # memory still answers
