"""Relevance ranking of code from other open documents ("intelligent context pruning").

Instead of pasting whole files into a prompt, :func:`rank` picks small snippets, best first:

1. **definitions** (``def``/``class``/``function``/``fn``/``func``/``struct``/``type``/...) in
   other documents of identifiers used near the cursor; identifiers nearer the cursor score
   higher, and a definition in a module the current file imports scores higher still;
2. the **head of a module the current file imports** (``from pkg.util import x`` maps to a
   document whose path ends with ``pkg/util.py`` or ``pkg/util/__init__.py``; ``import
   {x} from "./util"`` to ``util.ts``/``.tsx``/``.js``/``index.ts``...; Go import paths; Rust
   ``use crate::a::b``);
3. the head of **recently edited** documents, newest first;
4. the head of other documents in the **same language**.

Definition blocks are found with regular expressions, not parsers: Python blocks end at the
dedent, brace languages at the matching brace (strings and comments skipped), declarations
without a brace at their ``;`` or end of line. Blocks are capped (:data:`MAX_BLOCK_CHARS`).
The per-document index is cached by ``(uri, len(text), hash(text))``, so re-ranking with
unchanged documents costs only dictionary look-ups.
"""

from __future__ import annotations

import bisect
import functools
import keyword
import math
import posixpath
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from ctx_lsp.text.languages import language_of
from ctx_lsp.text.opendoc import OpenDoc

MAX_BLOCK_CHARS = 3000
HEAD_LINES = 40
HEAD_CHARS = 1500
MAX_DEFS_PER_DOC = 4
MAX_RECENT = 5
_INDEX_CACHE_SIZE = 512


@dataclass(frozen=True)
class Snippet:
    path: str
    text: str
    score: float
    reason: str


# --------------------------------------------------------------------------------------------
# Languages

_JS = {"javascript", "typescript", "javascriptreact", "typescriptreact", "js", "ts", "jsx", "tsx"}
_CLIKE = {"c", "cpp", "java", "csharp", "objective-c", "objective-cpp", "dart"}


def _language(doc: OpenDoc) -> str:
    return language_of(doc.path, doc.language_id)


def _family(lang: str) -> str:
    if lang == "python":
        return "python"
    if lang in _JS:
        return "js"
    if lang == "go":
        return "go"
    if lang == "rust":
        return "rust"
    if lang in _CLIKE:
        return "clike"
    return "generic"


def _same_language(a: str, b: str) -> bool:
    if a == b:
        return True
    fa, fb = _family(a), _family(b)
    return fa == fb and fa not in ("generic", "clike")


# --------------------------------------------------------------------------------------------
# Identifiers near the cursor


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


