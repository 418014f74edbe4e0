"""Memo keys for texts, which do not hold the text (documents and prompts run to megabytes),
and the bounded memo they key."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")

#: Characters kept from the start, the middle and the end of a text, as a check.
SAMPLE = 16


def text_key(text: str) -> object:
    """A memo key for `text` that does not hold it.

    Its length and `hash()` (a keyed 64-bit SipHash that CPython caches on the str: free for
    an open document's text seen before), with the first, middle and last characters as a
    check. Short texts are their own key."""
    n = len(text)
    if n <= 6 * SAMPLE:
        return text
    mid = n // 2
    sample = text[:SAMPLE] + text[mid - SAMPLE : mid + SAMPLE] + text[-SAMPLE:]
    return (n, hash(text), sample)


class HashedKey:
    """A memo key made of a large tuple, hashed once: a tuple computes its hash again at each
    look-up, element by element (a file's imports run to hundreds of names)."""

    __slots__ = ("_hash", "value")

    def __init__(self, value: tuple[object, ...]) -> None:
        self.value = value
        self._hash = hash(value)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HashedKey) and self._hash == other._hash and self.value == other.value
        )


class LruMemo(Generic[V]):
    """Values by memo key, least recently used out first; thread-safe. Bounded in entries and,
    when `size` is given, in the bytes it reports for each value (a value over a quarter of
    them is not kept: it would push out everything else)."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int | None = None,
        size: Callable[[V], int] | None = None,
    ) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._size = size
        self.bytes = 0
        self._entries: OrderedDict[object, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: object) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: object, value: V) -> None:
        size = self._size(value) if self._size is not None else 0
        if self.max_bytes is not None and size > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[key] = (value, size)
            self.bytes += size
            while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self.bytes > self.max_bytes
            ):
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0
