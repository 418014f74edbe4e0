"""The workspace code index through the protocol: definitions of files that were never opened
reach the prompt, edits on disk are seen, excluded files stay out, a restart reuses the index."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.conftest import command, git, index_state, open_doc
from tests.fake_openai import FakeOpenAI

UTIL = '''"""Helpers."""


def parse_bool(value: str) -> bool:
    """Parse a boolean from text."""
    return value.lower() in ("1", "true", "yes")


class Registry:
    """A priority sorted registry."""

    def register(self, item, name: str, priority: float) -> None:
        self.items = [item]
'''
HIDDEN = '''def leak_token(seed: int) -> str:
    """Never to be shown."""
    return "x" * seed
'''
APP = (
    "from .util import parse_bool\n"
    "from .hidden import leak_token\n"
    "from . import util\n"
    "\n"
    "\n"
    "def main(args):\n"
    "    reg = util.Registry()\n"
    "    flag = \n"
    "\n"
    "    return flag\n"
)
CURSOR = (7, 11)  # after "flag = "


@pytest.fixture
def project(repo: Path) -> Path:
    pkg = repo / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text(UTIL)
    (pkg / "hidden.py").write_text(HIDDEN)
    (pkg / "app.py").write_text(APP)
    (repo / ".gitignore").write_text("pkg/hidden.py\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feat: pkg")
    return repo


async def _start(lsp, root: Path, fake: FakeOpenAI):
    opts = {"model": "test-model", "debounceMs": 0, "cache": False}
    return await lsp(root, env=fake.env(), init_options=opts)


async def _dry_run(client, uri: str) -> dict[str, Any]:
    pos = {"line": CURSOR[0], "character": CURSOR[1]}
    return await command(client, "ctx.showPrompt", {"uri": uri, "position": pos})


async def _until_in_prompt(client, uri: str, text: str) -> dict[str, Any]:
    for _ in range(120):
        dry = await _dry_run(client, uri)
        if text in dry["text"]:
            return dry
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} never reached the prompt")


async def _inline(client, uri: str) -> None:
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=CURSOR[0], character=CURSOR[1]),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )


async def test_a_definition_in_a_file_never_opened_reaches_the_prompt(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    fake_openai.reply = "parse_bool(args[0])"
    client = await _start(lsp, project, fake_openai)
    uri = open_doc(client, project / "pkg" / "app.py")  # util.py is never opened
    await index_state(client)
    await _inline(client, uri)
    (prompt,) = fake_openai.prompts()
    assert "def parse_bool(value: str) -> bool:" in prompt
    assert "class Registry:" in prompt  # util.Registry() near the cursor

    dry = await _dry_run(client, uri)
    why = "\n".join(dry["definitions"])
    assert "pkg/util.py:4 function parse_bool" in why
    assert "imported" in why
    assert "definitions chosen, and why" in dry["text"]


async def test_the_first_completion_after_start_waits_for_the_index(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    """A completion asked as soon as the editor opened a file, while the workspace is still
    being indexed, waits for the index a moment: its prompt has the definitions of the files
    that were never opened, as every later one has."""
    fake_openai.reply = "parse_bool(args[0])"
    client = await _start(lsp, project, fake_openai)
    uri = open_doc(client, project / "pkg" / "app.py")
    await _inline(client, uri)  # no waiting for the index first
    (prompt,) = fake_openai.prompts()
    assert "def parse_bool(value: str) -> bool:" in prompt
    assert (await index_state(client))["ready"]


async def test_an_edit_to_an_unopened_file_on_disk_is_seen(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    client = await _start(lsp, project, fake_openai)
    uri = open_doc(client, project / "pkg" / "app.py")
    await index_state(client)
    await _until_in_prompt(client, uri, "def parse_bool(value: str) -> bool:")

    # no watcher on this client's side: the stat scan finds it
    util = project / "pkg" / "util.py"
    util.write_text(UTIL.replace("(value: str)", "(value: str, default: bool = False)"))
    await _until_in_prompt(client, uri, "def parse_bool(value: str, default: bool = False)")

    # a client that watches files says so, and the index takes it from there
    util.write_text(UTIL.replace("(value: str)", "(text: str, strict: bool)"))
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=util.as_uri(), type=types.FileChangeType.Changed)]
        )
    )
    dry = await _until_in_prompt(client, uri, "def parse_bool(text: str, strict: bool)")
    assert "default: bool = False" not in dry["text"]


async def test_an_excluded_file_never_enters_the_index_or_the_prompt(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    (project / ".ctxignore").write_text("pkg/util.py\n")
    (project / "pkg" / ".env").write_text("def env_secret(): pass\n")
    client = await _start(lsp, project, fake_openai)
    uri = open_doc(client, project / "pkg" / "app.py")
    state = await index_state(client)
    # app.py, pkg/__init__.py, pkg/app.py: hidden.py is git-ignored, util.py ctx-ignored
    assert state["files"] == 3

    await _inline(client, uri)
    (prompt,) = fake_openai.prompts()
    for text in ("def leak_token", "def parse_bool", "class Registry", "env_secret"):
        assert text not in prompt
    stored = (project / ".ctx" / "index" / "files.json").read_text()
    assert "leak_token" not in stored.replace("hidden::leak_token", "")
    assert "parse_bool(value" not in stored
    assert "pkg/util.py" not in json.loads(stored)["data"]["files"]
    assert os.stat(project / ".ctx" / "index" / "files.json").st_mode & 0o077 == 0


async def test_a_restart_reuses_the_persisted_index(lsp, project: Path, fake_openai: FakeOpenAI):
    client = await _start(lsp, project, fake_openai)
    first = await index_state(client)
    assert first["parsed"] == 4 and first["loaded"] == 0  # app.py, pkg/{__init__,util,app}.py
    await client.shutdown_session()

    client = await _start(lsp, project, fake_openai)
    again = await index_state(client)
    assert (again["files"], again["loaded"], again["parsed"]) == (4, 4, 0)
    await client.shutdown_session()

    (project / "pkg" / "util.py").write_text(
        UTIL + "\n\ndef parse_int(text: str) -> int:\n    return 0\n"
    )
    client = await _start(lsp, project, fake_openai)
    third = await index_state(client)
    assert (third["loaded"], third["parsed"]) == (4, 1)  # only the edited file parsed again
    uri = open_doc(client, project / "pkg" / "app.py")
    await _until_in_prompt(client, uri, "def parse_bool(value: str) -> bool:")
