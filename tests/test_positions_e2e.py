"""Positions in every negotiated encoding: ranges the server sends back on lines with
non-ASCII text (accents, CJK, an emoji outside the BMP) before the cursor."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types

from tests.conftest import command, git, open_doc
from tests.fake_openai import FakeOpenAI

# The cursor goes right after "sca", with more code after it on the line.
LINE = '    return f("é日本🎉", sca)'
APP = "def g(xs):\n" + LINE + "\n"
BEFORE_WORD = '    return f("é日本🎉", '  # the line up to the word being typed

# Column of the word's start and of the cursor in each encoding: 17 ASCII characters, é (2
# bytes, 1 unit), 日 and 本 (3 bytes, 1 unit each), 🎉 (4 bytes, 2 UTF-16 units, 1 code point).
COLUMNS = [
    pytest.param("utf-8", 29, 32, id="utf-8"),
    pytest.param("utf-16", 22, 25, id="utf-16"),
    pytest.param("utf-32", 21, 24, id="utf-32"),
]


def test_hand_counted_columns_match_the_text():
    assert len(BEFORE_WORD.encode("utf-8")) == 29
    assert len(BEFORE_WORD.encode("utf-16-le")) // 2 == 22
    assert len(BEFORE_WORD) == 21


@pytest.mark.parametrize(("encoding", "start", "cursor"), COLUMNS)
async def test_completion_item_replaces_the_typed_word_in_every_encoding(
    lsp, repo: Path, fake_openai: FakeOpenAI, encoding: str, start: int, cursor: int
):
    (repo / "app.py").write_text(APP, encoding="utf-8")
    fake_openai.reply = "scale_vector(xs)"
    client = await lsp(
        repo,
        env=fake_openai.env(),
        init_options={"model": "test-model", "debounceMs": 0},
        position_encodings=[encoding],
    )
    assert client.init_result.capabilities.position_encoding == encoding
    uri = open_doc(client, repo / "app.py", APP)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=1, character=cursor),
        )
    )
    (item,) = result.items
    # the item replaces "sca" (and only it) with the whole name, so the client keeps it
    assert item.text_edit.range == types.Range(
        start=types.Position(line=1, character=start),
        end=types.Position(line=1, character=cursor),
    )
    assert item.text_edit.new_text == "scale_vector(xs"
    assert item.filter_text.startswith("sca")
    # what the model saw: the cursor right after "sca", the rest of the line after it
    (prompt,) = fake_openai.prompts()
    assert "sca" in prompt and ", sca" in prompt


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
async def test_tests_appended_to_an_unopened_file_land_at_its_end(
    lsp, repo: Path, fake_openai: FakeOpenAI, encoding: str
):
    (repo / "util.py").write_text("def add(a, b):\n    return a + b\n")
    tests = repo / "tests"
    tests.mkdir()
    last = 'NAME = "日本🎉"'  # no newline at the end: the edit goes after the last character
    (tests / "test_util.py").write_text("import util\n\n" + last, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "util")
    fake_openai.reply = "def test_add():\n    assert util.add(1, 2) == 3\n"
    client = await lsp(
        repo,
        env=fake_openai.env(),
        init_options={"model": "test-model"},
        position_encodings=[encoding],
    )
    uri = open_doc(client, repo / "util.py")
    rng = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 16}}
    await command(client, "ctx.generateTests", {"uri": uri, "range": rng})
    (applied,) = client.applied_edits
    (change,) = applied.edit.document_changes
    (edit,) = change.edits
    column = {"utf-8": 19, "utf-16": 13, "utf-32": 12}[encoding]
    assert change.text_document.uri == (tests / "test_util.py").as_uri()
    assert edit.range.start == edit.range.end == types.Position(line=2, character=column)
