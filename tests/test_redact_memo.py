"""The memo of masked texts: a hit is cheap and gives the same result, the memo is bounded in
bytes and does not keep the texts it was asked about, and texts are never confused."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from ctx_lsp.text import redact as redact_module
from ctx_lsp.text import textkey
from ctx_lsp.text.redact import redact, register_secret
from tests.secrets_corpus import ALNUM, Corpus

C = Corpus(seed=777)
PW = C.password(18)
LINE = "value = compute(1, 2)  # padding padding padding\n"


def doc(chars: int, seed: int = 0) -> str:
    line = LINE.replace("value", f"value_{seed}")
    return line * (chars // len(line))


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch) -> redact_module._MaskMemo:
    """A fresh, empty memo of the default size."""
    fresh = redact_module._MaskMemo(redact_module.MEMO_MAX_BYTES, redact_module.MEMO_MAX_ENTRIES)
    monkeypatch.setattr(redact_module, "_memo", fresh)
    return fresh


@pytest.fixture
def masked_count(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts actually masked (memo misses), in order."""
    calls: list[str] = []
    real = redact_module._mask

    def counting(text: str, extra: tuple[str, ...]) -> str:
        calls.append(text)
        return real(text, extra)

    monkeypatch.setattr(redact_module, "_mask", counting)
    return calls


def test_a_hit_gives_the_same_result_without_masking_again(memo, masked_count):
    clean = doc(50_000)
    assert redact(clean) is clean, "a text without secrets comes back as it is"
    assert redact(clean) is clean and len(masked_count) == 1
    copy = "".join([clean[:10], clean[10:]])
    assert copy is not clean
    assert redact(copy) is copy and len(masked_count) == 1, "an equal text is a hit too"

    secret = clean[:20_000] + f'password = "{PW}"\n' + clean[20_000:]
    first = redact(secret)
    assert PW not in first and "<redacted:assignment>" in first
    assert redact(secret) is first and len(masked_count) == 2
    assert redact(secret[:-1] + secret[-1]) is first and len(masked_count) == 2

    # the values to mask are part of the key
    value = C.chars(ALNUM, 24)
    with_value = clean + value
    assert redact(with_value) is with_value
    assert value not in redact(with_value, [value]) and len(masked_count) == 4


class _Watched(str):
    """A text that counts the characters read through its methods (slices, copies, encodes,
    comparisons, searches). `hash()` is str's own, which CPython caches on the object."""

    read = 0

    def _touch(self, n: int) -> None:
        _Watched.read += n

    def __getitem__(self, key):
        got = str.__getitem__(self, key)
        self._touch(len(got))
        return got

    def __iter__(self):
        self._touch(len(self))
        return str.__iter__(self)

    def __eq__(self, other: object) -> bool:
        self._touch(len(self))
        return str.__eq__(self, other)

    __hash__ = str.__hash__

    def __add__(self, other: str) -> str:
        self._touch(len(self))
        return str.__add__(self, other)


def _watch_whole_text_methods() -> None:
    names = "encode lower upper casefold find count replace split splitlines strip isascii"
    for name in [*names.split(), "startswith", "endswith", "__contains__"]:
        real = getattr(str, name)

        def watched(self, *args, _real=real, **kwargs):
            self._touch(len(self))
            return _real(self, *args, **kwargs)

        setattr(_Watched, name, watched)


_watch_whole_text_methods()


def test_a_hit_on_a_large_document_costs_no_pass_over_it(memo, masked_count):
    """The server masks every open document for every completion request: a hit reads a few
    characters of the text, never all of it (counted; the time is in bench/bench_masking.py)."""
    text = _Watched(doc(4_000_000))
    assert redact(text) is text and len(masked_count) == 1
    _Watched.read = 0
    for _ in range(1000):
        assert redact(text) is text
    assert len(masked_count) == 1, "every hit came from the memo"
    # the key samples 64 characters; a pass over the text would read 4 million
    assert _Watched.read <= 1000 * 6 * textkey.SAMPLE, f"{_Watched.read} characters read"


@pytest.mark.parametrize("at", [0.5, 1 / 3], ids=["in-the-middle", "at-a-third"])
def test_texts_that_differ_only_inside_are_not_confused(memo, at: float):
    assignment = f'password = "{PW}"'
    pad = doc(60_000)
    cut = int(len(pad) * at)
    benign = pad[:cut] + "x" * len(assignment) + pad[cut:]
    secret = pad[:cut] + assignment + pad[cut:]
    assert len(benign) == len(secret) and benign[:100] == secret[:100]
    assert redact(benign) is benign
    assert PW not in redact(secret)
    assert redact(benign) is benign, "and the other way round"
    assert PW not in redact(secret)


