"""Session: round trip, defaults, damage, clear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.session import SESSION_VERSION, FileRecord, Session, SessionStore


def sample() -> Session:
    return Session(
        open_files=[FileRecord("src/a.py", "python", 12.5, 13.0), FileRecord("b.rs")],
        pinned=["src/a.py"],
        branch="feature/x",
        settings_overrides={"model": "small", "temperature": 0.2, "nested": {"a": [1]}},
        env_names=["OPENAI_API_KEY"],
        last_active=99.0,
        created=1.0,
    )


def test_round_trip_and_clear(tmp_path: Path) -> None:
    store = CtxStore(tmp_path, ("users", "alice"))
    sessions = SessionStore(store)
    sessions.save(sample())
    path = store.path("session.json")
    assert json.loads(path.read_text())["version"] == SESSION_VERSION
    assert SessionStore(CtxStore(tmp_path, ("users", "alice"))).load() == sample()
    assert SessionStore(CtxStore(tmp_path)).load().open_files == []  # other scope
    sessions.clear()
    assert not path.exists()
    loaded = sessions.load()
    assert loaded.open_files == [] and loaded.branch is None
    assert store.take_problems() == []
    assert sorted(p.name for p in store.dir.iterdir()) == ["session.json.lock"]


def test_load_absent_is_default_and_creates_nothing(tmp_path: Path) -> None:
    session = SessionStore(CtxStore(tmp_path)).load()
    assert session.version == SESSION_VERSION and session.open_files == []
    assert not (tmp_path / ".ctx").exists()


def test_missing_keys_take_defaults() -> None:
    session = Session.from_json({"pinned": ["x"]})
    assert session.pinned == ["x"] and session.open_files == [] and session.env_names == []


BAD = [
    pytest.param([], id="not-object"),
    pytest.param({"open_files": "a.py"}, id="files-not-list"),
    pytest.param({"open_files": [{"language_id": "py"}]}, id="file-without-path"),
    pytest.param({"open_files": [{"path": "a", "last_active": "now"}]}, id="file-bad-time"),
    pytest.param({"open_files": [{"path": "a", "last_modified": True}]}, id="file-bool-time"),
    pytest.param({"pinned": [1]}, id="pinned-ints"),
    pytest.param({"branch": 3}, id="branch-int"),
    pytest.param({"settings_overrides": []}, id="overrides-list"),
    pytest.param({"env_names": "A"}, id="env-str"),
    pytest.param({"last_active": None}, id="last-active-null"),
]


@pytest.mark.parametrize("data", BAD)
def test_from_json_rejects_wrong_types(data: object) -> None:
    with pytest.raises(ValueError):
        Session.from_json(data)


@pytest.mark.parametrize("data", BAD)
def test_wrong_types_on_disk_are_quarantined(tmp_path: Path, data: object) -> None:
    store = CtxStore(tmp_path)
    store.write_json_atomic("session.json", data, SESSION_VERSION)
    sessions = SessionStore(store)
    first = sessions.load()
    assert first == Session(created=first.created)
    problems = store.take_problems()
    assert len(problems) == 1 and "not a valid session" in problems[0]
    assert len(list((tmp_path / ".ctx" / "corrupt").iterdir())) == 1
    sessions.save(sample())
    assert sessions.load() == sample() and store.take_problems() == []


RAW_DAMAGE = [
    pytest.param(b'{"version": 1, "data": {"pinned": ["a"', id="truncated"),
    pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00", id="binary"),
    pytest.param(b'{"version": 2, "data": {}}', id="newer"),
]


@pytest.mark.parametrize("raw", RAW_DAMAGE)
def test_damaged_file_gives_default_session(tmp_path: Path, raw: bytes) -> None:
    store = CtxStore(tmp_path)
    store.ensure()
    store.path("session.json").write_bytes(raw)
    sessions = SessionStore(store)
    assert sessions.load().open_files == []
    assert len(store.take_problems()) == 1
    sessions.save(sample())
    assert sessions.load() == sample()


def test_directory_in_place_of_session(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    store.path("session.json").mkdir(parents=True)
    sessions = SessionStore(store)
    assert sessions.load().pinned == []
    assert "directory" in store.take_problems()[0]
    sessions.save(sample())
    store.path("session.json").unlink()
    store.path("session.json").mkdir()
    sessions.clear()  # clearing a directory quarantines it rather than failing
    assert not store.path("session.json").exists()


def test_save_rewrites_at_current_version(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    store.write_json_atomic("session.json", {"pinned": ["old"]}, 0)  # an older format
    sessions = SessionStore(store)
    session = sessions.load()
    assert session.pinned == ["old"] and session.version == SESSION_VERSION
    sessions.save(session)
    assert store.read_json_versioned("session.json", SESSION_VERSION)[0] == SESSION_VERSION  # type: ignore[index]
