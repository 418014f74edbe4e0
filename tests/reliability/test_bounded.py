"""Item 8, bounded resources on disk: the history rotates at its cap, the response cache
evicts beyond `max_entries`, `.ctx/answers/` keeps at most 50 files. (The memory soak is
test_soak.py.)"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from ctx_lsp.store.cache import ResponseCache
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from ctx_lsp.text.messages import ChatMessage
from tests.fake_openai import FakeOpenAI

from ._rpc import RawServer, isolated_env, rng_json

MAX_ANSWERS = 50
EXPLAINS = 60


def test_history_rotates_at_its_cap(tmp_path: Path) -> None:
    cap = 50_000
    store = CtxStore(tmp_path, ("users", "u"))
    history = History(store, max_bytes=cap, keep_on_rotate=20)
    biggest = {"history.jsonl": 0, "history.1.jsonl": 0}
    most_in_memory = 0
    rotations = 0
    for i in range(3000):
        history.append(
            ChatMessage("user", f"question {i} " + "q" * (i % 300)),
            ChatMessage("assistant", f"answer {i} " + "a" * (i % 500)),
        )
        size = store.size_of("history.jsonl")
        if size < biggest["history.jsonl"] // 2:
            rotations += 1
        for name in biggest:
            biggest[name] = max(biggest[name], store.size_of(name))
        most_in_memory = max(most_in_memory, len(history))
    files = sorted(p.name for p in store.dir.iterdir())
    one_append = 2 * 1200  # two records of at most ~1 KB each, with their JSON
    print(
        f"\n[bounded: history] cap={cap} B, 6000 messages appended: largest history.jsonl "
        f"{biggest['history.jsonl']} B, largest history.1.jsonl {biggest['history.1.jsonl']} B, "
        f"most messages in memory {most_in_memory}, rotations {rotations}, files {files}"
    )
    assert files == ["history.1.jsonl", "history.jsonl", "history.jsonl.lock"]
    assert rotations > 10
    assert biggest["history.jsonl"] <= cap + one_append
    assert biggest["history.1.jsonl"] <= cap + one_append
    assert most_in_memory < 6000 // 4, "memory is bounded by the rotation too"
    # the newest messages survive every rotation
    assert [m.content.split()[1] for m in History(store).load()[-2:]] == ["2999", "2999"]


def test_cache_evicts_beyond_max_entries(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path, memory_entries=16, max_entries=100)
    for i in range(350):
        cache.put(f"key{i:04d}", f"answer {i} " + "x" * 200)
    cache.close()
    db = sqlite3.connect(path)
    try:
        (rows,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
        kept = {k for (k,) in db.execute("SELECT key FROM responses")}
    finally:
        db.close()
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("responses.sqlite*"))
    print(f"\n[bounded: cache] max_entries=100, 350 put: {rows} rows, {on_disk} B on disk")
    assert rows == 100
    assert kept == {f"key{i:04d}" for i in range(250, 350)}, "the newest are kept"
    fresh = ResponseCache(path, memory_entries=16, max_entries=100)
    assert fresh.get("key0349") is not None and fresh.get("key0000") is None


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory):
    """60 explains of 60 different functions, then the same function twice in a row."""
    tmp = tmp_path_factory.mktemp("answers")
    home, root = tmp / "home", tmp / "ws"
    home.mkdir()
    root.mkdir()
    code = "".join(f"def function_{i}(x):\n    return x + {i}\n\n\n" for i in range(EXPLAINS))
    (root / "many.py").write_text(code)
    counter = itertools.count()
    with (
        FakeOpenAI(reply=lambda body: f"explanation number {next(counter)}") as fake,
        RawServer(isolated_env(home, fake.env()), cwd=root) as server,
    ):
        server.initialize(root, {"model": "test-model", "debounceMs": 0})
        uri = server.open(root / "many.py")
        results = [
            server.command("ctx.explain", {"uri": uri, "range": rng_json(4 * i, 0, 4 * i, 0)})
            for i in range(EXPLAINS)
        ]
        again = [
            server.command("ctx.explain", {"uri": uri, "range": rng_json(0, 0, 0, 0)})
            for _ in range(2)
        ]
        server.close()
    answers_dir = Path(results[0]["path"]).parent.parent
    return results, again, answers_dir


def test_answers_keep_at_most_50_files(answered) -> None:
    results, again, answers_dir = answered
    files = sorted(answers_dir.glob("*/*.md"))
    print(
        f"\n[bounded: answers] {EXPLAINS + 2} explains, {len(files)} files in {answers_dir.name}/"
    )
    assert len(files) == MAX_ANSWERS
    assert Path(again[-1]["path"]).exists() and Path(results[-1]["path"]).exists()
    assert not Path(results[0]["path"]).exists(), "the oldest went first"


def test_each_answer_keeps_its_own_file(answered) -> None:
    _, again, _ = answered
    first, second = again
    print(f"\n[bounded: answers] same code twice: {first['path']} / {second['path']}")
    assert first["path"] != second["path"]
    assert first["text"] in Path(first["path"]).read_text()


def test_rotation_keeps_the_conversation(tmp_path: Path) -> None:
    store = CtxStore(tmp_path, ("users", "u"))
    history = History(store, max_bytes=200_000, keep_on_rotate=200)
    for i in range(3):
        history.append(
            ChatMessage("user", f"Explain function_{i}", kind="explain"),
            ChatMessage("assistant", f"function_{i} adds numbers", kind="explain"),
        )
    n = 0
    while not store.path("history.1.jsonl").exists():  # a typing session's completions
        n += 1
        history.append(
            ChatMessage("user", f"Complete a.py:{n} after: x = ", kind="completion"),
            ChatMessage("assistant", f"compute({n})", kind="completion"),
        )
    conversation = [m for m in History(store).load() if m.kind != "completion"]
    print(
        f"\n[bounded: history] after {n} completions and a rotation: {len(conversation)} "
        "conversation messages left"
    )
    assert len(conversation) == 6