def test_a_hash_collision_is_caught_by_the_sample(memo, monkeypatch: pytest.MonkeyPatch):
    """Should two texts of one length share their 64-bit hash, the characters kept from the
    start, the middle and the end still tell them apart when they differ there."""
    monkeypatch.setattr(textkey, "hash", lambda _text: 42, raising=False)
    pad = doc(30_000)
    mid = len(pad) // 2
    assignment = f'password = "{PW}"'
    benign = pad[: mid - 8] + "x" * len(assignment) + pad[mid - 8 :]
    secret = pad[: mid - 8] + assignment + pad[mid - 8 :]
    assert redact(benign) is benign
    assert PW not in redact(secret)


def test_the_memo_is_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch):
    small = redact_module._MaskMemo(max_bytes=400_000, max_entries=10_000)
    monkeypatch.setattr(redact_module, "_memo", small)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(60):  # 60 masked copies of 20 KB: 1.2 MB, three times the budget
            text = doc(20_000, seed=i)
            redact(text[:5_000] + f'token = "{PW}"\n' + text[5_000:])
            assert small.bytes <= small.max_bytes
        del text
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 10 <= len(small) < 60
    assert held <= small.max_bytes * 1.1, f"{held} bytes held"


def test_texts_without_secrets_are_not_kept(memo):
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(40):  # 40 texts of 20 KB: 800 KB, were they kept
            text = doc(20_000, seed=i)
            assert redact(text) is text
        del text
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(memo) == 40
    assert held < 40 * 1_000, f"{held} bytes held for 40 entries"


def test_entries_are_bounded_in_number(monkeypatch: pytest.MonkeyPatch):
    small = redact_module._MaskMemo(max_bytes=10_000_000, max_entries=8)
    monkeypatch.setattr(redact_module, "_memo", small)
    for i in range(30):
        redact(f"log line {i}: nothing to hide here")
    assert len(small) == 8


def test_a_masked_copy_too_large_for_the_memo_is_not_kept(monkeypatch: pytest.MonkeyPatch):
    small = redact_module._MaskMemo(max_bytes=100_000, max_entries=100)
    monkeypatch.setattr(redact_module, "_memo", small)
    redact(f'secret = "{PW}"\n' + doc(50_000))
    assert len(small) == 0 and small.bytes == 0
    redact(f'secret = "{PW}"\n' + doc(5_000))
    assert len(small) == 1


def test_registering_a_secret_forgets_what_was_memoized(memo, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(redact_module, "_KNOWN", set())
    key = C.chars("0123456789abcdef", 32)
    text = doc(2_000) + f"client = Client({key!r})\n"
    assert redact(text) is text
    register_secret(key)
    assert key not in redact(text)


def _with_secrets(seed: int) -> tuple[str, list[str]]:
    """Real code (this project's own modules) with secrets of every kind put between its
    lines, and the needles of those secrets."""
    import random
    from pathlib import Path

    rng = random.Random(seed)
    sources = sorted(Path(redact_module.__file__).parent.parent.rglob("*.py"))
    lines = rng.choice(sources).read_text(encoding="utf-8").split("\n") * 2
    needles: list[str] = []
    corpus = Corpus(seed)
    for secret in rng.sample(corpus.one_of_each("py"), 6):
        lines.insert(rng.randrange(len(lines)), secret.text)
        needles += secret.needles()
    return "\n".join(lines), needles


def test_a_cursor_window_is_cut_of_the_masked_text(memo, masked_count):
    """A window of a document with secrets costs no masking (the document's is memoized):
    it is a piece of the masked document, holds no part of a secret, even one the window's
    ends cut, and is the document's own text wherever no mask is near."""
    import random

    from ctx_lsp.text.redact import _mask_spans, redact_window

    rng = random.Random(9)
    for seed in range(8):
        text, needles = _with_secrets(seed)
        masked = redact(text)
        assert masked is not text
        spans = _mask_spans(text, masked)
        assert spans
        calls = len(masked_count)
        for _ in range(60):
            a = rng.randrange(len(text))
            c = rng.randrange(a, min(len(text), a + 20_000) + 1)
            b = rng.randrange(c, min(len(text), c + 8_000) + 1)
            cut = redact_window(text, a, c, b)
            assert cut is not None, "the masks of the document are placed"
            prefix, suffix = cut
            assert prefix + suffix in masked
            leaked = [n for n in needles if n in prefix or n in suffix]
            assert not leaked, f"pieces of secrets in the window: {leaked[:3]}"
            if not any(si <= b and a <= oe for si, oe, _, _ in spans):  # no mask near
                assert (prefix, suffix) == (text[a:c], text[c:b])
        assert len(masked_count) == calls, "no window was masked again"


def test_masks_that_cannot_be_placed_leave_the_window_to_be_masked_whole():
    """Two masks side by side: where the first ends in the text is unknown."""
    from ctx_lsp.text.redact import _mask_spans

    text = f"x{C.chars(ALNUM, 40)}{C.chars(ALNUM, 40)}y"
    assert _mask_spans(text, "x<redacted:a><redacted:b>y") is None
    assert _mask_spans("ab secret cd", "ab <redacted:x> cd") == ((3, 9, 3, 15),)
