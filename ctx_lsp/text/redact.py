"""Masking of secret values in any text that leaves the machine or reaches disk.

Applied to prompts before they are sent or cached, to everything written under
`.ctx/`, and to log records. Masks keep text readable: `<redacted:aws-key>`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ctx_lsp.text.textkey import LruMemo, text_key

# (kind, pattern); a pattern with a group masks only that group, keeping the rest readable.
_PATTERNS: list[tuple[str, str]] = [
    # a whole block, or a block cut before its END line (masked to the end of the text)
    (
        "private-key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----"
        r"(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|[\s\S]*)",
    ),
    # the end of a block cut before its BEGIN line: the base64 lines above an END line
    (
        "private-key",
        r"(?m)^[ \t]*[A-Za-z0-9+/=]{1,100}[ \t]*(?:\r?\n|\\n)"
        r"(?:[ \t]*[A-Za-z0-9+/=]{1,100}[ \t]*(?:\r?\n|\\n)){0,200}"
        r"[ \t]*-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----",
    ),
    ("anthropic-key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    ("openai-key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    ("gitlab-token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("slack-webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+"),
    ("stripe-key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("aws-key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    ("google-key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("google-oauth", r"\bya29\.[0-9A-Za-z_\-]{20,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi-token", r"\bpypi-[A-Za-z0-9_\-]{50,}"),
    ("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    # after the kinds above, so `Bearer ghp_…` is masked as the token it is. Patterns start with
    # a letter class, not `\b`: re then skips ahead to candidates (a tenth of the time)
    (
        "bearer-token",
        # RFC 6750's token68 alphabet; a digit and a letter, or 32+ characters of mixed case
        # (not `Bearer {token}`, `Bearer $TOKEN`, `Bearer YOUR_TOKEN_HERE`, `Bearer realm=…`)
        r"[Bb](?<!\w[Bb])earer[ \t]+(?:"
        r"(?=[A-Za-z\-._~+/]*[0-9])(?=[0-9\-._~+/]*[A-Za-z])"
        r"(?![A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?![\w.\-/+=:]))"
        r"([A-Za-z0-9\-._~+/]{16,}=*)"
        r"|(?=[a-z0-9\-._~+/]*[A-Z])(?=[A-Z0-9\-._~+/]*[a-z])([A-Za-z0-9\-._~+/]{32,}=*)"
        r")(?![\w\-.~+/=(])",
    ),
    (
        "basic-auth",
        # the header only, with whole base64 (length a multiple of 4) holding a digit, `+/=`
        # or both cases: not `Authorization: Basic credentials` in prose
        r"[Aa](?<!\w[Aa])uthorization[\\\"'\]]{0,3}\s*[:=,]?\s*[\\\"']{0,2}[Bb]asic[ \t]+"
        r"(?:(?=[A-Za-z]*[0-9+/=])|(?=[a-z]*[A-Z])(?=[A-Z]*[a-z]))"
        r"((?:[A-Za-z0-9+/]{4}){2,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)"
        r"(?![\w+/=(:\-]|\.\w)",
    ),
    # Azure storage / Service Bus / Event Hubs connection strings
    ("azure-key", r"(?:Account|SharedAccess)Key\s*=\s*([A-Za-z0-9+/]{20,}={0,2})"),
    (
        "url-password",
        # the user may be empty (redis://:pw@host); `<>` keeps an earlier mask out of it
        r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"<>]*:([^\s@/'\"]{1,})@",
    ),
    ("aws-secret", "(?i)aws_?secret_?(?:access_?)?key\\s*[:=]\\s*[\\\"']?([A-Za-z0-9/+=]{40})"),
    (
        "assignment",
        # bounded name parts ({0,40}) keep this linear on long words and base64url blobs
        r"(?i)\b[\w.\-]{0,40}"
        r"(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key"
        r"|private[_\-]?key|client[_\-]?secret|auth)"
        # not the start of a longer word: author, tokenizer, secretary, AUTHORITY
        r"(?-i:(?![a-z]))(?!(?-i:[A-Z]{2}))"
        # not a name for configuration: TOKEN_URL, token_type, secret_name, AUTH_USER_MODEL…
        r"(?![\w\-]{0,40}?[_\-]?(?:url|uri|endpoint|type|name|header|template|path|file|dir|model"
        r"|mode|len|length|count|size|limit|ids?|field|prefix|suffix|class|format|version"
        r"|validators?)(?![A-Za-z0-9]))"
        r"[\w\-]{0,40}\\?[\"']?"
        # an optional type annotation: `secret_key: str = "…"`
        r"(?:\s*:\s*[A-Za-z_][\w\[\]|., ]{0,40}?(?=\s*=[^=]))?"
        r"\s*(?::=|=>|[:=])\s*"
        # quoted, also JSON-escaped (\"…\") as in logs; not a ${VAR} or {{ template }} reference
        r"(?:\\?\"(?!\$\{|\{\{)([^\"\n\\]{4,})\\?\"|\\?'(?!\$\{|\{\{)([^'\n\\]{4,})\\?'"
        # bare: holds a digit and a letter; not a call, a number or a dotted name (self.x_v2)
        r"|(?=[^\s\"',;()]*\d)(?=[^\s\"',;()]*[A-Za-z])"
        r"(?![A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?![\w.\-/+=:]))"
        r"([^\s\"',;()\[\]{}\\]{8,})(?![(\w]))",
    ),
    (
        "assignment",
        # an environment variable (`.env`, shell) may hold a passphrase with no digit: NAME=value
        # with no spaces, NAME in capitals ending in a secret word (SESSION_SECRET, DB_PASSWORD,
        # SECRET_KEY_BASE), the value bare and ending the line or the word. Not code:
        # `f(SECRET_KEY=secret_key)`, `PASSWORD=password,`, `TOKEN_URL=…`, `PWD=…`
        r"[A-Z](?<![\w.\-$][A-Z])[A-Z0-9_]{0,60}?"
        r"(?:(?<=PASSWORD)|(?<=PASSWD)|(?<=PASSPHRASE)|(?<=SECRET)|(?<=TOKEN)|(?<=APIKEY)"
        r"|(?<=API_KEY)|(?<=ACCESS_KEY)|(?<=ACCESSKEY)|(?<=PRIVATE_KEY)|(?<=PRIVATEKEY))"
        r"(?:_(?:KEY|BASE|VALUE)){0,2}=([A-Za-z][A-Za-z0-9!@#%^*~+\-]{7,})(?=[\s;\"'`\\]|\Z)",
    ),
]
_COMPILED = [(kind, re.compile(p)) for kind, p in _PATTERNS]


@dataclass(frozen=True)
class _Where:
    """Where a pattern can match, so most of a text is never scanned by it.

    A match holds one of `needles` (found with `str.find`, in the case-folded text when
    `fold`), and starts at most `back` characters before it, on characters `run` accepts; with
    `back` < 0 the pattern is run on the whole text when a needle is present. A pattern is only
    ever tried where it could start, so the result is the one `pattern.sub` gives (a test
    checks this against plain `sub` on generated texts)."""

    needles: tuple[str, ...]
    back: int = 0
    run: Callable[[str], bool] | None = None
    fold: bool = False
    #: (text, end of the needle) -> can the needle end this pattern's keyword there?
    then: Callable[[str, int], bool] | None = None


def _word_or(extra: str) -> Callable[[str], bool]:
    # `[\w<extra>]` for str patterns: \w is str.isalnum() plus "_"
    return lambda c: c.isalnum() or c == "_" or c in extra


_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _keyword_ends(text: str, end: int) -> bool:
    # the assignment keyword is not the start of a longer word (`keys`, `tokenizer`, `author`,
    # `AUTHORITY`): every keyword ends with its needle
    if end >= len(text):
        return True
    c = text[end]
    return c not in _LOWER and not (c in _UPPER and text[end + 1 : end + 2] in _UPPER)


_URL_SCHEME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_ENV_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
#: A scan back further than this (a URL scheme is unbounded) falls back to the whole text.
_MAX_BACK = 4096

# One per pattern, in _PATTERNS' order.
_WHERE: list[_Where] = [
    _Where(("-----BEGIN ",)),
    _Where(("PRIVATE KEY",), back=-1),
    _Where(("sk-ant-",)),
    _Where(("sk-",)),
    _Where(("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    _Where(("glpat-",)),
    _Where(("xox",)),
    _Where(("https://hooks.slack.com/",)),
    _Where(tuple(f"{a}_{b}_" for a in ("sk", "rk", "pk") for b in ("live", "test"))),
    _Where(("AKIA", "ASIA", "ABIA", "ACCA")),
    _Where(("AIza",)),
    _Where(("ya29.",)),
    _Where(("eyJ",)),
    _Where(("npm_",)),
    _Where(("pypi-",)),
    _Where(("hf_",)),
    _Where(("Bearer", "bearer")),
    _Where(("Authorization", "authorization")),
    _Where(("AccountKey", "SharedAccessKey")),
    _Where(("://",), back=_MAX_BACK, run=_URL_SCHEME.__contains__),
    _Where(("aws",), fold=True),
    # a name of up to 40 characters, then the keyword: `private_key` puts "key" 8 further
    _Where(
        ("password", "passwd", "pwd", "secret", "token", "key", "auth"),
        back=48,
        run=_word_or(".-"),
        fold=True,
        then=_keyword_ends,
    ),
    _Where(
        ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "APIKEY", "API_KEY",
         "ACCESS_KEY", "ACCESSKEY", "PRIVATE_KEY", "PRIVATEKEY"),
        back=61,
        run=_ENV_NAME.__contains__,
    ),
]  # fmt: skip
assert len(_WHERE) == len(_COMPILED)


def _positions(hay: str, needles: tuple[str, ...]) -> list[int]:
    out: list[int] = []
    for needle in needles:
        at = hay.find(needle)
        while at >= 0:
            out.append(at)
            at = hay.find(needle, at + 1)
    return sorted(set(out)) if len(needles) > 1 else out


def _sub_near(kind: str, pattern: re.Pattern[str], where: _Where, text: str, hay: str) -> str:
    """`pattern.sub` of the masks, trying the pattern only near the needles."""
    at = _positions(hay, where.needles)
    if not at:
        return text
    if where.back < 0:
        return _sub_all(kind, pattern, text)
    out: list[str] = []
    last = 0  # end of the previous match: matches never overlap, as with sub
    for k in at:
        if k < last:
            continue
        if where.then is not None and not any(
            where.then(text, k + len(n)) for n in where.needles if hay.startswith(n, k)
        ):
            continue
        start = k
        floor = max(last, k - where.back)
        if where.run is not None:
            while start > floor and where.run(text[start - 1]):
                start -= 1
            if start == k - _MAX_BACK and start > last:  # an unbounded run went too far back
                return _sub_all(kind, pattern, text)
        for p in range(start, k + 1):  # the leftmost match, as sub finds it
            m = pattern.match(text, p)
            if m is not None:
                out.append(text[last:p])
                out.append(_mask_match(kind, m))
                last = m.end()
                break
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


_ALREADY = re.compile(r"^<redacted:[a-z\-]+>$")


def _mask_match(kind: str, m: re.Match[str]) -> str:
    groups = [i for i in range(1, (m.re.groups or 0) + 1) if m.group(i) is not None]
    # groups used only for optional syntax (private-key's " BLOCK") mean: mask all
    if kind == "private-key" or not groups:
        return f"<redacted:{kind}>"
    text, base = m.group(0), m.start()
    out, last = [], 0
    for i in groups:
        value = m.group(i)
        if _ALREADY.match(value):
            continue
        s, e = m.start(i) - base, m.end(i) - base
        out.append(text[last:s] + f"<redacted:{kind}>")
        last = e
    out.append(text[last:])
    return "".join(out)


#: Values masked wherever they appear, whatever their shape (the API key in use).
_KNOWN: set[str] = set()

#: Bytes the memo of masked texts may hold: masked copies (a text without secrets costs only
#: its entry) plus a fixed charge per entry.
MEMO_MAX_BYTES = 16 * 1024 * 1024
#: Entries the memo may hold, whatever their size (log records are masked one by one too).
MEMO_MAX_ENTRIES = 2048
#: The fixed charge: the key (with its check sample) and the ordered dict's node.
_ENTRY_BYTES = 512


class _MaskMemo(LruMemo[str]):
    """Masked texts by text, bounded in bytes and in entries.

    Documents and prompt parts recur request after request (the server masks every open
    document for every completion), so a hit must cost no pass over the text; see
    :func:`ctx_lsp.text.textkey.text_key`. A text without secrets is stored as "" (unchanged:
    masking never empties a text), not copied: its entry costs only the fixed charge."""

    def __init__(self, max_bytes: int, max_entries: int) -> None:
        super().__init__(max_entries, max_bytes, _masked_size)


def _masked_size(masked: str) -> int:
    return _ENTRY_BYTES + (sys.getsizeof(masked) if masked else 0)


_memo = _MaskMemo(MEMO_MAX_BYTES, MEMO_MAX_ENTRIES)


def register_secret(value: str | None) -> None:
    """Mask `value` everywhere from now on (prompts, `.ctx/`, logs)."""
    if value and len(value) >= 6 and value not in _KNOWN:
        _KNOWN.add(value)
        _memo.clear()


def registered_count() -> int:
    """How many values are masked wherever they appear (grows when one is registered: masked
    texts kept elsewhere are stale then)."""
    return len(_KNOWN)


def redact(text: str, extra_values: Iterable[str] = (), remember: bool = True) -> str:
    """Text with every known secret masked; `extra_values` and registered values (the API
    key in use) are masked wherever they appear. A text without secrets is returned as is
    (the same object). `remember=False` for one-off texts (a streamed answer as it grows),
    which would only push the masks of recurring ones out of the memo."""
    if not text:
        return text
    extra = tuple(extra_values) + tuple(_KNOWN)
    if not remember:
        masked = _mask(text, extra)
        return text if masked == text else masked
    key = (text_key(text), extra)
    found = _memo.get(key)
    if found is None:
        masked = _mask(text, extra)
        found = "" if masked == text else masked
        _memo.put(key, found)
    return found or text


def redact_window(text: str, start: int, cursor: int, end: int) -> tuple[str, str] | None:
    """The masked ``text[start:cursor]`` and ``text[cursor:end]`` (a cursor window), cut of
    ``redact(text)`` (memoized) instead of masked anew: masking 20 KB of window costs 1 to 2
    ms, a cut costs nothing. A secret across a cut is masked whole (on the suffix's side for
    the cursor). None when its masks could not be placed (mask the pieces then)."""
    masked = redact(text)
    if masked is text:
        return text[start:cursor], text[cursor:end]
    key = (text_key(text), tuple(_KNOWN))
    spans = _spans.get(key)
    if spans is None:
        spans = _mask_spans(text, masked) or ()
        _spans.put(key, spans)
    if not spans:
        return None
    at = _masked_at(spans, cursor, False)
    return (
        masked[_masked_at(spans, start, False) : at],
        masked[at : _masked_at(spans, end, True)],
    )


#: Where the masks of memoized texts are: (start, end) in the text and in the masked text.
_Spans = tuple[tuple[int, int, int, int], ...]
_spans: LruMemo[_Spans] = LruMemo(64)


def _mask_spans(text: str, masked: str) -> _Spans | None:
    """Each mask of ``masked`` (which is ``text`` masked) with the span of ``text`` it stands
    for, checked: the text rebuilt from them is ``masked``. None when it is not."""
    spans: list[tuple[int, int, int, int]] = []
    i = j = 0  # where text and masked are at the same place
    while (k := masked.find("<redacted:", j)) >= 0:
        si = i + (k - j)
        e = masked.find(">", k) + 1
        after = masked[e : e + 64]
        if (nxt := after.find("<redacted:")) >= 0:
            after = after[:nxt]
        if e == 0 or (not after and e < len(masked)):
            return None  # two masks side by side: where one ends in the text is unknown
        oe = text.find(after, si) if after else len(text)
        if oe < 0:
            return None
        spans.append((si, oe, k, e))
        i, j = oe, e
    parts, last = [], 0
    for si, oe, k, e in spans:
        parts += [text[last:si], masked[k:e]]
        last = oe
    parts.append(text[last:])
    return tuple(spans) if "".join(parts) == masked else None


def _masked_at(spans: _Spans, offset: int, after: bool) -> int:
    """Where ``offset`` of the text is in the masked text: inside a mask, at its start (or
    with ``after``, its end)."""
    shift = 0
    for si, oe, k, e in spans:
        if offset <= si:
            break
        if offset < oe:
            return e if after else k
        shift = e - oe
    return offset + shift


def mask_registered(text: str) -> str:
    """Only the registered values (the API key in use) masked: for text masked whole before,
    when a value may have been registered since."""
    return _mask_values(text, tuple(_KNOWN)) if _KNOWN else text


def redact_unmemoized(text: str) -> str:
    """`redact` for a text seen once (a file being indexed): no memo slot taken from the
    texts that recur (open documents, prompts). The same object when nothing is masked."""
    if not text:
        return text
    masked = _mask(text, tuple(_KNOWN))
    return text if masked == text else masked


def _mask_values(text: str, extra_values: tuple[str, ...]) -> str:
    for value in extra_values:
        if value and len(value) >= 6:
            text = text.replace(value, "<redacted:api-key>")
    return text


def _sub_all(kind: str, pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: _mask_match(kind, m), text)


def _mask(text: str, extra_values: tuple[str, ...]) -> str:
    text = _mask_values(text, extra_values)
    folded, folded_of = "", None
    for (kind, pattern), where in zip(_COMPILED, _WHERE, strict=True):
        hay = text
        if where.fold:
            if folded_of is not text:  # the text changed with the last mask
                folded, folded_of = (text.lower() if text.isascii() else text.casefold()), text
            if len(folded) != len(text):  # positions would not line up: scan it all
                text = _sub_all(kind, pattern, text)
                continue
            hay = folded
        text = _sub_near(kind, pattern, where, text, hay)
    return text


def _mask_everywhere(text: str, extra_values: tuple[str, ...] = ()) -> str:
    """`_mask` by scanning the whole text with every pattern: the reference it must equal."""
    text = _mask_values(text, extra_values)
    for kind, pattern in _COMPILED:
        text = _sub_all(kind, pattern, text)
    return text


def find_secrets(text: str) -> list[str]:
    """The kinds of secret found (for tests and the dry run)."""
    return [kind for kind, pattern in _COMPILED if pattern.search(text)]


class RedactingFilter(logging.Filter):
    """Masks secrets in log records before any handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: log it as it is
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
