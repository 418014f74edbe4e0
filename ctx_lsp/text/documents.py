"""Open text documents, kept as a list of lines so an edit costs time proportional to its size.

pygls' stock ``TextDocument`` re-splits and re-joins the whole text on every change, which is
linear in the file size. Here each line is stored with its own line ending ("abc\\r\\n") and the
full text is only joined when someone reads ``.text``.

A document that is only opened and read keeps its text alone (no copy of it as lines): the
lines are split from it at the first edit or position lookup, and the text is dropped at the
first edit (joined again, once, when someone reads ``.text``).

Invariant: ``_lines`` is never empty and its last element has no line ending, so a text ending
in a newline has a final empty line, exactly as LSP positions count lines.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_right
from collections.abc import Iterator
from enum import StrEnum
from itertools import accumulate

__all__ = ["Document", "DocumentError", "DocumentStore", "Encoding", "Range"]

#: (start_line, start_char, end_line, end_char) in the document's encoding units.
Range = tuple[int, int, int, int]

# LSP recognises only these three line endings (not str.splitlines' \v, \f, \x85, \u2028, ...).
_EOL = re.compile(r"(\r\n|\r|\n)")
#: What `str.splitlines` also ends a line at, and LSP does not.
_NOT_LSP_EOL = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


class Encoding(StrEnum):
    """Position encodings a client may negotiate (``PositionEncodingKind`` values)."""

    UTF16 = "utf-16"
    UTF8 = "utf-8"
    UTF32 = "utf-32"


class DocumentError(ValueError):
    """Input that cannot be clamped into the document (negative numbers, reversed ranges)."""


def _split(text: str) -> list[str]:
    """Split into lines that keep their endings; the last element has none (maybe "")."""
    # `splitlines` in C, where it splits as LSP does: a seventh of the time of the regex
    if not any(c in text for c in _NOT_LSP_EOL):
        lines = text.splitlines(keepends=True)
        if not lines or lines[-1][-1] in "\r\n":
            lines.append("")
        return lines
    parts = _EOL.split(text)
    lines = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    lines.append(parts[-1])
    return lines


def _content(line: str) -> str:
    # A stored line holds \r or \n only in its ending, so stripping them drops just the ending.
    return line.rstrip("\r\n")


def _units_to_index(content: str, units: int, encoding: Encoding) -> int:
    """Code point index of `units` encoding units into `content`, clamped to its end.

    A position inside a character (between the halves of a surrogate pair, or inside a UTF-8
    multibyte sequence) rounds *down* to the start of that character, so it never splits one.
    """
    if encoding is Encoding.UTF32 or content.isascii():
        return min(units, len(content))
    if encoding is Encoding.UTF8:
        # surrogatepass: a str may hold lone surrogates (JSON "\ud800"); count them as 3 bytes.
        data = content.encode("utf-8", "surrogatepass")
        if units >= len(data):
            return len(content)
        while units and data[units] & 0xC0 == 0x80:  # continuation byte: back up to lead byte
            units -= 1
        return len(data[:units].decode("utf-8", "surrogatepass"))
    # UTF-16: every astral character before the cursor takes one extra unit. Only astral
    # characters are visited, so BMP-only lines cost one regex scan in C.
    extra = 0
    for m in _ASTRAL.finditer(content):
        start = m.start() + extra  # unit offset of this character
        if start >= units:
            break
        if start + 1 == units:  # between the two halves of the pair: round down
            return m.start()
        extra += 1
    return min(units - extra, len(content))


def _index_to_units(prefix: str, encoding: Encoding) -> int:
    """Length of `prefix` in encoding units."""
    if encoding is Encoding.UTF32 or prefix.isascii():
        return len(prefix)
    if encoding is Encoding.UTF8:
        return len(prefix.encode("utf-8", "surrogatepass"))
    # Encoding (not decoding) counts lone surrogates right: one unit each.
    return len(prefix.encode("utf-16-le", "surrogatepass")) // 2


class Document:
    """One open text document; positions are in ``encoding`` units, offsets index ``.text``."""

    def __init__(
        self,
        uri: str,
        text: str,
        language_id: str = "",
        version: int = 0,
        encoding: Encoding = Encoding.UTF16,
    ) -> None:
        self.uri = uri
        self.language_id = language_id
        self.version = version
        self.encoding = Encoding(encoding)  # also accepts a plain "utf-8" PositionEncodingKind
        self._set_text(text)

    def __repr__(self) -> str:
        return f"Document({self.uri!r}, version={self.version}, lines={len(self._lines)})"

    def _set_text(self, text: str) -> None:
        self._split_lines: list[str] | None = None  # split from _text when first needed
        self._text: str | None = text
        self._size = len(text)
        # _starts[i] is the offset of line i, trusted only for i < _nstarts; edits lower
        # _nstarts and the tail is recomputed lazily when an offset is asked for.
        self._starts: list[int] = [0]
        self._nstarts = 1
        self.modified = time.time()

    @property
    def _lines(self) -> list[str]:
        lines = self._split_lines
        if lines is None:
            assert self._text is not None  # one of the two is always there
            lines = self._split_lines = _split(self._text)
        return lines

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self._lines)
        return self._text

    @property
    def size(self) -> int:
        """Number of characters (code points) in the text."""
        return self._size

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def line(self, n: int) -> str:
        """Line `n` without its ending; "" past the end."""
        if n < 0:
            raise DocumentError(f"negative line {n}")
        return _content(self._lines[n]) if n < len(self._lines) else ""

    def _resolve(self, line: int, character: int) -> tuple[int, int]:
        """Clamp an LSP position to (line index, code point index within the line's content)."""
        if line < 0 or character < 0:
            raise DocumentError(f"negative position ({line}, {character})")
        if line >= len(self._lines):  # past the last line: end of document
            last = len(self._lines) - 1
            return last, len(self._lines[last])
        return line, _units_to_index(_content(self._lines[line]), character, self.encoding)

    def apply_change(
        self, text: str, range: Range | None = None, version: int | None = None
    ) -> None:
        """Replace `range` (None: the whole document) with `text`."""
        if version is not None:
            self.version = version
        if range is None:
            self._set_text(text)
            return
        lines = self._lines
        sl, sc = self._resolve(range[0], range[1])
        el, ec = self._resolve(range[2], range[3])
        if (sl, sc) > (el, ec):
            raise DocumentError(f"range start after end: {range}")
        new = lines[sl][:sc] + text + lines[el][ec:]
        # A lone "\r" ending the previous line joins a "\n" that now starts this one into a
        # single "\r\n" ending, so that line must be re-split too.
        if sl and new[:1] == "\n" and lines[sl - 1][-1:] == "\r":
            sl -= 1
            new = lines[sl] + new
        removed = sum(map(len, lines[sl : el + 1]))
        parts = _split(new)
        if el < len(lines) - 1:
            # `new` ends with line el's ending, so _split added an empty tail; the old line
            # el + 1 is still what follows.
            parts.pop()
        lines[sl : el + 1] = parts
        self._size += len(new) - removed
        self._text = None
        self._nstarts = min(self._nstarts, sl + 1)
        self.modified = time.time()

    def _line_start(self, n: int) -> int:
        """Offset of line `n` (< line_count) in ``.text``, extending the cached prefix sums."""
        if n >= self._nstarts:
            k = self._nstarts
            tail = accumulate(map(len, self._lines[k - 1 : n]), initial=self._starts[k - 1])
            next(tail)  # the initial value is already _starts[k - 1]
            self._starts[k:] = tail
            self._nstarts = n + 1
        return self._starts[n]

    def offset_at(self, line: int, character: int) -> int:
        """Index into ``.text`` of an LSP position (clamped, see module docs)."""
        li, ci = self._resolve(line, character)
        return self._line_start(li) + ci

    def position_at(self, offset: int) -> tuple[int, int]:
        """LSP position of an index into ``.text``; past the end clamps to the end."""
        if offset < 0:
            raise DocumentError(f"negative offset {offset}")
        last = len(self._lines) - 1
        self._line_start(last)
        li = bisect_right(self._starts, min(offset, self._size), 0, last + 1) - 1
        # An offset inside a line ending (e.g. between \r and \n) means the end of the line.
        content = _content(self._lines[li])
        prefix = content[: min(offset - self._starts[li], len(content))]
        return li, _index_to_units(prefix, self.encoding)

    def window(self, line: int, character: int, before: int, after: int) -> tuple[str, str]:
        """(prefix, suffix): up to `before` chars before the position and `after` after it.

        Built from the neighbouring lines when the whole text is not joined (after an edit),
        so it never joins it.
        """
        if before < 0 or after < 0:
            raise DocumentError(f"negative window ({before}, {after})")
        if self._text is not None:  # joined already (prompts read it): two slices
            offset = self.offset_at(line, character)
            return self._text[max(0, offset - before) : offset], self._text[offset : offset + after]
        lines = self._lines
        li, ci = self._resolve(line, character)
        head = [lines[li][:ci]]
        have, i = ci, li
        while have < before and i > 0:
            i -= 1
            head.append(lines[i])
            have += len(lines[i])
        prefix = "".join(reversed(head))
        prefix = prefix[-before:] if before else ""
        tail = [lines[li][ci:]]
        have, i = len(tail[0]), li
        while have < after and i < len(lines) - 1:
            i += 1
            tail.append(lines[i])
            have += len(lines[i])
        return prefix, "".join(tail)[:after]


class DocumentStore:
    """The open documents, keyed by URI."""

    def __init__(self, encoding: Encoding = Encoding.UTF16) -> None:
        #: Set after position-encoding negotiation; documents opened afterwards use it.
        self.encoding = Encoding(encoding)
        self._docs: dict[str, Document] = {}

    def open(self, uri: str, text: str, language_id: str = "", version: int = 0) -> Document:
        doc = Document(uri, text, language_id, version, self.encoding)
        self._docs[uri] = doc  # a repeated didOpen simply replaces the old state
        return doc

    def change(self, uri: str, changes: list[tuple[str, Range | None]], version: int) -> Document:
        """Apply LSP content changes in order; KeyError if `uri` was never opened."""
        doc = self._docs[uri]
        for text, rng in changes:
            doc.apply_change(text, rng)
        doc.version = version
        doc.modified = time.time()
        return doc

    def close(self, uri: str) -> Document | None:
        return self._docs.pop(uri, None)

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def __iter__(self) -> Iterator[Document]:
        return iter(list(self._docs.values()))

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, uri: object) -> bool:
        return uri in self._docs
