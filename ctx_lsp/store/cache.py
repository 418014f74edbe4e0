"""Response cache: identical prompts (same model and parameters) are answered
without a backend call. An in-memory LRU in front of a bounded, TTL'd SQLite file
in `.ctx/cache/`, so answers survive restarts. Prompts are masked before they get
here, so nothing secret is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ctx_lsp.store.ctxdir import private_dirs
from ctx_lsp.text.messages import ChatMessage

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def cache_key(model: str, params: dict[str, Any], messages: Sequence[ChatMessage]) -> str:
    payload = json.dumps(
        {
            "v": CACHE_VERSION,
            "model": model,
            "params": params,
            "messages": [m.as_api() for m in messages],
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(
        self,
        path: Path | None,
        *,
        ensure: Callable[[], object] | None = None,
        quarantine: Callable[[Path, str, Sequence[Path]], bool] | None = None,
        memory_entries: int = 256,
        max_entries: int = 5000,
        ttl_s: float = 7 * 24 * 3600,
    ) -> None:
        self.path = path
        #: creates `.ctx/` (with its .gitignore) before the first write
        self._ensure = ensure
        #: moves a damaged file (and its companions) aside and reports it; False if it cannot
        self._quarantine_file = quarantine
        self.memory_entries = memory_entries
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._memory: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        self.problems: list[str] = []
        self.hits = self.misses = 0

    def _conn(self, create: bool = False) -> sqlite3.Connection | None:
        if self._db is not None or self.path is None:
            return self._db
        if not create and not self.path.exists():
            return None  # reading never creates .ctx/
        db = None
        try:
            if self._ensure is not None:
                self._ensure()
            private_dirs(self.path.parent)
            # SQLite gives the -wal and -shm files the mode of the database file
            with contextlib.suppress(FileExistsError):  # (a directory there: damage, below)
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses "
                "(key TEXT PRIMARY KEY, created REAL, text TEXT)"
            )
            self._db = db
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            self._quarantine(exc)
        except OSError as exc:
            log.warning("response cache unavailable: %s", exc)
            self.path = None
        return self._db

    def _quarantine(self, exc: Exception) -> None:
        """A damaged cache file is moved aside, with its -wal/-shm files: it only ever holds
        re-creatable data, so the next write starts a new one."""
        assert self.path is not None
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        path = self.path
        companions = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        if self._quarantine_file is not None:
            if not self._quarantine_file(
                path, f"is not a usable response cache ({exc})", companions
            ):
                self.path = None  # could not be moved (reported): work without it
            return
        corrupt = path.parent / "corrupt"
        stamp = int(time.time())
        try:
            corrupt.mkdir(parents=True, exist_ok=True)
            for p in (path, *companions):
                if p.exists():
                    p.replace(corrupt / f"{p.name}.{stamp}")
            self.problems.append(f"response cache was damaged ({exc}); moved to {corrupt}")
        except OSError:
            self.problems.append(f"response cache is damaged ({exc}) and disabled")
            self.path = None

    def get(self, key: str) -> str | None:
        now = time.time()
        hit = self._memory.get(key)
        if hit is not None and now - hit[0] <= self.ttl_s:
            self._memory.move_to_end(key)
            self.hits += 1
            return hit[1]
        db = self._conn()
        if db is not None:
            try:
                row = db.execute(
                    "SELECT created, text FROM responses WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                self._quarantine(exc)
                row = None
            if row is not None and now - row[0] <= self.ttl_s:
                self._remember(key, row[0], row[1])
                self.hits += 1
                return row[1]
        self.misses += 1
        return None

    def put(self, key: str, text: str) -> None:
        now = time.time()
        self._remember(key, now, text)
        db = self._conn(create=True)
        if db is None:
            return
        try:
            db.execute(
                "INSERT OR REPLACE INTO responses (key, created, text) VALUES (?, ?, ?)",
                (key, now, text),
            )
            # eviction: expired entries, then the oldest beyond the cap
            db.execute("DELETE FROM responses WHERE created < ?", (now - self.ttl_s,))
            db.execute(
                "DELETE FROM responses WHERE key IN (SELECT key FROM responses "
                "ORDER BY created DESC LIMIT -1 OFFSET ?)",
                (self.max_entries,),
            )
        except sqlite3.DatabaseError as exc:
            self._quarantine(exc)

    def _remember(self, key: str, created: float, text: str) -> None:
        self._memory[key] = (created, text)
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)

    def clear(self) -> None:
        self._memory.clear()
        db = self._conn()
        if db is not None:
            db.execute("DELETE FROM responses")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
