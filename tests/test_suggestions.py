"""Turning a model's reply into the text inserted at the cursor."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ctx_lsp.assist.suggestions import clean_completion, word_before


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab9_ .(\n\té٣", max_size=12))
def test_word_before_is_the_identifier_ending_the_text(prefix: str) -> None:
    m = re.search(r"[A-Za-z_][A-Za-z0-9_]*\Z", prefix)
    assert word_before(prefix) == (m.group(0) if m else "")


def test_no_word_is_being_typed_at_the_start_of_a_line() -> None:
    """The identifier at the end of the line above is not "being typed"."""
    assert word_before("total = compute\n") == ""
    assert clean_completion("compute_more()", "x = compute\n", "") == "compute_more()"


def test_a_retyped_word_is_not_inserted_twice() -> None:
    assert clean_completion("scale_vector(v, 2)", "w = sca", "\n") == "le_vector(v, 2)"
    prefix = "# " + "long line of text " * 500 + "\nresult = norm"
    assert clean_completion("normalize(v)", prefix, "") == "alize(v)"
