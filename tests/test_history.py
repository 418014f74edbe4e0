"""History: append-only JSON lines, damage, rotation, summaries, sharing across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import HISTORY_VERSION, History
from ctx_lsp.text.messages import ChatMessage

REPO = Path(__file__).resolve().parents[1]


def msg(i: int | str, role: str = "user", **kw: object) -> ChatMessage:
    kw.setdefault("time", 1000.0)  # fixed, so messages built twice compare equal
    return ChatMessage(role=role, content=f"message {i}", id=f"m{i}", **kw)  # type: ignore[arg-type]


def lines_of(path: Path) -> list[str]:
    return path.read_text("utf-8").splitlines()


def test_append_and_load_round_trip(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    hist = History(store)
    sent = [msg(1), msg(2, "assistant", model="m", prompt_tokens=3, completion_tokens=4)]
    hist.append(*sent)
    hist.append(msg(3, file="a.py", branch="main", kind="fix"))
    assert hist.messages() == [*sent, msg(3, file="a.py", branch="main", kind="fix")]
    assert len(hist) == 3
    lines = lines_of(hist.path)
    assert json.loads(lines[0]) == {"ctx_history": HISTORY_VERSION}
    assert len(lines) == 4
    again = History(store)
    assert again.load() == hist.messages()
    assert store.take_problems() == []


def test_append_never_rewrites(tmp_path: Path) -> None:
    hist = History(CtxStore(tmp_path))
    hist.append(msg(1))
    before = hist.path.read_bytes()
    inode = hist.path.stat().st_ino
    hist.append(msg(2))
    after = hist.path.read_bytes()
    assert after.startswith(before) and hist.path.stat().st_ino == inode


TORN = [
    pytest.param(b'{"role":"user","content":"cut', 1, id="cut-mid-record"),
    pytest.param(b'{"role":"user"', 1, id="cut-mid-object"),
    pytest.param(b"\xff\xfe\x00", 1, id="binary-tail"),
]


@pytest.mark.parametrize(("tail", "skipped"), TORN)
def test_torn_last_line_skipped_and_reported(tmp_path: Path, tail: bytes, skipped: int) -> None:
    store = CtxStore(tmp_path)
    hist = History(store)
    hist.append(msg(1), msg(2))
    with open(hist.path, "ab") as fh:
        fh.write(tail)  # a crash mid-append: no trailing newline
    fresh = History(store)
    assert [m.id for m in fresh.load()] == ["m1", "m2"]
    problems = store.take_problems()
    assert len(problems) == 1 and f"skipped {skipped} damaged line" in problems[0]
    assert "line 4" in problems[0]
    # The next append starts on a new line; nothing more is lost.
    fresh.append(msg(3))
    assert [m.id for m in History(store).load()] == ["m1", "m2", "m3"]
    assert [m.id for m in fresh.messages()] == ["m1", "m2", "m3"]
    # told once: the torn line was set aside, so later reads are clean
    assert store.take_problems() == []
    (aside,) = (tmp_path / ".ctx" / "corrupt").iterdir()
    assert aside.read_bytes().rstrip(b"\n") == tail


def test_damaged_middle_lines_skipped(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    hist = History(store)
    hist.append(msg(1))
    with open(hist.path, "ab") as fh:
        fh.write(b'{"role": 5, "content": "x"}\n')  # wrong types
        fh.write(b"[1, 2]\n")  # not an object
        fh.write(b"\n")  # blank lines are harmless
        fh.write(b"not json\n")
    hist.append(msg(2))
    assert [m.id for m in hist.messages()] == ["m1", "m2"]
    (problem,) = store.take_problems()  # the appender read past them and set them aside
    assert "skipped 3 damaged line(s) (line 3, 4, 6)" in problem
    fresh = History(store)
    assert [m.id for m in fresh.load()] == ["m1", "m2"]
    assert store.take_problems() == []


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(64).replace(b"\n", b"") + b"\n" + bytes(range(1, 200)))


def _newer(path: Path) -> None:
    path.write_text('{"ctx_history": 99}\n{"role":"user","content":"from the future"}\n')


def _bad_header(path: Path) -> None:
    path.write_text('{"ctx_history": "one"}\n')


def _directory(path: Path) -> None:
    (path / "x").mkdir(parents=True)


def _only_bad_records(path: Path) -> None:
    path.write_text('{"role": 1}\n{"content": 2}\n')


WHOLE_FILE_DAMAGE = [
    pytest.param(_garbage, "no readable history records", id="binary-garbage"),
    pytest.param(_newer, "newer than supported", id="newer-version"),
    pytest.param(_directory, "is a directory", id="directory"),
    pytest.param(_only_bad_records, "no readable history records", id="wrong-types"),
]


@pytest.mark.parametrize(("damage", "reason"), WHOLE_FILE_DAMAGE)
def test_whole_file_damage_is_quarantined(tmp_path: Path, damage, reason: str) -> None:
    store = CtxStore(tmp_path)
    store.ensure()
    damage(store.path("history.jsonl"))
    hist = History(store)
    assert hist.load() == []
    problems = store.take_problems()
    assert len(problems) == 1 and reason in problems[0], problems
    assert len(list((tmp_path / ".ctx" / "corrupt").iterdir())) == 1
    assert History(store).load() == [] and store.take_problems() == []
    hist.append(msg(1))
    assert History(store).load() == [msg(1)]
    assert store.take_problems() == []


def test_bad_header_with_good_lines_keeps_lines(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    store.ensure()
    store.path("history.jsonl").write_text('{"ctx_history": "x"}\n' + json.dumps(msg(1).to_json()))
    assert History(store).load() == [msg(1)]
    assert "skipped 1" in store.take_problems()[0]


def test_rotation_keeps_recent_and_replaces_older(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    hist = History(store, max_bytes=4000, keep_on_rotate=3)
    for i in range(30):
        hist.append(msg(i))
    rotated = store.path("history.1.jsonl")
    assert rotated.exists() and hist.path.stat().st_size <= 4000
    assert hist.recent(3) == [msg(27), msg(28), msg(29)]
    assert History(store).load() == hist.messages()
    first_rotated = rotated.read_bytes()
    for i in range(30, 60):
        hist.append(msg(i))
    assert rotated.read_bytes() != first_rotated  # the older rotated file was replaced
    assert sorted(p.name for p in store.dir.glob("history*.jsonl")) == [
        "history.1.jsonl",
        "history.jsonl",
    ]
    assert hist.recent(1) == [msg(59)]
    assert store.take_problems() == []


def test_rotation_carries_summary(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    hist = History(store, max_bytes=3000, keep_on_rotate=2)
    for i in range(5):
        hist.append(msg(i))
    summary = hist.add_summary("so far", "m4")
    for i in range(5, 40):
        hist.append(msg(i))
    assert store.path("history.1.jsonl").exists()
    # The summary came before the rotations, yet prompts (here and in a new process) keep it.
    assert hist.for_prompt(2) == [summary, msg(38), msg(39)]
    assert History(store).load()[0] == summary


def test_rotation_skips_huge_message(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    hist = History(store, max_bytes=2000)
    hist.append(msg(0))
    big = ChatMessage(role="user", content="x" * 5000, id="big")
    hist.append(big)
    # Only a contiguous recent tail within max_bytes/4 is carried: the huge newest message is
    # not, so older ones are not either (no gap), and the new file is just a header.
    assert len(lines_of(hist.path)) == 1
    assert hist.messages() == []
    hist.append(msg(1))
    assert hist.messages() == [msg(1)] and not store_has_problems(hist)


def store_has_problems(hist: History) -> bool:
    return bool(hist.store.problems)


def test_recent(tmp_path: Path) -> None:
    hist = History(CtxStore(tmp_path))
    hist.append(*(msg(i) for i in range(5)))
    assert hist.recent(2) == [msg(3), msg(4)]
    assert hist.recent(0) == [] and hist.recent(-1) == []
    assert hist.recent(99) == hist.messages()


FOR_PROMPT = [
    pytest.param([], 3, [], id="empty"),
    pytest.param(["1", "2", "3"], 2, ["m2", "m3"], id="no-summary"),
    pytest.param(["1", "2", "S:2", "3", "4"], 5, ["S", "m3", "m4"], id="summary-then-more"),
    pytest.param(["1", "2", "S:2", "3", "4"], 1, ["S", "m4"], id="window-smaller"),
    pytest.param(["1", "2", "S:2"], 3, ["S"], id="summary-last"),
    pytest.param(["1", "2", "3", "S:1"], 5, ["S", "m2", "m3"], id="late-summary"),
    pytest.param(["1", "S:1", "2", "T:2", "3"], 5, ["T", "m3"], id="latest-summary-wins"),
    pytest.param(["1", "2", "S:gone"], 5, ["S"], id="unknown-cover"),
    pytest.param(["1", "S:1", "2"], 0, ["S"], id="zero"),
]


@pytest.mark.parametrize(("script", "n", "expected"), FOR_PROMPT)
def test_for_prompt_and_add_summary(
    tmp_path: Path, script: list[str], n: int, expected: list[str]
) -> None:
    store = CtxStore(tmp_path)
    hist = History(store)
    names: dict[str, str] = {}
    for step in script:
        if ":" in step:
            label, covered = step.split(":")
            s = hist.add_summary(f"summary {label}", f"m{covered}", model="small")
            assert s.kind == "summary" and s.role == "system" and s.model == "small"
            names[s.id] = label
        else:
            hist.append(msg(step))

    def show(ms: list[ChatMessage]) -> list[str]:
        return [names.get(m.id, m.id) for m in ms]

    assert show(hist.for_prompt(n)) == expected
    reloaded = History(store)
    reloaded.load()
    assert show(reloaded.for_prompt(n)) == expected
    assert len(reloaded) == len(script)  # the full history stays on disk


def test_refresh_picks_up_other_instance(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    mine, theirs = History(store), History(CtxStore(tmp_path))
    mine.load()
    theirs.append(msg(1), msg(2))
    mine.refresh()
    assert mine.messages() == [msg(1), msg(2)]
    theirs.append(msg(3))
    mine.append(msg(4))  # appending also takes in what the other wrote first
    assert [m.id for m in mine.messages()] == ["m1", "m2", "m3", "m4"]
    theirs.refresh()
    assert theirs.messages() == mine.messages()
    theirs.clear()
    mine.refresh()
    assert mine.messages() == [] and not mine.path.exists()
    assert store.take_problems() == []


def test_refresh_after_other_instance_rotates(tmp_path: Path) -> None:
    mine = History(CtxStore(tmp_path), max_bytes=1500, keep_on_rotate=2)
    theirs = History(CtxStore(tmp_path), max_bytes=1500, keep_on_rotate=2)
    mine.append(msg(0))
    for i in range(1, 20):
        theirs.append(msg(i))
    mine.refresh()
    assert mine.messages() == theirs.messages() and mine.recent(1) == [msg(19)]


def test_clear_removes_files(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    hist = History(store, max_bytes=1000)
    for i in range(20):
        hist.append(msg(i))
    assert store.path("history.1.jsonl").exists()
    hist.clear()
    assert len(hist) == 0 and not list(store.dir.glob("history*.jsonl"))
    assert History(store).load() == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(contents=st.lists(st.text(), min_size=1, max_size=4))
def test_any_text_round_trips(tmp_path: Path, contents: list[str]) -> None:
    store = CtxStore(tmp_path / os.urandom(6).hex())
    hist = History(store)
    sent = [ChatMessage(role="user", content=c) for c in contents]
    hist.append(*sent)
    assert History(store).load() == sent
    assert store.take_problems() == []


WRITER = """
import sys
from pathlib import Path
from ctx_lsp.store.history import History
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.store.ctxdir import CtxStore
hist = History(CtxStore(Path(sys.argv[1])))
tag = sys.argv[2]
for i in range(500):
    hist.append(ChatMessage(role="user", content=f"{tag} {i} " + "x" * (i % 50), id=f"{tag}{i}"))
