"""Document store tests: a whole-string reference model, pygls as a second oracle, edge cases."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace import TextDocument

from ctx_lsp.text.documents import Document, DocumentError, DocumentStore, Encoding

ENCODINGS = [pytest.param(e, id=e.value) for e in Encoding]

# Pieces random texts are made of: non-ASCII of every UTF-8 width, astral (surrogate pairs in
# UTF-16), all three LSP line endings, and characters str.splitlines() wrongly treats as breaks.
PIECES = ["a", "b", "xyz", " ", "é", "中", "😀", "\r\n", "\n", "\r"]
PIECES += ["\u2028", "\x85", "\x0c", "\x1c"]


# --- reference model: plain string, every position found by scanning from the start -----------


def width(ch: str, enc: Encoding) -> int:
    if enc is Encoding.UTF8:
        return len(ch.encode("utf-8", "surrogatepass"))
    if enc is Encoding.UTF16:
        return 2 if ord(ch) > 0xFFFF else 1
    return 1


def ref_offset(text: str, line: int, char: int, enc: Encoding) -> int:
    if line < 0 or char < 0:
        raise DocumentError
    i, n = 0, len(text)
    for _ in range(line):
        while i < n and text[i] not in "\r\n":
            i += 1
        if i == n:  # past the last line: end of document
            return n
        i += 2 if text[i : i + 2] == "\r\n" else 1
    units = 0
    while i < n and text[i] not in "\r\n":
        w = width(text[i], enc)
        if units + w > char:  # past the end, or inside this character: stop at its start
            break
        units += w
        i += 1
    return i


def ref_position(text: str, offset: int, enc: Encoding) -> tuple[int, int]:
    offset = min(offset, len(text))
    line = start = i = 0
    while i < offset:
        if text[i : i + 2] == "\r\n":
            if i + 2 > offset:
                break  # between \r and \n: still on this line
            line, start, i = line + 1, i + 2, i + 2
            continue
        if text[i] in "\r\n":
            line, start = line + 1, i + 1
        i += 1
    seg = text[start:offset].rstrip("\r")
    return line, sum(width(c, enc) for c in seg)


def ref_lines(text: str) -> list[str]:
    """Line contents (no endings), the LSP way."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def ref_apply(text: str, new: str, rng: tuple[int, int, int, int], enc: Encoding) -> str:
    s = ref_offset(text, rng[0], rng[1], enc)
    e = ref_offset(text, rng[2], rng[3], enc)
    return text[:s] + new + text[e:]


def check_same(doc: Document, text: str) -> None:
    assert doc.text == text
    assert doc.size == len(text)
    assert doc.line_count == len(ref_lines(text))
    assert "".join(doc._lines) == text  # the line list itself, not just the cached text


def random_text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(PIECES) for _ in range(n))


def random_range(rnd: random.Random, text: str, enc: Encoding) -> tuple[int, int, int, int]:
    """Two positions in order, sometimes past line ends / the last line / inside characters."""
    lines = ref_lines(text)

    def pos() -> tuple[int, int]:
        line = rnd.randrange(len(lines) + 2)
        units = sum(width(c, enc) for c in lines[line]) if line < len(lines) else 0
        return line, rnd.randrange(units + 3)

    a, b = sorted([pos(), pos()])
    if rnd.random() < 0.5:  # mostly small edits, like typing
        b = a
    return (*a, *b)


# --- randomized comparisons against the reference ----------------------------------------------


@pytest.mark.parametrize("enc", ENCODINGS)
@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed{s}") for s in range(3)])
def test_random_edits_match_reference(enc: Encoding, seed: int) -> None:
    rnd = random.Random(seed * 1000 + len(enc.value))
    text = random_text(rnd, 40)
    doc = Document("file:///r", text, encoding=enc)
    for step in range(2000):
        rng = random_range(rnd, text, enc)
        if len(text) > 400:  # keep the text small so the O(n) reference stays fast
            new = ""
        elif rnd.random() < 0.1:
            new = random_text(rnd, rnd.randrange(30))  # paste many lines
        else:
            new = random_text(rnd, rnd.randrange(3))
        text = ref_apply(text, new, rng, enc)
        doc.apply_change(new, rng, version=step)
        check_same(doc, text)
        assert doc.version == step
        # Probe the position helpers at random points too.
        line, char = random_range(rnd, text, enc)[:2]
        off = ref_offset(text, line, char, enc)
        assert doc.offset_at(line, char) == off
        assert doc.position_at(off) == ref_position(text, off, enc)
        o = rnd.randrange(len(text) + 2)
        assert doc.position_at(o) == ref_position(text, o, enc)
        before, after = rnd.randrange(50), rnd.randrange(50)
        assert doc.window(line, char, before, after) == (
            text[max(0, off - before) : off],
            text[off : off + after],
        )


