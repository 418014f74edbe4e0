"""The history rule: chat turns form the conversation; another task's exchange enters a
prompt only where it helps (same file, a kind that informs the task). Tested on the rule
itself, on the prompt dry runs (`ctx.showPrompt`, `ctx-lsp prompt`) and on the prompts the
test backend received."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctx_lsp.assist.conversation import keeper, takes_summary
from ctx_lsp.text.messages import ChatMessage
from tests.conftest import command, git, open_doc
from tests.fake_openai import FakeOpenAI
from tests.test_cli import run_cli


def _m(kind: str, file: str | None = None, files: tuple[str, ...] = ()) -> ChatMessage:
    return ChatMessage("assistant", "x", kind=kind, file=file, files=files)


@pytest.mark.parametrize(
    ("task", "files", "message", "kept"),
    [
        pytest.param("chat", [], _m("chat"), True, id="chat-takes-every-chat-turn"),
        pytest.param("chat", ["a.py"], _m("explain", "a.py"), True, id="chat-takes-explain-same"),
        pytest.param("chat", ["a.py"], _m("explain", "b.py"), False, id="chat-not-other-file"),
        pytest.param("chat", [], _m("commit", None, ("a.py",)), False, id="chat-no-file-no-commit"),
        pytest.param("fix", ["a.py"], _m("explain", "a.py"), True, id="fix-sees-explanation"),
        pytest.param("fix", ["a.py"], _m("explain", "b.py"), False, id="fix-not-other-file"),
        pytest.param("fix", ["a.py"], _m("tests", "a.py"), False, id="fix-not-tests"),
        pytest.param("explain", ["a.py"], _m("commit", None, ("a.py", "b.py")), True, id="ex-com"),
        pytest.param("commit", ["a.py"], _m("explain", "a.py"), False, id="commit-no-explain"),
        pytest.param("commit", ["a.py"], _m("explain", "b.py"), False, id="commit-no-explain-2"),
        pytest.param("commit", ["a.py"], _m("fix", "a.py"), True, id="commit-sees-fix-of-diff"),
        pytest.param("commit", ["a.py"], _m("commit", None, ("a.py",)), False, id="commit-no-old"),
        pytest.param("commit", ["a.py"], _m("chat", "a.py"), True, id="commit-chat-about-diff"),
        pytest.param("commit", ["a.py"], _m("chat"), True, id="commit-takes-the-conversation"),
        pytest.param("completion", ["a.py"], _m("explain", "a.py"), False, id="completion-no-ex"),
        pytest.param("completion", ["a.py"], _m("commit", None, ("a.py",)), False, id="cmp-no-co"),
        pytest.param("completion", ["a.py"], _m("chat", "a.py"), True, id="completion-chat-same"),
        pytest.param("completion", ["a.py"], _m("chat", "b.py"), True, id="completion-chat-other"),
        pytest.param("chat", [], _m("chat", "z.py", ("a.py",)), True, id="mentions-count"),
    ],
)
def test_the_rule(task: str, files: list[str], message: ChatMessage, kept: bool) -> None:
    keep = keeper(task, files)
    assert keep is not None and keep(message) is kept


def test_summaries_and_unknown_kinds() -> None:
    assert not takes_summary("completion")
    assert takes_summary("commit") and takes_summary("chat") and takes_summary("plugin-task")
    assert keeper("plugin-task", []) is None  # a kind without a rule: the whole conversation


CALC = "def mean(values):\n    total = sum(values)\n    return total / len(valuez)\n"
OTHER = "def hello():\n    return 'hi'\n"


@pytest.fixture
def work(repo: Path) -> Path:
    (repo / "calc.py").write_text(CALC)
    (repo / "other.py").write_text(OTHER)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feat: calc and other")
    return repo


def _rng(l1: int, c1: int, l2: int, c2: int) -> dict:
    return {"start": {"line": l1, "character": c1}, "end": {"line": l2, "character": c2}}


async def _history(client, fake: FakeOpenAI, calc_uri: str, other_uri: str) -> None:
    """An explanation of other.py, a commit message, an explanation and a chat about calc.py."""
    fake.reply = "EXPLAIN-OTHER: hello greets."
    await command(client, "ctx.explain", {"uri": other_uri, "range": _rng(0, 0, 1, 0)})
    fake.reply = "EXPLAIN-CALC: mean averages."
    await command(client, "ctx.explain", {"uri": calc_uri, "range": _rng(0, 0, 2, 0)})
    fake.reply = "CHAT-CALC: rename valuez."
    await command(client, "ctx.chat", {"question": "QUESTION-CALC?", "uri": calc_uri})


async def test_prompts_carry_only_what_helps_them(lsp, work: Path, fake_openai: FakeOpenAI):
    settings = {"model": "test-model", "debounceMs": 0, "cache": False}
    client = await lsp(work, env=fake_openai.env(), init_options=settings)
    calc_uri = open_doc(client, work / "calc.py")
    other_uri = open_doc(client, work / "other.py")
    await _history(client, fake_openai, calc_uri, other_uri)

    # a commit message for a change of calc.py: no explanation of any file
    (work / "calc.py").write_text(CALC.replace("valuez", "values"))
    git(work, "add", "calc.py")
    fake_openai.reply = "fix: use the right name in mean\n\nIt raised NameError."
    await command(client, "ctx.commitMessage", {})
    commit_prompt = fake_openai.prompts()[-1]
    assert "EXPLAIN-OTHER" not in commit_prompt and "EXPLAIN-CALC" not in commit_prompt
    assert "CHAT-CALC" in commit_prompt  # the conversation

    # a fix in calc.py: the explanation of calc.py, not that of other.py
    diag = {
        "range": _rng(2, 4, 2, 30),
        "message": "undefined name 'valuez'",
        "severity": 1,
    }
    fake_openai.reply = "    return total / len(values)"
    await command(client, "ctx.fixError", {"uri": calc_uri, "diagnostic": diag, "apply": False})
    fix_prompt = fake_openai.prompts()[-1]
    assert "EXPLAIN-CALC" in fix_prompt and "CHAT-CALC" in fix_prompt
    assert "EXPLAIN-OTHER" not in fix_prompt and "fix: use the right name" not in fix_prompt

    # the completion dry run: the conversation, no other task's exchange
    shown = await command(
        client, "ctx.showPrompt", {"uri": calc_uri, "position": {"line": 2, "character": 10}}
    )
    assert "CHAT-CALC" in shown["text"]
    for other in ("EXPLAIN-OTHER", "EXPLAIN-CALC", "fix: use the right name", "len(values)"):
        assert other not in shown["text"], other
    shown_other = await command(
        client, "ctx.showPrompt", {"uri": other_uri, "position": {"line": 1, "character": 4}}
    )
    assert "CHAT-CALC" in shown_other["text"]  # the conversation goes everywhere
    assert "EXPLAIN-OTHER" not in shown_other["text"]  # an explanation, even of this file, not

    # a chat takes the whole conversation and the explanation of the file it is about
    fake_openai.reply = "ok"
    await command(client, "ctx.chat", {"question": "And other.py?", "uri": other_uri})
    chat_prompt = fake_openai.prompts()[-1]
    assert "CHAT-CALC" in chat_prompt and "EXPLAIN-OTHER" in chat_prompt
    assert "EXPLAIN-CALC" not in chat_prompt


async def test_cli_prompt_dry_run_follows_the_rule(lsp, work: Path, fake_openai: FakeOpenAI):
    settings = {"model": "test-model", "debounceMs": 0, "cache": False}
    client = await lsp(work, env=fake_openai.env(), init_options=settings)
    calc_uri = open_doc(client, work / "calc.py")
    other_uri = open_doc(client, work / "other.py")
    await _history(client, fake_openai, calc_uri, other_uri)
    await client.shutdown_session()

    r = run_cli(work, "prompt", "calc.py:3", env=fake_openai.env())
    assert r.returncode == 0, r.stderr
    assert "CHAT-CALC" in r.stdout and "QUESTION-CALC?" in r.stdout
    assert "EXPLAIN-CALC" not in r.stdout and "EXPLAIN-OTHER" not in r.stdout