"""


def test_two_processes_append_concurrently(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag], env=env)
        for tag in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = CtxStore(tmp_path)
    lines = lines_of(store.path("history.jsonl"))
    assert len(lines) == 1001 and json.loads(lines[0]) == {"ctx_history": 1}
    records = [json.loads(line) for line in lines[1:]]
    assert all(ChatMessage.from_json(r) for r in records)
    loaded = History(store).load()
    assert store.take_problems() == []
    for tag in ("a", "b"):
        mine = [m.id for m in loaded if m.id.startswith(tag)]
        assert mine == [f"{tag}{i}" for i in range(500)]  # each writer's order is kept


def test_refresh_notices_same_inode_rewritten(tmp_path: Path) -> None:
    # Models a clear elsewhere whose new file reuses the inode number: same inode, longer file.
    store = CtxStore(tmp_path)
    mine, other = History(store), History(CtxStore(tmp_path))
    mine.append(msg(1), msg(2))
    other.load()
    with open(mine.path, "r+b") as fh:
        fh.truncate(0)
    other.append(*(msg(f"new{i}") for i in range(5)))
    mine.refresh()
    assert [m.id for m in mine.messages()] == [f"mnew{i}" for i in range(5)]
    assert store.take_problems() == []


BIG_WRITER = """
import sys
from pathlib import Path
from ctx_lsp.store.history import History
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.store.ctxdir import CtxStore
hist = History(CtxStore(Path(sys.argv[1])))
for i in range(150):
    hist.append(ChatMessage(role="user", content=str(i) * 40_000, id=f"w{i}"))
