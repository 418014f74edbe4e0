"""Definition blocks found with regular expressions (no parser): Python blocks end at the
dedent, brace languages at the matching brace (strings and comments skipped), declarations
without a brace at their ``;`` or end of line. Blocks are capped (:data:`MAX_BLOCK_CHARS`).

Fast enough to run on every keystroke's current document; the workspace index uses
tree-sitter where it can (see :mod:`ctx_lsp.prompting.index`)."""

from __future__ import annotations

import bisect
import keyword
import re

from ctx_lsp.prompting.identifiers import words

MAX_BLOCK_CHARS = 3000

_PY_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)", re.M)
_PY_ASSIGN = re.compile(r"^()([A-Za-z_]\w*)[ \t]*(?::[^=\n]+)?=(?!=)", re.M)

_MODS = (
    r"(?:(?:export|default|public|private|protected|internal|static|final|abstract|sealed|open|"
    r"override|async|declare|unsafe|extern|inline|pub(?:\([^)\n]*\))?|const(?=[ \t]+fn))[ \t]+)*"
)
_NAME = r"([A-Za-z_$][\w$]*)"
_KW_DEF = {
    "js": re.compile(
        r"^[ \t]*" + _MODS + r"(?:function\*?|class|interface|enum|type|namespace|module|"
        r"abstract[ \t]+class)[ \t]+\*?[ \t]*"
        + _NAME
        # variables only at top level, so that locals of other files do not count
        + r"|^(?:export[ \t]+(?:default[ \t]+)?)?(?:declare[ \t]+)?(?:const|let|var)[ \t]+"
        + _NAME,
        re.M,
    ),
    "go": re.compile(
        r"^[ \t]*(?:func|type)[ \t]+(?:\([^)\n]*\)[ \t]*)?"
        + _NAME
        + r"|^(?:const|var)[ \t]+"
        + _NAME,
        re.M,
    ),
    "rust": re.compile(
        r"^[ \t]*" + _MODS + r"(?:fn|struct|enum|trait|type|union|mod|const|"
        r"static(?:[ \t]+mut)?|macro_rules!)[ \t]+" + _NAME,
        re.M,
    ),
    "clike": re.compile(
        r"^[ \t]*" + _MODS + r"(?:class|struct|enum(?:[ \t]+class)?|interface|union|record|"
        r"namespace|typedef[ \t]+(?:struct|enum|union)|@interface)[ \t]+" + _NAME,
        re.M,
    ),
    "generic": re.compile(
        r"^[ \t]*" + _MODS + r"(?:function|fun|func|fn|def|class|interface|enum|struct|trait|"
        r"protocol|object|type|typealias|val|let|const|var)[ \t]+" + _NAME,
        re.M,
    ),
}
# C-like functions and methods (also TS/JS class methods): `[mods] [type] name(params) ... {`
_METHOD_DEF = re.compile(  # matched on one line at a time, see _method_lines
    r"[ \t]*(?:[\w$<>\[\],.:*&?]+[ \t]+){0,6}[*&]*"
    + _NAME
    + r"[ \t]*(?:<[^<>\n]*>)?[ \t]*\((?:[^()\n\"'`;]|\([^()\n\"'`;]*\))*\)"
    + r"[^;{}=\n\"'`]*(?:\{[ \t]*)?$"
)
_BRACE_EOL = re.compile(r"\{[ \t]*(?:\n|\Z)")
_BRACE_BOL = re.compile(r"\n[ \t]*\{")
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+" + _NAME, re.M)
_CONTROL = words(
    "if for while switch catch return function new else do sizeof typeof elif foreach "
    "using lock fixed synchronized with await throw case yield echo delete void"
)

