"""The index of one workspace folder: every file that may enter the context, with its
definitions and imports.

* Built off the event loop (:meth:`WorkspaceIndex.build`, on the caller's thread: the server
  gives it one), from git's listing of the work tree (or a walk), honouring the folder's
  :class:`~ctx_lsp.workspace.exclusion.Excluder`: ignored, secret and huge files stay out.
* Kept current by :meth:`refresh` (paths a client reported changed, a saved document) and
  :meth:`scan` (a stat of every known file plus a new listing: the cheap way for clients
  that do not watch files). Open documents are not read from here at all: their live text
  wins (see :mod:`ctx_lsp.prompting.related`).
* Persisted in `.ctx/index/files.json` (atomic writes, 0600, signatures masked), keyed by path,
  mtime and size, so a restart re-parses only what changed.

Reads (the lookups) and writes (updates) may come from different threads: one lock guards
the maps, and lookups return copies.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctx_lsp.prompting.families import family
from ctx_lsp.prompting.imports import imports, module_names
from ctx_lsp.prompting.index.symbols import Symbol, extract
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.text.languages import EXTENSION_LANGUAGES, language_of
from ctx_lsp.text.opendoc import MAX_RELATED_CHARS, OpenDoc
from ctx_lsp.text.redact import redact, redact_unmemoized

log = logging.getLogger(__name__)

#: Format of `.ctx/index/files.json`.
VERSION = 1
STORE_NAME = "index/files.json"
#: Most files indexed; a larger workspace is cut (and the log says so).
MAX_FILES = 50_000
#: Folders never indexed, whatever the ignore files say (dependencies, caches).
SKIPPED_DIRS = frozenset(
    {".git", ".ctx", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox"}
)
#: Look-up answers kept between two changes of the index, at most.
MAX_ANSWERS = 20_000
#: Seconds between two stat scans asked for by :meth:`WorkspaceIndex.scan_due`.
SCAN_EVERY_S = 2.0

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # relative to the root, posix
    mtime_ns: int
    size: int
    language: str
    symbols: tuple[Symbol, ...]
    imports: tuple[str, ...]  # as ctx_lsp.prompting.imports.imports gives them


def index_text(
    path: str, text: str, language: str = "", tree_key: str | None = None
) -> tuple[tuple[Symbol, ...], tuple[str, ...]]:
    """Definitions (signatures and doc lines masked) and imports of one file's text. With
    ``tree_key`` (a file indexed before), its tree is kept for the next change."""
    lang = language_of(path, language)
    symbols = extract(text, lang, tree_key)
    # masked in one pass over all of them; one by one only when that pass found something
    joined = "\n".join(f"{s.signature}\n{s.doc}" for s in symbols)
    if redact_unmemoized(joined) is not joined:
        symbols = [_replace(s, redact(s.signature), redact(s.doc)) for s in symbols]
    doc = OpenDoc("", path, lang, text, 0.0)
    return tuple(symbols), tuple(imports(doc, family(lang)))


def _replace(s: Symbol, signature: str, doc: str) -> Symbol:
    return Symbol(s.name, s.kind, signature, doc, s.line, s.end_line, s.parent)


class WorkspaceIndex:
    def __init__(
        self,
        root: Path,
        allowed: Callable[[str], bool],
        store: CtxStore | None = None,
    ) -> None:
        self.root = root
        self.allowed = allowed  # rel → may it enter the context?
        self.store = store
        self._lock = threading.Lock()
        self._files: dict[str, FileEntry] = {}
        # name → the paths defining it (a tuple: most names have one, and tuples are small)
        self._by_name: dict[str, tuple[str, ...]] = {}
        self._by_module: dict[str, set[str]] = {}
        self._by_prefix: dict[str, set[str]] = {}  # first two characters → names
        self._importers: dict[str, set[str]] = {}  # module name → files importing it
        self.ready = False
        self.generation = 0  # bumped by every change: lets callers memoize on it
        self.dirty = False  # changed since it was last saved
        self.last_scan = 0.0
        self.stats: dict[str, float] = {}
        self._recent: tuple[tuple[int, int], list[str]] | None = None
        # answers of `defining` and `implementing` until the next change: a ranking asks
        # dozens of names, a file's symbols are scanned once per name, not once per ranking
        self._answers: dict[tuple[Any, ...], list[Any]] = {}

    # -- lookups ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._files)

    def entry(self, rel: str) -> FileEntry | None:
        return self._files.get(rel)

    def paths(self) -> list[str]:
        with self._lock:
            return list(self._files)

    def defining(self, name: str, most: int = 0) -> list[tuple[str, Symbol]]:
        """Where ``name`` is defined; nothing when ``most`` is given and more files than
        that define it (an ambiguous name is not worth the look-up)."""
        with self._lock:
            hit = self._answers.get(("def", name, most))
            if hit is None:
                paths = self._by_name.get(name, ())
                hit = (
                    []
                    if most and len(paths) > most
                    else [(p, s) for p in paths for s in self._files[p].symbols if s.name == name]
                )
                self._remember(("def", name, most), hit)
            return list(hit)

    def with_prefix(self, prefix: str, limit: int = 200) -> list[str]:
        """Names starting with ``prefix`` (at least two characters), shortest first."""
        if len(prefix) < 2:
            return []
        with self._lock:
            names = [n for n in self._by_prefix.get(prefix[:2], ()) if n.startswith(prefix)]
        names.sort(key=lambda n: (len(n), n))
        return names[:limit]

    def implementing(self, module: str) -> list[str]:
        """Files implementing ``module`` (a path suffix without extension, or a Go package)."""
        module = module.strip("/")
        with self._lock:
            hit = self._answers.get(("impl", module))
            if hit is None:
                found = set(self._by_module.get(module, ()))
                if not found and "/" in module:  # Go: an import path ending with the folder
                    parts = module.split("/")
                    for i in range(1, len(parts)):
                        found |= self._by_module.get("/".join(parts[i:]), set())
                        if found:
                            break
                hit = sorted(found)
                self._remember(("impl", module), hit)
            return list(hit)

    def importers(self, rel: str) -> list[str]:
        """Files whose imports name ``rel``'s module."""
        names, _ = module_names(rel)
        with self._lock:
            out: set[str] = set()
            for n in names:
                out |= self._importers.get(n, set())
        out.discard(rel)
        return sorted(out)

    def recent(self, n: int = 5) -> list[str]:
        """The ``n`` files modified last (kept until the index changes)."""
        cached = self._recent
        if cached is not None and cached[0] == (self.generation, n):
            return cached[1]
        with self._lock:
            entries = heapq.nlargest(n, self._files.values(), key=lambda e: e.mtime_ns)
        paths = [e.path for e in entries]
        self._recent = ((self.generation, n), paths)
        return paths

    def summary(self) -> dict[str, Any]:
        """State for the user: ready, files, and of the last build how many were loaded from
        `.ctx/index/` and how many parsed."""
        return {
            "ready": self.ready,
            "files": len(self._files),
            "loaded": int(self.stats.get("loaded", 0)),
            "parsed": int(self.stats.get("parsed", 0)),
        }

    def summary_text(self) -> str:
        s = self.summary()
        if not s["ready"]:
            return "being built"
        return f"{s['files']} files ({s['loaded']} from .ctx/index/, {s['parsed']} parsed)"

    # -- changes ------------------------------------------------------------------------------
    def _put(self, entry: FileEntry | None, rel: str) -> None:
        """Replace ``rel``'s entry (None removes it); the lock is held."""
        old = self._files.pop(rel, None)
        if old is not None:
            for name in {s.name for s in old.symbols}:
                paths = tuple(p for p in self._by_name.get(name, ()) if p != rel)
                if paths:
                    self._by_name[name] = paths
                else:
                    self._by_name.pop(name, None)
                    bucket = self._by_prefix.get(name[:2])
                    if bucket is not None:
                        bucket.discard(name)
            for m in old.imports:
                self._importers.get(m.split("::", 1)[0].strip("/"), set()).discard(rel)
        if entry is None:
            if old is not None:
                names, folder = module_names(rel)
                for n in (*names, folder):
                    self._by_module.get(n, set()).discard(rel)
            return
        self._files[rel] = entry
        for name in {s.name for s in entry.symbols}:
            self._by_name[name] = (*self._by_name.get(name, ()), rel)
            self._by_prefix.setdefault(name[:2], set()).add(name)
        for m in entry.imports:
            if "::" not in m:
                self._importers.setdefault(m.strip("/"), set()).add(rel)
        if old is None:
            names, folder = module_names(rel)
            for n in names:
                self._by_module.setdefault(n, set()).add(rel)
            if folder:
                self._by_module.setdefault(folder, set()).add(rel)

    def _parse(self, rel: str, st: os.stat_result, again: bool = False) -> FileEntry | None:
        """``again``: a file indexed before, changed (it is re-parsed incrementally next)."""
        try:
            with open(self.root / rel, "rb") as fh:
                data = fh.read(MAX_RELATED_CHARS + 1)
        except OSError:
            return None
        if len(data) > MAX_RELATED_CHARS or b"\0" in data[:8192]:
            return None  # huge or binary
        text = data.decode("utf-8", "replace")
        lang = language_of(rel)
        symbols, imps = index_text(rel, text, lang, str(self.root / rel) if again else None)
        return FileEntry(rel, st.st_mtime_ns, st.st_size, lang, symbols, imps)

    def update(self, rel: str) -> bool:
        """Re-read ``rel`` if its stat changed (or drop it when gone or excluded); True when
        the index changed."""
        st = _stat(self.root / rel) if indexable(rel) and self.allowed(rel) else None
        old = self._files.get(rel)
        if st is None or st.st_size > MAX_RELATED_CHARS:
            if old is None:
                return False
            with self._lock:
                self._put(None, rel)
                self._changed()
            return True
        if old is not None and (old.mtime_ns, old.size) == (st.st_mtime_ns, st.st_size):
            return False
        entry = self._parse(rel, st, again=old is not None)
        with self._lock:
            self._put(entry, rel)
            self._changed()
        return True

    def refresh(self, rels: Iterable[str]) -> int:
        """:meth:`update` for each path; the number that changed. Saved when any did."""
        n = sum(self.update(rel) for rel in rels)
        if n:
            self.save()
        return n

    def _changed(self) -> None:
        self._bump()
        self.dirty = True

    def _remember(self, key: tuple[Any, ...], answer: list[Any]) -> None:
        """The lock is held. Bounded: a long session without changes asks many names."""
        if len(self._answers) >= MAX_ANSWERS:
            self._answers.clear()
        self._answers[key] = answer

    def _bump(self) -> None:
        """The lock is held."""
        self.generation += 1
        self._answers.clear()

    # -- building and scanning ----------------------------------------------------------------
    def build(self, progress: Progress | None = None) -> None:
        """Load what was persisted, then bring it up to date with the work tree."""
        start = time.perf_counter()
        with _bulk():
            self.load()
            loaded = time.perf_counter()
            self.scan(progress)
        self.ready = True
        self.stats.update(
            files=len(self._files),
            load_s=loaded - start,
            build_s=time.perf_counter() - start,
        )
        log.info(
            "index of %s: %d files, %d parsed, in %.2f s",
            self.root,
            len(self._files),
            self.stats.get("parsed", 0),
            time.perf_counter() - start,
        )

    def scan(self, progress: Progress | None = None) -> int:
        """List the work tree, stat every file, re-parse what changed; saves if anything did."""
        self.last_scan = time.monotonic()
        listed = [rel for rel in list_sources(self.root) if self.allowed(rel)]
        wanted = set(listed)
        changed = 0
        for rel in [r for r in self._files if r not in wanted]:
            with self._lock:
                self._put(None, rel)
                self._changed()
            changed += 1
        parsed = 0
        for i, rel in enumerate(listed):
            if progress is not None and i % 200 == 0:
                progress(i, len(listed))
            if self.update(rel):
                changed += 1
                parsed += 1
        self.stats["parsed"] = self.stats.get("parsed", 0) + parsed
        if changed:
            self.save()
        return changed

    def scan_due(self) -> bool:
        return self.ready and time.monotonic() - self.last_scan >= SCAN_EVERY_S

    # -- persistence --------------------------------------------------------------------------
    def save(self) -> None:
        if self.store is None or not self.dirty:
            return
        with self._lock:
            files = {
                e.path: [
                    e.mtime_ns,
                    e.size,
                    e.language,
                    [
                        [s.name, s.kind, s.signature, s.doc, s.line, s.end_line, s.parent]
                        for s in e.symbols
                    ],
                    list(e.imports),
                ]
                for e in self._files.values()
            }
            self.dirty = False
        data = json.dumps(
            {"version": VERSION, "data": {"files": files}},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        try:
            self.store.write_bytes_atomic(STORE_NAME, data.encode("utf-8"))
        except OSError as exc:
            log.warning("cannot save the code index: %s", exc)

    def load(self) -> int:
        """Entries from the persisted index whose file is still allowed; their stat is checked
        by the scan that follows. Returns how many were loaded."""
        if self.store is None:
            return 0
        got = self.store.read_json_versioned(STORE_NAME, VERSION)
        if got is None:
            return 0
        files = got[1].get("files") if isinstance(got[1], dict) else None
        if not isinstance(files, dict):
            return 0
        n = 0
        with self._lock:
            for rel, row in files.items():
                try:
                    mtime, size, lang, syms, imps = row
                    entry = FileEntry(
                        rel,
                        int(mtime),
                        int(size),
                        str(lang),
                        tuple(
                            Symbol(*map(str, s[:4]), int(s[4]), int(s[5]), str(s[6])) for s in syms
                        ),
                        tuple(str(m) for m in imps),
                    )
                except (TypeError, ValueError, IndexError):
                    continue  # a damaged row: that file is parsed again
                if indexable(rel) and self.allowed(rel):
                    self._put(entry, rel)
                    n += 1
            self._bump()
        self.stats["loaded"] = n
        return n


@contextlib.contextmanager
def _bulk() -> Iterator[None]:
    """No cyclic garbage collection while a whole index is made: it allocates ~10 objects per
    definition, none of them in a cycle, and the collector would walk them over and over
    (most of a 10,000-file load went there)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _symbol(row: list[Any]) -> Symbol:
    name, kind, signature, doc, line, end, parent = row
    return Symbol(
        sys.intern(str(name)), sys.intern(str(kind)), str(signature), str(doc), int(line),
        int(end), sys.intern(str(parent)),
    )  # fmt: skip


def indexable(rel: str) -> bool:
    """A source file of a language the index knows, outside the skipped folders."""
    if os.path.splitext(rel)[1].lower() not in EXTENSION_LANGUAGES:
        return False
    return not any(part in SKIPPED_DIRS for part in rel.split("/")[:-1])


def _stat(path: Path) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if (st.st_mode & 0o170000) == 0o100000 else None


def list_sources(root: Path) -> list[str]:
    """Indexable files of the work tree: git's listing (tracked and untracked, not ignored),
    else a walk; capped at :data:`MAX_FILES`."""
    out: list[str] = []
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        listing = (
            proc.stdout.decode("utf-8", "surrogateescape").split("\0")
            if proc.returncode == 0
            else None
        )
    except (OSError, subprocess.SubprocessError):
        listing = None
    if listing is None:
        listing = []
        for current, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
            base = Path(current).relative_to(root).as_posix()
            prefix = "" if base == "." else base + "/"
            listing += [prefix + n for n in names]
            if len(listing) > 4 * MAX_FILES:
                break
    for rel in dict.fromkeys(listing):
        if rel and indexable(rel):
            out.append(rel)
            if len(out) >= MAX_FILES:
                log.warning("code index of %s cut at %d files", root, MAX_FILES)
                break
    return out


def entry_json(entry: FileEntry) -> dict[str, Any]:
    """A file's entry as plain data (for tests and the CLI)."""
    return {
        "path": entry.path,
        "language": entry.language,
        "symbols": [
            {"name": s.name, "kind": s.kind, "signature": s.signature, "line": s.line + 1}
            for s in entry.symbols
        ],
        "imports": list(entry.imports),
    }
