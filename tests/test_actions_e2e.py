"""Code actions and AI commands through the protocol, against the local test backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import client_capabilities

from tests.conftest import command, git, open_doc
from tests.fake_openai import FakeOpenAI, Hang

CALC = (
    "def add(a, b):\n"
    "    return a + b\n"
    "\n"
    "\n"
    "def mean(values):\n"
    "    total = sum(values)\n"
    "    return total / len(valuez)\n"
)


def _range(l1: int, c1: int, l2: int, c2: int) -> types.Range:
    return types.Range(
        start=types.Position(line=l1, character=c1), end=types.Position(line=l2, character=c2)
    )


def _diag(line: int, message: str) -> types.Diagnostic:
    return types.Diagnostic(
        range=_range(line, 4, line, 30),
        message=message,
        severity=types.DiagnosticSeverity.Error,
        source="pyflakes",
    )


async def _actions(client, uri: str, rng: types.Range, diags: list[types.Diagnostic]):
    return await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=diags),
        )
    )


@pytest.fixture
def calc(repo: Path) -> Path:
    (repo / "calc.py").write_text(CALC)
    (repo / "tests").mkdir()
    (repo / "tests" / "conftest.py").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feat: calc")
    return repo


async def _start(lsp, root: Path, fake: FakeOpenAI, caps="visual_studio_code", **opts):
    settings = {"model": "test-model", "debounceMs": 0, **opts}
    return await lsp(root, env=fake.env(), init_options=settings, caps=caps)


async def test_actions_listed_without_model_call(lsp, calc: Path, fake_openai: FakeOpenAI):
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    diags = [_diag(6, "undefined name 'valuez'"), _diag(5, "unused variable")]
    actions = await _actions(client, uri, _range(5, 4, 5, 4), diags)
    titles = [a.title for a in actions]
    assert titles == [
        "ctx: Explain function mean",
        "Fix: undefined name 'valuez'",
        "Fix: unused variable",
        "ctx: Generate unit tests for function mean",
    ]
    fixes = [a for a in actions if a.kind == types.CodeActionKind.QuickFix]
    assert [a.diagnostics[0].message for a in fixes] == [d.message for d in diags]
    # VS Code resolves edits: fixes carry data and no edit until resolved
    assert all(a.edit is None and a.data for a in fixes)
    assert fake_openai.requests == []


async def test_clients_without_resolve_get_commands(lsp, calc: Path, fake_openai: FakeOpenAI):
    caps = client_capabilities("neovim@v0.9.1")
    caps.text_document.code_action.resolve_support = None
    client = await _start(lsp, calc, fake_openai, caps=caps)
    uri = open_doc(client, calc / "calc.py")
    actions = await _actions(client, uri, _range(6, 0, 6, 0), [_diag(6, "undefined name")])
    assert [a.command.command for a in actions] == [
        "ctx.explain",
        "ctx.fixError",
        "ctx.generateTests",
    ]
    assert fake_openai.requests == []


async def test_resolve_fix_replaces_the_affected_lines(lsp, calc: Path, fake_openai: FakeOpenAI):
    fake_openai.reply = "```python\n    return total / len(values)\n```"
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    (fix,) = [
        a
        for a in await _actions(client, uri, _range(6, 0, 6, 0), [_diag(6, "undefined name")])
        if a.kind == types.CodeActionKind.QuickFix
    ]
    resolved = await client.code_action_resolve_async(fix)
    (change,) = resolved.edit.document_changes
    (edit,) = change.edits
    assert edit.range == _range(6, 0, 7, 0)
    assert edit.new_text == "    return total / len(values)\n"
    assert change.text_document.version == 1
    (prompt,) = fake_openai.prompts()
    assert "undefined name" in prompt and "return total / len(valuez)" in prompt
    assert "def mean(values):" in prompt  # the code around it


async def test_fix_command_applies_edit_with_progress(lsp, calc: Path, fake_openai: FakeOpenAI):
    fake_openai.reply = "    return total / len(values)"
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    diag = client.protocol._converter.unstructure(_diag(6, "undefined name 'valuez'"))
    result = await command(client, "ctx.fixError", {"uri": uri, "diagnostic": diag})
    assert result["applied"] is True and result["text"] == "    return total / len(values)\n"
    (applied,) = client.applied_edits
    assert applied.edit.document_changes[0].edits[0].new_text == result["text"]
    (reports,) = client.progress_reports.values()
    assert reports[0].kind == "begin" and reports[0].cancellable is True
    assert reports[-1].kind == "end" and reports[-1].message == "done"

    history = await command(client, "ctx.showContext")
    assert "History: 2 messages" in history["text"]


async def test_explain_selection_and_enclosing_function(lsp, calc: Path, fake_openai: FakeOpenAI):
    fake_openai.reply = "`add` returns the **sum** of its two arguments."
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    result = await command(client, "ctx.explain", {"uri": uri, "range": _range(1, 0, 1, 3)})
    assert result["text"] == "`add` returns the **sum** of its two arguments."
    answer = Path(result["path"])
    assert answer.parent.parent.name == "answers" and ".ctx" in answer.parts
    assert "returns the **sum**" in answer.read_text()
    assert [d.uri for d in client.shown_documents] == [answer.as_uri()]
    # streamed: the progress showed the answer as it came
    (reports,) = client.progress_reports.values()
    assert any(getattr(r, "message", "") and "sum" in r.message for r in reports)

    # empty selection inside mean(): the whole function is explained
    await command(client, "ctx.explain", {"uri": uri, "range": _range(5, 3, 5, 3)})
    prompt = fake_openai.prompts()[-1]
    assert "def mean(values):" in prompt and "return total / len(valuez)" in prompt
    # the earlier explanation is in the conversation now
    assert "returns the **sum**" in prompt


async def test_generate_tests_creates_test_file(lsp, calc: Path, fake_openai: FakeOpenAI):
    fake_openai.reply = (
        "```python\nfrom calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n```"
    )
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    result = await command(client, "ctx.generateTests", {"uri": uri, "range": _range(0, 0, 0, 0)})
    assert result["path"] == "tests/test_calc.py" and result["applied"] is True
    (applied,) = client.applied_edits
    create, edit = applied.edit.document_changes
    assert create.kind == "create" and create.uri == (calc / "tests" / "test_calc.py").as_uri()
    assert edit.edits[0].new_text.startswith("from calc import add\n")
    assert "def test_add():" in edit.edits[0].new_text
    (prompt,) = fake_openai.prompts()
    assert "pytest" in prompt and "tests/test_calc.py" in prompt and "def add(a, b):" in prompt


async def test_commit_message_from_staged_diff(lsp, calc: Path, fake_openai: FakeOpenAI):
    fake_openai.reply = (
        "Here is the commit message:\n```\nfeat(calc): add a median helper that sorts the values "
        "first and picks the middle element\n\nAdds median() next to mean().\n```"
    )
    git(calc, "checkout", "-q", "-b", "feature/stats")
    (calc / "calc.py").write_text(CALC + "\n\ndef median(values):\n    return sorted(values)[0]\n")
    git(calc, "add", "calc.py")
    client = await _start(lsp, calc, fake_openai)
    result = await command(client, "ctx.commitMessage", {})
    subject, blank, body = result["text"].split("\n", 2)
    assert subject.startswith("feat(calc): add a median helper")
    assert len(subject) <= 72 and blank == "" and body == "Adds median() next to mean()."
    assert result["staged"] is True
    (prompt,) = fake_openai.prompts()
    assert "+def median(values):" in prompt and "feature/stats" in prompt
    assert "Conventional Commits" in prompt
    assert git(calc, "log", "--oneline").count("\n") == 2, "it never commits by itself"


async def test_commit_message_clear_errors(lsp, calc: Path, tmp_path: Path, fake_openai):
    client = await _start(lsp, calc, fake_openai)
    with pytest.raises(Exception, match="nothing to commit"):
        await command(client, "ctx.commitMessage", {})
    plain = tmp_path / "plain"
    plain.mkdir()
    other = await _start(lsp, plain, fake_openai)
    with pytest.raises(Exception, match="no git repository"):
        await command(other, "ctx.commitMessage", {})
    assert fake_openai.requests == []


async def test_stale_diagnostic_and_bad_arguments(lsp, calc: Path, fake_openai: FakeOpenAI):
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    diag = client.protocol._converter.unstructure(_diag(40, "old error"))
    with pytest.raises(Exception, match="out of date"):
        await command(client, "ctx.fixError", {"uri": uri, "diagnostic": diag})
    with pytest.raises(Exception, match="not open"):
        await command(client, "ctx.explain", {"uri": (calc / "x.py").as_uri(), "range": None})
    with pytest.raises(Exception, match="range"):
        await command(client, "ctx.explain", {"uri": uri, "range": "everything"})
    assert fake_openai.requests == []


async def test_cancel_during_command_aborts_backend(lsp, calc: Path, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Hang(30))
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    params = types.ExecuteCommandParams(
        command="ctx.explain",
        arguments=[
            {"uri": uri, "range": client.protocol._converter.unstructure(_range(0, 0, 1, 0))}
        ],
    )
    future = asyncio.ensure_future(
        client.protocol.send_request_async(types.WORKSPACE_EXECUTE_COMMAND, params, msg_id="cmd-1")
    )
    await asyncio.to_thread(fake_openai.wait_for_requests, 1)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cmd-1"))
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(future, 5)
    for _ in range(50):
        if fake_openai.aborted:
            break
        await asyncio.sleep(0.05)
    assert fake_openai.aborted == 1
    ctx = await command(client, "ctx.showContext")
    assert "History: 0 messages" in ctx["text"], "no history entry claims success"


async def test_summarize_history_replaces_old_messages_in_prompts(
    lsp, calc: Path, fake_openai: FakeOpenAI
):
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    for i in range(4):
        fake_openai.reply = f"explanation number {i}"
        await command(client, "ctx.explain", {"uri": uri, "range": _range(0, 0, 1, 0)})
    fake_openai.reply = "SUMMARY: four explanations of add()"
    result = await command(client, "ctx.summarizeHistory", {})
    assert result["text"] == "SUMMARY: four explanations of add()"
    assert "explanation number 0" in fake_openai.prompts()[-1]
    fake_openai.reply = "ok"
    await command(client, "ctx.explain", {"uri": uri, "range": _range(0, 0, 1, 0)})
    prompt = fake_openai.prompts()[-1]
    assert "SUMMARY: four explanations" in prompt
    assert "explanation number 0" not in prompt and "explanation number 3" in prompt


async def test_seed_exercise_across_restart(lsp, calc: Path, fake_openai: FakeOpenAI):
    """Open a file, complete, switch branch, commit message, restart, explain: the new
    server's prompt carries the earlier exchanges."""
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    fake_openai.reply = "values"
    inline = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=6, character=24),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    assert [i.insert_text for i in inline.items] == ["values"]
    git(calc, "checkout", "-q", "-b", "fix/mean")
    (calc / "calc.py").write_text(CALC.replace("valuez", "values"))
    git(calc, "add", "calc.py")
    fake_openai.reply = "fix(calc): use the right name in mean\n\nThe typo raised NameError."
    message = await command(client, "ctx.commitMessage", {})
    assert message["text"].startswith("fix(calc): use the right name in mean")
    assert "fix/mean" in fake_openai.prompts()[-1]
    await client.shutdown_session()

    second = await _start(lsp, calc, fake_openai)
    uri = open_doc(second, calc / "calc.py")
    fake_openai.reply = "mean() divides the sum by the count."
    await command(second, "ctx.explain", {"uri": uri, "range": _range(4, 0, 6, 30)})
    prompt = fake_openai.prompts()[-1]
    assert "fix(calc): use the right name in mean" in prompt
    assert "Commit message for the staged diff" in prompt
    assert "fix/mean" in prompt
