"""The memo of token counts: a hit gives the same count without encoding again, the memo is
bounded and does not keep the texts it was asked about, and texts are never confused."""

from __future__ import annotations

import gc
import random
import tracemalloc
from pathlib import Path

import pytest

from ctx_lsp.text import tokens


class CountingEncoder:
    """Counts words, and how many texts it was asked to encode."""

    def __init__(self) -> None:
        self.calls = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.calls += 1
        return [0] * len(text.split())


@pytest.fixture
def enc(monkeypatch: pytest.MonkeyPatch) -> CountingEncoder:
    fake = CountingEncoder()
    monkeypatch.setattr(tokens, "_encoder", fake)
    monkeypatch.setattr(tokens, "_counts", tokens._CountMemo(tokens.COUNTS_MAX_ENTRIES))
    return fake


def doc(chars: int, seed: int = 0) -> str:
    line = f"value_{seed} = compute(1, 2)  # padding\n"
    return line * (chars // len(line))


def test_a_hit_gives_the_same_count_without_encoding_again(enc: CountingEncoder):
    text = doc(100_000)
    n = tokens.count_tokens(text)
    assert n == len(text.split())
    calls = enc.calls  # one, or one per piece (a long text is counted in pieces)
    assert tokens.count_tokens(text) == n and enc.calls == calls
    assert tokens.count_tokens("".join([text[:7], text[7:]])) == n and enc.calls == calls
    assert tokens.count_tokens("short text") == 2 and enc.calls == calls + 1
    assert tokens.count_tokens("short text") == 2 and enc.calls == calls + 1, "short: a hit too"


@pytest.mark.parametrize("at", [0.5, 1 / 3], ids=["in-the-middle", "at-a-third"])
def test_texts_that_differ_only_inside_are_not_confused(enc: CountingEncoder, at: float):
    pad = doc(40_000)
    cut = int(len(pad) * at)
    one_word = pad[:cut] + "abcdefghij" + pad[cut:]
    three_words = pad[:cut] + "abc def gh" + pad[cut:]
    assert len(one_word) == len(three_words)
    assert tokens.count_tokens(three_words) == tokens.count_tokens(one_word) + 2


def test_the_memo_is_bounded_and_keeps_no_text(monkeypatch: pytest.MonkeyPatch, enc):
    monkeypatch.setattr(tokens, "_counts", tokens._CountMemo(max_entries=50))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):  # 200 texts of 20 KB: 4 MB, were they kept
            text = doc(20_000, seed=i)
            tokens.count_tokens(text)
        del text
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 40 <= len(tokens._counts) <= 50  # over the bound, the oldest eighth goes at once
    assert held < 50 * 1_000, f"{held} bytes held for 50 entries"


def test_reset_forgets_the_counts(enc: CountingEncoder):
    tokens.count_tokens(doc(1_000))
    assert len(tokens._counts) >= 1  # the text, and its pieces when it was cut
    tokens.reset()
    assert len(tokens._counts) == 0


def _piece_starts(text: str) -> set[int]:
    starts, pos = set(), 0
    for piece in tokens._pieces(text):
        starts.add(pos)
        pos += len(piece)
    return starts


def test_a_cursor_window_is_counted_from_its_documents_pieces(enc: CountingEncoder):
    """The window's far ends are moved to where the document's pieces end, so a window at a
    new place costs the encoding of the piece around the cursor (and the template's short
    lines), not of pieces cut at both ends: their counts are known from the document."""
    source = Path(tokens.__file__).parent.parent / "prompting" / "related.py"
    text = source.read_text(encoding="utf-8")
    starts = _piece_starts(text)
    tokens.count_tokens(text)  # as the server does ahead for an open document
    encoded: list[str] = []
    count = enc.encode_ordinary
    enc.encode_ordinary = lambda t: encoded.append(t) or count(t)  # type: ignore[method-assign]
    rng = random.Random(3)
    snapped = 0
    for _ in range(40):
        cursor = rng.randrange(len(text) // 4, len(text) * 3 // 4)
        before, after = 6000, 2000
        margin = 2000
        prefix, suffix = tokens.window_at_pieces(
            text[max(0, cursor - before - margin) : cursor],
            text[cursor : cursor + after + margin],
            before,
            after,
        )
        start, end = cursor - len(prefix), cursor + len(suffix)
        # moved to a piece's start and end, by a quarter and a half of their sides at most,
        # or left where they were (no piece ends that near)
        assert start in starts or len(prefix) == before
        assert end + 1 in starts or len(suffix) == after
        assert abs(len(prefix) - before) <= before / 4 and abs(len(suffix) - after) <= after / 2
        if start not in starts or end + 1 not in starts:
            continue
        snapped += 1
        task = f"File: related.py\n\n<file>\n{prefix}<CURSOR>{suffix}\n</file>\n\nReply.\n"
        encoded.clear()
        counted = tokens.count_tokens(task)
        # the template's lines are a hit after the first window; of the others, only the
        # cursor's piece (and the one before it, when the cursor's line, with the marker in
        # it, is one a piece starts at)
        pieces = tokens._pieces(task)
        k = next(i for i, p in enumerate(pieces) if "<CURSOR>" in p)
        if snapped > 1:
            assert encoded and all(t in (pieces[k - 1], pieces[k]) for t in encoded), encoded
        assert counted == len(enc.encode_ordinary(task))
    assert snapped >= 30


def test_a_closing_tag_starts_a_piece() -> None:
    line = "value = compute(1, 2)  # padding\n"
    text = line * 40 + "</file>\n" + line * 40
    assert any(p.startswith("</file>") for p in tokens._pieces(text))


def test_signatures_grouped_anew_are_counted_from_their_lines(enc: CountingEncoder):
    """A section of signatures is grouped anew for each cursor from lines seen before: its
    count comes from their counts, and only its new header is encoded."""
    lines = [f"def handler_{i}(request, timeout: float = {i}.0) -> Response:" for i in range(30)]
    rng = random.Random(5)
    first = "### a.py (signatures)\n```python\n" + "\n".join(lines) + "\n```\n\n"
    assert tokens.count_tokens(first, by_lines=True) == len(first.split())
    for k in range(10):
        group = rng.sample(lines, 8)
        section = f"### a.py (signatures {k})\n```python\n" + "\n".join(group) + "\n```\n\n"
        calls = enc.calls
        assert tokens.count_tokens(section, by_lines=True) == len(section.split())
        assert enc.calls - calls == 1, "only the header line is new"


def test_pieces_are_cut_where_cuts_before_says() -> None:
    """`_pieces` spells the rule out for speed; the window's ends are moved by `cuts_before`:
    both cut the same lines, or windows would not be made of their documents' pieces."""
    for source in (Path(tokens.__file__).parent.parent).rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        expected, pos, tag = {0}, 0, False
        for line in text.split("\n"):
            if pos and (tokens.cuts_before(line) or (tag and tokens.may_cut_before(line))):
                expected.add(pos)
            pos += len(line) + 1
            tag = line.startswith("<") and line.endswith(">") and not line.startswith("</")
        assert _piece_starts(text) == expected, source
