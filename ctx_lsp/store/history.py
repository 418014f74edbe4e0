"""Chat history as an append-only JSON-lines file in the workspace's `.ctx/` folder.

Adding a message is one locked write + fsync at the end of the file, so its cost does not grow
with the history and a crash can at worst tear the last line, which loading skips and reports.
Several processes may share the file: each keeps a byte offset and reads only what was added.
Memory holds only what prompts need (the latest summary and a bounded tail of each kind of
message); views of the whole history read the file back.
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import filelock

from ctx_lsp.store.ctxdir import CtxStore, fsync_dir
from ctx_lsp.text.messages import ChatMessage

HISTORY_VERSION = 1
HEADER_KEY = "ctx_history"
#: Extra key on a summary's line naming the last message it condenses (not a ChatMessage field).
COVERS_KEY = "covers"
#: Newest messages kept in memory, per tail (conversation, completions); older ones are on disk.
MEMORY_MESSAGES = 1000
#: ... and at most about this many bytes of content per tail (at least one message is kept).
MEMORY_BYTES = 2_000_000
#: Completions carried into a new file at a rotation (prompts use the conversation, not them).
COMPLETIONS_ON_ROTATE = 10

Seq = tuple[int, ChatMessage]  # a message and its position among the file's messages


def _encode(record: dict[str, Any]) -> bytes:
    # json escapes newlines, so a record is always exactly one line.
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: fall back to \u escapes
        return json.dumps(record, separators=(",", ":")).encode("ascii")


def _decode(raw: bytes) -> tuple[str, Any]:
    """One line: ("blank", None), ("bad", None), ("header", version or None when not a number)
    or ("message", (message, what it covers))."""
    if not raw.strip():
        return "blank", None
    try:
        obj = json.loads(raw.decode("utf-8"))
    except ValueError:  # includes UnicodeDecodeError and JSONDecodeError
        return "bad", None
    if isinstance(obj, dict) and HEADER_KEY in obj:
        version = obj[HEADER_KEY]
        valid = isinstance(version, int) and not isinstance(version, bool)
        return "header", version if valid else None
    try:
        msg = ChatMessage.from_json(obj)
    except (ValueError, TypeError):
        return "bad", None
    covers = obj.get(COVERS_KEY)
    return "message", (msg, covers if msg.kind == "summary" and isinstance(covers, str) else None)


def _is_damaged(raw: bytes) -> bool:
    what, value = _decode(raw)
    return what == "bad" or (what == "header" and value is None)


def _ended(raw: bytes) -> bytes:
    return raw if raw.endswith(b"\n") else raw + b"\n"


def _lines(data: bytes) -> list[bytes]:
    if not data:
        return []
    return data[:-1].split(b"\n") if data.endswith(b"\n") else data.split(b"\n")


def _size(m: ChatMessage) -> int:
    return len(m.content) + 200  # the other fields, roughly


class _Tail:
    """The newest messages of one sort, bounded by count and by size."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.items: deque[Seq] = deque()
        self.bytes = 0
        self.dropped = -1  # position of the newest message let go (-1: none)

    def add(self, seq: int, m: ChatMessage) -> None:
        self.items.append((seq, m))
        self.bytes += _size(m)
        while len(self.items) > self.max_messages or (
            self.bytes > self.max_bytes and len(self.items) > 1
        ):
            self.dropped, old = self.items.popleft()
            self.bytes -= _size(old)


def _last(
    newest_first: Iterable[Seq], dropped: int, start: int, n: int, keep: Callable[..., bool]
) -> list[Seq] | None:
    """The last `n` kept messages from position `start` on, oldest first; None when some may be
    among those memory let go (at or before position `dropped`)."""
    out: list[Seq] = []
    if n <= 0:
        return out
    for seq, m in newest_first:
        if seq < start or len(out) == n:
            break
        if seq <= dropped:
            return None
        if keep(m):
            out.append((seq, m))
    return out[::-1] if len(out) == n or dropped < start else None


def _numbered(everything: list[ChatMessage]) -> Iterator[Seq]:
    return ((i, everything[i]) for i in range(len(everything) - 1, -1, -1))


def _conversation(m: ChatMessage) -> bool:
    return m.kind not in ("summary", "completion")


def _any(m: ChatMessage) -> bool:
    return True


