"""Rotation is safe to interrupt: what a killed rotation leaves is cleaned up or finished by the
next read, and file systems without hard links get a copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from ctx_lsp.text.messages import ChatMessage


def msg(i: int, kind: str = "chat") -> ChatMessage:
    return ChatMessage("user", f"message {i} " + "x" * 100, time=1000.0, kind=kind, id=f"m{i}")


def rotated(tmp_path: Path) -> tuple[CtxStore, list[ChatMessage]]:
    """A store whose history rotated once; returns it and every message appended."""
    store = CtxStore(tmp_path)
    history = History(store, max_bytes=6000, keep_on_rotate=3)
    sent = []
    while not store.path("history.1.jsonl").exists():
        sent.append(msg(len(sent)))
        history.append(sent[-1])
    return store, sent


LEFTOVERS = ["history.jsonl.rotating", ".history.1.jsonl.linking.tmp"]


@pytest.mark.parametrize("read", ["load", "refresh"])
def test_leftovers_of_a_killed_rotation_are_removed(tmp_path: Path, read: str) -> None:
    store, _ = rotated(tmp_path)
    before = History(store).load()
    for name in LEFTOVERS:
        store.path(name).write_bytes(b'{"ctx_history":1}\n')
    history = History(store)
    getattr(history, read)()
    assert history.messages() == before
    assert not [n for n in LEFTOVERS if store.path(n).exists()]
    assert store.take_problems() == []


def test_rotation_an_older_version_left_half_done_is_finished(tmp_path: Path) -> None:
    """Older versions renamed the full file away before the new one took its place."""
    store, sent = rotated(tmp_path)
    seeded = store.path("history.jsonl.rotating")
    os.replace(store.path("history.jsonl"), seeded)
    assert History(store).load()[-3:] == sent[-3:]
    assert not seeded.exists() and store.path("history.jsonl").exists()


def test_clear_removes_the_leftovers_too(tmp_path: Path) -> None:
    store, _ = rotated(tmp_path)
    for name in LEFTOVERS:
        store.path(name).write_bytes(b'{"ctx_history":1}\n')
    History(store).clear()
    assert History(store).load() == []
    assert [p.name for p in store.dir.glob("*history*")] == ["history.jsonl.lock"]


def test_rotation_without_hard_links_copies(tmp_path: Path, monkeypatch) -> None:
    def no_links(*args, **kwargs):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    store, sent = rotated(tmp_path)
    old = History(CtxStore(tmp_path), name="history.1.jsonl").load()
    assert old == sent[: len(old)] and old[-1] == sent[-1]
    assert History(store).load() == sent[-3:]


def test_rotation_again_after_one_was_cut_short(tmp_path: Path) -> None:
    """A rotation killed after the rotated name was linked leaves both names on one file; the
    next rotation still ends with two files and no leftovers."""
    store, sent = rotated(tmp_path)
    os.unlink(store.path("history.1.jsonl"))
    os.link(store.path("history.jsonl"), store.path("history.1.jsonl"))
    history = History(store, max_bytes=6000, keep_on_rotate=3)
    history.load()
    inode = store.path("history.1.jsonl").stat().st_ino
    while store.path("history.1.jsonl").stat().st_ino == inode or len(history) > 3:
        sent.append(msg(len(sent)))
        history.append(sent[-1])
    assert History(store).load() == sent[-3:]
    assert sorted(p.name for p in store.dir.iterdir()) == [
        ".gitignore",
        "history.1.jsonl",
        "history.jsonl",
        "history.jsonl.lock",
    ]
