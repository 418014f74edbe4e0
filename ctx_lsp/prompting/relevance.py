"""Relevance ranking of code from other open documents ("intelligent context pruning").

Instead of pasting whole files into a prompt, :func:`rank` picks small snippets, best first:

1. **definitions** of identifiers used near the cursor in other documents; identifiers nearer
   the cursor score higher, and a definition in a module the current file imports scores
   higher still;
2. the **head of a module the current file imports** (see :mod:`ctx_lsp.prompting.imports`);
3. the head of **recently edited** documents, newest first;
4. the head of other documents in the **same language**.

Definition blocks come from :mod:`ctx_lsp.prompting.blocks` (regular expressions, fast enough
for every keystroke); the per-document index is cached by ``(uri, len(text), hash(text))``, so
re-ranking with unchanged documents costs only dictionary look-ups. The workspace index and
the ranking by structure that uses it are :mod:`ctx_lsp.prompting.related`.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ctx_lsp.prompting.blocks import MAX_BLOCK_CHARS, brace_defs, python_defs
from ctx_lsp.prompting.families import family, language, same_language
from ctx_lsp.prompting.identifiers import KEYWORDS, identifiers_near
from ctx_lsp.prompting.imports import imports, module_matches, module_names
from ctx_lsp.text.opendoc import OpenDoc

__all__ = [
    "HEAD_CHARS",
    "KEYWORDS",
    "MAX_BLOCK_CHARS",
    "Snippet",
    "clear_cache",
    "definitions",
    "identifiers_near",
    "rank",
]

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
    #: one line per definition it carries, with why it was chosen (for the dry run)
    picks: tuple[str, ...] = field(default=(), compare=False)
    #: made of lines that recur in other snippets (signatures): counted line by line
    by_lines: bool = field(default=False, compare=False)


class _DocIndex:
    """What ranking needs of one version of a document, found once: its definition blocks
    and head for every open document; its imports sorted out only for a document that is
    completed in (the others' would be memory for nothing)."""

    def __init__(self, defs: dict[str, tuple[int, int]], found: list[str], head_len: int) -> None:
        self.defs = defs  # name → its first definition block
        self.imports = found
        self.head_len = head_len
        #: as the current document: path of another → which of our imports it implements
        self.implemented: dict[str, list[str]] = {}

    @functools.cached_property
    def modules(self) -> list[str]:
        """Imported module paths."""
        return [m for m in self.imports if "::" not in m]

    @functools.cached_property
    def module_set(self) -> set[str]:
        return {m.strip("/") for m in self.modules}

    @functools.cached_property
    def names(self) -> dict[str, list[str]]:
        """Imported name → the modules it may come from."""
        out: dict[str, list[str]] = {}
        for m in self.imports:
            if "::" in m:
                mod, name = m.split("::", 1)
                out.setdefault(name, []).append(mod)
        return out


_INDEX: OrderedDict[tuple[str, int, int], _DocIndex] = OrderedDict()


#: A dry run builds on the event loop while a completion may build on the builder thread.
_INDEX_LOCK = threading.Lock()


def _index(doc: OpenDoc) -> _DocIndex:
    """The ranking's index of ``doc``, cached by content."""
    key = (doc.uri, len(doc.text), hash(doc.text))
    with _INDEX_LOCK:
        hit = _INDEX.get(key)
        if hit is not None:
            _INDEX.move_to_end(key)
            return hit
    fam = family(language(doc))
    defs = python_defs(doc.text) if fam == "python" else brace_defs(doc.text, fam)
    result = _DocIndex(defs, imports(doc, fam), _head_len(doc.text))
    with _INDEX_LOCK:
        _INDEX[key] = result
        while len(_INDEX) > _INDEX_CACHE_SIZE:
            _INDEX.popitem(last=False)
    return result


def definitions(doc: OpenDoc) -> dict[str, tuple[int, int]]:
    """Name → ``(start, end)`` character range of its definition block in ``doc.text``.

    The first definition of a name wins. Cached by ``(uri, len, hash)`` of the text.
    """
    return _index(doc).defs


def clear_cache() -> None:
    _INDEX.clear()


# --------------------------------------------------------------------------------------------
# Ranking


def _head_len(text: str) -> int:
    """Length of a document's head: its first HEAD_LINES lines, at most HEAD_CHARS, without
    the line breaks that end it (one split in C, not a find per line)."""
    chunk = text[:HEAD_CHARS]
    lines = chunk.split("\n", HEAD_LINES)
    end = len(chunk) - len(lines[-1]) if len(lines) > HEAD_LINES else len(chunk)
    return len(chunk[:end].rstrip("\n"))


@dataclass(frozen=True)
class _Query:
    """What the current document asks for: identifiers near the cursor and its imports."""

    idents: list[str]
    ident_index: dict[str, int]  # name → its place in idents (nearest first)
    own: _DocIndex
    lang: str


#: A candidate snippet, sorted as it is (best first, then in the order found): minus its
#: score, that order, the document, the block's range (end -1: the document's head, measured
#: only if taken), and why: a definition's name with whether it is imported, or a head's
#: reason with None. Tuples, not objects: a ranking makes a hundred of them and takes twenty.
_Candidate = tuple[float, int, OpenDoc, int, int, str, bool | None]


def _query(current: OpenDoc, cursor: int) -> _Query:
    idents = identifiers_near(current.text, cursor)
    return _Query(
        idents,
        {name: i for i, name in enumerate(idents)},  # each name appears once
        _index(current),
        language(current),
    )


def _recency_ranks(docs: Sequence[OpenDoc]) -> dict[str, int]:
    """The most recently modified documents, newest first; equal times share a rank (the
    position of the first document with that time)."""
    by_time = sorted(docs, key=lambda d: d.modified, reverse=True)[:MAX_RECENT]
    ranks: dict[str, int] = {}
    for i, d in enumerate(by_time):
        same = i > 0 and d.modified == by_time[i - 1].modified
        ranks[d.uri] = ranks[by_time[i - 1].uri] if same else i
    return ranks


Hit = tuple[int, str, tuple[int, int]]  # (place of the identifier, name, block range)


#: Where a name is defined among the open documents: path → its block range.
Defining = Callable[[str], Mapping[str, tuple[int, int]]]


def _definition_hits(
    docs: Sequence[OpenDoc], q: _Query, defining: Defining | None = None
) -> tuple[list[tuple[OpenDoc, list[Hit]]], dict[str, int]]:
    """Per document, the definitions of identifiers near the cursor (nearest first, at most
    :data:`MAX_DEFS_PER_DOC`), and how many documents define each name. ``defining`` (the
    open documents' definitions by name) turns a pass over every document's names into a
    look-up per identifier."""
    if defining is not None:
        by_path: dict[str, list[Hit]] = {}
        for i, name in enumerate(q.idents):
            for path, block in defining(name).items():
                found = by_path.setdefault(path, [])
                if len(found) < MAX_DEFS_PER_DOC:
                    found.append((i, name, block))
        hits = [(doc, by_path.get(doc.path, [])) for doc in docs]
    else:
        hits = []
        for doc in docs:
            defs = _index(doc).defs
            # a set intersection in C, not a lookup per identifier per document
            common = (
                sorted(q.ident_index[n] for n in defs.keys() & q.ident_index.keys()) if defs else ()
            )
            hits.append(
                (doc, [(i, q.idents[i], defs[q.idents[i]]) for i in common[:MAX_DEFS_PER_DOC]])
            )
    defining_count: dict[str, int] = {}
    for _, found in hits:
        for _, name, _ in found:
            defining_count[name] = defining_count.get(name, 0) + 1
    return hits, defining_count


def _imported_as(doc: OpenDoc, q: _Query) -> list[str]:
    """The modules of the current document's imports that ``doc`` implements (kept with the
    current document's index: the same for every place in it)."""
    own = q.own
    hit = own.implemented.get(doc.path)
    if hit is None:
        names, go_folder = module_names(doc.path)
        if not go_folder and names.isdisjoint(own.module_set):
            hit = []
        else:
            hit = [m for m in own.modules if module_matches(doc.path, m)]
        own.implemented[doc.path] = hit
    return hit


def _head_score(
    doc: OpenDoc,
    q: _Query,
    imported: list[str],
    recent_rank: dict[str, int],
    recency: float,
    now: float,
) -> tuple[float, str]:
    if imported:
        return 6.0 + recency, f"imported as {imported[0]}"
    if doc.uri in recent_rank:
        age = max(0.0, now - doc.modified)
        return 2.0 + recency + math.exp(-age / 3600.0), "recently edited"
    if same_language(q.lang, language(doc)):
        return 1.0, "same language"
    return 0.0, ""


def _candidates(
    hits: list[tuple[OpenDoc, list[Hit]]],
    defining: dict[str, int],
    q: _Query,
    recent_rank: dict[str, int],
    now: float,
) -> list[_Candidate]:
    """Definitions: nearer identifiers weigh more; a name defined in several documents is
    ambiguous, unless the import says which one is meant; one the current document defines
    too is most likely a local name. Then each document's head (`_head_score`)."""
    out: list[_Candidate] = []
    names, own_defs = q.own.names, q.own.defs
    for doc, found in hits:
        imported = _imported_as(doc, q)
        rank = recent_rank.get(doc.uri)
        recency = 1.0 / (1 + rank) if rank is not None else 0.0
        path = doc.path
        for i, name, (start, end) in found:
            weight = 1.0 / (1.0 + 0.25 * i)
            mods = None if imported else names.get(name)
            known = bool(imported) or bool(mods and any(module_matches(path, m) for m in mods))
            if not known:
                weight /= defining[name]
            score = 10.0 + 8.0 * weight + 0.3 * recency
            if known:
                score += 1.0
            elif name in own_defs:
                score -= 4.0
            out.append((-score, len(out), doc, start, end, name, known))
        score, reason = _head_score(doc, q, imported, recent_rank, recency, now)
        if score:
            out.append((-score, len(out), doc, 0, -1, reason, None))
    return out


def _take(candidates: list[_Candidate], limit: int) -> list[Snippet]:
    """Best first; snippets of one document never overlap."""
    candidates.sort()  # by score, then order: unique, so nothing after it is compared
    taken: dict[str, list[tuple[int, int]]] = {}
    out: list[Snippet] = []
    for neg, _, doc, start, end, what, known in candidates:
        if end < 0:
            end = _index(doc).head_len
        spans = taken.setdefault(doc.uri, [])
        if any(start < e and s < end for s, e in spans):
            continue
        spans.append((start, end))
        reason = what if known is None else f"defines {what}" + (" (imported)" if known else "")
        out.append(Snippet(doc.path, doc.text[start:end], round(-neg, 4), reason))
        if len(out) >= limit:
            break
    return out


def rank(
    current: OpenDoc,
    cursor: int,
    others: Sequence[OpenDoc],
    now: float | None = None,
    limit: int = 20,
    defining: Defining | None = None,
) -> list[Snippet]:
    """Snippets from ``others`` that are likely to help at ``cursor`` in ``current``, best first.

    Scores: definition of an identifier near the cursor 10-18.3 (+1 when the document is
    imported, -4 when the current document defines the name too; the nearer the identifier and
    the fewer documents define it, the higher), head of an imported module 6-7, head of a
    recently edited document 2-4, same language 1. Each document gives at most
    :data:`MAX_DEFS_PER_DOC` definitions plus one head; snippets of a document never overlap.
    ``now`` (default: the current time) is used for the age of ``modified`` times;
    ``defining`` answers where the open documents define a name (the same blocks).
    """
    docs = [d for d in others if d.uri != current.uri and d.text]
    if not docs:
        return []
    q = _query(current, cursor)
    hits, counts = _definition_hits(docs, q, defining)
    candidates = _candidates(
        hits, counts, q, _recency_ranks(docs), time.time() if now is None else now
    )
    return _take(candidates, limit)
