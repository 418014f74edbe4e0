"""Command arguments naming a folder by path ({"root": "/path"}) find that folder, whatever
characters its path holds (spaces, "#", "%")."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import command, git
from tests.fake_openai import FakeOpenAI


async def test_commit_message_for_a_folder_given_by_a_path_with_hash_and_percent(
    lsp, tmp_path: Path, home: Path, fake_openai: FakeOpenAI
):
    a, b = tmp_path / "a", tmp_path / "b #1 100%25"
    for root in (a, b):
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        (root / "f.py").write_text("x = 1\n")
        git(root, "add", "f.py")
    fake_openai.reply = "feat: add f"
    client = await lsp(
        a, folders=[a, b], env=fake_openai.env(), init_options={"model": "test-model"}
    )
    result = await command(client, "ctx.commitMessage", {"root": str(b)})
    assert result["root"] == str(b.resolve())
    assert result["text"] == "feat: add f"
