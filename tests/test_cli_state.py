"""`ctx-lsp session …` and `ctx-lsp history …` as the real executable, including damaged
state in `.ctx/` (reported, moved aside, exit 4, the command still works)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ctx_lsp.config.settings import Settings
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from ctx_lsp.store.session import FileRecord, Session, SessionStore
from ctx_lsp.text.messages import ChatMessage
from tests.fake_openai import FakeOpenAI, Reply
from tests.test_cli import make_ws, run_cli, run_json, scope_dir


@pytest.fixture
def ws(repo: Path) -> Path:
    return make_ws(repo)


def store(root: Path) -> CtxStore:
    return CtxStore(root, ("users", Settings().effective_user()))


def seed(root: Path, n: int = 3, t0: float = 1_700_000_000.0) -> list[ChatMessage]:
    msgs = []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        msgs.append(ChatMessage(role, f"message {i}", time=t0 + i, kind="chat", branch="main"))
    History(store(root)).append(*msgs)
    return msgs


def save_session(root: Path, session: Session) -> None:
    SessionStore(store(root)).save(session)


# -- session ----------------------------------------------------------------------------------


def test_session_show_text_and_json(ws: Path) -> None:
    save_session(
        ws,
        Session(
            open_files=[FileRecord("app.py", "python", 10.0, 20.0)],
            pinned=["README.md"],
            branch="main",
            settings_overrides={"model": "small"},
        ),
    )
    r = run_cli(ws, "session", "show")
    assert r.returncode == 0, r.stderr
    for text in ("app.py  [python]", "Pinned files (1):", "README.md", 'model = "small"'):
        assert text in r.stdout
    data = run_json(ws, "session", "show")
    assert data["saved"] is True and data["pinned"] == ["README.md"]
    assert data["open_files"][0]["path"] == "app.py"
    assert data["path"] == str(scope_dir(ws) / "session.json")


def test_session_save_clear_and_merge_back(ws: Path, tmp_path: Path) -> None:
    save_session(ws, Session(pinned=["README.md"], branch="main"))
    seed(ws, 2)
    snap = tmp_path / "snap"
    saved = run_json(ws, "session", "save", str(snap))
    assert saved == {"path": str(snap), "files": ["session.json", "history.jsonl"], "messages": 2}
    r = run_cli(ws, "session", "save")  # default: a snapshot under .ctx/backups/
    assert r.returncode == 0 and "/.ctx/backups/" in r.stdout

    r = run_cli(ws, "session", "clear")
    assert r.returncode == 0 and "session cleared" in r.stderr
    assert not (scope_dir(ws) / "session.json").exists()
    assert run_json(ws, "session", "show")["pinned"] == []
    assert run_json(ws, "history", "show")["total"] == 2  # clearing the session keeps history

    merged = run_json(ws, "session", "merge", str(snap))
    assert merged["pinnedAdded"] == ["README.md"] and merged["duplicates"] == 2
    assert run_json(ws, "session", "show")["pinned"] == ["README.md"]
    assert run_json(ws, "history", "show")["total"] == 2


def test_session_merge_conflicts_from_another_workspace(ws: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    save_session(
        ws,
        Session(
            open_files=[FileRecord("app.py", "python", last_modified=100.0)],
            settings_overrides={"model": "ours-model", "temperature": 0.1},
        ),
    )
    save_session(
        other,
        Session(
            open_files=[
                FileRecord("app.py", "python", last_modified=200.0, last_active=5.0),
                FileRecord("lib.py", "python", last_modified=50.0),
            ],
            pinned=["docs.md"],
            settings_overrides={"model": "their-model", "maxTokens": 99},
        ),
    )
    ours = seed(ws, 2, t0=1000.0)
    theirs = seed(other, 2, t0=1000.5)
    r = run_cli(ws, "session", "merge", str(other))  # a workspace holding .ctx
    assert r.returncode == 0, r.stderr
    assert "conflict: setting 'model': kept ours" in r.stderr
    assert "2 messages added" in r.stdout and "backup of both inputs: .ctx/backups/" in r.stdout

    session = run_json(ws, "session", "show")
    assert session["settings_overrides"] == {
        "model": "ours-model",
        "temperature": 0.1,
        "maxTokens": 99,
    }
    files = {f["path"]: f["last_modified"] for f in session["open_files"]}
    assert files == {"app.py": 200.0, "lib.py": 50.0}  # newer wins
    assert session["pinned"] == ["docs.md"]
    shown = run_json(ws, "history", "show")["messages"]
    expected = [ours[0], theirs[0], ours[1], theirs[1]]
    assert [m["id"] for m in shown] == [m.id for m in expected]  # interleaved by time

    backups = list((ws / ".ctx" / "backups").iterdir())
    assert len(backups) == 1
    assert {p.name for p in (backups[0] / "theirs").iterdir()} == {"session.json", "history.jsonl"}
    manifest = json.loads((backups[0] / "merge.json").read_text())
    assert manifest["conflicts"][0]["key"] == "model"

    # merging the same again changes nothing but is reported; --prefer theirs flips the rule
    again = run_json(ws, "session", "merge", str(other / ".ctx"), "--prefer", "theirs")
    assert again["messagesAdded"] == 0 and again["duplicates"] == 2
    assert run_json(ws, "session", "show")["settings_overrides"]["model"] == "their-model"


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        pytest.param(lambda p: None, 2, "no such file or folder", id="missing"),
        pytest.param(lambda p: p.mkdir(), 2, "neither a session.json", id="empty-folder"),
        pytest.param(
            lambda p: (p.mkdir(), (p / "session.json").write_text('{"version": 1, "da')),
            4,
            "is not valid JSON",
            id="damaged",
        ),
    ],
)
def test_session_merge_bad_sources(ws: Path, tmp_path: Path, make, code: int, message: str):
    other = tmp_path / "other"
    make(other)
    r = run_cli(ws, "session", "merge", str(other))
    assert r.returncode == code and message in r.stderr, r.stderr
    assert not (ws / ".ctx" / "backups").exists()
    if code == 4:  # the source is never moved or changed
        assert (other / "session.json").read_text() == '{"version": 1, "da'


def test_session_merge_refuses_its_own_session(ws: Path) -> None:
    seed(ws, 1)
    r = run_cli(ws, "session", "merge", str(ws))
    assert r.returncode == 2 and "own session" in r.stderr


# -- history ----------------------------------------------------------------------------------


def test_history_show_last_and_json(ws: Path) -> None:
    msgs = seed(ws, 5)
    r = run_cli(ws, "history", "show", "--last", "2")
    assert r.returncode == 0, r.stderr
    assert "message 3" in r.stdout and "message 4" in r.stdout and "message 2" not in r.stdout
    assert "] user (chat, main)" in r.stdout
    data = run_json(ws, "history", "show", "--last", "3")
    assert data["total"] == 5 and [m["id"] for m in data["messages"]] == [m.id for m in msgs[2:]]
    r = run_cli(ws, "--root", str(ws / ".ctx" / ".."), "history", "show")
    assert r.stdout.count("message") == 5


def test_history_show_empty(ws: Path) -> None:
    r = run_cli(ws, "history", "show")
    assert (r.returncode, r.stdout) == (0, "") and "empty" in r.stderr
    assert run_json(ws, "history", "show")["messages"] == []


@pytest.mark.parametrize(
    ("args", "check"),
    [
        pytest.param([], lambda text: [json.loads(x)["content"] for x in text.splitlines()]
                     == ["message 0", "message 1"], id="jsonl-stdout"),
        pytest.param(["--format", "md"], lambda text: text.startswith("# ctx-lsp history: ")
                     and "## assistant · chat, main · " in text, id="md-stdout"),
    ],
)  # fmt: skip
def test_history_export_to_stdout(ws: Path, args: list[str], check) -> None:
    seed(ws, 2)
    r = run_cli(ws, "history", "export", *args)
    assert r.returncode == 0 and check(r.stdout), r.stdout


def test_history_export_to_file_picks_format_from_extension(ws: Path) -> None:
    seed(ws, 2)
    r = run_cli(ws, "history", "export", "-o", "out.md")
    assert r.returncode == 0 and r.stdout == ""
    assert (ws / "out.md").read_text().startswith("# ctx-lsp history")
    r = run_cli(ws, "history", "export", "-o", "nowhere/out.jsonl")
    assert r.returncode == 2 and "cannot write" in r.stderr


def test_history_clear(ws: Path) -> None:
    seed(ws, 3)
    r = run_cli(ws, "history", "clear")
    assert r.returncode == 0 and "3 messages" in r.stderr
    assert run_json(ws, "history", "show")["total"] == 0


def test_history_summarize(ws: Path, fake_openai: FakeOpenAI) -> None:
    r = run_cli(ws, "history", "summarize", env=fake_openai.env())
    assert r.returncode == 1 and "nothing to summarize" in r.stderr
    seed(ws, 8)
    fake_openai.enqueue(Reply("We discussed messages 0 to 3."))
    out = run_json(ws, "history", "summarize", env=fake_openai.env())
    assert out["text"] == "We discussed messages 0 to 3."
    assert "message 0" in fake_openai.prompts()[-1]
    shown = run_json(ws, "history", "show")["messages"]
    assert shown[-1]["kind"] == "summary" and shown[-1]["role"] == "system"


# -- damaged state ----------------------------------------------------------------------------


def test_truncated_session_is_reported_moved_aside_and_the_command_still_works(
    ws: Path, fake_openai: FakeOpenAI
) -> None:
    save_session(ws, Session(pinned=["README.md"]))
    path = scope_dir(ws) / "session.json"
    path.write_text(path.read_text()[:25])
    fake_openai.enqueue(Reply("Still answering."))
    r = run_cli(ws, "chat", "are you there?", env=fake_openai.env())
    assert r.returncode == 4
    assert r.stdout == "Still answering.\n"
    assert "warning:" in r.stderr and "session.json is not valid JSON" in r.stderr
    assert "moved to .ctx/corrupt/" in r.stderr
    assert not path.exists() and len(list((ws / ".ctx" / "corrupt").iterdir())) == 1
    # reported once: the next command is clean
    r = run_cli(ws, "session", "show", "--json")
    assert r.returncode == 0 and r.stderr == ""
    assert json.loads(r.stdout)["pinned"] == []


def test_damaged_history_lines_are_moved_aside_with_a_warning(ws: Path) -> None:
    seed(ws, 2)
    with (scope_dir(ws) / "history.jsonl").open("a") as fh:
        fh.write("{not json\n")
    r = run_cli(ws, "history", "show", "--json")
    assert r.returncode == 4  # the line was moved aside: state lost, once
    assert "1 damaged line(s)" in r.stderr
    assert json.loads(r.stdout)["total"] == 2


def test_unreadable_whole_history_is_moved_aside_exit_4(ws: Path) -> None:
    scope_dir(ws).mkdir(parents=True)
    (scope_dir(ws) / "history.jsonl").write_bytes(b"\x00\xff garbage\n")
    r = run_cli(ws, "history", "show")
    assert r.returncode == 4 and "moved to .ctx/corrupt/" in r.stderr
    assert run_cli(ws, "history", "show").returncode == 0


def test_invalid_config_is_a_warning(ws: Path) -> None:
    (ws / ".ctx" / "config.toml").write_text("model = [\n")
    r = run_cli(ws, "history", "show")
    assert r.returncode == 0 and "invalid TOML" in r.stderr


def test_no_stray_ctx_folder_for_reads(home: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for args in (["history", "show"], ["session", "show"], ["tree"], ["templates", "list"]):
        assert run_cli(plain, *args).returncode == 0
    assert not (plain / ".ctx").exists()


def test_summarize_a_long_history_condenses_its_newest_part(
    ws: Path, fake_openai: FakeOpenAI
) -> None:
    """A summary of a long history reads the recent conversation, not the whole file: the
    summary prompt holds the newest messages and not the first ones."""
    from ctx_lsp.assist.tasks import SUMMARIZE_MESSAGES

    seed(ws, SUMMARIZE_MESSAGES * 3)
    fake_openai.enqueue(Reply("We discussed the recent messages."))
    out = run_json(ws, "history", "summarize", env=fake_openai.env())
    assert out["text"] == "We discussed the recent messages."
    prompt = fake_openai.prompts()[-1]
    newest = SUMMARIZE_MESSAGES * 3 - 5  # the last 4 stay as they are
    assert re.search(rf"message {newest}\b", prompt)
    assert not re.search(r"message [01]\b", prompt)
