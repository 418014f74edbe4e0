"""Related code by the structure of the current file: what it imports, what the cursor is
typing or using, the class it is in; found in open documents and in the workspace index.

:func:`related` picks definitions in named steps, each with a score and a reason:

==================================================  =====
the name being typed (``parse_b|``, ``util.Reg|``)   50
an imported name or module attribute near the cursor 40-30
a base class of the class the cursor is in           36
a name the file imports (more uses: higher)          24-26
an attribute of an imported module (``util.Reg()``)  23-25
a name of a wildcard import used in the file         22
a name near the cursor defined elsewhere (lexical)   10-16
other definitions of the modules the file imports    12
==================================================  =====

(+1 for a recently edited file.) The best few strong picks go into the prompt whole
(:data:`BODY_PICKS`, capped at :data:`ctx_lsp.prompting.sources.BODY_CHARS`); the others as
compact signatures with their docstring line, one section per file.
:func:`ctx_lsp.prompting.relevance.rank`'s snippets of the open documents follow where they
add something. An open document's live text always wins
over the index's copy of the same file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ctx_lsp.prompting.families import family, language
from ctx_lsp.prompting.identifiers import KEYWORDS, identifiers_near, typed_at
from ctx_lsp.prompting.imports import Bindings, bindings
from ctx_lsp.prompting.index.symbols import Symbol
from ctx_lsp.prompting.index.workspace import WorkspaceIndex
from ctx_lsp.prompting.relevance import Snippet, definitions, rank
from ctx_lsp.prompting.sources import Sources
from ctx_lsp.prompting.uses import FileUses
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.redact import mask_registered
from ctx_lsp.text.textkey import LruMemo, text_key

#: Strong picks shown whole, at most this many characters each.
BODY_PICKS = 2
BODY_MIN_SCORE = 36.0
#: Signatures per file section; methods shown under a picked class.
GROUP_MAX = 12
MEMBERS = 3
#: Picks kept in all.
MAX_PICKS = 120
#: Picks scored below this show their signature only (no docstring line): more of them fit.
DOC_MIN_SCORE = 20.0
#: Characters around the cursor in which uses of imported names are counted.
USE_WINDOW = 8_000

_CLASS_LINE = re.compile(
    r"^([ \t]*)(?:export[ \t]+)?(?:abstract[ \t]+)?(?:class|struct|impl)[ \t]+([\w$]+)", re.M
)
_CLASS_KEYWORDS = ("class", "struct", "impl")


@dataclass(frozen=True)
class Pick:
    path: str
    symbol: Symbol
    score: float
    why: str


_FILES: LruMemo[tuple[Bindings, FileUses]] = LruMemo(128)


def _file(doc: OpenDoc) -> tuple[Bindings, FileUses]:
    """What a version of a file binds, and where it uses those names."""
    key = (doc.path, text_key(doc.text))
    hit = _FILES.get(key)
    if hit is None:
        b = bindings(doc, family(language(doc)))
        hit = (b, FileUses(b))
        _FILES.put(key, hit)
    return hit


# --------------------------------------------------------------------------------------------
# The steps


class _Picker:
    def __init__(
        self,
        current: OpenDoc,
        cursor: int,
        src: Sources,
        recent: set[str],
        file: tuple[Bindings, FileUses],
    ) -> None:
        self.current = current
        self.cursor = cursor
        self.src = src
        self.recent = recent
        self.b, self.uses = file
        self.picks: dict[tuple[str, str, int], Pick] = {}
        self._resolved: dict[tuple[str, str], list[tuple[str, Symbol]]] = {}

    def add(self, path: str, s: Symbol, score: float, why: str) -> None:
        if path == self.current.path:
            return
        if path in self.recent:
            score += 1.0
        key = (path, s.name, s.line)
        old = self.picks.get(key)
        if old is None or old.score < score:
            self.picks[key] = Pick(path, s, score, why)

    def resolve(self, module: str, name: str) -> list[tuple[str, Symbol]]:
        """Where ``name`` of ``module`` is defined: the module's files first, else (re-exports,
        unresolvable paths) wherever the workspace defines it at top level, if unambiguous."""
        key = (module, name)
        hit = self._resolved.get(key)
        if hit is None:
            hit = self._resolved[key] = self._resolve(module, name)
        return hit

    def _resolve(self, module: str, name: str) -> list[tuple[str, Symbol]]:
        paths = set(self.src.implementing(module)) if module else set()
        everywhere = self.src.defining(name) if name != "default" else []
        found = [(p, s) for p, s in everywhere if p in paths and not s.parent]
        if not found and name == "default":
            for path in sorted(paths):
                syms = self.src.symbols(path)
                found += [(path, s) for s in syms if s.signature.startswith("export default")][:1]
        if not found and name != "default":
            top = [(p, s) for p, s in everywhere if not s.parent]
            if 0 < len(top) <= 2:
                found = top
        return found

    def members(self, module: str) -> list[tuple[str, Symbol]]:
        return [
            (p, s)
            for p in self.src.implementing(module)
            for s in self.src.symbols(p)
            if not s.parent
        ]

    # 1. the name being typed
    def typed(self) -> None:
        qualifier, partial = typed_at(self.current.text, self.cursor)
        if qualifier in self.b.modules:
            for path, s in self.members(self.b.modules[qualifier]):
                if s.name.startswith(partial):
                    self.add(path, s, 50.0 - 0.01 * len(s.name), f"typed {qualifier}.{partial}")
            return
        if qualifier or len(partial) < 2:
            return
        for local, (module, name) in self.b.names.items():
            if local.startswith(partial):
                for path, s in self.resolve(module, name):
                    self.add(path, s, 50.0, f"typed {partial}, imported")
        if partial in KEYWORDS:  # `for|`, `get|`: more likely the word itself than a name
            return
        for name in self.src.with_prefix(partial)[:8]:
            for path, s in self.src.defining(name)[:3]:
                if not s.parent:
                    self.add(path, s, 44.0 - 0.01 * len(name), f"typed {partial}")

    # 2. imported names and module attributes near the cursor
    def near(self, idents: list[str], attrs: bool = True) -> None:
        for i, ident in enumerate(idents[:40]):
            score = max(30.0, 40.0 - 0.3 * i)
            if ident in self.b.names:
                module, name = self.b.names[ident]
                for path, s in self.resolve(module, name):
                    self.add(path, s, score, "imported, used near the cursor")
        if not attrs:
            return
        lo = max(0, self.cursor - 1500)
        for name, attr in self.uses.between(self.current.text, lo, self.cursor + 600):
            if attr and name in self.b.modules:
                for path, s in self.resolve(self.b.modules[name], attr):
                    self.add(path, s, 38.0, f"{name}.{attr} used near the cursor")

    # 3. the bases of the class the cursor is in
    def bases(self) -> None:
        if not self.b.bases:
            return
        lo = max(0, self.cursor - 12_000)  # the class a cursor is in starts above it
        enclosing = _enclosing_class(self.current.text, lo, self.cursor)
        for base in self.b.bases.get(enclosing or "", ()):
            module, name = self.b.names.get(base, ("", base))
            for path, s in self.resolve(module, name):
                self.add(path, s, 36.0, f"base of {enclosing}")

    # 4. every name the file imports; 5. attributes of imported modules; 6. wildcards
    def imported(self, file_level: bool = True) -> None:
        """With ``file_level``, every imported name at its base score; then (always) the
        names and module attributes used around the cursor, with more for more uses."""
        if file_level:
            for local, (module, name) in self.b.names.items():
                for path, s in self.resolve(module, name):
                    self.add(path, s, 24.0, f"imported ({local})")
            return
        lo = max(0, self.cursor - USE_WINDOW // 2)
        # uses of names, and of `alias.attr` (of any name when a wildcard may have bound it)
        uses: Counter[str] = Counter()
        attrs: Counter[tuple[str, str]] = Counter()
        for (name, attr), n in self.uses.between(
            self.current.text, lo, self.cursor + USE_WINDOW // 2
        ).items():
            uses[name] += n
            if attr and name in self.b.modules:
                attrs[(name, attr)] += n
        for local, n in uses.items():
            if local in self.b.names:
                module, name = self.b.names[local]
                for path, s in self.resolve(module, name):
                    self.add(path, s, 24.0 + 0.4 * min(5, n), f"imported ({local})")
        for (alias, attr), n in attrs.items():
            for path, s in self.resolve(self.b.modules[alias], attr):
                self.add(path, s, 23.0 + 0.4 * min(5, n), f"{alias}.{attr} used in the file")
        for module in self.b.wildcards:
            for path, s in self.members(module):
                if s.name in uses:
                    self.add(path, s, 22.0, f"from the wildcard import of {module}")

    # 7. names near the cursor defined elsewhere
    def lexical(self, idents: list[str]) -> None:
        own = definitions(self.current)  # regex blocks: cheap, cached by text
        for i, ident in enumerate(idents[:30]):
            if ident in self.b.names or ident in own:
                continue
            found = [(p, s) for p, s in self.src.defining(ident, most=4) if not s.parent][:4]
            for path, s in found:
                self.add(
                    path,
                    s,
                    10.0 + 6.0 / (1 + 0.25 * i) / len(found),
                    f"{ident} used near the cursor",
                )

    # 8. the rest of the modules the file imports
    def module_members(self) -> None:
        modules = dict.fromkeys([*self.b.modules.values(), *(m for m, _ in self.b.names.values())])
        n = 0
        for module in modules:
            for path, s in self.members(module):
                if s.kind not in ("variable", "const") or s.name.isupper():
                    self.add(path, s, 12.0 - 0.001 * n, f"defined in imported {module}")
                    n += 1
                if n > 80:
                    return


def _enclosing_class(text: str, lo: int, hi: int) -> str | None:
    """The name on the last class line between ``lo`` and ``hi`` (what `_CLASS_LINE`'s last
    match there gives), found from the keywords back: a multi-line pattern tried at every
    position of 12 KB cost a quarter of a millisecond per completion."""
    best: tuple[int, str] | None = None
    for keyword in _CLASS_KEYWORDS:
        end = hi
        while (i := text.rfind(keyword, lo, end)) >= 0:
            start = max(lo, text.rfind("\n", 0, i) + 1)
            m = (
                _CLASS_LINE.match(text, start, hi)
                if start == 0 or text[start - 1] == "\n"
                else None
            )
            if m is not None:
                if best is None or start > best[0]:
                    best = (start, m.group(2))
                break
            end = i
    return best[1] if best is not None else None


_FILE_MEMO: LruMemo[tuple[dict[tuple[str, str, int], Pick], dict]] = LruMemo(64)


_File = tuple[Bindings, FileUses]
_AROUND_MEMO: LruMemo[tuple[_File, dict[tuple[str, str, int], Pick]]] = LruMemo(128)


def _situation(
    current: OpenDoc,
    others: Sequence[OpenDoc],
    index: WorkspaceIndex | None,
    allowed: Callable[[str], bool] | None,
    src: Sources | None,
) -> tuple[Sources, set[str], tuple[object, ...]]:
    """The sources, the recently edited files, and what the picks' memos depend on besides
    the current document."""
    docs = [d for d in others if d.uri != current.uri and d.text]
    if src is None:
        src = Sources(docs, index, allowed or (lambda _p: True), current.path)
    recent = set(index.recent(5)) if index is not None else set()
    recent |= {d.path for d in sorted(docs, key=lambda d: d.modified, reverse=True)[:3]}
    state = (
        src.open.generation,
        index.generation if index is not None else -1,
        frozenset(recent),
    )
    return src, recent, state


def _file_picks(
    current: OpenDoc,
    src: Sources,
    recent: set[str],
    file: tuple[Bindings, FileUses],
    state: tuple[object, ...],
) -> tuple[dict[tuple[str, str, int], Pick], dict]:
    """What the file imports, wherever the cursor is: kept while the imports are the same."""
    file_key = (current.path, file[0].key, *state)
    whole = _FILE_MEMO.get(file_key)
    if whole is None:
        p = _Picker(current, 0, src, recent, file)
        p.imported(file_level=True)
        p.module_members()
        whole = (dict(p.picks), p._resolved)
        _FILE_MEMO.put(file_key, whole)
    return whole


def prepare(
    current: OpenDoc,
    others: Sequence[OpenDoc],
    index: WorkspaceIndex | None = None,
    allowed: Callable[[str], bool] | None = None,
) -> None:
    """The part of :func:`structural_picks` and :func:`rank` that a file's version costs
    once (its imports found and resolved, its definitions found: 2 to 8 ms for a large
    file), done ahead of the first completion in it when the sources are the ones that
    completion will see."""
    src, recent, state = _situation(current, others, index, allowed, None)
    file = _file(current)
    _file_picks(current, src, recent, file, state)
    if not file[1].scanned:
        file[1].scan(current.text)
    definitions(current)  # its own blocks, which the lexical steps and `rank` look at


def structural_picks(
    current: OpenDoc,
    cursor: int,
    others: Sequence[OpenDoc],
    index: WorkspaceIndex | None = None,
    allowed: Callable[[str], bool] | None = None,
    src: Sources | None = None,
) -> list[Pick]:
    """The definitions the structure of ``current`` points at, best first.

    While the user types on one line, everything but that line stays the same: the picks
    from the rest of the file (imports, names near the cursor, bases, the modules' other
    definitions) are kept for it, and only the name being typed and the identifiers of the
    cursor line are looked at again on each keystroke."""
    src, recent, state = _situation(current, others, index, allowed, src)
    text = current.text
    line_start = text.rfind("\n", 0, cursor) + 1
    line_end = text.find("\n", cursor)
    line_end = len(text) if line_end < 0 else line_end
    before, after = text[:line_start], text[line_end:]
    key = (current.path, len(before), hash(before), hash(after), *state)
    hit = _AROUND_MEMO.get(key)
    if hit is None:
        file = _file(current)
        p = _Picker(current, cursor, src, recent, file)
        whole = _file_picks(current, src, recent, file, state)
        p.picks, p._resolved = dict(whole[0]), whole[1]
        idents = identifiers_near(text, cursor)
        p.near(idents)
        p.bases()
        p.imported(file_level=False)
        p.lexical(idents)
        hit = (file, p.picks)
        _AROUND_MEMO.put(key, hit)
    file, around = hit
    p = _Picker(current, cursor, src, recent, file)
    p.picks = dict(around)
    p.typed()
    line_idents = identifiers_near(text[line_start:line_end], cursor - line_start, 0)
    p.near(line_idents, attrs=False)
    # kept picks were allowed when made: an ignore rule may be newer than that
    picks = [k for k in p.picks.values() if src.may(k.path)]
    picks.sort(key=lambda k: (-k.score, k.path, k.symbol.line))
    return picks[:MAX_PICKS]


# --------------------------------------------------------------------------------------------
# Snippets


def _pick_line(p: Pick, shown: str) -> str:
    return f"{p.path}:{p.symbol.line + 1} {p.symbol.kind} {p.symbol.name} ({shown}): {p.why}"


def _signature_lines(s: Symbol, python: bool, indent: str = "", doc: bool = True) -> list[str]:
    lines = [indent + s.signature]
    if s.doc and doc:
        lines.append(f'{indent}    """{s.doc}"""' if python else f"{indent}    // {s.doc}")
    return lines


_SNIPPETS: LruMemo[list[Snippet]] = LruMemo(128)


def _snippets(picks: list[Pick], src: Sources) -> list[Snippet]:
    """Memoized: the same picks (the cursor moved within a line) make the same snippets."""
    generation = src.index.generation if src.index is not None else -1
    key = (
        tuple((p.path, p.symbol, p.score, p.why) for p in picks),
        src.open.generation,
        generation,
    )
    hit = _SNIPPETS.get(key)
    if hit is None:
        hit = _make_snippets(picks, src)
        _SNIPPETS.put(key, hit)
    return list(hit)


def _make_snippets(picks: list[Pick], src: Sources) -> list[Snippet]:
    out: list[Snippet] = []
    bodies = 0
    groups: list[list[Pick]] = []
    open_group: dict[str, list[Pick]] = {}  # path → its group being filled
    for p in picks:
        if bodies < BODY_PICKS and p.score >= BODY_MIN_SCORE:
            body = src.body(p.path, p.symbol)
            if body:
                bodies += 1
                reason = f"{p.symbol.kind} {p.symbol.name}: {p.why}"
                out.append(
                    Snippet(p.path, body, round(p.score, 4), reason, (_pick_line(p, "whole"),))
                )
                continue
        group = open_group.get(p.path)
        if group is None or len(group) >= GROUP_MAX:  # a full section: the next one follows
            group = open_group[p.path] = []
            groups.append(group)
        group.append(p)
    for group in groups:
        path = group[0].path
        python = path.endswith((".py", ".pyi"))
        lines: list[str] = []
        for p in group:
            indent = "    " if p.symbol.parent else ""
            if p.symbol.parent:
                lines.append(f"class {p.symbol.parent}:" if python else f"// in {p.symbol.parent}")
            lines += _signature_lines(p.symbol, python, indent, p.score >= DOC_MIN_SCORE)
            if p.symbol.kind in ("class", "struct", "interface", "trait") and p.score >= 30:
                members = [s for s in src.symbols(path) if s.parent == p.symbol.name]
                members.sort(
                    key=lambda s: (s.name.startswith("_") and s.name != "__init__", s.line)
                )
                for s in members[:MEMBERS]:
                    lines.append("    " + s.signature)
        names = ", ".join(p.symbol.name for p in group[:4]) + (", …" if len(group) > 4 else "")
        out.append(
            Snippet(
                path,
                mask_registered("\n".join(lines)),  # signatures come masked
                round(group[0].score, 4),
                f"signatures: {names}",
                tuple(_pick_line(p, "signature") for p in group),
                by_lines=True,
            )
        )
    return out


def related(
    current: OpenDoc,
    cursor: int,
    others: Sequence[OpenDoc],
    index: WorkspaceIndex | None = None,
    allowed: Callable[[str], bool] | None = None,
    now: float | None = None,
    limit: int = 24,
) -> list[Snippet]:
    """Related code for ``cursor`` in ``current``, best first: the structural picks (bodies of
    the best few, signatures of the rest), then :func:`rank`'s snippets of open documents that
    do not repeat a pick. ``others`` are the open documents (masked); ``allowed`` tells whether
    an indexed path may still enter the context."""
    docs = [d for d in others if d.uri != current.uri and d.text]
    src = Sources(docs, index, allowed or (lambda _p: True), current.path)
    picks = structural_picks(current, cursor, docs, index, allowed, src)
    snippets = _snippets(picks, src)
    # a body from an open document repeats a pick's signature at the price of the room other
    # picks need: the pick stands for it
    strong = {(p.path, p.symbol.name) for p in picks}
    for s in rank(current, cursor, docs, now, defining=src.open.defining):
        name = (
            s.reason.removeprefix("defines ").split(" ", 1)[0]
            if s.reason.startswith("defines ")
            else ""
        )
        if name and (s.path, name) in strong:
            continue
        snippets.append(Snippet(s.path, s.text, s.score, s.reason, (f"{s.path} ({s.reason})",)))
    snippets.sort(key=lambda s: -s.score)
    return snippets[:limit]
