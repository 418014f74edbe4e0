"""Where a file uses the names its imports bind (``parse_bool(``, ``util.Registry``): counted
around each cursor place by :mod:`ctx_lsp.prompting.related`.

A version of a file is scanned once, ahead of the completions in it (:meth:`FileUses.scan`):
a cursor place then costs two bisections and a count of small integers, instead of a pass of a
regular expression over 8 KB. A version not scanned yet (the user has just typed) is looked at
window by window, with the same matches.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections import Counter

from ctx_lsp.prompting.imports import Bindings

#: Any identifier, with the attribute after it: what a wildcard import may have bound.
USE_RE = re.compile(r"(?<![\w$.])([A-Za-z_$][\w$]*)(?:\.([A-Za-z_$][\w$]*))?")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_RUN = re.compile(r"[\w$.]*")


def bound_uses(b: Bindings) -> re.Pattern[str]:
    """`USE_RE` for the names and module aliases the file binds only (`USE_RE` itself when a
    wildcard may bind any name): the same matches of those, and the other identifiers are
    never made into strings (half the time of the pass)."""
    if b.wildcards:
        return USE_RE
    names = {n for n in (*b.names, *b.modules) if _IDENT.fullmatch(n)}  # ("os.path": never)
    bound = sorted(names, key=lambda n: (-len(n), n))
    alternatives = "|".join(map(re.escape, bound)) or r"(?!)"
    return re.compile(rf"(?<![\w$.])({alternatives})(?![\w$])(?:\.([A-Za-z_$][\w$]*))?")


class FileUses:
    """The uses of one version of a file's bound names (one per version, see `related`)."""

    def __init__(self, b: Bindings) -> None:
        self.pattern = bound_uses(b)
        self._starts: array[int] | None = None  # where each use starts, in order
        self._ids: array[int] | None = None  # which (name, attribute) it is, in `_pairs`
        self._pairs: list[tuple[str, str]] = []

    @property
    def scanned(self) -> bool:
        return self._starts is not None

    def scan(self, text: str) -> None:
        """Find every use in `text` (2 to 4 ms for 100 KB; ahead, on the builder thread)."""
        ids: dict[tuple[str, str], int] = {}
        starts, which = array("l"), array("l")
        for m in self.pattern.finditer(text):
            starts.append(m.start())
            which.append(ids.setdefault(m.groups(""), len(ids)))
        self._pairs = list(ids)
        self._ids, self._starts = which, starts  # last: `scanned` once both are whole

    def between(self, text: str, lo: int, hi: int) -> Counter[tuple[str, str]]:
        """How often each (name, attribute or "") is used by a match that starts in
        [lo, hi) of `text`, the version this was made for."""
        starts, ids = self._starts, self._ids
        if starts is None or ids is None:
            # to the end of the name (and attribute) running over `hi`: a match is never cut
            end = _RUN.match(text, hi).end() if hi < len(text) else hi
            return Counter(
                m.groups("") for m in self.pattern.finditer(text, lo, end) if m.start() < hi
            )
        counts = Counter(ids[bisect_left(starts, lo) : bisect_left(starts, hi)])
        return Counter({self._pairs[k]: n for k, n in counts.items()})
