"""Per-user and per-branch folders in `.ctx/`: one folder per name, plain names unchanged."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from ctx_lsp.store.ctxdir import SCOPE_PART_MAX, scope_part
from tests.conftest import command, git, open_doc
from tests.fake_openai import FakeOpenAI


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        pytest.param("main", "main", id="plain"),
        pytest.param("feature_x", "feature_x", id="underscore-kept"),
        pytest.param("release-1.2", "release-1.2", id="dots-and-dashes"),
        pytest.param("feature/x", "feature%2Fx", id="slash"),
        pytest.param("Jane Doe", "Jane%20Doe", id="space"),
        pytest.param("100%", "100%25", id="percent"),
        pytest.param(".hidden", "%2Ehidden", id="leading-dot"),
        pytest.param("..", "%2E%2E", id="parent"),
        pytest.param("x.", "x%2E", id="trailing-dot"),
        pytest.param("nul", "%6Eul", id="windows-device"),
        pytest.param("fonction-é", "fonction-%C3%A9", id="non-ascii"),
    ],
)
def test_scope_folder_names(name: str, folder: str):
    assert scope_part(name) == folder
    assert unquote(folder) == name


def test_names_that_used_to_share_a_folder_get_their_own():
    names = [
        "feature/x",
        "feature_x",
        "feature x",
        "feature:x",
        "_feature_x_",
        "feature_x.",
        "🎉",
        "\x1f389",
        "",
        ".",
        "a" * 300,
        "a" * 299 + "b",
    ]
    folders = [scope_part(n) for n in names]
    assert len(set(folders)) == len(names), folders
    assert all(0 < len(f) <= SCOPE_PART_MAX and "/" not in f for f in folders)


async def test_branches_feature_slash_x_and_feature_x_keep_their_own_sessions(
    lsp, repo: Path, fake_openai: FakeOpenAI
):
    git(repo, "checkout", "-q", "-b", "feature/x")
    client = await lsp(
        repo, env=fake_openai.env(), init_options={"model": "test-model", "branchSessions": True}
    )
    open_doc(client, repo / "app.py")
    await command(client, "ctx.addFile", {"path": "README.md"})
    assert "Pinned files (1)" in (await command(client, "ctx.showContext"))["text"]

    git(repo, "checkout", "-q", "-b", "feature_x")
    shown = (await command(client, "ctx.showContext"))["text"]
    assert "Branch: feature_x" in shown and "Pinned files (0)" in shown

    git(repo, "checkout", "-q", "feature/x")
    assert "Pinned files (1)" in (await command(client, "ctx.showContext"))["text"]