KEYWORDS: frozenset[str] = _words(
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


def identifiers_near(text: str, offset: int, window_lines: int = 30) -> list[str]:
    """Identifiers within ``window_lines`` lines above and below ``offset``, nearest first.

    The cursor line comes first (nearest to the cursor column first), then lines by distance,
    the line above before the line below. Keywords, common builtins and one-letter names are
    dropped; each name appears once.
    """
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    if line_end < 0:
        line_end = len(text)

    seen: set[str] = set()
    out: list[str] = []

    def take(names: list[str]) -> None:
        for n in names:
            if n not in seen and len(n) > 1 and n not in KEYWORDS and not n[0].isdigit():
                seen.add(n)
                out.append(n)

    line = text[line_start:line_end]
    col = offset - line_start
    matches = [(m.start(), m.end(), m.group()) for m in _IDENT_RE.finditer(line)]
    matches.sort(key=lambda m: 0 if m[0] <= col <= m[1] else min(abs(m[0] - col), abs(m[1] - col)))
    take([m[2] for m in matches])

    # Lines above (nearest first) and below, interleaved.
    above: list[str] = []
    pos = line_start - 1
    for _ in range(window_lines):
        if pos < 0:
            break
        start = text.rfind("\n", 0, pos) + 1
        above.append(text[start:pos])
        pos = start - 1
    below: list[str] = []
    pos = line_end + 1
    for _ in range(window_lines):
        if pos > len(text):
            break
        end = text.find("\n", pos)
        if end < 0:
            end = len(text)
        below.append(text[pos:end])
        pos = end + 1
    for i in range(max(len(above), len(below))):
        if i < len(above):
            take(_IDENT_RE.findall(above[i]))
        if i < len(below):
            take(_IDENT_RE.findall(below[i]))
    return out


# --------------------------------------------------------------------------------------------
# Definitions

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
_CONTROL = _words(
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


def _python_defs(text: str) -> dict[str, tuple[int, int]]:
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


def _brace_defs(text: str, family: str) -> dict[str, tuple[int, int]]:
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


_INDEX: OrderedDict[tuple[str, int, int], tuple[dict[str, tuple[int, int]], list[str]]] = (
    OrderedDict()
)


#: A dry run builds on the event loop while a completion may build on the builder thread.
_INDEX_LOCK = threading.Lock()


def _index(doc: OpenDoc) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """(definitions, imported module paths) of ``doc``, cached by content."""
    key = (doc.uri, len(doc.text), hash(doc.text))
    with _INDEX_LOCK:
        hit = _INDEX.get(key)
        if hit is not None:
            _INDEX.move_to_end(key)
            return hit
    fam = _family(_language(doc))
    defs = _python_defs(doc.text) if fam == "python" else _brace_defs(doc.text, fam)
    result = (defs, _imports(doc, fam))
    with _INDEX_LOCK:
        _INDEX[key] = result
        while len(_INDEX) > _INDEX_CACHE_SIZE:
            _INDEX.popitem(last=False)
    return result


def definitions(doc: OpenDoc) -> dict[str, tuple[int, int]]:
    """Name → ``(start, end)`` character range of its definition block in ``doc.text``.

    The first definition of a name wins. Cached by ``(uri, len, hash)`` of the text.
    """
    return _index(doc)[0]


def clear_cache() -> None:
    _INDEX.clear()


# --------------------------------------------------------------------------------------------
# Imports

_PY_FROM = re.compile(
    r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(?:\(([^)]*)\)|([^\n#]*))", re.M
)
_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w. ,]+)", re.M)
_JS_IMPORT = re.compile(r"""(?:from|import|require\(|import\()[ \t]*['"]([^'"\n]+)['"]""")
_GO_IMPORT_BLOCK = re.compile(r"^import[ \t]*\(([^)]*)\)", re.M)
_GO_IMPORT_ONE = re.compile(r"^import[ \t]+(?:\w+[ \t]+)?\"([^\"]+)\"", re.M)
_RUST_USE = re.compile(r"^[ \t]*(?:pub[ \t]+)?use[ \t]+(?:crate|self|super)::([\w:]+)", re.M)
_RUST_MOD = re.compile(r"^[ \t]*(?:pub[ \t]+)?mod[ \t]+(\w+)[ \t]*;", re.M)


def _js_import_specs(text: str) -> list[str]:
    """Module specifiers of ``import ... from "x"``, ``import "x"``, ``require("x")``."""
    out: list[str] = []
    for word in ("from", "import", "require"):
        pos = text.find(word)
        while pos >= 0:
            if pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] in "_$."):
                m = _JS_IMPORT.match(text, pos)
                if m is not None:
                    out.append(m.group(1))
            pos = text.find(word, pos + len(word))
    return out