edit_st = st.tuples(
    st.integers(0, 8), st.integers(0, 12), st.integers(0, 8), st.integers(0, 12)
).map(lambda r: (*min(r[:2], r[2:]), *max(r[:2], r[2:])))
text_st = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    enc=st.sampled_from(list(Encoding)),
    text=text_st,
    edits=st.lists(st.tuples(text_st, edit_st | st.none()), max_size=15),
)
def test_hypothesis_edits_match_reference(
    enc: Encoding, text: str, edits: list[tuple[str, tuple[int, int, int, int] | None]]
) -> None:
    store = DocumentStore(enc)
    store.open("file:///h", text)
    for version, (new, rng) in enumerate(edits, 1):
        text = new if rng is None else ref_apply(text, new, rng, enc)
        doc = store.change("file:///h", [(new, rng)], version)
        check_same(doc, text)
        for off in range(len(text) + 1):  # offset -> position -> offset is the identity
            pos = doc.position_at(off)
            assert pos == ref_position(text, off, enc)
            if text[off - 1 : off + 1] != "\r\n":  # inside \r\n maps to before the \r
                assert doc.offset_at(*pos) == off


# --- pygls as a second oracle (UTF-16, BMP text, \n endings, in-range positions) ---------------


def in_range_pos(rnd: random.Random, lines: list[str]) -> tuple[int, int]:
    line = rnd.randrange(len(lines))
    return line, rnd.randrange(len(lines[line]) + 1)


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed{s}") for s in range(3)])
def test_matches_pygls_text_document(seed: int) -> None:
    rnd = random.Random(seed)
    pieces = ["a", "bc", " ", "é", "中", "\n", "\n\n"]
    text = "".join(rnd.choice(pieces) for _ in range(50))
    ours = Document("file:///p", text)
    stock = TextDocument("file:///p", text)
    for _ in range(500):
        lines = ref_lines(ours.text)
        (a, b), (c, d) = sorted([in_range_pos(rnd, lines), in_range_pos(rnd, lines)])
        new = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(4)))
        ours.apply_change(new, (a, b, c, d))
        rng = types.Range(types.Position(a, b), types.Position(c, d))
        stock.apply_change(types.TextDocumentContentChangePartial(range=rng, text=new))
        assert ours.text == stock.source
        assert ours.offset_at(a, b) == stock.offset_at_position(types.Position(a, b))


# --- explicit cases ------------------------------------------------------------------------------

R = tuple[int, int, int, int]


@pytest.mark.parametrize(
    ("text", "rng", "new", "expected"),
    [
        pytest.param("", (0, 0, 0, 0), "hi", "hi", id="empty-doc-insert"),
        pytest.param("", None, "a\nb", "a\nb", id="full-replace"),
        pytest.param("ab", (0, 2, 0, 2), "!", "ab!", id="end-of-file"),
        pytest.param("ab\n", (1, 0, 1, 0), "c", "ab\nc", id="end-after-final-newline"),
        pytest.param("ab\n", (5, 0, 9, 9), "c", "ab\nc", id="past-last-line-clamps-to-end"),
        pytest.param("ab\ncd", (0, 99, 0, 99), "!", "ab!\ncd", id="past-line-end-clamps"),
        pytest.param("ab\r\ncd", (0, 7, 1, 0), "", "abcd", id="delete-crlf"),
        pytest.param("ab\r\ncd", (0, 2, 0, 2), "\r", "ab\r\r\ncd", id="cr-before-crlf"),
        pytest.param("a\rb", (1, 0, 1, 0), "\n", "a\r\nb", id="join-cr-and-lf"),
        pytest.param("a\r\nb", (1, 0, 1, 1), "", "a\r\n", id="delete-after-crlf"),
        pytest.param("a\rb\n", (1, 0, 1, 1), "", "a\r\n", id="delete-joins-cr-lf"),
        pytest.param("a\nb", (0, 1, 0, 1), "\r", "a\r\nb", id="insert-cr-before-lf"),
        pytest.param("x", (0, 0, 0, 1), "1\n2\n3\n4\n5\n", "1\n2\n3\n4\n5\n", id="many-lines"),
        pytest.param("1\n2\n3\n4\n5", (1, 0, 4, 0), "", "1\n5", id="delete-many-lines"),
        pytest.param("a😀b", (0, 2, 0, 2), "X", "aX😀b", id="mid-surrogate-rounds-down"),
        pytest.param("a😀b", (0, 3, 0, 4), "", "a😀", id="after-astral"),
        pytest.param("a\u2028b\x0cc", (0, 3, 0, 3), "!", "a\u2028b!\x0cc", id="not-line-breaks"),
    ],
)
def test_edit_cases(text: str, rng: R | None, new: str, expected: str) -> None:
    doc = Document("file:///e", text)
    doc.apply_change(new, rng)
    check_same(doc, expected)


