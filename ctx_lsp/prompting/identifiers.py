"""Identifiers near the cursor, nearest first, and the name being typed at it."""

from __future__ import annotations

import re

from ctx_lsp.text.textkey import LruMemo, text_key


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


KEYWORDS: frozenset[str] = words(
    """
    False None True and as assert async await break class continue def del elif else except
    finally for from global if import in is lambda nonlocal not or pass raise return try while
    with yield match case self cls print len str int float bool list dict set tuple object type
    range isinstance super Exception
    abstract any arguments boolean byte catch char const debugger default delete do double enum
    eval export extends final function goto implements instanceof interface let long native new
    null package private protected public short static switch synchronized this throw throws
    transient typeof var void volatile undefined true false readonly declare namespace module
    keyof infer never unknown string number symbol bigint require console of get
    chan defer fallthrough func go map range select struct error nil make append cap
    crate dyn extern fn impl loop mod move mut pub ref Self trait unsafe use where Some Ok Err
    Vec Box Option Result String usize isize u8 u16 u32 u64 i8 i16 i32 i64 f32 f64
    auto inline register signed sizeof typedef union unsigned include define ifdef ifndef endif
    pragma template typename using virtual override friend operator std nullptr
    val fun when is object companion open internal data sealed lateinit init
    """
)

_IDENT_RE = re.compile(r"[A-Za-z_$][\w$]*")


_NEAR: LruMemo[list[str]] = LruMemo(32)


def identifiers_near(text: str, offset: int, window_lines: int = 30) -> list[str]:
    """Identifiers within ``window_lines`` lines above and below ``offset``, nearest first.

    The cursor line comes first (nearest to the cursor column first), then lines by distance,
    the line above before the line below. Keywords, common builtins and one-letter names are
    dropped; each name appears once. Memoized: both rankings of a request ask for them.
    """
    key = (text_key(text), offset, window_lines)
    hit = _NEAR.get(key)
    if hit is None:
        hit = _identifiers_near(text, offset, window_lines)
        _NEAR.put(key, hit)
    return list(hit)


def _identifiers_near(text: str, offset: int, window_lines: int) -> list[str]:
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    if line_end < 0:
        line_end = len(text)

    line = text[line_start:line_end]
    col = offset - line_start
    matches = [(m.start(), m.end(), m.group()) for m in _IDENT_RE.finditer(line)]
    matches.sort(key=lambda m: 0 if m[0] <= col <= m[1] else min(abs(m[0] - col), abs(m[1] - col)))
    names = [m[2] for m in matches]

    # Lines above (nearest first) and below, interleaved: found in one pass of the pattern
    # over them joined (a name never spans a line break)
    above = _lines_above(text, line_start, window_lines)
    below = _lines_below(text, line_end, window_lines)
    lines = []
    for i in range(max(len(above), len(below))):
        if i < len(above):
            lines.append(above[i])
        if i < len(below):
            lines.append(below[i])
    names += _IDENT_RE.findall("\n".join(lines))
    # each name once, where it first comes (dict order), then the ones that say nothing out
    return [
        n for n in dict.fromkeys(names) if len(n) > 1 and n not in KEYWORDS and not n[0].isdigit()
    ]


#: Characters taken at once for the lines around the cursor (30 lines of code, mostly).
_SPAN = 4096


def _lines_above(text: str, line_start: int, n: int) -> list[str]:
    """The `n` lines above the one starting at `line_start`, nearest first."""
    if line_start == 0:
        return []
    start = max(0, line_start - 1 - _SPAN)
    lines = text[start : line_start - 1].split("\n")
    if start and len(lines) <= n:  # long lines: one by one
        lines, pos = [], line_start - 1
        while pos >= 0 and len(lines) < n:
            begin = text.rfind("\n", 0, pos) + 1
            lines.append(text[begin:pos])
            pos = begin - 1
        return lines
    return lines[: -n - 1 : -1]


def _lines_below(text: str, line_end: int, n: int) -> list[str]:
    """The `n` lines below the one ending at `line_end`, nearest first."""
    if line_end >= len(text):
        return []
    stop = line_end + 1 + _SPAN
    lines = text[line_end + 1 : stop].split("\n", n)
    if len(lines) <= n and stop < len(text):  # long lines: one by one
        lines, pos = [], line_end + 1
        while pos <= len(text) and len(lines) < n:
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            lines.append(text[pos:end])
            pos = end + 1
        return lines
    return lines[:n]


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")


def _name_before(text: str, end: int, floor: int) -> int:
    """Start of the identifier characters ending at ``end``."""
    start = end
    while start > floor and text[start - 1] in _NAME_CHARS:
        start -= 1
    return start


def typed_at(text: str, offset: int) -> tuple[str, str]:
    """(qualifier, partial name) being typed just before ``offset``: ``util.Regis|`` gives
    ``("util", "Regis")``, ``parse_b|`` gives ``("", "parse_b")``, ``util.|`` ``("util", "")``.
    A keyword may be the start of a name (``get|`` → ``get_lexer``): the caller decides."""
    floor = max(text.rfind("\n", 0, offset) + 1, offset - 200)
    start = _name_before(text, offset, floor)
    partial = text[start:offset]
    if partial[:1].isdigit():
        return "", ""
    qualifier_end = start
    for sep in (".", "::", "->"):
        if text.endswith(sep, floor, start):
            qualifier_end = start - len(sep)
            break
    if qualifier_end == start:
        return "", partial
    q_start = qualifier_end
    while True:  # a dotted chain: `a.b.c.`
        q_start = _name_before(text, q_start, floor)
        if q_start > floor and text[q_start - 1] == "." and q_start - 1 > floor:
            q_start -= 1
            continue
        break
    qualifier = text[q_start:qualifier_end].lstrip(".")
    return (qualifier, partial) if qualifier else ("", partial)