class History:
    """The messages of one conversation, oldest first; their recent part mirrored in memory."""

    def __init__(
        self,
        store: CtxStore,
        name: str = "history.jsonl",
        max_bytes: int = 20_000_000,
        keep_on_rotate: int = 200,
        memory_messages: int = MEMORY_MESSAGES,
    ) -> None:
        self.store = store
        self.name = name
        self.max_bytes = max_bytes
        self.keep_on_rotate = keep_on_rotate
        self.memory_messages = memory_messages
        p = PurePosixPath(name)
        self.rotated_name = str(p.with_name(f"{p.stem}.1{p.suffix}"))
        #: the new file of a rotation, written before it replaces the full one
        self.rotating_name = f"{name}.rotating"
        #: a second name for the full file, made before it becomes the rotated one
        self._linking_name = str(p.with_name(f".{p.stem}.1{p.suffix}.linking.tmp"))
        # Editor requests build prompts on one thread while answers are recorded on another.
        self._mutex = threading.RLock()
        self._collect: list[ChatMessage] | None = None  # load(): every message parsed
        self._reset(None)

    @property
    def path(self) -> Path:
        return self.store.path(self.name)

    # -- reading ----------------------------------------------------------------------------

    def load(self) -> list[ChatMessage]:
        with self._mutex:
            self._recover()
            self._collect = []
            try:
                self._reset(None)
                self._sync(locked=False)
                self._set_aside_damaged()
                return self._collect
            finally:
                self._collect = None

    def refresh(self) -> None:
        """Take in what was appended since the last read: everything, the first time (like
        `load()`, without building the list of every message)."""
        with self._mutex:
            if self._ident is None:
                self._recover()
            self._sync(locked=False)
            self._set_aside_damaged()

    def _reset(self, ident: tuple[int, int] | None) -> None:
        self._talk = _Tail(self.memory_messages, MEMORY_BYTES)  # all but completions
        self._completions = _Tail(self.memory_messages, MEMORY_BYTES)
        self._summary: Seq | None = None  # the latest one
        self._start: int | None = 0  # where prompts' messages begin; None: look on disk
        self._covers: dict[str, str] = {}  # summary id -> id of the last message it covers
        self._count = 0  # messages in the file
        if self._collect is not None:
            self._collect.clear()
        self._offset = 0  # bytes of the file already consumed
        self._ident = ident  # (dev, inode) of the file read so far
        self._seen = b""  # last bytes consumed: tells a reused inode number from our file
        self._lineno = 0
        self._clean_end = True  # False when the file ends in a torn line without "\n"
        self._damaged: list[int] = []  # numbers of the damaged lines read

    def _recover(self) -> None:
        """Finish or undo a rotation that a killed process left half done."""
        leftovers = [self.store.path(n) for n in (self.rotating_name, self._linking_name)]
        if not any(p.is_file() for p in leftovers):
            return
        seeded, linking = leftovers
        try:
            with self.store.lock(self.name):
                if self.path.exists():  # killed before the new file took its place: all is here
                    seeded.unlink(missing_ok=True)
                elif seeded.is_file():  # killed between the two renames of an older version
                    os.replace(seeded, self.path)
                linking.unlink(missing_ok=True)
        except (OSError, filelock.Timeout):
            pass  # read-only or busy: the leftovers are never read, only retried

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
        for raw in _lines(data):
            self._lineno += 1
            what, value = _decode(raw)
            if what == "bad":
                bad.append(self._lineno)
            elif what == "header":
                if value is None:
                    bad.append(self._lineno)
                elif value > HISTORY_VERSION:
                    self._reset(None)
                    self.store.quarantine(
                        self.path,
                        f"has history format {value}, newer than supported {HISTORY_VERSION}",
                    )
                    return
                header_ok = True
            elif what == "message":
                self._add(*value)
                good += 1
        self._offset += len(data)
        self._seen = (self._seen + data[-64:])[-64:]
        if from_start and bad and not good and not header_ok:
            self._reset(None)
            self.store.quarantine(self.path, "holds no readable history records")
        elif bad:
            self._damaged += bad  # set aside once the read is done (`_set_aside_damaged`)

    def _set_aside_damaged(self) -> None:
        """Move the damaged lines just read to `.ctx/corrupt/` and rewrite the file without
        them, so they are told once, not on every read; when the file cannot be rewritten
        (read-only folder) they are skipped and told again."""
        if not self._damaged:
            return
        bad, self._damaged = self._damaged, []
        where = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        told = f"{self.store.rel(self.path)}: skipped {len(bad)} damaged line(s) (line {where})"
        try:
            with self.store.lock(self.name):
                lines = _lines(self.path.read_bytes())
                damaged = [raw for raw in lines if _is_damaged(raw)]
                if damaged:  # (another process may have set them aside already)
                    aside = self.store.corrupt_target(self.path)
                    self.store._write_bytes(aside, b"".join(_ended(raw) for raw in damaged))
                    kept = b"".join(_ended(raw) for raw in lines if not _is_damaged(raw))
                    self.store._write_bytes(self.path, kept)
                    told += f"; moved to {self.store.rel(aside)}"
                self._reset(None)
                self._sync(locked=True)  # the rewritten file, from its start
        except (OSError, filelock.Timeout) as exc:
            told += f"; they could not be set aside ({exc})"
        self._damaged = []
        self.store.report(told)

    def _add(self, m: ChatMessage, covers: str | None) -> None:
        """Take in the file's next message."""
        seq = self._count
        self._count += 1
        if self._collect is not None:
            self._collect.append(m)
        if m.kind == "summary":
            self._summary = (seq, m)
            self._start = seq + 1
            if covers is not None:
                self._covers[m.id] = covers
                # A summary may be written after later messages arrived; start after what it covers.
                found = next((s for s, x in self._newest_first() if x.id == covers), None)
                if found is not None:
                    self._start = found + 1
                elif self._dropped() >= 0:
                    self._start = None  # perhaps among the messages memory let go
        (self._completions if m.kind == "completion" else self._talk).add(seq, m)

    def _dropped(self) -> int:
        """Memory holds every message after this position."""
        return max(self._talk.dropped, self._completions.dropped)

    def _newest_first(self) -> Iterator[Seq]:
        return heapq.merge(
            reversed(self._talk.items),
            reversed(self._completions.items),
            key=lambda item: item[0],
            reverse=True,
        )

    def _read_all(self) -> list[ChatMessage]:
        """Every message of the file as consumed so far, read back from disk."""
        for _ in range(3):
            try:
                with open(self.path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    same = (st.st_dev, st.st_ino) == self._ident and st.st_size >= self._offset
                    data = fh.read(self._offset) if same else None
            except OSError:
                data = None
            if data is not None:
                lines = (_decode(raw) for raw in _lines(data))
                return [value[0] for what, value in lines if what == "message"]
            self._sync(locked=False)  # replaced meanwhile: catch up, then read that one
            if self._dropped() < 0:
                break
        return [m for _, m in reversed(list(self._newest_first()))]

    def _after_summary(
        self, picks: list[tuple[int, Callable[[ChatMessage], bool], _Tail | None]]
    ) -> list[list[Seq]]:
        """For each (n, keep, tail): the last `n` kept messages of `tail` (None: any) that the
        latest summary does not cover; read back from disk when memory let some of them go."""
        everything = None
        if self._start is None:
            everything = self._read_all()
            self._resolve_start(everything)
        start = self._start or 0
        got = [
            _last(self._newest_first(), self._dropped(), start, n, keep)
            if tail is None
            else _last(reversed(tail.items), tail.dropped, start, n, keep)
            for n, keep, tail in picks
        ]
        if any(g is None for g in got):
            everything = self._read_all() if everything is None else everything
            self._resolve_start(everything)
            start = self._start or 0
            got = [_last(_numbered(everything), -1, start, n, keep) for n, keep, _ in picks]
        return [g or [] for g in got]

    def _resolve_start(self, everything: list[ChatMessage]) -> None:
        """Find on disk what the latest summary covers, when memory no longer holds it."""
        if self._start is not None or self._summary is None:
            return
        seq, summary = self._summary
        covered = self._covers.get(summary.id)
        self._start = seq + 1
        if seq < len(everything) and everything[seq].id == summary.id:
            earlier = range(seq - 1, -1, -1)
            self._start = next((i + 1 for i in earlier if everything[i].id == covered), seq + 1)

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
        with self._mutex, self.store.lock(self.name):
            self._sync(locked=True)  # take in other processes' lines first: memory == file order
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
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
            for m in messages:
                self._add(m, covers.get(m.id) if m.kind == "summary" else None)
            self._set_aside_damaged()  # lines other processes' appends read past
            if self._offset > self.max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        """Start a new file seeded with the recent conversation; the full one becomes
        `<stem>.1<suffix>`.

        Safe to kill at any step: the seeded file is written aside, the full file gets its
        second name by a hard link (or a copy), and one rename puts the seeded file in place, so
        the history file always exists and holds every acknowledged message. The first read
        (`load()`, `refresh()`) removes what a killed rotation left."""
        data = self._seed()
        seeded = self.store.write_bytes_atomic(self.rotating_name, data)
        linking = self.store.path(self._linking_name)
        linking.unlink(missing_ok=True)
        try:
            os.link(self.path, linking)
        except OSError:  # no hard links on this file system
            shutil.copyfile(self.path, linking)
        os.replace(linking, self.store.path(self.rotated_name))
        linking.unlink(missing_ok=True)  # left when both names were already one file
        fsync_dir(linking.parent)
        os.replace(seeded, self.path)
        fsync_dir(self.path.parent)
        self._reset(None)
        self._sync(locked=True)

    def _seed(self) -> bytes:
        """The new file of a rotation: the latest summary, then the recent conversation and a
        few recent completions, as far as a quarter of `max_bytes` allows without a gap."""
        few = min(COMPLETIONS_ON_ROTATE, self.keep_on_rotate // 10)
        talk, done = self._after_summary(
            [(self.keep_on_rotate, _conversation, self._talk), (few, _any, self._completions)]
        )
        keep = [m for _, m in heapq.merge(talk, done, key=lambda item: item[0])]
        if self._summary is not None:
            keep.insert(0, self._summary[1])
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
        return b"".join(reversed(lines))

    def add_summary(self, text: str, covered_until_id: str, **meta: Any) -> ChatMessage:
        """Append a summary of every message up to and including `covered_until_id`."""
        meta.setdefault("kind", "summary")
        if meta["kind"] != "summary":
            raise ValueError("a summary must have kind='summary'")
        summary = ChatMessage(role="system", content=text, **meta)
        self._append((summary,), {summary.id: covered_until_id})
        return summary

    def clear(self) -> None:
        with self._mutex:
            if self.store.dir.is_dir():
                with self.store.lock(self.name):
                    for name in (self.name, self.rotated_name):
                        p = self.store.path(name)
                        if p.is_dir():
                            self.store.quarantine(p, "is a directory, not a history file")
                        else:
                            p.unlink(missing_ok=True)
                    for name in (self.rotating_name, self._linking_name):
                        self.store.path(name).unlink(missing_ok=True)
            self._reset(None)

    # -- views ------------------------------------------------------------------------------

    def messages(self) -> list[ChatMessage]:
        """Every message of the file (read back from disk when memory holds only the tail)."""
        with self._mutex:
            if self._dropped() >= 0:
                return self._read_all()
            return [m for _, m in reversed(list(self._newest_first()))]

    def recent(self, n: int) -> list[ChatMessage]:
        with self._mutex:
            got = _last(self._newest_first(), self._dropped(), 0, n, _any)
            return self._read_all()[-n:] if got is None else [m for _, m in got]

    def __len__(self) -> int:
        return self._count

    def for_prompt(
        self, n: int, keep: Callable[[ChatMessage], bool] | None = None
    ) -> list[ChatMessage]:
        """The latest summary (if any), then the last `n` messages of the conversation it does
        not cover. Inline completions are left out: they are many and small, and a typing
        session of them must not push the explain/fix conversation out of prompts.

        `keep` narrows the messages to those a task's prompt takes; they are looked for among
        the messages memory holds (the newest ~1,000), never read back from disk: a prompt may
        be built on the event loop, and older exchanges are what summaries are for."""
        with self._mutex:
            self._sync(locked=False)  # exchanges another process (the CLI, a second window) added
            summary = [] if self._summary is None else [self._summary[1]]
            if keep is None:
                (rest,) = self._after_summary([(n, _conversation, self._talk)])
            else:
                start = self._start
                if start is None:  # what the summary covers is on disk only: start after it
                    start = self._summary[0] + 1 if self._summary is not None else 0
                picked = _last(
                    reversed(self._talk.items), -1, start, n, lambda m: _conversation(m) and keep(m)
                )
                rest = picked or []
            return summary + [m for _, m in rest]

    def find(self, message_id: str) -> tuple[ChatMessage | None, ChatMessage | None]:
        """The message with this id and the one before it (a question before its answer), from
        memory, else read back from disk; (None, None) when the history has no such message."""
        with self._mutex:
            self._sync(locked=False)
            newest_first = [m for _, m in self._newest_first()]
            for i, m in enumerate(newest_first):
                if m.id == message_id:
                    return m, newest_first[i + 1] if i + 1 < len(newest_first) else None
            if self._dropped() < 0:
                return None, None
            everything = self._read_all()
            for i, m in enumerate(everything):
                if m.id == message_id:
                    return m, everything[i - 1] if i else None
            return None, None
