"""Item 6, paths: command arguments and document URIs that lead outside the workspace
folders (`..`, absolute paths, `~`, symlinks out) are refused with a clear error, and nothing
outside is read or sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types

from tests.conftest import command, open_doc
from tests.fake_openai import FakeOpenAI

SECRET = "TOP SECRET outside the workspace"


@pytest.fixture
def layout(repo: Path, tmp_path: Path, home: Path) -> Path:
    """repo/ beside outside.txt, outside.py and outside_dir/; symlinks in repo lead out."""
    (tmp_path / "outside.txt").write_text(SECRET + "\n")
    (tmp_path / "outside.py").write_text(f"def leak():\n    return {SECRET!r}\n")
    (tmp_path / "outside_dir").mkdir()
    (tmp_path / "outside_dir" / "secret.txt").write_text(SECRET + "\n")
    (home / "notes.txt").write_text(SECRET + "\n")
    (repo / "link_out.txt").symlink_to(tmp_path / "outside.txt")
    (repo / "link_out.py").symlink_to(tmp_path / "outside.py")
    (repo / "linkdir").symlink_to(tmp_path / "outside_dir")
    (repo / "sub").mkdir()
    (repo / "link_in.py").symlink_to(repo / "app.py")  # a symlink that stays inside is fine
    return repo


def _outside_paths(repo: Path) -> dict[str, str]:
    tmp = repo.parent
    return {
        "dotdot": "../outside.txt",
        "dotdot-via-subdir": "sub/../../outside.txt",
        "absolute": str(tmp / "outside.txt"),
        "absolute-system": "/etc/hostname",
        "home": "~/notes.txt",
        "symlink-file": "link_out.txt",
        "symlink-dir": "linkdir/secret.txt",
        "absolute-through-symlink": str(repo / "linkdir" / "secret.txt"),
        "dotdot-to-sibling-with-same-prefix": f"../{repo.name}-evil/x.txt",
    }


def _range() -> dict:
    return {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}


async def test_pin_and_unpin_refuse_paths_outside(lsp, layout: Path, fake_openai: FakeOpenAI):
    evil = layout.parent / f"{layout.name}-evil"
    evil.mkdir()
    (evil / "x.txt").write_text(SECRET)
    client = await lsp(layout, env=fake_openai.env(), init_options={"model": "test-model"})
    refused = {}
    for name, path in _outside_paths(layout).items():
        for cmd in ("ctx.addFile", "ctx.removeFile"):
            with pytest.raises(Exception) as info:
                await command(client, cmd, {"path": path})
            refused[f"{cmd} {name}"] = str(info.value)
            assert "outside the workspace" in str(info.value), (cmd, path, str(info.value))
    # inside, even through a symlink that stays inside: accepted
    assert (await command(client, "ctx.addFile", {"path": "app.py"}))["path"] == "app.py"
    assert (await command(client, "ctx.addFile", {"path": "link_in.py"}))["path"] == "app.py"
    ctx = await command(client, "ctx.showContext")
    assert "Pinned files (1)" in ctx["text"]
    assert SECRET not in str(ctx)
    print(
        f"\n[paths] refused {len(refused)} pin/unpin arguments, e.g. {next(iter(refused.values()))}"
    )


@pytest.mark.parametrize("how", ["outside", "symlink-in-workspace", "dotdot-uri"])
async def test_documents_outside_the_folders_are_refused(
    lsp, layout: Path, fake_openai: FakeOpenAI, how: str
):
    client = await lsp(layout, env=fake_openai.env(), init_options={"model": "test-model"})
    outside = layout.parent / "outside.py"
    text = outside.read_text()
    if how == "outside":
        uri = open_doc(client, outside)
    elif how == "symlink-in-workspace":
        uri = open_doc(client, layout / "link_out.py", text)
    else:
        uri = f"{layout.as_uri()}/../outside.py"
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
    diagnostic = {"range": _range(), "message": "undefined name", "severity": 1}
    calls = {
        "ctx.explain": {"uri": uri, "range": _range()},
        "ctx.generateTests": {"uri": uri, "range": _range()},
        "ctx.fixError": {"uri": uri, "diagnostic": diagnostic},
        "ctx.showPrompt": {"uri": uri, "position": {"line": 1, "character": 4}},
    }
    for name, args in calls.items():
        with pytest.raises(Exception, match="outside the workspace") as info:
            await command(client, name, args)
        print(f"\n[paths] {how} {name}: {info.value}")
    assert fake_openai.requests == [], "nothing outside was sent"
    assert client.applied_edits == []
    # and the workspace's own documents still work
    inside = open_doc(client, layout / "app.py")
    assert (await command(client, "ctx.explain", {"uri": inside, "range": _range()}))["text"]
    assert all(SECRET not in p for p in fake_openai.prompts())


@pytest.mark.parametrize("how", ["session-from-disk", "pinned-file-becomes-symlink"])
async def test_pinned_paths_never_lead_outside(lsp, layout: Path, fake_openai: FakeOpenAI, how):
    """Pins are checked when added; they must also be checked when read: a session file that
    came with the repository (`.ctx/` may be committed by someone else) or a pinned file that
    was replaced by a symlink must not pull outside files into prompts."""
    from ctx_lsp.config.settings import Settings
    from ctx_lsp.store.ctxdir import CtxStore
    from ctx_lsp.store.session import Session, SessionStore

    outside = layout.parent / "outside.txt"
    if how == "session-from-disk":
        store = CtxStore(layout, ("users", Settings().effective_user()))
        SessionStore(store).save(Session(pinned=["../outside.txt", str(outside)]))
    client = await lsp(layout, env=fake_openai.env(), init_options={"model": "test-model"})
    if how == "pinned-file-becomes-symlink":
        (layout / "notes.txt").write_text("harmless\n")
        await command(client, "ctx.addFile", {"path": "notes.txt"})
        (layout / "notes.txt").unlink()
        (layout / "notes.txt").symlink_to(outside)
    uri = open_doc(client, layout / "app.py")
    await command(client, "ctx.explain", {"uri": uri, "range": _range()})
    ctx = await command(client, "ctx.showContext")
    leaked = [p for p in fake_openai.prompts() if SECRET in p]
    print(f"\n[paths] {how}: prompts holding the outside file: {len(leaked)}")
    assert not leaked, "a file outside the workspace was sent to the model"
    assert SECRET not in str(ctx)
