"""`.ctx/` holds code, answers and the conversation: only its owner may read it. Damaged
history lines are told once and set aside; state kept outside any repository is announced."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types

from tests.conftest import command, open_doc
from tests.fake_openai import FakeOpenAI
from tests.test_cli import run_cli, scope_dir
from tests.test_cli_state import seed


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # files 0644, folders 0755 unless asked otherwise
    yield
    os.umask(old)


def _modes(ctx: Path) -> dict[str, int]:
    return {
        str(p.relative_to(ctx)): stat.S_IMODE(p.lstat().st_mode) for p in [ctx, *ctx.rglob("*")]
    }


async def test_everything_the_server_keeps_in_ctx_is_private(
    lsp, repo: Path, fake_openai: FakeOpenAI, usual_umask: None
):
    fake_openai.reply = "a + b"
    client = await lsp(
        repo, env=fake_openai.env(), init_options={"model": "test-model", "debounceMs": 0}
    )
    uri = open_doc(client, repo / "app.py")
    rng = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}
    await command(client, "ctx.explain", {"uri": uri, "range": rng})
    await command(client, "ctx.addFile", {"path": "README.md"})
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=1, character=11),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    await client.shutdown_session()
    modes = _modes(repo / ".ctx")
    names = {Path(n).name for n in modes}
    assert {"history.jsonl", "session.json", "responses.sqlite"} <= names
    assert any(n.endswith(".lock") for n in names) and any(n.endswith(".md") for n in names)
    loose = {n: oct(m) for n, m in modes.items() if m & 0o077}
    assert loose == {}
    folders = [n for n in modes if (repo / ".ctx" / n).is_dir()]
    assert all(modes[n] == 0o700 for n in folders), {n: oct(modes[n]) for n in folders}


def test_a_damaged_history_line_is_told_once_and_set_aside(repo: Path, usual_umask: None):
    seed(repo, 2)
    with (scope_dir(repo) / "history.jsonl").open("a") as fh:
        fh.write("{not json\n")
    first = run_cli(repo, "history", "show", "--json")
    assert "1 damaged line(s)" in first.stderr and "moved to .ctx/corrupt/" in first.stderr
    assert json.loads(first.stdout)["total"] == 2
    (aside,) = (repo / ".ctx" / "corrupt").iterdir()
    assert aside.read_text() == "{not json\n"
    assert stat.S_IMODE(aside.stat().st_mode) == 0o600
    again = run_cli(repo, "history", "show", "--json")
    assert again.returncode == 0 and again.stderr == ""
    assert json.loads(again.stdout)["total"] == 2


def test_state_kept_outside_any_repository_is_announced(
    home: Path, tmp_path: Path, fake_openai: FakeOpenAI
):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "f.py").write_text("x = 1\n")
    (home / "ctx-user-config.toml").write_text('model = "test-model"\n')
    env = fake_openai.env()
    fake_openai.reply = "x is one."
    r = run_cli(plain, "explain", "f.py", env=env)
    assert r.returncode == 0, r.stderr
    ctx = (plain / ".ctx").resolve()
    assert ctx.is_dir()  # the explanation went into the history
    assert f"ctx-lsp: no repository here; keeping state in {ctx}" in r.stderr.splitlines()
    # once it exists, the folder marks the workspace: no more notes
    again = run_cli(plain, "explain", "f.py", env=env)
    assert again.returncode == 0 and "no repository here" not in again.stderr
