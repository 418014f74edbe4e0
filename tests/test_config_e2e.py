"""Configuration files, custom templates, branch and user sessions, through the protocol."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types

from tests.conftest import command, git, open_doc, trust
from tests.fake_openai import FakeOpenAI


def _range(l1: int, l2: int) -> types.Range:
    return types.Range(
        start=types.Position(line=l1, character=0), end=types.Position(line=l2, character=0)
    )


async def _explain(client, uri: str) -> dict:
    return await command(client, "ctx.explain", {"uri": uri, "range": _range(0, 2)})


async def test_config_files_layer_under_lsp_settings(
    lsp, repo: Path, home: Path, fake_openai: FakeOpenAI
):
    (home / "ctx-user-config.toml").write_text('model = "user-model"\nmaxTokens = 99\n')
    (repo / ".ctx").mkdir()
    (repo / ".ctx" / "config.toml").write_text(
        '# team settings\nmodel = "test-model"\nbogusKey = 1\ntemperature = "warm"\n'
    )
    client = await lsp(repo, env=fake_openai.env(), init_options={"maxTokens": 77})
    uri = open_doc(client, repo / "app.py")
    await _explain(client, uri)
    body = fake_openai.chat_requests()[-1].body
    assert body["model"] == "test-model"  # workspace file over user file
    assert body["max_tokens"] == 77  # from init options: ctx.maxTokens caps every task
    assert body["temperature"] == 0.2  # the bad value fell back to the default
    texts = [m.message for m in client.messages]
    config = repo / ".ctx" / "config.toml"
    assert any(f"{config}:3: unknown setting 'bogusKey'" in t for t in texts), texts
    assert any(f"{config}:4: invalid value 'warm' for 'temperature'" in t for t in texts)


async def test_broken_toml_is_reported_and_ignored(lsp, repo: Path, fake_openai: FakeOpenAI):
    (repo / ".ctx").mkdir()
    (repo / ".ctx" / "config.toml").write_text('model = "test-model\n')
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": "test-model"})
    ctx = await command(client, "ctx.showContext")
    assert "Branch: main" in ctx["text"]
    assert any("invalid TOML" in m.message for m in client.messages)


async def test_custom_template_files_picked_up_without_restart(
    lsp, repo: Path, fake_openai: FakeOpenAI
):
    templates = repo / ".ctx" / "templates"
    templates.mkdir(parents=True)
    (templates / "explain.md").write_text(
        "---\ndescription: team explain\n---\n## system\nYou are terse.\n"
        "## user\nTEAM-EXPLAIN-V1 for $file:\n$code\n"
    )
    trust(repo)
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": "test-model"})
    uri = open_doc(client, repo / "app.py")
    await _explain(client, uri)
    assert "TEAM-EXPLAIN-V1 for app.py" in fake_openai.prompts()[-1]
    assert "You are terse." in fake_openai.prompts()[-1]

    await asyncio.sleep(0.05)  # a distinct mtime
    (templates / "explain.md").write_text(
        "---\ndescription: team explain\n---\n## system\nYou are terse.\n"
        "## user\nTEAM-EXPLAIN-V2 $code\n"
    )
    client.answer = "Trust"
    # a changed template is held back until trusted again (the built-in explains meanwhile)
    await _explain(client, uri)
    assert "TEAM-EXPLAIN" not in fake_openai.prompts()[-1]
    for _ in range(200):
        if any("trusted" in m.message for m in client.messages):
            break
        await asyncio.sleep(0.05)
    await _explain(client, uri)
    assert "TEAM-EXPLAIN-V2" in fake_openai.prompts()[-1]


async def test_config_table_template_sees_recent_commits_and_changes(
    lsp, repo: Path, fake_openai: FakeOpenAI
):
    (repo / ".ctx").mkdir()
    (repo / ".ctx" / "config.toml").write_text(
        'model = "test-model"\n\n[templates.commit]\nsystem = "Write commit messages."\n'
        'user = "LOG:\\n$recent_commits\\nCHANGES:\\n$changes\\nDIFF:\\n$diff"\n'
    )
    (repo / "app.py").write_text("def add(a, b):\n    return a + b + 0\n")
    (repo / "notes.txt").write_text("todo\n")
    git(repo, "add", "app.py")
    fake_openai.reply = "feat: tweak add\n\nAdds zero."
    trust(repo)
    client = await lsp(repo, env=fake_openai.env())
    result = await command(client, "ctx.commitMessage", {})
    assert result["text"] == "feat: tweak add\n\nAdds zero."
    prompt = fake_openai.prompts()[-1]
    assert "feat: initial commit" in prompt  # $recent_commits
    assert "notes.txt" in prompt and "app.py" in prompt  # $changes
    assert "+    return a + b + 0" in prompt  # $diff


async def test_release_branch_uses_its_commit_template(lsp, repo: Path, fake_openai):
    git(repo, "checkout", "-q", "-b", "release/1.2")
    (repo / "app.py").write_text("def add(a, b):\n    return b + a\n")
    git(repo, "add", "app.py")
    fake_openai.reply = "fix: swap operands"
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": "test-model"})
    await command(client, "ctx.commitMessage", {})
    prompt = fake_openai.prompts()[-1]
    assert "release or hotfix" in prompt and "release/1.2" in prompt


async def test_branch_sessions_switch_with_the_branch(lsp, repo: Path, fake_openai: FakeOpenAI):
    fake_openai.reply = "explained on main"
    opts = {"model": "test-model", "branchSessions": True}
    client = await lsp(repo, env=fake_openai.env(), init_options=opts)
    uri = open_doc(client, repo / "app.py")
    await command(client, "ctx.addFile", {"path": "README.md"})
    await _explain(client, uri)

    git(repo, "checkout", "-q", "-b", "feature/x")
    ctx = await command(client, "ctx.showContext")
    assert "Pinned files (0)" in ctx["text"] and "History: 0 messages" in ctx["text"]
    fake_openai.reply = "explained on feature"
    await _explain(client, uri)
    assert "explained on main" not in fake_openai.prompts()[-1]

    git(repo, "checkout", "-q", "main")
    ctx = await command(client, "ctx.showContext")
    assert "Pinned files (1)" in ctx["text"] and "History: 2 messages" in ctx["text"]
    users = repo / ".ctx" / "users"
    (user,) = [p.name for p in users.iterdir()]
    branches = sorted(p.name for p in (users / user / "branches").iterdir())
    assert branches == ["feature%2Fx", "main"]


async def test_users_sharing_a_folder_keep_apart(lsp, repo: Path, fake_openai: FakeOpenAI):
    alice = await lsp(
        repo, env=fake_openai.env(), init_options={"model": "test-model", "user": "alice"}
    )
    uri = open_doc(alice, repo / "app.py")
    fake_openai.reply = "ALICE-SECRET-PLAN"
    await _explain(alice, uri)
    bob = await lsp(
        repo, env=fake_openai.env(), init_options={"model": "test-model", "user": "bob"}
    )
    uri = open_doc(bob, repo / "app.py")
    fake_openai.reply = "bob's answer"
    await _explain(bob, uri)
    assert "ALICE-SECRET-PLAN" not in fake_openai.prompts()[-1]
    assert "History: 2 messages" in (await command(bob, "ctx.showContext"))["text"]
    assert "User: bob" in (await command(bob, "ctx.showContext"))["text"]
    assert sorted(p.name for p in (repo / ".ctx" / "users").iterdir()) == ["alice", "bob"]
    alice_history = (repo / ".ctx" / "users" / "alice" / "history.jsonl").read_text()
    assert "ALICE-SECRET-PLAN" in alice_history and "bob's answer" not in alice_history
