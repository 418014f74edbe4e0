"""Workspace trust: what a repository's own `.ctx/` may decide, and the user's word for it.

A repository is written by someone else. Its `.ctx/config.toml` may tune harmless things
(model name, budgets, debounce…), but the keys in :data:`RISKY_KEYS` decide where the code
goes, which secret goes with it, or what enters a prompt, and the workspace's templates
(`[templates.*]` tables and `.ctx/templates/*.md`) rewrite every prompt, fixes and tests
included. Those apply only once the user has trusted the workspace's files as they are now.

Trust is kept outside the repository, in the user's state folder (platformdirs'
`user_state_dir`, or `$CTX_LSP_TRUST_FILE`), as `{folder: sha256 of the files}`: a change
to any of them (a `git pull`) means asking again, as direnv does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

log = logging.getLogger(__name__)

TRUST_VERSION = 1

#: camelCase key → why it is held back until the workspace is trusted.
RISKY_KEYS: Mapping[str, str] = {
    "baseUrl": "where your code is sent",
    "apiKeyEnv": "which of your environment variables is sent as the API key",
    "backend": "which backend receives your code",
    "localModel": "a file loaded and run as the model",
    "envAllowlist": "environment values put into prompts",
    "user": "whose history and session are read and written",
}


def trust_file() -> Path:
    override = os.environ.get("CTX_LSP_TRUST_FILE")
    if override:
        return Path(override)
    from platformdirs import user_state_dir

    return Path(user_state_dir("ctx-lsp")) / "trust.json"


@dataclass(frozen=True)
class HeldBack:
    """What a workspace's own files asked for and did not get, and the fingerprint that
    trusting them would record."""

    root: Path
    keys: Mapping[str, Any] = field(default_factory=dict)
    templates: tuple[str, ...] = ()
    fingerprint: str = ""

    def __bool__(self) -> bool:
        return bool(self.keys or self.templates)

    def describe(self) -> str:
        """One line naming each held-back key with its value, and the templates."""
        parts = [f"{k} = {json.dumps(v)}" for k, v in self.keys.items()]
        if self.templates:
            parts.append("templates " + ", ".join(self.templates))
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"keys": dict(self.keys), "templates": list(self.templates)}


def fingerprint(files: list[Path], root: Path) -> str:
    """sha256 over the workspace files that may decide things: names and contents."""
    digest = hashlib.sha256()
    for path in sorted(files):
        try:
            data = path.read_bytes()
        except OSError:
            data = b"\0missing"
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        digest.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


def split_layer(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(harmless keys, risky keys) of a workspace config file's settings."""
    safe = {k: v for k, v in values.items() if k not in RISKY_KEYS}
    risky = {k: v for k, v in values.items() if k in RISKY_KEYS}
    return safe, risky


class TrustStore:
    """The user's trusted workspace files, one JSON file written atomically under a lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or trust_file()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("trust file %s unreadable (%s): nothing is trusted", self.path, exc)
            return {}
        entries = data.get("folders") if isinstance(data, dict) else None
        return entries if isinstance(entries, dict) else {}

    def is_trusted(self, root: Path, fp: str) -> bool:
        entry = self._read().get(str(root))
        return isinstance(entry, dict) and entry.get("sha256") == fp

    def trusted_fingerprint(self, root: Path) -> str | None:
        entry = self._read().get(str(root))
        return entry.get("sha256") if isinstance(entry, dict) else None

    def set(self, root: Path, fp: str | None) -> None:
        """Trust `root`'s files with fingerprint `fp`, or forget the folder (None)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with FileLock(str(self.path) + ".lock", mode=0o600):
            entries = self._read()
            if fp is None:
                entries.pop(str(root), None)
            else:
                entries[str(root)] = {"sha256": fp, "time": time.time()}
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"version": TRUST_VERSION, "folders": entries}, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
