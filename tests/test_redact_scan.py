"""Masking tries each pattern only near the literal text it needs (`redact._WHERE`); the
result must be exactly what scanning the whole text with every pattern gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ctx_lsp
from ctx_lsp.text.redact import _mask, _mask_everywhere
from tests.secrets_corpus import Corpus

_corpus = Corpus(seed=77)
SECRETS = [s.text for style in ("py", "env", "yaml", "md") for s in _corpus.one_of_each(style)]

# pieces that sit next to the needles in real text: names, operators, quotes, separators,
# and characters whose case folding differs (long s, Kelvin sign, dotted capital I, sharp s)
FRAGMENTS = [
    *SECRETS,
    "password", "PASSWORD", "passwd", "pwd", "secret", "Secret", "SECRET_KEY", "token",
    "TOKEN", "api_key", "apiKey", "access-key", "private_key", "client_secret", "auth",
    "author", "keys", "tokenizer", "AUTHORITY", "Bearer ", "bearer ", "Authorization: Basic ",
    "AccountKey=", "https://", "redis://:", "user:", "@host", "sk-", "ghp_", "AKIA", "eyJ",
    "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "aws_secret_key",
    " = ", "=", ": ", ":=", "=>", '"', "'", "\\\"", ".", "-", "_", "(", ")", "\n", " ", "\t",
    "abc123def456", "correcthorsebatterystaple", "x" * 45, "A1b2C3d4E5f6G7h8",
    "ſ", "\u212a", "İ", "ß", "é",
]  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40))
def test_scanning_near_needles_equals_scanning_everything(parts: list[str]) -> None:
    text = "".join(parts)
    assert _mask(text, ()) == _mask_everywhere(text, ())


@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: s[:24])
def test_every_corpus_secret_is_masked_the_same_way(secret: str) -> None:
    for text in (secret, f"x = 1\n{secret}\ny = 2\n", f"({secret})", secret * 3):
        assert _mask(text, ()) == _mask_everywhere(text, ())
        assert _mask(text, ()) != text


def test_real_source_code_is_masked_the_same_way() -> None:
    """Our own sources and our tests (which are full of fake secrets)."""
    root = Path(ctx_lsp.__file__).parent.parent
    files = sorted([*root.glob("ctx_lsp/**/*.py"), *root.glob("tests/**/*.py")])
    assert len(files) > 50
    changed = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        masked = _mask(text, ())
        assert masked == _mask_everywhere(text, ()), path
        changed += masked != text
    assert changed > 5  # the test files hold secrets to find
