"""Response cache: identical prompts (same model and parameters) are answered
without a backend call. An in-memory LRU in front of a bounded, TTL'd SQLite file
in `.ctx/cache/`, so answers survive restarts. Prompts are masked before they get
here, so nothing secret is stored.

The event loop uses `lookup` and `store`: memory on the loop, SQLite on one worker thread
(a miss reads there; a write is queued there and nobody waits for it). `get` and `put` are
the same work done where they are called. Eviction (expired rows, then the oldest beyond
`max_entries`) runs every `EVICT_EVERY` writes and on `close`, not on each write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ctx_lsp.store.ctxdir import private_dirs
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.text.textkey import LruMemo

log = logging.getLogger(__name__)

CACHE_VERSION = 1
#: Writes between two evictions: the table holds at most this many rows over `max_entries`.
EVICT_EVERY = 64
#: The one thread that touches the SQLite files for the event loop, in order.
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctx-cache")


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
        self._memory: LruMemo[tuple[float, str]] = LruMemo(memory_entries)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()  # one connection, used by the worker and by callers
        self._writes = 0  # since the last eviction
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
            db = sqlite3.connect(
                self.path, timeout=5, isolation_level=None, check_same_thread=False
            )
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

    async def lookup(self, key: str) -> str | None:
        """`get` for the event loop: a memory hit answers at once, a miss asks SQLite on the
        worker thread."""
        hit = self._fresh(key, time.time())
        if hit is not None:
            return hit
        if self.path is None:
            self.misses += 1
            return None
        return await asyncio.get_running_loop().run_in_executor(_WORKER, self.get, key)

    def store(self, key: str, text: str) -> None:
        """`put` for the event loop: in memory now, to SQLite on the worker thread."""
        self._remember(key, time.time(), text)
        if self.path is not None:
            try:
                _WORKER.submit(self._put_logged, key, text)
            except RuntimeError:  # the interpreter is shutting down: write it here
                self._put_logged(key, text)

    def _put_logged(self, key: str, text: str) -> None:
        try:
            self.put(key, text)
        except Exception as exc:  # nobody awaits this write: say why it failed
            log.error("response cache write failed: %s", exc)

    def _fresh(self, key: str, now: float) -> str | None:
        hit = self._memory.get(key)
        if hit is not None and now - hit[0] <= self.ttl_s:
            self.hits += 1
            return hit[1]
        return None

    def get(self, key: str) -> str | None:
        now = time.time()
        if (hit := self._fresh(key, now)) is not None:
            return hit
        with self._lock:
            row = None
            db = self._conn()
            if db is not None:
                try:
                    row = db.execute(
                        "SELECT created, text FROM responses WHERE key = ?", (key,)
                    ).fetchone()
                except sqlite3.DatabaseError as exc:
                    self._quarantine(exc)
        if row is not None and now - row[0] <= self.ttl_s:
            self._remember(key, row[0], row[1])
            self.hits += 1
            return row[1]
        self.misses += 1
        return None

    def put(self, key: str, text: str) -> None:
        now = time.time()
        self._remember(key, now, text)
        with self._lock:
            db = self._conn(create=True)
            if db is None:
                return
            try:
                db.execute(
                    "INSERT OR REPLACE INTO responses (key, created, text) VALUES (?, ?, ?)",
                    (key, now, text),
                )
                self._writes += 1
                if self._writes >= EVICT_EVERY:
                    self._evict(db, now)
            except sqlite3.DatabaseError as exc:
                self._quarantine(exc)

    def _evict(self, db: sqlite3.Connection, now: float) -> None:
        """Expired rows, then the oldest beyond the cap."""
        self._writes = 0
        db.execute("DELETE FROM responses WHERE created < ?", (now - self.ttl_s,))
        db.execute(
            "DELETE FROM responses WHERE key IN (SELECT key FROM responses "
            "ORDER BY created DESC LIMIT -1 OFFSET ?)",
            (self.max_entries,),
        )

    def _remember(self, key: str, created: float, text: str) -> None:
        self._memory.put(key, (created, text))

    def clear(self) -> None:
        self._memory.clear()
        with self._lock:
            db = self._conn()
            if db is not None:
                db.execute("DELETE FROM responses")
                self._writes = 0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                if self._writes:
                    with contextlib.suppress(sqlite3.DatabaseError):
                        self._evict(self._db, time.time())
                self._db.close()
                self._db = None
