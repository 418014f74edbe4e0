"""Turning a model's reply into text an editor can insert at the cursor."""

from __future__ import annotations

import re
import string

_FENCE = re.compile(r"^\s*```[\w+#.-]*[ \t]*\n(.*?)(?:\n```[ \t]*\s*)?$", re.DOTALL)
_CURSOR = "<CURSOR>"
_CLOSERS = set(")]}\"'`;")


def strip_fences(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


def clean_completion(reply: str, prefix: str, suffix: str) -> str:
    """The part of `reply` to insert between `prefix` and `suffix`.

    Models often wrap code in fences, echo the line before the cursor, or run on
    into the code after it; none of that may be inserted twice.
    """
    text = strip_fences(reply).replace(_CURSOR, "")
    if not text.strip():
        return ""
    # an echo of the current line (or more) before the cursor
    line_start = prefix[prefix.rfind("\n") + 1 :]
    if line_start and not line_start.strip() and text.startswith(line_start):
        text = text[len(line_start) :]  # the indentation is already there
    for head in (prefix[-400:], line_start):
        if head.strip() and text.startswith(head):
            text = text[len(head) :]
            break
    else:
        stripped_line = line_start.lstrip()
        if stripped_line and text.lstrip().startswith(stripped_line) and len(stripped_line) > 2:
            text = text.lstrip()[len(stripped_line) :]
    # the word being typed, retyped whole ("sca" → "scale_vector(...)")
    word = word_before(prefix)
    if len(word) >= 2 and text.startswith(word) and len(text) > len(word):
        text = text[len(word) :]
    # the longest tail of the text that repeats the start of the suffix
    tail = suffix.lstrip(" \t")
    for n in range(min(len(text), len(tail)), 0, -1):
        closing = set(tail[:n]) <= _CLOSERS
        if text.endswith(tail[:n]) and (n >= 3 or n == len(tail) or closing):
            text = text[:-n]
            break
    if "\n" not in text:
        text = text.rstrip()
    # a trailing newline separates the insert from code right after the cursor; before
    # an existing line break it would only add a blank line
    if text.endswith("\n") and (not suffix or suffix.startswith(("\n", "\r"))):
        text = text.rstrip("\r\n")
    return text


_WORD_CHARS = frozenset(string.ascii_letters + string.digits + "_")


def word_before(prefix: str) -> str:
    """The identifier being typed, for completion-item filtering.

    Walks back from the end: a regular expression anchored at the end would try every
    position of a window of thousands of characters."""
    start = len(prefix)
    while start > 0 and prefix[start - 1] in _WORD_CHARS:
        start -= 1
    while start < len(prefix) and prefix[start].isdigit():  # an identifier starts with no digit
        start += 1
    return prefix[start:]