# Strings and comments are matched whole, so that the brackets inside them do not count.
_STR_DQ = r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|`(?:\\.|[^`\\])*`|'(?:\\.|[^'\\\n])*'"
# Languages where ' starts a char literal (a Rust lifetime `'a` is left alone).
_STR_CHAR = (
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|`(?:\\.|[^`\\])*`"
    r"|'(?:\\.[^'\n]{0,9}|[^'\\\n])'"
)
_HEADER_RE = {
    "dq": re.compile(_STR_DQ + r"|[{}()\[\];\n]", re.S),
    "char": re.compile(_STR_CHAR + r"|[{}()\[\];\n]", re.S),
}
_BRACE_RE = {
    "dq": re.compile(_STR_DQ + r"|[{}]", re.S),
    "char": re.compile(_STR_CHAR + r"|[{}]", re.S),
}
_VALUE_DECL = re.compile(r"\b(?:const|let|var|val|type|static)[ \t]+(?!fn\b|function\b)")
_CONTINUATION = frozenset(",=([{:+-*/|&<>?.!\\")
_LINE_RE = re.compile(r"^([ \t]*)(.?)", re.M)


def _cap_end(text: str, start: int, end: int) -> int:
    """``end``, or the end of the last whole line before ``start + MAX_BLOCK_CHARS``."""
    if end - start <= MAX_BLOCK_CHARS:
        return end
    cut = text.rfind("\n", start, start + MAX_BLOCK_CHARS)
    return cut if cut > start else start + MAX_BLOCK_CHARS


def python_defs(text: str) -> dict[str, tuple[int, int]]:
    # Line table: start offset, indentation width and first character of every line.
    starts: list[int] = []
    indents: list[int] = []
    firsts: list[str] = []
    for m in _LINE_RE.finditer(text):
        starts.append(m.start())
        ws = m.group(1)
        indents.append(len(ws.expandtabs()) if "\t" in ws else len(ws))
        firsts.append(m.group(2))
    n_lines = len(starts)

    def line_end(i: int) -> int:
        return starts[i + 1] - 1 if i + 1 < n_lines else len(text)

    found = [(m.start(), m.group(1), m.group(2)) for m in _PY_DEF.finditer(text)]
    found += [(m.start(), "", m.group(2)) for m in _PY_ASSIGN.finditer(text)]
    found.sort()
    defs: dict[str, tuple[int, int]] = {}
    for pos, ws, name in found:
        if name in defs or keyword.iskeyword(name):
            continue
        indent = len(ws.expandtabs())
        first = bisect.bisect_right(starts, pos) - 1
        start_line = first
        while start_line > 0 and firsts[start_line - 1] == "@":  # decorators
            start_line -= 1
        last = first
        limit = starts[first] + MAX_BLOCK_CHARS
        i = first + 1
        while i < n_lines and starts[i] < limit:
            c = firsts[i]
            if c and c not in "#\r\n":
                if indents[i] <= indent and c not in ")]}":
                    break
                last = i
            i += 1
        start = starts[start_line]
        defs[name] = (start, _cap_end(text, start, line_end(last)))
    return defs


def _match_brace(text: str, open_pos: int, limit: int, brace_re: re.Pattern[str]) -> int | None:
    """Position of the ``}`` closing the ``{`` at ``open_pos``; None if not before ``limit``."""
    depth = 0
    for m in brace_re.finditer(text, open_pos, limit):
        c = m.group()
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return m.start()
    return None


def _block_end(
    text: str, start: int, name_end: int, header_re: re.Pattern[str], brace_re: re.Pattern[str]
) -> int:
    """End of the declaration starting at ``start``; scans at most :data:`MAX_BLOCK_CHARS`."""
    limit = min(len(text), start + MAX_BLOCK_CHARS)
    is_value = _VALUE_DECL.search(text, start, name_end) is not None
    depth = 0
    pos = name_end
    while True:
        m = header_re.search(text, pos, limit)
        if m is None:
            return limit
        c = m.group()
        p = m.start()
        pos = m.end()
        if len(c) != 1:
            continue  # string or comment
        if c in "([":
            depth += 1
        elif c in ")]":
            depth = max(0, depth - 1)
        elif depth:
            continue
        elif c == "{":
            close = _match_brace(text, p, limit, brace_re)
            if close is None:
                return limit
            if not is_value:
                return close + 1
            pos = close + 1  # `const x = {...}`: the braces are a value, go on
        elif c == ";":
            return p + 1
        elif c == "}":
            return p  # end of the enclosing block
        else:  # newline
            before = text[max(start, p - 200) : p].rstrip()
            if before and (before[-1] in _CONTINUATION or before.endswith("where")):
                continue  # the statement goes on: `=`, `,`, `(`, operators...
            after = text[p + 1 : p + 200].lstrip()
            if after.startswith(("{", ".", "?", ":", "=", "|", "&", "throws", "where")):
                continue  # Allman brace, chained call, continued type or where clause
            return p


def _method_lines(text: str) -> list[re.Match[str]]:
    """:data:`_METHOD_DEF` matches on the lines that open a body: lines ending with ``{`` and
    lines followed by a line starting with ``{`` (Allman style). Looking for the brace first
    is much faster than trying the pattern on every line."""
    ends: set[int] = set()
    for m in _BRACE_EOL.finditer(text):
        ends.add(m.start() + 1)  # the line, up to and including its `{`
    for m in _BRACE_BOL.finditer(text):
        ends.add(m.start())  # the line before, without its newline
    out: list[re.Match[str]] = []
    for end in sorted(ends):
        start = text.rfind("\n", 0, end - 1) + 1 if end else 0
        m = _METHOD_DEF.match(text, start, end)
        if m is not None:
            out.append(m)
    return out


def brace_defs(text: str, family: str) -> dict[str, tuple[int, int]]:
    kind = "char" if family in ("rust", "clike", "go") else "dq"
    header_re, brace_re = _HEADER_RE[kind], _BRACE_RE[kind]
    found: list[tuple[int, int, str]] = []  # (line start, name end, name)
    for m in _KW_DEF[family].finditer(text):
        g = m.lastindex or 1
        found.append((m.start(), m.end(g), m.group(g)))
    if family in ("js", "clike", "generic"):
        for m in _method_lines(text):
            name = m.group(1)
            line = m.group()
            first_word = line.split(None, 1)[0] if line.strip() else ""
            if (
                name in _CONTROL
                or first_word in _CONTROL
                or "=>" in line
                or "function" in line.split("(", 1)[1]
            ):
                continue
            found.append((m.start(), m.end(1), name))
    if family == "clike":
        found.extend((m.start(), m.end(), m.group(1)) for m in _DEFINE.finditer(text))
    found.sort()

    defs: dict[str, tuple[int, int]] = {}
    for start, name_end, name in found:
        if name in defs:
            continue
        # Annotations / decorators directly above belong to the block.
        s = start
        while s > 0:
            prev_start = text.rfind("\n", 0, s - 1) + 1
            if text[prev_start : s - 1].lstrip().startswith("@"):
                s = prev_start
            else:
                break
        end = _block_end(text, start, name_end, header_re, brace_re)
        defs[name] = (s, _cap_end(text, s, end))
    return defs