def _imports(doc: OpenDoc, fam: str) -> list[str]:
    """Module paths imported by ``doc``, as path suffixes without extension (``pkg/util``);
    names imported from them are appended as ``pkg/util::name``."""
    text = doc.text
    out: list[str] = []
    here = posixpath.dirname(doc.path.replace("\\", "/"))
    if fam == "python":
        for m in _PY_FROM.finditer(text):
            dots, mod, names = m.group(1), m.group(2), m.group(3) or m.group(4) or ""
            if dots:
                base = here
                for _ in range(len(dots) - 1):
                    base = posixpath.dirname(base)
                mod_path = posixpath.join(base, mod.replace(".", "/")) if mod else base
            else:
                mod_path = mod.replace(".", "/")
            if not mod_path:
                continue
            out.append(mod_path)
            for part in names.replace("\\", " ").split(","):
                name = part.split("#")[0].strip().split(" ")[0]
                if name and name != "*" and name.isidentifier():
                    out.append(f"{mod_path}::{name}")
                    if dots and not mod:  # `from . import util` imports a module
                        out.append(posixpath.join(mod_path, name))
        for m in _PY_IMPORT.finditer(text):
            for part in m.group(1).split(","):
                mod = part.strip().split(" ")[0]
                if mod:
                    out.append(mod.replace(".", "/"))
    elif fam == "js":
        for spec in _js_import_specs(text):
            if spec.startswith("."):
                out.append(posixpath.normpath(posixpath.join(here, spec)))
            else:
                out.append(spec.lstrip("@~/"))
    elif fam == "go":
        specs = [m.group(1) for m in _GO_IMPORT_ONE.finditer(text)]
        for m in _GO_IMPORT_BLOCK.finditer(text):
            specs.extend(re.findall(r"\"([^\"]+)\"", m.group(1)))
        out.extend(specs)
    elif fam == "rust":
        for m in _RUST_USE.finditer(text):
            parts = m.group(1).split("::")
            # `use crate::a::b::Thing` may name a module `a/b` or an item in `a`.
            for n in range(len(parts), 0, -1):
                out.append("/".join(parts[:n]))
        out.extend(m.group(1) for m in _RUST_MOD.finditer(text))
    return out


_MODULE_SUFFIXES = (
    ".py",
    "/__init__.py",
    ".pyi",
    ".ts",
    ".tsx",
    ".js",
    ".jsx",
    ".mjs",
    ".d.ts",
    "/index.ts",
    "/index.tsx",
    "/index.js",
    ".rs",
    "/mod.rs",
)


@functools.lru_cache(maxsize=4096)
def _module_names(path: str) -> tuple[frozenset[str], str]:
    """Every module ``path`` implements (path suffixes without extension, see
    :data:`_MODULE_SUFFIXES`), and its folder when it is a Go file (else "").

    Computed once per path, so matching a document against a file's imports is a set lookup.
    """
    path = path.replace("\\", "/")
    names: set[str] = set()
    for suffix in _MODULE_SUFFIXES:
        if not path.endswith(suffix) or len(path) == len(suffix):
            continue
        base = path[: -len(suffix)]
        if suffix.startswith("/") and not base:
            continue
        names.add(base)
        at = base.find("/")
        while at >= 0:  # every tail that starts at a folder boundary
            names.add(base[at + 1 :])
            at = base.find("/", at + 1)
    names.discard("")
    go_folder = posixpath.dirname(path) if path.endswith(".go") else ""
    return frozenset(names), go_folder


def _module_matches(path: str, module: str) -> bool:
    """Does file ``path`` implement ``module`` (a path suffix without extension)?"""
    module = module.strip("/")
    if not module:
        return False
    names, go_folder = _module_names(path)
    if module in names:
        return True
    # Go: a package is a folder, and the import path ends with the folder's path in the
    # project (`example.com/proj/pkg/util` for pkg/util/*.go).
    return bool(go_folder) and (module == go_folder or module.endswith("/" + go_folder))


# --------------------------------------------------------------------------------------------
# Ranking


def _head(text: str) -> str:
    end = 0
    for _ in range(HEAD_LINES):
        nl = text.find("\n", end)
        if nl < 0:
            end = len(text)
            break
        end = nl + 1
        if end >= HEAD_CHARS:
            break
    return text[: min(end, HEAD_CHARS)].rstrip("\n")


