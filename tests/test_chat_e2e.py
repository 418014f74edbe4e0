"""Chat in the editor through the protocol: `ctx.chat` streamed as progress reports,
cancelled, restored after a restart, `@path` mentions, `ctx.applyCode`, `ctx.chatHistory`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.conftest import command, open_doc
from tests.fake_openai import FakeOpenAI, Hang, Reply

CALC = "def mean(values):\n    total = sum(values)\n    return total / len(valuez)\n"
ANSWER = (
    "The name `valuez` is a typo. Use this:\n\n"
    "```python\n"
    "def mean(values):\n"
    "    return sum(values) / len(values)\n"
    "```\n\n"
    "And a check:\n\n"
    "```python\n"
    "assert mean([1, 3]) == 2\n"
    "```\n"
)


@pytest.fixture
def calc(repo: Path) -> Path:
    (repo / "calc.py").write_text(CALC)
    return repo


async def _start(lsp, root: Path, fake: FakeOpenAI, **kw: Any):
    settings = {"model": "test-model", "debounceMs": 0, "cache": False}
    return await lsp(root, env=fake.env(), init_options=settings, **kw)


def _rng(l1: int, c1: int, l2: int, c2: int) -> dict[str, Any]:
    return {"start": {"line": l1, "character": c1}, "end": {"line": l2, "character": c2}}


def _send(client, args: dict[str, Any], token: str, msg_id: str | None = None):
    """ctx.chat with a client-made work-done token, as VS Code and Neovim send it."""
    client.progress_reports.setdefault(token, [])
    params = types.ExecuteCommandParams(command="ctx.chat", arguments=[args], work_done_token=token)
    return client.protocol.send_request_async(
        types.WORKSPACE_EXECUTE_COMMAND, params, msg_id=msg_id
    )


def _deltas(reports: list[Any]) -> list[str]:
    return [r.message for r in reports if r.kind == "report"]


async def _wait_for(check, what: str, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_turn_streams_deltas_that_add_up_to_the_answer(lsp, calc, fake_openai):
    fake_openai.enqueue(Reply(ANSWER, chunk_delay_s=0.02))
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    args = {"question": "Why does mean fail?", "uri": uri, "range": _rng(0, 0, 3, 0)}
    result = await _send(client, args, "chat-1")
    assert result["text"] == ANSWER and result["cut"] is False and result["historyId"]
    reports = client.progress_reports["chat-1"]
    begin, end = reports[0], reports[-1]
    assert begin.kind == "begin" and begin.title == "ctx chat" and begin.cancellable is True
    assert end.kind == "end" and end.message == "done"
    deltas = _deltas(reports)
    assert "".join(deltas) == result["text"]
    assert len(deltas) >= 3, "the answer arrived in pieces as the model wrote"
    # the question and the selected code went to the model
    (prompt,) = fake_openai.prompts()
    assert "Why does mean fail?" in prompt and "return total / len(valuez)" in prompt


async def test_a_server_made_token_when_the_client_sends_none(lsp, calc, fake_openai):
    fake_openai.reply = "Short answer."
    client = await _start(lsp, calc, fake_openai)
    result = await command(client, "ctx.chat", {"question": "Hello?"})
    ((token, reports),) = client.progress_reports.items()
    assert token.startswith("ctx-")
    assert "".join(_deltas(reports)) == result["text"] == "Short answer."


async def test_secrets_in_a_streamed_answer_are_masked_in_every_report(lsp, calc, fake_openai):
    key = "sk-proj-" + "Ab3" * 10
    fake_openai.enqueue(Reply(f'Set it like this:\nOPENAI = "{key}"\nthen run it.'))
    client = await _start(lsp, calc, fake_openai)
    result = await _send(client, {"question": "How do I set the key?"}, "chat-s")
    deltas = _deltas(client.progress_reports["chat-s"])
    assert "".join(deltas) == result["text"]
    assert key not in result["text"] and all("Ab3Ab3" not in d for d in deltas)
    assert "<redacted:" in result["text"]
    history = await command(client, "ctx.chatHistory", {})
    assert key not in json.dumps(history)


async def test_cancel_button_stops_the_request_and_keeps_the_partial_answer(lsp, calc, fake_openai):
    words = " ".join(f"word{i}" for i in range(400))
    fake_openai.enqueue(Reply(words, chunk_delay_s=0.05))
    client = await _start(lsp, calc, fake_openai)
    future = asyncio.ensure_future(_send(client, {"question": "Tell me a lot."}, "chat-c"))
    reports = client.progress_reports["chat-c"]
    await _wait_for(lambda: len(_deltas(reports)) >= 2, "the first streamed reports")
    client.protocol.notify(
        types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token="chat-c")
    )
    result = await asyncio.wait_for(future, 30)
    assert result["cut"] is True and result["historyId"]
    partial = result["text"]
    assert partial.startswith("word0 word1") and len(partial) < len(words)
    assert reports[-1].kind == "end" and reports[-1].message == "cancelled"
    assert "".join(_deltas(reports)) == partial
    await _wait_for(lambda: fake_openai.aborted == 1, "the backend to see the connection close")

    history = await command(client, "ctx.chatHistory", {})
    (turn,) = history["turns"]
    assert turn == {
        "historyId": result["historyId"],
        "question": "Tell me a lot.",
        "answer": partial,
        "cut": True,
        "time": turn["time"],
    }
    assert "answer cut short" in history["text"]


async def test_cancel_request_errors_and_the_history_keeps_the_cut_answer(lsp, calc, fake_openai):
    fake_openai.enqueue(Reply("first part " * 200, chunk_delay_s=0.05))
    client = await _start(lsp, calc, fake_openai)
    future = asyncio.ensure_future(_send(client, {"question": "Go on."}, "chat-r", "req-7"))
    reports = client.progress_reports["chat-r"]
    await _wait_for(lambda: len("".join(_deltas(reports))) >= 30, "streamed reports")
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="req-7"))
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(future, 30)
    await _wait_for(lambda: fake_openai.aborted == 1, "the backend to see the connection close")
    (turn,) = (await command(client, "ctx.chatHistory", {}))["turns"]
    assert turn["cut"] is True and turn["answer"].startswith("first part")


async def test_cancel_before_the_first_word_keeps_the_question(lsp, calc, fake_openai):
    fake_openai.enqueue(Hang(30))
    client = await _start(lsp, calc, fake_openai)
    future = asyncio.ensure_future(_send(client, {"question": "Anyone there?"}, "chat-h"))
    await asyncio.to_thread(fake_openai.wait_for_requests, 1, 30)
    client.protocol.notify(
        types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token="chat-h")
    )
    result = await asyncio.wait_for(future, 30)
    assert result == {**result, "text": "", "cut": True}
    (turn,) = (await command(client, "ctx.chatHistory", {}))["turns"]
    assert (turn["question"], turn["answer"], turn["cut"]) == ("Anyone there?", "", True)


async def test_a_second_server_answers_with_the_first_turn_in_its_prompt(lsp, calc, fake_openai):
    fake_openai.reply = "Rename valuez to values."
    first = await _start(lsp, calc, fake_openai)
    await command(first, "ctx.chat", {"question": "What is wrong in calc.py?"})
    await first.shutdown_session()

    second = await _start(lsp, calc, fake_openai)
    restored = await command(second, "ctx.chatHistory", {})
    assert [(t["question"], t["answer"]) for t in restored["turns"]] == [
        ("What is wrong in calc.py?", "Rename valuez to values.")
    ]
    fake_openai.reply = "Then it returns the mean."
    await command(second, "ctx.chat", {"question": "And after that?"})
    body = fake_openai.chat_requests()[-1].body
    roles = [(m["role"], m["content"]) for m in body["messages"]]
    assert ("user", "What is wrong in calc.py?") in roles
    assert ("assistant", "Rename valuez to values.") in roles
    assert "And after that?" in roles[-1][1]


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        pytest.param(".env", "API_TOKEN=abc123secretvalue\n", "secrets or key file", id="env"),
        pytest.param("deploy/server.key", "KEYDATA\n", "secrets or key file", id="key"),
        pytest.param("build/out.py", "print('generated')\n", "git ignores it", id="ignored"),
    ],
)
async def test_mentioning_an_excluded_file_is_refused(
    lsp, calc, fake_openai, name: str, content: str, why: str
):
    (calc / ".gitignore").write_text("build/\n")
    path = calc / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    client = await _start(lsp, calc, fake_openai)
    with pytest.raises(Exception, match=rf"@{name} refused: {name} is excluded .*{why}"):
        await command(client, "ctx.chat", {"question": f"What is in @{name}?"})
    with pytest.raises(Exception, match=rf"{name} is excluded"):
        await command(client, "ctx.chat", {"question": "Look at this", "files": [name]})
    assert fake_openai.requests == [], "nothing was sent"
    assert (await command(client, "ctx.chatHistory", {}))["turns"] == []


async def test_mentions_add_files_and_unknown_paths_are_told(lsp, calc, fake_openai):
    (calc / "stats.py").write_text("def median(xs):\n    return sorted(xs)[len(xs) // 2]\n")
    fake_openai.reply = "They agree."
    client = await _start(lsp, calc, fake_openai)
    result = await command(client, "ctx.chat", {"question": "Compare @calc.py and @stats.py."})
    assert result["text"] == "They agree."
    prompt = fake_openai.prompts()[-1]
    assert "### calc.py" in prompt and "return total / len(valuez)" in prompt
    assert "### stats.py" in prompt and "sorted(xs)[len(xs) // 2]" in prompt
    # a decorator is no file: the question goes as it is
    await command(client, "ctx.chat", {"question": "What does @property do?"})
    with pytest.raises(Exception, match=r"@nope\.py: no such file"):
        await command(client, "ctx.chat", {"question": "Read @nope.py"})
    with pytest.raises(Exception, match="outside the workspace"):
        await command(client, "ctx.chat", {"question": "Read @../secret.txt"})


async def test_slash_commands_reuse_the_task_templates(lsp, calc, fake_openai):
    fake_openai.reply = "    return total / len(values)"
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    result = await command(
        client,
        "ctx.chat",
        {"question": "/fix NameError: valuez", "uri": uri, "range": _rng(2, 0, 2, 30)},
    )
    (fix_prompt,) = fake_openai.prompts()
    assert "Reply with ONLY the replacement" in fix_prompt  # the fix template's system text
    assert "Error: NameError: valuez" in fix_prompt
    # an unfenced /fix answer is one code block: it applies as is
    applied = await command(
        client,
        "ctx.applyCode",
        {"historyId": result["historyId"], "block": 0, "uri": uri, "range": _rng(2, 0, 2, 30)},
    )
    assert applied["applied"] is True and applied["text"] == "    return total / len(values)"

    fake_openai.reply = "It averages."
    await command(client, "ctx.chat", {"question": "/explain briefly", "uri": uri})
    prompt = fake_openai.prompts()[-1]
    assert "explaining code to a colleague" in prompt and "briefly" in prompt
    with pytest.raises(Exception, match="/tests needs code"):
        await command(client, "ctx.chat", {"question": "/tests"})


async def test_apply_code_sends_the_block_as_a_workspace_edit(lsp, calc, fake_openai):
    fake_openai.reply = ANSWER
    client = await _start(lsp, calc, fake_openai)
    uri = open_doc(client, calc / "calc.py")
    turn = await command(client, "ctx.chat", {"question": "Fix mean please", "uri": uri})

    result = await command(
        client, "ctx.applyCode", {"historyId": turn["historyId"], "block": 0, "uri": uri}
    )
    new = "def mean(values):\n    return sum(values) / len(values)\n"
    assert result == {**result, "text": new, "applied": True}
    (applied,) = client.applied_edits
    assert applied.label == "ctx: code block 1 of the answer to “Fix mean please”"
    (change,) = applied.edit.document_changes
    assert change.text_document.uri == uri and change.text_document.version == 1
    (edit,) = change.edits
    assert edit.new_text == new
    assert (edit.range.start.line, edit.range.start.character) == (0, 0)
    assert (edit.range.end.line, edit.range.end.character) == (3, 0)  # the whole document

    # the second block into a range
    await command(
        client,
        "ctx.applyCode",
        {"historyId": turn["historyId"], "block": 1, "uri": uri, "range": _rng(1, 0, 2, 0)},
    )
    edit = client.applied_edits[-1].edit.document_changes[0].edits[0]
    assert edit.new_text == "assert mean([1, 3]) == 2\n"
    assert (edit.range.start.line, edit.range.end.line) == (1, 2)

    # confirm: VS Code (which announces change annotations) shows the edit and asks first
    await command(
        client,
        "ctx.applyCode",
        {"historyId": turn["historyId"], "block": 1, "uri": uri, "confirm": True},
    )
    confirmed = client.applied_edits[-1].edit
    (annotation,) = confirmed.change_annotations.values()
    assert annotation.needs_confirmation is True
    assert annotation.label.startswith("ctx: code block 2")
    assert confirmed.document_changes[0].edits[0].annotation_id in confirmed.change_annotations

    with pytest.raises(Exception, match=r"has 2 code block\(s\): block 5"):
        await command(
            client, "ctx.applyCode", {"historyId": turn["historyId"], "block": 5, "uri": uri}
        )
    with pytest.raises(Exception, match="no answer 'nope'"):
        await command(client, "ctx.applyCode", {"historyId": "nope", "block": 0, "uri": uri})
    assert len(client.applied_edits) == 3


async def test_bad_chat_arguments_are_told(lsp, calc, fake_openai):
    client = await _start(lsp, calc, fake_openai)
    with pytest.raises(Exception, match="'question' must be a non-empty string"):
        await command(client, "ctx.chat", {"question": "  "})
    with pytest.raises(Exception, match="'files' must be a list"):
        await command(client, "ctx.chat", {"question": "x", "files": "calc.py"})
    with pytest.raises(Exception, match="'range' needs 'uri'"):
        await command(client, "ctx.chat", {"question": "x", "range": _rng(0, 0, 0, 1)})
    with pytest.raises(Exception, match="'block' must be"):
        await command(client, "ctx.applyCode", {"historyId": "x", "block": -1, "uri": "file:///x"})
    assert fake_openai.requests == []


async def test_the_cli_and_the_editor_share_one_conversation(lsp, calc, fake_openai):
    from tests.test_cli import make_ws, run_cli

    make_ws(calc)
    fake_openai.reply = "From the terminal: rename valuez."
    r = run_cli(calc, "chat", "Asked in a terminal about @calc.py", env=fake_openai.env())
    assert r.returncode == 0, r.stderr
    assert "return total / len(valuez)" in fake_openai.prompts()[-1]  # the mention was read

    client = await _start(lsp, calc, fake_openai)
    (turn,) = (await command(client, "ctx.chatHistory", {}))["turns"]
    assert turn["question"] == "Asked in a terminal about @calc.py"
    assert turn["answer"] == "From the terminal: rename valuez."
    fake_openai.reply = "From the editor."
    await command(client, "ctx.chat", {"question": "Asked in the editor"})
    assert "From the terminal: rename valuez." in fake_openai.prompts()[-1]
    await client.shutdown_session()

    fake_openai.reply = "Back in the terminal."
    r = run_cli(calc, "chat", "And now?", env=fake_openai.env())
    assert r.returncode == 0, r.stderr
    prompt = fake_openai.prompts()[-1]
    assert "Asked in the editor" in prompt and "From the editor." in prompt
    r = run_cli(calc, "chat", "What is in @.env?", env=fake_openai.env())
    assert r.returncode == 2 and "@.env refused" in r.stderr
