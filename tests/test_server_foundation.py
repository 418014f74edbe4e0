"""End to end through the real protocol: documents, git, `.ctx/`, settings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from lsprotocol import types

from tests.conftest import command, git, open_doc


def _edit(client, uri: str, version: int, edits: list[tuple[tuple[int, int, int, int], str]]):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=r[0], character=r[1]),
                        end=types.Position(line=r[2], character=r[3]),
                    ),
                    text=text,
                )
                for r, text in edits
            ],
        )
    )


async def _context(client, **args) -> dict:
    return await command(client, "ctx.showContext", args)


async def test_incremental_edits_with_non_ascii_and_crlf(lsp, repo: Path):
    client = await lsp(repo)
    path = repo / "uni.py"
    uri = open_doc(client, path, "s = 'é😀x'\r\nt = 2\r\n")
    # utf-16: é is 1 unit, 😀 is 2 units. Replace x (col 8..9) with "yz".
    _edit(client, uri, 2, [((0, 8, 0, 9), "yz")])
    # join the two lines across the CRLF, then add a line at end of file
    _edit(client, uri, 3, [((0, 11, 1, 0), " ; ")])
    _edit(client, uri, 4, [((1, 0, 1, 0), "u = '中'\n")])
    ctx = await _context(client, uri=uri)
    assert ctx["documentText"] == "s = 'é😀yz' ; t = 2\r\nu = '中'\n"
    (entry,) = [f for f in ctx["files"] if f["path"] == "uni.py"]
    assert entry["version"] == 4 and entry["unsaved"] is True and entry["languageId"] == "python"
    assert "uni.py" in ctx["text"] and "unsaved edits" in ctx["text"]

    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    ctx = await _context(client)
    (entry,) = [f for f in ctx["files"] if f["path"] == "uni.py"]
    assert entry["unsaved"] is False

    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    ctx = await _context(client)
    assert not [f for f in ctx["files"] if f["path"] == "uni.py"]


async def test_utf8_position_encoding_negotiated(lsp, repo: Path):
    client = await lsp(repo, position_encodings=["utf-8", "utf-16"])
    assert client.init_result.capabilities.position_encoding == "utf-8"
    uri = open_doc(client, repo / "u8.py", "a = 'é😀z'\n")
    # utf-8: é is 2 bytes, 😀 is 4 bytes: z starts at byte 5 + 2 + 4 = 11
    _edit(client, uri, 2, [((0, 11, 0, 12), "Q")])
    ctx = await _context(client, uri=uri)
    assert ctx["documentText"] == "a = 'é😀Q'\n"


async def test_edit_past_end_is_clamped_and_unknown_document_reported(lsp, repo: Path):
    client = await lsp(repo)
    uri = open_doc(client, repo / "c.py", "ab\n")
    _edit(client, uri, 2, [((0, 99, 7, 0), "!")])
    ctx = await _context(client, uri=uri)
    assert ctx["documentText"] == "ab!"
    _edit(client, (repo / "never.py").as_uri(), 2, [((0, 0, 0, 0), "x")])
    await _context(client)
    assert any("never opened" in m.message for m in client.messages)


async def test_branch_switch_outside_editor_is_seen(lsp, repo: Path):
    client = await lsp(repo)
    assert "Branch: main" in (await _context(client))["text"]
    git(repo, "checkout", "-q", "-b", "feature/login")
    assert "Branch: feature/login" in (await _context(client))["text"]
    sha = git(repo, "rev-parse", "--short=7", "HEAD").strip()
    git(repo, "checkout", "-q", "--detach")
    assert f"detached at {sha}" in (await _context(client))["text"]


async def test_folder_without_git_says_so(lsp, tmp_path: Path, home: Path):
    plain = tmp_path / "plain"
    plain.mkdir()
    client = await lsp(plain)
    text = (await _context(client))["text"]
    assert "Branch: no git" in text
    assert not (plain / ".ctx").exists(), "reading must not create .ctx/"


async def test_session_and_history_survive_restart(lsp, repo: Path):
    from ctx_lsp.config.settings import Settings
    from ctx_lsp.store.ctxdir import CtxStore
    from ctx_lsp.store.history import History
    from ctx_lsp.text.messages import ChatMessage

    client = await lsp(repo)
    open_doc(client, repo / "app.py")
    result = await command(client, "ctx.addFile", {"path": "README.md"})
    assert result["text"] == "Pinned README.md"
    await client.shutdown_session()

    ctx_dir = repo / ".ctx"
    assert (ctx_dir / ".gitignore").read_text() == "*\n"
    assert git(repo, "status", "--porcelain") == ""
    user = Settings().effective_user()
    session_file = ctx_dir / "users" / user / "session.json"
    session = json.loads(session_file.read_text())
    assert session["version"] == 1
    assert session["data"]["pinned"] == ["README.md"]
    assert [f["path"] for f in session["data"]["open_files"]] == ["app.py"]

    # an exchange recorded by another process (the CLI writes the same store)
    History(CtxStore(repo, ("users", user))).append(
        ChatMessage("user", "why does add fail?"), ChatMessage("assistant", "It doesn't.")
    )
    second = await lsp(repo)
    ctx = await _context(second)
    assert "History: 2 messages" in ctx["text"]
    assert [f["path"] for f in ctx["files"] if f["pinned"]] == ["README.md"]

    assert (await command(second, "ctx.clearHistory"))["text"] == "Chat history cleared"
    assert "History: 0 messages" in (await _context(second))["text"]
    assert not History(CtxStore(repo, ("users", user))).load()
    await command(second, "ctx.clearSession")
    assert not [f for f in (await _context(second))["files"] if f["pinned"]]
    assert not session_file.exists()


async def test_pin_and_unpin(lsp, repo: Path, tmp_path: Path):
    client = await lsp(repo)
    assert (await command(client, "ctx.addFile", {"path": "app.py"}))["text"] == "Pinned app.py"
    ctx = await _context(client)
    (pin,) = [f for f in ctx["files"] if f["pinned"]]
    assert pin["path"] == "app.py" and pin["size"] == (repo / "app.py").stat().st_size
    assert "Pinned files (1)" in ctx["text"]
    assert (await command(client, "ctx.removeFile", {"path": "app.py"}))["text"] == (
        "Unpinned app.py"
    )
    assert "Pinned files (0)" in (await _context(client))["text"]

    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    (repo / "link.txt").symlink_to(outside)
    for bad in ["../outside.txt", str(outside), "link.txt", "missing.py"]:
        with pytest.raises(Exception) as err:
            await command(client, "ctx.addFile", {"path": bad})
        assert "outside the workspace" in str(err.value) or "not a file" in str(err.value)
    with pytest.raises(Exception, match="path"):
        await command(client, "ctx.addFile", {})


async def test_invalid_settings_fall_back_with_one_message(lsp, repo: Path):
    client = await lsp(
        repo,
        init_options={"temperature": "hot", "contextTokens": 5, "bogusKey": 1, "model": "m1"},
    )
    await _context(client)
    await asyncio.sleep(0.2)
    texts = [m.message for m in client.messages]
    assert any("temperature" in t and "using default" in t for t in texts)
    assert any("contextTokens" in t for t in texts)
    assert any("unknown setting 'bogusKey'" in t for t in texts)
    assert len(texts) == len(set(texts)) == 3
    await _context(client)
    assert len(client.messages) == 3, "problems are told once"


async def test_configuration_pulled_and_refreshed(lsp, repo: Path):
    client = await lsp(repo, configuration={"envAllowlist": ["CTX_DEMO"]}, env={"CTX_DEMO": "1"})
    await asyncio.sleep(0.3)
    assert "CTX_DEMO=1" in (await _context(client))["text"]
    client.set_configuration({"envAllowlist": []}, section="ctx")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await asyncio.sleep(0.3)
    assert "CTX_DEMO" not in (await _context(client))["text"]


async def test_environment_allowlist_hides_secret_values(lsp, repo: Path):
    env = {"DEPLOY_STAGE": "staging", "SERVICE_TOKEN": "tok-123456789", "NOT_LISTED": "zzz"}
    client = await lsp(
        repo, env=env, init_options={"envAllowlist": ["DEPLOY_STAGE", "SERVICE_TOKEN"]}
    )
    text = (await _context(client))["text"]
    assert "DEPLOY_STAGE=staging" in text
    assert "SERVICE_TOKEN=<hidden" in text and "tok-123456789" not in text
    assert "NOT_LISTED" not in text


async def test_multi_root_folders_each_have_their_own_ctx(lsp, tmp_path: Path, home: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, branch in ((a, "main"), (b, "dev")):
        root.mkdir()
        git(root, "init", "-q", "-b", branch)
        (root / "f.py").write_text("x = 1\n")
    client = await lsp(a, folders=[a, b])
    await command(client, "ctx.addFile", {"path": str(b / "f.py")})
    open_doc(client, a / "f.py")
    ctx = await _context(client)
    assert ctx["folders"] == [str(a.resolve()), str(b.resolve())]
    assert "Branch: main" in ctx["text"] and "Branch: dev" in ctx["text"]
    pinned = [(f["root"], f["path"]) for f in ctx["files"] if f["pinned"]]
    assert pinned == [(str(b.resolve()), "f.py")]
    await client.shutdown_session()
    assert (a / ".ctx" / ".gitignore").exists() and (b / ".ctx" / ".gitignore").exists()