def rank(
    current: OpenDoc,
    cursor: int,
    others: Sequence[OpenDoc],
    now: float | None = None,
    limit: int = 20,
) -> list[Snippet]:
    """Snippets from ``others`` that are likely to help at ``cursor`` in ``current``, best first.

    Scores: definition of an identifier near the cursor 10-18.3 (+1 when the document is
    imported, -4 when the current document defines the name too; the nearer the identifier and
    the fewer documents define it, the higher), head of an imported module 6-7, head of a
    recently edited document 2-4, same language 1. Each document gives at most
    :data:`MAX_DEFS_PER_DOC` definitions plus one head; snippets of a document never overlap.
    ``now`` (default: the current time) is used for the age of ``modified`` times.
    """
    if now is None:
        now = time.time()
    docs = [d for d in others if d.uri != current.uri and d.text]
    if not docs:
        return []
    idents = identifiers_near(current.text, cursor)
    ident_index = {name: i for i, name in enumerate(idents)}  # each name appears once
    cur_defs, cur_imports = _index(current)
    lang = _language(current)

    imported_modules = [m for m in cur_imports if "::" not in m]
    imported_set = {m.strip("/") for m in imported_modules}
    imported_names: dict[str, list[str]] = {}
    for m in cur_imports:
        if "::" in m:
            mod, name = m.split("::", 1)
            imported_names.setdefault(name, []).append(mod)

    # Recency: the most recently modified documents, newest first.
    # Equal times share a rank: the position of the first document with that time.
    by_time = sorted(docs, key=lambda d: d.modified, reverse=True)[:MAX_RECENT]
    recent_rank: dict[str, int] = {}
    for i, d in enumerate(by_time):
        same = i > 0 and d.modified == by_time[i - 1].modified
        recent_rank[d.uri] = recent_rank[by_time[i - 1].uri] if same else i

    # Definitions of the identifiers near the cursor, per document (nearest identifiers first).
    hits: list[tuple[OpenDoc, list[tuple[int, str, tuple[int, int]]]]] = []
    defining_docs: dict[str, int] = {}
    for doc in docs:
        defs, _ = _index(doc)
        found: list[tuple[int, str, tuple[int, int]]] = []
        # a set intersection in C, not a lookup per identifier per document
        common = sorted(ident_index[n] for n in defs.keys() & ident_index.keys()) if defs else ()
        for i in common[:MAX_DEFS_PER_DOC]:
            name = idents[i]
            found.append((i, name, defs[name]))
            defining_docs[name] = defining_docs.get(name, 0) + 1
        hits.append((doc, found))

    candidates: list[tuple[float, int, OpenDoc, int, int, str]] = []
    order = 0
    for doc, found in hits:
        names, go_folder = _module_names(doc.path)
        doc_imported = (
            [m for m in imported_modules if _module_matches(doc.path, m)]
            if go_folder or not names.isdisjoint(imported_set)
            else []
        )
        recency = 1.0 / (1 + recent_rank[doc.uri]) if doc.uri in recent_rank else 0.0
        for i, name, (start, end) in found:
            # Nearer identifiers weigh more; a name defined in several documents is ambiguous,
            # unless the import says which one is meant.
            weight = 1.0 / (1.0 + 0.25 * i)
            reason = f"defines {name}"
            mods = imported_names.get(name)
            imported = bool(doc_imported) or bool(
                mods and any(_module_matches(doc.path, m) for m in mods)
            )
            if not imported:
                weight /= defining_docs[name]
            score = 10.0 + 8.0 * weight + 0.3 * recency
            if imported:
                score += 1.0
                reason += " (imported)"
            elif name in cur_defs:
                score -= 4.0  # defined here too: most likely a local name
            candidates.append((score, order, doc, start, end, reason))
            order += 1
        head_score = 0.0
        head_reason = ""
        if doc_imported:
            head_score = 6.0 + recency
            head_reason = f"imported as {doc_imported[0]}"
        elif doc.uri in recent_rank:
            age = max(0.0, now - doc.modified)
            head_score = 2.0 + recency + math.exp(-age / 3600.0)
            head_reason = "recently edited"
        elif _same_language(lang, _language(doc)):
            head_score = 1.0
            head_reason = "same language"
        if head_score:  # the head's end is found only if it is taken (end -1)
            candidates.append((head_score, order, doc, 0, -1, head_reason))
            order += 1

    candidates.sort(key=lambda c: (-c[0], c[1]))
    taken: dict[str, list[tuple[int, int]]] = {}
    out: list[Snippet] = []
    for score, _, doc, start, end, reason in candidates:
        if end < 0:
            end = len(_head(doc.text))
        spans = taken.setdefault(doc.uri, [])
        if any(start < e and s < end for s, e in spans):
            continue
        spans.append((start, end))
        out.append(Snippet(doc.path, doc.text[start:end], round(score, 4), reason))
        if len(out) >= limit:
            break
    return out
