"""The memo of token counts: a hit gives the same count without encoding again, the memo is
bounded and does not keep the texts it was asked about, and texts are never confused."""

from __future__ import annotations

import gc
import tracemalloc

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
    assert tokens.count_tokens("short text") == 2 and enc.calls == calls + 1, "short: no memo"


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
    assert len(tokens._counts) == 50
    assert held < 50 * 1_000, f"{held} bytes held for 50 entries"


def test_reset_forgets_the_counts(enc: CountingEncoder):
    tokens.count_tokens(doc(1_000))
    assert len(tokens._counts) == 1
    tokens.reset()
    assert len(tokens._counts) == 0
