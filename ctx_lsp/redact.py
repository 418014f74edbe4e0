"""Masking of secret values in any text that leaves the machine or reaches disk.

Applied to prompts before they are sent or cached, to everything written under
`.ctx/`, and to log records. Masks keep text readable: `<redacted:aws-key>`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable

# (kind, pattern); a pattern with a group masks only that group, keeping the rest readable.
_PATTERNS: list[tuple[str, str]] = [
    (
        "private-key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----[\s\S]*?-----END [A-Z0-9 ]*"
        r"PRIVATE KEY( BLOCK)?-----",
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
    # user:password@host in URLs: mask the password only
    ("url-password", r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"]+:([^\s@/'\"]{1,})@"),
    # aws_secret_access_key = ..., password: "...", API_KEY="..." (quoted or bare)
    ("aws-secret", r"(?i)aws_?secret_?(?:access_?)?key\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})"),
    (
        "assignment",
        r"(?i)\b[\w.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key"
        r"|private[_\-]?key|client[_\-]?secret|auth)[\w\-]*[\"']?\s*(?::=|=>|[:=])\s*"
        # a bare value must hold a digit and not be a call, so `token = get_token()` stays
        r"(?:\"([^\"\n]{4,})\"|'([^'\n]{4,})'|(?=[^\s\"',;()]*\d)([^\s\"',;()\[\]{}]{8,})(?![(\w]))",
    ),
]
_COMPILED = [(kind, re.compile(p)) for kind, p in _PATTERNS]
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


def redact(text: str, extra_values: Iterable[str] = ()) -> str:
    """Text with every known secret masked; `extra_values` (e.g. the API key in use)
    are masked wherever they appear."""
    if not text:
        return text
    return _redact(text, tuple(extra_values))


@functools.lru_cache(maxsize=512)
def _redact(text: str, extra_values: tuple[str, ...]) -> str:
    # memoized: the same system message (summary, related code) recurs request after request
    for value in extra_values:
        if value and len(value) >= 6:
            text = text.replace(value, "<redacted:api-key>")
    for kind, pattern in _COMPILED:
        text = pattern.sub(lambda m, k=kind: _mask_match(k, m), text)
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