@pytest.mark.parametrize(
    ("enc", "char", "index"),
    [
        pytest.param(Encoding.UTF16, 3, 2, id="utf16-after-emoji"),
        pytest.param(Encoding.UTF16, 2, 1, id="utf16-mid-pair"),
        pytest.param(Encoding.UTF8, 2, 1, id="utf8-mid-e-acute"),
        pytest.param(Encoding.UTF8, 3, 2, id="utf8-after-e-acute"),
        pytest.param(Encoding.UTF8, 5, 2, id="utf8-mid-cjk"),
        pytest.param(Encoding.UTF8, 6, 3, id="utf8-after-cjk"),
        pytest.param(Encoding.UTF8, 9, 3, id="utf8-mid-emoji"),
        pytest.param(Encoding.UTF8, 10, 4, id="utf8-after-emoji"),
        pytest.param(Encoding.UTF32, 4, 4, id="utf32"),
        pytest.param(Encoding.UTF32, 99, 5, id="utf32-clamped"),
    ],
)
def test_encodings(enc: Encoding, char: int, index: int) -> None:
    line = "aé中😀b" if enc is not Encoding.UTF16 else "a😀b"
    doc = Document("file:///x", f"{line}\nnext", encoding=enc)
    assert doc.offset_at(0, char) == index


def test_lone_surrogates_count_as_one_unit_each() -> None:
    doc = Document("file:///s", "\ud83d\ude00x")  # two lone surrogates, not one emoji
    assert doc.offset_at(0, 2) == 2
    assert doc.position_at(3) == (0, 3)
    utf8 = Document("file:///s", "\ud800x", encoding=Encoding.UTF8)
    assert utf8.offset_at(0, 3) == 1
    assert utf8.position_at(2) == (0, 4)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda d: d.offset_at(-1, 0), id="offset-negative-line"),
        pytest.param(lambda d: d.offset_at(0, -1), id="offset-negative-char"),
        pytest.param(lambda d: d.position_at(-1), id="position-negative"),
        pytest.param(lambda d: d.line(-1), id="line-negative"),
        pytest.param(lambda d: d.apply_change("x", (-1, 0, 0, 0)), id="edit-negative"),
        pytest.param(lambda d: d.apply_change("x", (1, 0, 0, 0)), id="edit-reversed"),
        pytest.param(lambda d: d.window(0, 0, -1, 0), id="window-negative"),
    ],
)
def test_nonsense_raises(call) -> None:
    doc = Document("file:///n", "ab\ncd")
    with pytest.raises(DocumentError):
        call(doc)
    assert doc.text == "ab\ncd"
    assert issubclass(DocumentError, ValueError)


def test_line_and_line_count() -> None:
    doc = Document("file:///l", "a\r\nb\rc\n")
    assert doc.line_count == 4
    assert [doc.line(i) for i in range(6)] == ["a", "b", "c", "", "", ""]
    assert Document("file:///l", "").line_count == 1


def test_window_uses_nearby_lines_only() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    doc = Document("file:///w", text)
    doc.apply_change("X", (500, 0, 500, 0))
    assert doc._text is None
    prefix, suffix = doc.window(500, 1, 20, 15)
    assert doc._text is None  # no full join happened
    off = doc.offset_at(500, 1)
    full = doc.text
    assert (prefix, suffix) == (full[off - 20 : off], full[off : off + 15])
    assert doc.window(0, 0, 10, 0) == ("", "")
    assert doc.window(999, 99, 5, 99) == ("e 999", "\n")
    assert doc.window(10**6, 0, 3, 3) == ("99\n", "")


def test_round_trip_all_offsets() -> None:
    text = "héllo\r\n中文😀\r\rend\n\n"
    for enc in Encoding:
        doc = Document("file:///t", text, encoding=enc)
        for off in range(len(text) + 1):
            line, char = doc.position_at(off)
            assert (line, char) == ref_position(text, off, enc)
            if text[off - 1 : off + 1] != "\r\n":
                assert doc.offset_at(line, char) == off
        assert doc.position_at(10**9) == doc.position_at(len(text))


def test_size_tracks_edits_without_join() -> None:
    doc = Document("file:///z", "abc\n" * 100)
    assert doc.size == 400
    doc.apply_change("xy\nz", (10, 1, 20, 2))
    doc.apply_change("", (0, 0, 5, 0))
    assert doc._text is None
    size = doc.size
    assert size == len(doc.text)


def test_text_cache_and_modified() -> None:
    doc = Document("file:///c", "abc")
    first = doc.text
    assert doc.text is first  # cached
    stamp = doc.modified
    doc.apply_change("d", (0, 3, 0, 3), version=7)
    assert doc.text == "abcd" and doc.version == 7 and doc.modified >= stamp


def test_store() -> None:
    store = DocumentStore()
    assert store.encoding is Encoding.UTF16
    store.encoding = Encoding.UTF8
    doc = store.open("file:///a", "é", "python", 1)
    assert doc.encoding is Encoding.UTF8 and doc.language_id == "python"
    assert "file:///a" in store and len(store) == 1 and list(store) == [doc]
    changed = store.change("file:///a", [("x", (0, 2, 0, 2)), ("!", (0, 0, 0, 0))], 2)
    assert changed is doc and doc.text == "!éx" and doc.version == 2
    assert store.get("file:///a") is doc and store.get("file:///b") is None
    with pytest.raises(KeyError):
        store.change("file:///b", [("x", None)], 1)
    assert store.close("file:///a") is doc
    assert store.close("file:///a") is None
    assert len(store) == 0 and "file:///a" not in store
    assert Document("u", "", encoding="utf-32").encoding is Encoding.UTF32  # type: ignore[arg-type]
