"""Memo keys for texts, which do not hold the text (documents and prompts run to megabytes)."""

from __future__ import annotations

#: Characters kept from the start, the middle and the end of a text, as a check.
SAMPLE = 16


def text_key(text: str) -> object:
    """A memo key for `text` that does not hold it.

    Its length and `hash()` (a keyed 64-bit SipHash that CPython caches on the str: free for
    an open document's text seen before), with the first, middle and last characters as a
    check. Short texts are their own key."""
    n = len(text)
    if n <= 6 * SAMPLE:
        return text
    mid = n // 2
    sample = text[:SAMPLE] + text[mid - SAMPLE : mid + SAMPLE] + text[-SAMPLE:]
    return (n, hash(text), sample)
