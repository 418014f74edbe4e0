"""Chat history as an append-only JSON-lines file in the workspace's `.ctx/` folder.

Adding a message is one locked write + fsync at the end of the file, so its cost does not grow
with the history and a crash can at worst tear the last line, which loading skips and reports.
Several processes may share the file: each keeps a byte offset and reads only what was added.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import filelock

from .messages import ChatMessage
from .store import CtxStore

HISTORY_VERSION = 1
HEADER_KEY = "ctx_history"
#: Extra key on a summary's line naming the last message it condenses (not a ChatMessage field).
COVERS_KEY = "covers"


def _encode(record: dict[str, Any]) -> bytes:
    # json escapes newlines, so a record is always exactly one line.
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: fall back to \u escapes
        return json.dumps(record, separators=(",", ":")).encode("ascii")


class History:
    """All messages of one conversation, oldest first, mirrored in memory."""

    def __init__(
        self,
        store: CtxStore,
        name: str = "history.jsonl",
        max_bytes: int = 20_000_000,
        keep_on_rotate: int = 200,
    ) -> None:
        self.store = store
        self.name = name
        self.max_bytes = max_bytes
        self.keep_on_rotate = keep_on_rotate
        p = PurePosixPath(name)
        self.rotated_name = str(p.with_name(f"{p.stem}.1{p.suffix}"))
        self._messages: list[ChatMessage] = []
        self._covers: dict[str, str] = {}  # summary id -> id of the last message it covers
        self._offset = 0  # bytes of the file already consumed
        self._ident: tuple[int, int] | None = None  # (dev, inode) of the file read so far
        self._seen = b""  # last bytes consumed: tells a reused inode number from our file
        self._lineno = 0
        self._clean_end = True  # False when the file ends in a torn line without "\n"

    @property
    def path(self) -> Path:
        return self.store.path(self.name)

    # -- reading ----------------------------------------------------------------------------

    def load(self) -> list[ChatMessage]:
        self._reset(None)
        self._sync(locked=False)
        return self.messages()

    def refresh(self) -> None:
        self._sync(locked=False)

    def _reset(self, ident: tuple[int, int] | None) -> None:
        self._messages = []
        self._covers = {}
        self._offset = 0
        self._ident = ident
        self._seen = b""
        self._lineno = 0
        self._clean_end = True

    def _sync(self, locked: bool) -> None:
        """Consume bytes appended since the last read; reread if the file was replaced."""
        path = self.path
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below, after a possible early return
        except (FileNotFoundError, NotADirectoryError):
            if self._ident is not None:  # removed by clear() elsewhere
                self._reset(None)
            return
        except IsADirectoryError:
            self._reset(None)
            self.store.quarantine(path, "is a directory, not a history file")
            return
        except OSError as exc:
            self._reset(None)
            self.store.quarantine(path, f"cannot be read ({exc.strerror or exc})")
            return
        with fh:
            st = os.fstat(fh.fileno())
            ident = (st.st_dev, st.st_ino)
            if ident == self._ident and self._offset and st.st_size >= self._offset:
                # Cleared and recreated elsewhere, the new file may get the same inode number.
                fh.seek(self._offset - len(self._seen))
                if fh.read(len(self._seen)) != self._seen:
                    self._reset(ident)
            if ident != self._ident or st.st_size < self._offset:
                self._reset(ident)  # new, rotated or rewritten file: start over
            if st.st_size == self._offset:
                return
            fh.seek(self._offset)
            data = fh.read(st.st_size - self._offset)
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        if tail and not locked:
            # Possibly another process mid-append: take what is complete, and ask again under the
            # lock, where an unfinished line can only be a torn one.
            self._parse(data[:cut])
            try:
                with self.store.lock(self.name):
                    self._sync(locked=True)
            except (OSError, filelock.Timeout):
                pass  # cannot lock (read-only folder, busy): leave the tail for next time
            return
        self._parse(data)
        self._clean_end = not tail

    def _parse(self, data: bytes) -> None:
        from_start = self._offset == 0
        good = 0
        bad: list[int] = []
        header_ok = False
        lines = data[:-1].split(b"\n") if data.endswith(b"\n") else data.split(b"\n")
        for raw in lines if data else ():
            self._lineno += 1
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except ValueError:  # includes UnicodeDecodeError and JSONDecodeError
                bad.append(self._lineno)
                continue
            if isinstance(obj, dict) and HEADER_KEY in obj:
                version = obj[HEADER_KEY]
                if isinstance(version, bool) or not isinstance(version, int):
                    bad.append(self._lineno)
                elif version > HISTORY_VERSION:
                    self._reset(None)
                    self.store.quarantine(
                        self.path,
                        f"has history format {version}, newer than supported {HISTORY_VERSION}",
                    )
                    return
                header_ok = True
                continue
            try:
                msg = ChatMessage.from_json(obj)
            except (ValueError, TypeError):
                bad.append(self._lineno)
                continue
            covers = obj.get(COVERS_KEY)
            if msg.kind == "summary" and isinstance(covers, str):
                self._covers[msg.id] = covers
            self._messages.append(msg)
            good += 1
        self._offset += len(data)
        self._seen = (self._seen + data[-64:])[-64:]
        if from_start and bad and not good and not header_ok:
            self._reset(None)
            self.store.quarantine(self.path, "holds no readable history records")
        elif bad:
            where = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
            self.store.report(
                f"{self.store.rel(self.path)}: skipped {len(bad)} damaged line(s) (line {where})"
            )

    # -- writing ----------------------------------------------------------------------------

    def append(self, *messages: ChatMessage) -> None:
        self._append(messages, {})

    def _append(self, messages: tuple[ChatMessage, ...], covers: dict[str, str]) -> None:
        if not messages:
            return
        lines = []
        for m in messages:
            rec = m.to_json()
            if m.id in covers:
                rec[COVERS_KEY] = covers[m.id]
            lines.append(_encode(rec) + b"\n")
        with self.store.lock(self.name):
            self._sync(locked=True)  # take in other processes' lines first: memory == file order
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                st = os.fstat(fd)
                if st.st_size == 0:
                    lines.insert(0, _encode({HEADER_KEY: HISTORY_VERSION}) + b"\n")
                elif not self._clean_end:
                    lines.insert(0, b"\n")  # never glue a record onto a torn line
                buf = b"".join(lines)
                view = memoryview(buf)
                while view:  # one write() in practice; loop only for short writes
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if st.st_size == 0:
                self._reset((st.st_dev, st.st_ino))
            self._offset = st.st_size + len(buf)
            self._seen = (self._seen + buf[-64:])[-64:]
            # A "\n" that closes a torn line ends a line already counted.
            self._lineno += buf.count(b"\n") - (0 if self._clean_end or st.st_size == 0 else 1)
            self._clean_end = True
            self._messages.extend(messages)
            self._covers.update(covers)
            if self._offset > self.max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        """Move the full file to `<stem>.1<suffix>`; start a new one seeded with recent context."""
        keep = self.for_prompt(self.keep_on_rotate)
        budget = self.max_bytes // 4  # a few huge messages must not make every append rotate
        lines: list[bytes] = []
        for m in reversed(keep):
            rec = m.to_json()
            if m.id in self._covers:
                rec[COVERS_KEY] = self._covers[m.id]
            line = _encode(rec) + b"\n"
            if len(line) > budget:
                break
            budget -= len(line)
            lines.append(line)
        lines.append(_encode({HEADER_KEY: HISTORY_VERSION}) + b"\n")
        data = b"".join(reversed(lines))
        tmp = self.store.write_bytes_atomic(f"{self.name}.rotating", data)
        os.replace(self.path, self.store.path(self.rotated_name))
        os.replace(tmp, self.path)
        self._reset(None)
        self._sync(locked=True)

    def add_summary(self, text: str, covered_until_id: str, **meta: Any) -> ChatMessage:
        """Append a summary of every message up to and including `covered_until_id`."""
        meta.setdefault("kind", "summary")
        if meta["kind"] != "summary":
            raise ValueError("a summary must have kind='summary'")
        summary = ChatMessage(role="system", content=text, **meta)
        self._append((summary,), {summary.id: covered_until_id})
        return summary

    def clear(self) -> None:
        if self.store.dir.is_dir():
            with self.store.lock(self.name):
                for name in (self.name, self.rotated_name):
                    p = self.store.path(name)
                    if p.is_dir():
                        self.store.quarantine(p, "is a directory, not a history file")
                    else:
                        p.unlink(missing_ok=True)
        self._reset(None)

    # -- views ------------------------------------------------------------------------------

    def messages(self) -> list[ChatMessage]:
        return list(self._messages)

    def recent(self, n: int) -> list[ChatMessage]:
        return self._messages[-n:] if n > 0 else []

    def __len__(self) -> int:
        return len(self._messages)

    def for_prompt(self, n: int) -> list[ChatMessage]:
        """The latest summary (if any), then the last `n` non-summary messages it does not cover."""
        self.refresh()  # exchanges another process (the CLI, a second window) appended
        msgs = self._messages
        at = next((i for i in range(len(msgs) - 1, -1, -1) if msgs[i].kind == "summary"), None)
        if at is None:
            rest = [m for m in msgs if m.kind != "summary"]
            return rest[-n:] if n > 0 else []
        summary = msgs[at]
        start = at + 1
        covered = self._covers.get(summary.id)
        if covered is not None:
            # A summary may be written after later messages arrived; start after what it covers.
            start = next((i + 1 for i in range(at, -1, -1) if msgs[i].id == covered), start)
        rest = [m for m in msgs[start:] if m.kind != "summary"]
        return [summary, *(rest[-n:] if n > 0 else [])]