"""


def test_reader_never_mistakes_an_append_in_progress_for_damage(tmp_path: Path) -> None:
    # Large records make it likely that a refresh sees a half-written line; it must wait, not skip.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", BIG_WRITER, str(tmp_path)], env=env)
    store = CtxStore(tmp_path)
    reader = History(store)
    while proc.poll() is None:
        reader.refresh()
    assert proc.wait() == 0
    reader.refresh()
    assert [m.id for m in reader.messages()] == [f"w{i}" for i in range(150)]
    assert store.take_problems() == []


def test_prompts_keep_the_conversation_through_a_typing_session(tmp_path: Path) -> None:
    """Completions are recorded, but a burst of them must not push the explain/fix
    conversation out of the messages prompts carry."""
    history = History(CtxStore(tmp_path, ("users", "u")))
    history.append(
        ChatMessage("user", "Explain parse()", kind="explain"),
        ChatMessage("assistant", "parse() reads the header", kind="explain"),
    )
    for i in range(300):
        history.append(
            ChatMessage("user", f"Complete a.py:{i}", kind="completion"),
            ChatMessage("assistant", f"x = {i}", kind="completion"),
        )
    picked = history.for_prompt(10)
    assert [m.content for m in picked] == ["Explain parse()", "parse() reads the header"]
    assert len(History(CtxStore(tmp_path, ("users", "u"))).load()) == 602
