"""Per-workspace session state (open files, pins, overrides), saved atomically in `.ctx/`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ctx_lsp.store.ctxdir import CtxStore

SESSION_VERSION = 1


def _num(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    # bool is an int subclass; a stored true/false here means the record is wrong.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number")
    return float(value)


def _str(data: dict[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _str_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of strings")
    return list(value)


@dataclass
class FileRecord:
    path: str
    language_id: str = ""
    last_modified: float = 0.0
    last_active: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "language_id": self.language_id,
            "last_modified": self.last_modified,
            "last_active": self.last_active,
        }

    @classmethod
    def from_json(cls, data: Any) -> FileRecord:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise ValueError("open file record needs a string path")
        return cls(
            path=data["path"],
            language_id=_str(data, "language_id", ""),
            last_modified=_num(data, "last_modified", 0.0),
            last_active=_num(data, "last_active", 0.0),
        )


@dataclass
class Session:
    version: int = SESSION_VERSION
    open_files: list[FileRecord] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    branch: str | None = None
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    env_names: list[str] = field(default_factory=list)
    last_active: float = 0.0
    created: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "open_files": [f.to_json() for f in self.open_files],
            "pinned": list(self.pinned),
            "branch": self.branch,
            "settings_overrides": dict(self.settings_overrides),
            "env_names": list(self.env_names),
            "last_active": self.last_active,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, data: Any) -> Session:
        """Build from stored data; missing keys take defaults, wrong types raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError("session is not an object")
        files = data.get("open_files", [])
        if not isinstance(files, list):
            raise ValueError("open_files must be a list")
        branch = data.get("branch")
        if branch is not None and not isinstance(branch, str):
            raise ValueError("branch must be a string or null")
        overrides = data.get("settings_overrides", {})
        if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
            raise ValueError("settings_overrides must be an object")
        # Older stored versions are read as-is; the file is rewritten at the current version.
        return cls(
            version=SESSION_VERSION,
            open_files=[FileRecord.from_json(f) for f in files],
            pinned=_str_list(data, "pinned"),
            branch=branch,
            settings_overrides=dict(overrides),
            env_names=_str_list(data, "env_names"),
            last_active=_num(data, "last_active", 0.0),
            created=_num(data, "created", 0.0),
        )


class SessionStore:
    def __init__(self, store: CtxStore, name: str = "session.json") -> None:
        self.store = store
        self.name = name

    def load(self) -> Session:
        """The saved session, or a fresh one when absent or damaged (damage is quarantined)."""
        data = self.store.read_json(self.name, SESSION_VERSION)
        if data is None:
            return Session()
        try:
            return Session.from_json(data)
        except ValueError as exc:
            self.store.quarantine(self.store.path(self.name), f"is not a valid session ({exc})")
            return Session()

    def save(self, session: Session) -> None:
        session.version = SESSION_VERSION
        data = session.to_json()
        with self.store.lock(self.name):
            self.store.write_json_atomic(self.name, data, SESSION_VERSION)

    def clear(self) -> None:
        path = self.store.path(self.name)
        if not self.store.dir.is_dir():
            return  # nothing saved; do not create .ctx just to clear it
        with self.store.lock(self.name):
            if path.is_dir():
                self.store.quarantine(path, "is a directory, not a session file")
            else:
                path.unlink(missing_ok=True)
