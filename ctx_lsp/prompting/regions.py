"""What code an action (explain, fix, write tests...) is about: the selection, else the
innermost definition around the cursor, else the paragraph around it, else the whole (small)
file. Definitions come from :func:`ctx_lsp.prompting.relevance.definitions` (regex-based, cached).

Offsets are indexes into ``doc.text`` (Python string indexes). Lines are 0-based and end at
``"\\n"`` (a ``"\\r"`` before it belongs to the line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctx_lsp.prompting.relevance import definitions
from ctx_lsp.text.opendoc import OpenDoc

MAX_BLOCK_LINES = 60  # a paragraph region is at most this many lines
SMALL_FILE_LINES = 80  # below this, the whole file is a fallback region
WINDOW_LINES = 20  # the "lines" fallback: this many lines above and below the cursor

_CLASS_WORDS = {"class", "struct", "interface", "enum", "trait", "union", "record", "object"}
_CLASS_WORDS |= {"protocol", "impl", "namespace", "module", "typedef", "type"}
_FUNCTION_WORDS = {"def", "function", "fn", "func", "fun", "sub", "proc", "method"}
_WORD = re.compile(r"[A-Za-z_$][\w$]*")


@dataclass(frozen=True)
class Region:
    start: int
    end: int
    name: str | None
    kind: str  # "selection" | "function" | "class" | "block" | "file" | "lines"


def line_span(text: str, start_line: int, end_line: int) -> tuple[int, int]:
    """``(start, end)`` offsets of lines ``start_line..end_line`` (0-based, inclusive): from
    the start of the first line to the end of the last one *including* its newline (the last
    line of the text may have none). Lines are clamped to the text; past its end gives
    ``(len(text), len(text))``; the two lines are swapped if given in reverse order."""
    if end_line < start_line:
        start_line, end_line = end_line, start_line
    start_line = max(0, start_line)
    start = 0
    for _ in range(start_line):
        nl = text.find("\n", start)
        if nl < 0:
            return len(text), len(text)
        start = nl + 1
    end = start
    for _ in range(max(0, end_line) - start_line + 1):
        nl = text.find("\n", end)
        if nl < 0:
            return start, len(text)
        end = nl + 1
    return start, end


def _line_bounds(text: str, offset: int) -> tuple[int, int]:
    """Start and end (before the newline) of the line holding ``offset``."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, len(text) if end < 0 else end


def _kind(text: str, start: int, end: int, name: str) -> str:
    """The kind of a definition ("class", "function" or "block"), from the words around its
    name on the first line that holds it (decorator and annotation lines are skipped)."""
    word = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
    line, at = "", None
    pos = start
    for _ in range(20):
        line_start, line_end = _line_bounds(text, pos)
        line = text[line_start:line_end]
        at = None if line.lstrip().startswith("@") else word.search(line)
        if at is not None or line_end >= end:
            break
        pos = line_end + 1
    words = set(_WORD.findall(line[: at.start()] if at else line))
    rest = line[at.end() :] if at else ""
    if words & _CLASS_WORDS:
        return "class"
    if words & _FUNCTION_WORDS or "=>" in rest or re.match(r"\s*(?:<[^<>]*>)?\s*\(", rest):
        return "function"
    if re.match(r"\s*(?::[^=]*)?=\s*(?:async\s+)?(?:function\b|lambda\b)", rest):
        return "function"  # `const f = function`, `f = lambda x: ...`
    return "block"


def _paragraph(text: str, offset: int) -> tuple[int, int] | None:
    """The lines around ``offset`` up to blank lines (at most :data:`MAX_BLOCK_LINES`), or
    None when the cursor is on a blank line."""
    first_start, last_end = _line_bounds(text, offset)
    if not text[first_start:last_end].strip():
        return None
    lines, up, down = 1, True, True
    while lines < MAX_BLOCK_LINES and (up or down):
        if up:  # one line up, then one down, so that the cursor stays near the middle
            if first_start == 0:
                up = False
            else:
                s, e = _line_bounds(text, first_start - 1)
                if text[s:e].strip():
                    first_start, lines = s, lines + 1
                else:
                    up = False
        if down and lines < MAX_BLOCK_LINES:
            if last_end >= len(text):
                down = False
            else:
                s, e = _line_bounds(text, last_end + 1)
                if text[s:e].strip():
                    last_end, lines = e, lines + 1
                else:
                    down = False
    return first_start, last_end


def enclosing_region(doc: OpenDoc, start: int, end: int) -> Region:
    """The region an action at ``start..end`` (offsets into ``doc.text``) is about.

    A non-empty selection is the region, exactly. For an empty one: the innermost definition
    (function, class...) containing the offset; else the paragraph around it (kind "block",
    lines up to blank lines, at most :data:`MAX_BLOCK_LINES`); else, in a file of fewer than
    :data:`SMALL_FILE_LINES` lines, the whole file; else :data:`WINDOW_LINES` lines above and
    below the cursor (kind "lines"). Definition and block regions end at the end of their
    last line, before its newline.

    Definitions come from :func:`relevance.definitions`, which keeps the first definition of
    each name and caps blocks at ``relevance.MAX_BLOCK_CHARS``: a cursor in a later namesake
    (a second ``__init__``) or past the cap falls back to the enclosing definition or block.
    """
    text = doc.text
    start, end = sorted((max(0, min(start, len(text))), max(0, min(end, len(text)))))
    if start != end:
        return Region(start, end, None, "selection")
    if not text:
        return Region(0, 0, None, "file")
    best: tuple[int, int, str] | None = None
    for name, (s, e) in definitions(doc).items():
        if s <= start <= e and (best is None or e - s < best[1] - best[0]):
            best = (s, e, name)
    if best is not None:
        s, e, name = best
        return Region(s, e, name, _kind(text, s, e, name))
    para = _paragraph(text, start)
    if para is not None:
        return Region(para[0], para[1], None, "block")
    if text.count("\n", 0, len(text) - 1) + 1 < SMALL_FILE_LINES:
        return Region(0, len(text), None, "file")
    line = text.count("\n", 0, start)
    s, e = line_span(text, line - WINDOW_LINES, line + WINDOW_LINES)
    return Region(s, e, None, "lines")
