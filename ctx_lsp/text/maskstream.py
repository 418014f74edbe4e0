"""A streamed answer masked as it arrives: raw model text in, masked pieces out.

The pieces put together are the masked answer. A piece never ends inside a word, an open
quote or a line that starts a key block, so a secret being written is masked whole before any
of it goes out; each push masks only the current line (the whole block once a private key's
armor line appears), so a long answer costs no more per delta than a short one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ctx_lsp.text.redact import redact

_QUOTES = "\"'"
_ARMOR = "-----BEGIN"


def _hold_from(raw: str, line_start: int) -> int:
    """Where the text that may still become part of a secret begins (`len(raw)`: none)."""
    line = raw[line_start:]
    head = line.lstrip()[: len(_ARMOR)]
    if head.startswith("-----") or (head and _ARMOR.startswith(head)):
        return line_start  # perhaps a key block's armor line: wait for the whole line
    opened: int | None = None  # where an open quote starts
    free = -1  # the last whitespace outside quotes
    for i, ch in enumerate(line):
        if ch in _QUOTES:
            if opened is None:
                opened = i
            elif line[opened] == ch:
                opened = None
        elif opened is None and ch.isspace():
            free = i
    if opened is not None:
        return line_start + opened
    # the last word may go on (a key being written); a quoted string is a word
    return len(raw) if line[-1:].isspace() else line_start + free + 1


class MaskedStream:
    def __init__(self, secrets: Iterable[str] = (), mask: Callable[[str], str] | None = None):
        extra = tuple(secrets)
        self._mask = mask or (lambda text: redact(text, extra, remember=False))
        self.raw = ""
        self.out = ""  # the masked pieces given out so far
        self._done = 0  # raw characters those pieces stand for
        self._line = 0  # raw offset of the line being masked ...
        self._line_out = 0  # ... and where its masked text starts in `out`

    def push(self, delta: str) -> str:
        """Take a delta; return the masked text that is safe to show now (may be "")."""
        self.raw += delta
        nl = self.raw.rfind("\n", self._line) + 1
        return self._release(min(_hold_from(self.raw, max(nl, self._line)), len(self.raw)))

    def finish(self) -> str:
        """The rest, masked: the answer is complete (or was cut)."""
        return self._release(len(self.raw))

    def _release(self, cut: int) -> str:
        if cut <= self._done:
            return ""
        window = self._mask(self.raw[self._line : cut])
        shown = self.out[self._line_out :]
        if window.startswith(shown):
            piece = window[len(shown) :]
            self.out += piece
            self._done = cut
            self._advance(cut, window)
        else:  # a secret reached back into text already shown: mask the new text by itself
            piece = self._mask(self.raw[self._done : cut])
            self.out += piece
            self._done = self._line = cut
            self._line_out = len(self.out)
        return piece

    def _advance(self, cut: int, window: str) -> None:
        """Start the next window at the last complete line, unless a key block is open."""
        segment = self.raw[self._line : cut]
        nl = segment.rfind("\n")
        if nl < 0 or _ARMOR in segment or segment.count("\n") != window.count("\n"):
            return
        self._line += nl + 1
        self._line_out += window.rfind("\n") + 1
