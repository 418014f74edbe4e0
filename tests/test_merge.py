"""Merging sessions and histories: the pure rules, finding OTHER, and `merge_into` on real
`.ctx/` folders with conflicting sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctx_lsp.config.settings import Settings
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from ctx_lsp.store.session import FileRecord, Session, SessionStore
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.workspace.folder import Folder
from ctx_lsp.workspace.merge import (
    MergeError,
    locate_other,
    merge_histories,
    merge_into,
    merge_sessions,
)

SCOPE = ("users", "alice")


def msg(content: str, t: float, role: str = "user", **kw) -> ChatMessage:
    return ChatMessage(role, content, time=t, **kw)


# -- sessions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "prefer", "expected", "conflicts"),
    [
        pytest.param({"model": "a"}, {"model": "b"}, "ours", {"model": "a"}, ["model"],
                     id="ours-wins"),
        pytest.param({"model": "a"}, {"model": "b"}, "theirs", {"model": "b"}, ["model"],
                     id="theirs-wins"),
        pytest.param({"model": "a"}, {"maxTokens": 9}, "ours", {"model": "a", "maxTokens": 9},
                     [], id="disjoint-union"),
        pytest.param({"t": {"x": [1]}}, {"t": {"x": [1]}}, "ours", {"t": {"x": [1]}}, [],
                     id="equal-values-no-conflict"),
        pytest.param({}, {}, "ours", {}, [], id="both-empty"),
    ],
)  # fmt: skip
def test_settings_overrides(ours, theirs, prefer, expected, conflicts) -> None:
    merged, found, _, _ = merge_sessions(
        Session(settings_overrides=ours), Session(settings_overrides=theirs), prefer
    )
    assert merged.settings_overrides == expected
    assert [c.key for c in found] == conflicts
    for c in found:
        assert c.kept == prefer and f"kept {prefer}" in c.describe()


@pytest.mark.parametrize(
    ("ours", "theirs", "winner", "added", "updated"),
    [
        pytest.param(100.0, 200.0, 200.0, [], ["a.py"], id="theirs-newer"),
        pytest.param(300.0, 200.0, 300.0, [], [], id="ours-newer"),
        pytest.param(100.0, 100.0, 100.0, [], [], id="tie-keeps-ours"),
        pytest.param(None, 5.0, 5.0, ["a.py"], [], id="only-theirs"),
    ],
)
def test_open_files_newer_last_modified_wins(ours, theirs, winner, added, updated) -> None:
    mine = [FileRecord("a.py", "python", ours, last_active=1.0)] if ours is not None else []
    other = [FileRecord("a.py", "py", theirs, last_active=2.0), FileRecord("b.py")]
    merged, _, got_added, got_updated = merge_sessions(
        Session(open_files=mine), Session(open_files=other)
    )
    files = {f.path: f for f in merged.open_files}
    assert files["a.py"].last_modified == winner
    assert got_added == [*added, "b.py"] and got_updated == updated


def test_other_session_fields() -> None:
    ours = Session(pinned=["a", "b"], env_names=["X"], branch=None, last_active=5, created=50)
    theirs = Session(
        pinned=["c", "a"], env_names=["Y", "X"], branch="dev", last_active=9, created=40
    )
    merged, *_ = merge_sessions(ours, theirs)
    assert merged.pinned == ["a", "b", "c"]
    assert merged.env_names == ["X", "Y"]
    assert merged.branch == "dev"  # ours has none
    assert (merged.last_active, merged.created) == (9, 40)
    assert ours.pinned == ["a", "b"]  # inputs untouched
    with pytest.raises(ValueError):
        merge_sessions(ours, theirs, "mine")


# -- histories --------------------------------------------------------------------------------


def test_histories_interleave_by_time_and_drop_duplicates() -> None:
    shared = msg("same id", 3.0)
    ours = [msg("o1", 1.0), shared, msg("o5", 5.0)]
    same_content = msg("o5", 5.0)  # same role, content and time, another id
    theirs = [msg("t2", 2.0), ChatMessage(**{**shared.to_json()}), same_content, msg("t4", 4)]
    merged, dups = merge_histories(ours, theirs)
    assert [m.content for m in merged] == ["o1", "t2", "same id", "t4", "o5"]
    assert dups == 2
    assert merged[-1].id == ours[-1].id  # ours first on equal times


def test_equal_times_keep_each_sides_order() -> None:
    ours = [msg("q", 1.0), msg("a", 1.0, "assistant")]
    theirs = [msg("q2", 1.0), msg("a2", 1.0, "assistant")]
    merged, _ = merge_histories(ours, theirs)
    assert [m.content for m in merged] == ["q", "a", "q2", "a2"]


def test_merge_is_idempotent() -> None:
    ours = [msg("a", 1.0), msg("b", 2.0)]
    theirs = [msg("c", 1.5)]
    once, _ = merge_histories(ours, theirs)
    twice, dups = merge_histories(once, theirs)
    assert [m.id for m in twice] == [m.id for m in once] and dups == 1


# -- locating OTHER ---------------------------------------------------------------------------


def _state(directory: Path, session: bool = True, history: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if session:
        (directory / "session.json").write_text("{}")
    if history:
        (directory / "history.jsonl").write_text("")


@pytest.mark.parametrize(
    ("layout", "arg", "user", "expected"),
    [
        pytest.param(["snap"], "snap/session.json", None, "snap", id="session-file"),
        pytest.param(["snap"], "snap/history.jsonl", None, "snap", id="history-file"),
        pytest.param(["snap"], "snap", None, "snap", id="snapshot-folder"),
        pytest.param(["w/.ctx/users/alice"], "w/.ctx", None, "w/.ctx/users/alice",
                     id="ctx-same-user"),
        pytest.param(["w/.ctx/users/alice"], "w", None, "w/.ctx/users/alice",
                     id="workspace-root"),
        pytest.param(["w/.ctx/users/bob"], "w/.ctx", None, "w/.ctx/users/bob",
                     id="ctx-only-user"),
        pytest.param(["w/.ctx/users/bob", "w/.ctx/users/carol"], "w", "carol",
                     "w/.ctx/users/carol", id="ctx-named-user"),
    ],
)  # fmt: skip
def test_locate_other(tmp_path: Path, layout, arg, user, expected) -> None:
    for d in layout:
        _state(tmp_path / d)
    session, history = locate_other(tmp_path / arg, SCOPE, user)
    assert session == tmp_path / expected / "session.json"
    assert history == tmp_path / expected / "history.jsonl"


def test_locate_other_session_without_history(tmp_path: Path) -> None:
    _state(tmp_path / "snap", history=False)
    assert locate_other(tmp_path / "snap", SCOPE) == (tmp_path / "snap" / "session.json", None)


@pytest.mark.parametrize(
    ("layout", "arg", "user", "message"),
    [
        pytest.param([], "nope", None, "no such file or folder", id="missing"),
        pytest.param(["empty/x"], "empty", None, "neither a session.json", id="unrelated-folder"),
        pytest.param(["w/.ctx/users/bob", "w/.ctx/users/carol"], "w", None,
                     "several users' sessions (bob, carol)", id="ambiguous-users"),
        pytest.param(["w/.ctx/users/bob"], "w", "dave", "no session or history for user 'dave'",
                     id="unknown-user"),
        pytest.param(["w/.ctx/cache"], "w", None, "holds no session", id="ctx-without-users"),
    ],
)  # fmt: skip
def test_locate_other_errors(tmp_path: Path, layout, arg, user, message) -> None:
    for d in layout:
        if d.endswith(("/x", "/cache")):
            (tmp_path / d).mkdir(parents=True)
        else:
            _state(tmp_path / d)
    with pytest.raises(MergeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        locate_other(tmp_path / arg, SCOPE, user)


# -- merge_into on disk -----------------------------------------------------------------------


def _folder(root: Path) -> Folder:
    root.mkdir(parents=True, exist_ok=True)
    return Folder(root, Settings())


def _scope_store(root: Path) -> CtxStore:
    return CtxStore(root, ("users", Settings().effective_user()))


def _conflicting(tmp_path: Path) -> tuple[Path, Path, list[ChatMessage], list[ChatMessage]]:
    ours_root, theirs_root = tmp_path / "ours", tmp_path / "theirs"
    for root, model, files in (
        (ours_root, "ours-model", [FileRecord("a.py", "python", 10.0)]),
        (theirs_root, "their-model", [FileRecord("a.py", "python", 20.0), FileRecord("b.py")]),
    ):
        root.mkdir()
        SessionStore(_scope_store(root)).save(
            Session(open_files=files, settings_overrides={"model": model}, pinned=[root.name])
        )
    ours = [msg("our question", 1.0), msg("our answer", 3.0, "assistant")]
    theirs = [msg("their question", 2.0), msg("their answer", 4.0, "assistant")]
    History(_scope_store(ours_root)).append(*ours)
    History(_scope_store(theirs_root)).append(*theirs)
    return ours_root, theirs_root, ours, theirs


def test_merge_into_conflicting_sessions(tmp_path: Path) -> None:
    ours_root, theirs_root, _, _ = _conflicting(tmp_path)
    their_bytes = (_scope_store(theirs_root).path("session.json")).read_bytes()
    folder = _folder(ours_root)
    report = merge_into(folder, theirs_root)

    assert [c.key for c in report.conflicts] == ["model"]
    assert report.files_added == ["b.py"] and report.files_updated == ["a.py"]
    assert report.messages_added == 2 and report.duplicates == 0
    # in memory and on disk alike
    expected = ["our question", "their question", "our answer", "their answer"]
    assert [m.content for m in folder.history.messages()] == expected
    reread = _folder(ours_root)
    assert [m.content for m in reread.history.messages()] == expected
    assert reread.session.settings_overrides == {"model": "ours-model"}
    assert reread.session.pinned == ["ours", "theirs"]
    assert {f.path: f.last_modified for f in reread.session.open_files} == {
        "a.py": 20.0,
        "b.py": 0.0,
    }
    # backups of both inputs, as they were; OTHER untouched
    backup = report.backup
    assert backup is not None and backup.parent == ours_root / ".ctx" / "backups"
    assert (backup / "theirs" / "session.json").read_bytes() == their_bytes
    kept = (backup / "ours" / "history.jsonl").read_text()
    assert "our answer" in kept and "their answer" not in kept
    manifest = json.loads((backup / "merge.json").read_text())
    assert manifest["prefer"] == "ours" and manifest["conflicts"][0]["theirs"] == "their-model"
    assert _scope_store(theirs_root).path("session.json").read_bytes() == their_bytes
    # no staging files left behind
    leftovers = [p.name for p in folder.store.dir.iterdir() if "merging" in p.name]
    assert leftovers == []


def test_merge_into_dry_run_changes_nothing(tmp_path: Path) -> None:
    ours_root, theirs_root, ours, _ = _conflicting(tmp_path)
    before = _scope_store(ours_root).path("history.jsonl").read_bytes()
    folder = _folder(ours_root)
    report = merge_into(folder, theirs_root, dry_run=True)
    assert report.messages_added == 2 and report.backup is None
    assert _scope_store(ours_root).path("history.jsonl").read_bytes() == before
    assert not (ours_root / ".ctx" / "backups").exists()
    assert [m.id for m in folder.history.messages()] == [m.id for m in ours]


def test_merge_into_keeps_summaries_and_what_they_cover(tmp_path: Path) -> None:
    ours_root, theirs_root, _, theirs = _conflicting(tmp_path)
    their_history = History(_scope_store(theirs_root))
    their_history.load()
    summary = their_history.add_summary("they asked and got an answer", theirs[-1].id)
    History(_scope_store(theirs_root)).append(msg("after the summary", 10.0))
    folder = _folder(ours_root)
    merge_into(folder, theirs_root)
    reread = _folder(ours_root).history
    prompt = reread.for_prompt(10)
    assert prompt[0].id == summary.id  # the latest summary leads, with what follows it
    assert [m.content for m in prompt[1:]] == ["after the summary"]
    assert len(reread.messages()) == 6


def test_merge_into_picks_up_lines_appended_meanwhile(tmp_path: Path) -> None:
    ours_root, theirs_root, _, _ = _conflicting(tmp_path)
    folder = _folder(ours_root)
    History(_scope_store(ours_root)).append(msg("from a server, just now", 5.0))
    merge_into(folder, theirs_root)
    assert "from a server, just now" in [m.content for m in _folder(ours_root).history.messages()]


def test_merge_into_damaged_other_raises_and_leaves_it(tmp_path: Path) -> None:
    ours_root, theirs_root, _, _ = _conflicting(tmp_path)
    path = _scope_store(theirs_root).path("session.json")
    path.write_text('{"version": 1, "data": {"open_files": 3}}')
    with pytest.raises(MergeError) as info:
        merge_into(_folder(ours_root), theirs_root)
    assert info.value.damaged and "not a valid session" in str(info.value)
    assert path.exists() and not (theirs_root / ".ctx" / "corrupt").exists()


def test_merge_into_skips_damaged_history_lines_of_other(tmp_path: Path) -> None:
    ours_root, theirs_root, _, _ = _conflicting(tmp_path)
    with _scope_store(theirs_root).path("history.jsonl").open("a") as fh:
        fh.write("{torn\n")
    report = merge_into(_folder(ours_root), theirs_root)
    assert report.messages_added == 2
    assert len(report.problems) == 1 and "skipped 1 damaged line" in report.problems[0]
    assert str(theirs_root) in report.problems[0]


def test_merge_into_refuses_own_session(tmp_path: Path) -> None:
    ours_root, _, _, _ = _conflicting(tmp_path)
    with pytest.raises(MergeError, match="own session"):
        merge_into(_folder(ours_root), ours_root / ".ctx")
