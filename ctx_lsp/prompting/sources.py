"""Where related code comes from: the open documents (their live, masked text) first, then
the workspace index. :class:`Sources` answers, for one ranking, which files implement a
module, where a name is defined and what a file defines; the open documents' symbols are kept
in one overlay, brought up to date with the texts that changed."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ctx_lsp.prompting.families import language
from ctx_lsp.prompting.imports import module_matches
from ctx_lsp.prompting.index.symbols import Symbol, regex_symbols
from ctx_lsp.prompting.index.workspace import WorkspaceIndex
from ctx_lsp.prompting.relevance import definitions
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.redact import redact
from ctx_lsp.text.textkey import LruMemo, text_key

#: Bodies are cut at this many characters.
BODY_CHARS = 900

_SYMBOLS: LruMemo[tuple[tuple[Symbol, ...], tuple[str, ...]]] = LruMemo(512)


class Overlay:
    """The open documents' symbols by path and by name, brought up to date on each ranking
    with only the documents whose text changed: requests move from one document to another
    and the user types in one of them, the others stay parsed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.texts: dict[str, str] = {}  # path → the text its symbols are of
        self.by_path: dict[str, tuple[Symbol, ...]] = {}
        self.by_name: dict[str, dict[str, list[Symbol]]] = {}
        self.by_prefix: dict[str, set[str]] = {}
        self.implementing: dict[str, list[str]] = {}  # module → paths, until the paths change
        self.blocks: dict[str, dict[str, tuple[int, int]]] = {}  # name → path → its block
        self._blocks_of: dict[str, dict[str, tuple[int, int]]] = {}  # path → its blocks
        self.generation = 0

    def sync(self, docs: Sequence[OpenDoc], current: str) -> None:
        """Parse what changed; drop what was closed. The current document is left as it
        was: it changes on every keystroke and is never its own related code."""
        with self.lock:
            open_paths = set()
            for d in docs:
                open_paths.add(d.path)
                old = self.texts.get(d.path)
                if old is d.text:
                    continue  # the very text of last time (views keep unchanged ones)
                if old != d.text:
                    self._set(d.path, doc_symbols(d)[0], definitions(d))
                self.texts[d.path] = d.text
            for path in [p for p in self.texts if p not in open_paths and p != current]:
                self._set(path, None)
                del self.texts[path]

    def _set(
        self,
        path: str,
        symbols: tuple[Symbol, ...] | None,
        blocks: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        self.generation += 1
        old = self.by_path.pop(path, ())
        for sym in old:
            paths = self.by_name.get(sym.name)
            if paths is not None and paths.pop(path, None) is not None and not paths:
                del self.by_name[sym.name]
        for name in self._blocks_of.pop(path, ()):
            where = self.blocks.get(name)
            if where is not None and where.pop(path, None) is not None and not where:
                del self.blocks[name]
        if symbols is None:
            self.implementing.clear()
            return
        self._blocks_of[path] = blocks or {}
        for name, block in (blocks or {}).items():
            self.blocks.setdefault(name, {})[path] = block
        if path not in self.texts:
            self.implementing.clear()
        self.by_path[path] = symbols
        for sym in symbols:
            self.by_name.setdefault(sym.name, {}).setdefault(path, []).append(sym)
            self.by_prefix.setdefault(sym.name[:2], set()).add(sym.name)

    def defining(self, name: str) -> dict[str, tuple[int, int]]:
        """Where the open documents define ``name``: path → its block (for :func:`rank`)."""
        with self.lock:
            return dict(self.blocks.get(name, ()))


_OVERLAY = Overlay()


class Sources:
    """Symbols by path and by name: open documents first, then the index."""

    def __init__(
        self,
        docs: Sequence[OpenDoc],
        index: WorkspaceIndex | None,
        allowed: Callable[[str], bool],
        current: str = "",
    ) -> None:
        self.docs = {d.path: d for d in docs}
        _OVERLAY.sync(docs, current)
        self.open = _OVERLAY
        self.index = index
        self.allowed = allowed
        # answers within one ranking: the same modules and names are asked many times
        self._implementing: dict[str, list[str]] = {}
        self._defining: dict[tuple[str, int], list[tuple[str, Symbol]]] = {}
        self._may: dict[str, bool] = {}

    def symbols(self, path: str) -> tuple[Symbol, ...]:
        if path in self.docs:
            return self.open.by_path.get(path, ())
        entry = self.index.entry(path) if self.index is not None else None
        return entry.symbols if entry is not None else ()

    def implementing(self, module: str) -> list[str]:
        hit = self._implementing.get(module)
        if hit is None:
            hit = self._implementing[module] = self._find_implementing(module)
        return hit

    def _find_implementing(self, module: str) -> list[str]:
        with self.open.lock:
            found = self.open.implementing.get(module)
            if found is None:
                found = [p for p in self.open.by_path if module_matches(p, module)]
                self.open.implementing[module] = found
        found = [p for p in found if p in self.docs]
        if self.index is not None:
            found += [p for p in self.index.implementing(module) if p not in self.docs]
        return [p for p in found if self.may(p)]

    def defining(self, name: str, most: int = 0) -> list[tuple[str, Symbol]]:
        key = (name, most)
        hit = self._defining.get(key)
        if hit is None:
            hit = self._defining[key] = self._find_defining(name, most)
        return hit

    def _find_defining(self, name: str, most: int) -> list[tuple[str, Symbol]]:
        with self.open.lock:
            found = self.open.by_name.get(name, {})
            out = [(p, sym) for p, syms in found.items() if p in self.docs for sym in syms]
        if self.index is not None:
            out += [(p, s) for p, s in self.index.defining(name, most) if p not in self.docs]
        return [(p, s) for p, s in out if self.may(p)]

    def may(self, path: str) -> bool:
        """``allowed``, asked once per path and ranking."""
        hit = self._may.get(path)
        if hit is None:
            hit = self._may[path] = self.allowed(path)
        return hit

    def with_prefix(self, prefix: str) -> list[str]:
        names = set(self.index.with_prefix(prefix)) if self.index is not None else set()
        with self.open.lock:
            bucket = list(self.open.by_prefix.get(prefix[:2], ()))
        names.update(n for n in bucket if n.startswith(prefix) and n in self.open.by_name)
        return sorted(names, key=lambda n: (len(n), n))[:50]

    def body(self, path: str, s: Symbol) -> str:
        """The definition's lines, cut at :data:`BODY_CHARS`: from the open document (masked
        by the view) or from disk (masked here)."""
        doc = self.docs.get(path)
        if doc is not None:
            return lines_of(doc.text, s.line, s.end_line)
        if self.index is None:
            return ""
        try:  # a few KB of the best pick or two, on the builder thread
            with open(Path(self.index.root) / path, encoding="utf-8", errors="replace") as fh:
                text = fh.read(2_000_000)
        except OSError:
            return ""
        return redact(lines_of(text, s.line, s.end_line))


_LINE_STARTS: LruMemo[list[int]] = LruMemo(64)


def lines_of(text: str, first: int, last: int) -> str:
    """Lines ``first``..``last`` (0-based, inclusive) of ``text``, cut at :data:`BODY_CHARS`."""
    key = text_key(text)
    starts = _LINE_STARTS.get(key)
    if starts is None:
        starts = [0, *(m.end() for m in re.finditer("\n", text))]
        _LINE_STARTS.put(key, starts)
    if first >= len(starts):
        return ""
    start = starts[first]
    end = starts[last + 1] - 1 if last + 1 < len(starts) else len(text)
    if end - start <= BODY_CHARS:
        return text[start:end]
    cut = text.rfind("\n", start, start + BODY_CHARS)
    return text[start : cut if cut > start else start + BODY_CHARS] + "\n    …"


def doc_symbols(doc: OpenDoc) -> tuple[tuple[Symbol, ...], tuple[str, ...]]:
    """An open document's definitions, from the regex blocks :func:`rank` finds for it anyway
    (a tree-sitter parse of every open document would cost seconds on the first request of a
    big session), cached by text. Its text is masked by the view already."""
    key = (doc.path, text_key(doc.text))
    hit = _SYMBOLS.get(key)
    if hit is None:
        symbols = regex_symbols(doc.text, language(doc), definitions(doc))
        hit = (tuple(symbols), ())
        _SYMBOLS.put(key, hit)
    return hit
