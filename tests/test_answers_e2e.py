"""What an editor shows around answers: resolving an action that needs no resolving, and the
name an explanation opens under."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types

from tests.conftest import command, git, open_doc
from tests.fake_openai import FakeOpenAI

CALC = (
    "def add(a, b):\n    return a + b\n\n\n"
    "def mean(values):\n    return sum(values) / len(values)\n"
)


def _range(l1: int, c1: int, l2: int, c2: int) -> types.Range:
    return types.Range(
        start=types.Position(line=l1, character=c1), end=types.Position(line=l2, character=c2)
    )


async def test_resolving_the_explain_action_returns_it_unchanged(
    lsp, repo: Path, fake_openai: FakeOpenAI
):
    (repo / "calc.py").write_text(CALC)
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": "test-model"})
    uri = open_doc(client, repo / "calc.py")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=_range(1, 4, 1, 4),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    explain = next(a for a in actions if a.title.startswith("ctx: Explain"))
    assert explain.data is None and explain.command is not None
    # VS Code resolves every action it is about to run, this one too (its data empty)
    for data in (None, {}):
        explain.data = data
        resolved = await client.code_action_resolve_async(explain)
        assert resolved == explain
    assert client.messages == [] and fake_openai.requests == []


async def test_explanations_open_under_a_short_readable_name(
    lsp, repo: Path, fake_openai: FakeOpenAI
):
    (repo / "src").mkdir()
    (repo / "src" / "calc.py").write_text(CALC)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "calc")
    fake_openai.reply = "`mean` divides the sum by the count."
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": "test-model"})
    uri = open_doc(client, repo / "src" / "calc.py")
    result = await command(client, "ctx.explain", {"uri": uri, "range": _range(5, 4, 5, 4)})
    answer = Path(result["path"])
    assert answer.name == "explain calc.py 5-6.md"
    assert "divides the sum" in answer.read_text()
    assert [d.uri for d in client.shown_documents] == [answer.as_uri()]
    # the same code explained again keeps both answers
    again = await command(client, "ctx.explain", {"uri": uri, "range": _range(5, 4, 5, 4)})
    assert Path(again["path"]).name == answer.name and again["path"] != result["path"]
    assert answer.exists()
