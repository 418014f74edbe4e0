"""A server run by hand (llama.cpp's `llama-server -c 2048`): the model it serves and its
context size are taken from it, and a prompt-too-long 400 cuts the prompt and retries once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import command, git
from tests.fake_openai import FakeOpenAI

MODEL = "/models/qwen2.5-coder-0.5b-q8_0.gguf"  # llama-server serves the file's path


def _big_change(repo: Path) -> None:
    """A staged diff far longer than a 2,048-token context (~24,000 tokens)."""
    lines = [f"def handler_{i}(event):\n    return event.get('field_{i}')\n" for i in range(1500)]
    (repo / "handlers.py").write_text("\n".join(lines))
    git(repo, "add", "handlers.py")


@pytest.mark.parametrize("report", [True, False], ids=["context-reported", "context-from-400"])
async def test_commit_message_fits_a_small_context(lsp, repo: Path, report: bool):
    with FakeOpenAI(
        "Add event handlers", models=[MODEL], context_tokens=2048, report_context=report
    ) as server:
        _big_change(repo)
        client = await lsp(repo, env=server.env())  # no ctx.model: the served one is used
        result = await command(client, "ctx.commitMessage", {})
        assert result["text"] == "Add event handlers"
        chats = server.chat_requests()
        assert all(r.body["model"] == MODEL for r in chats)
        answered = chats[-1].body
        assert answered["max_tokens"] == 400  # the commit template's limit
        chars = sum(len(m["content"]) for m in answered["messages"])
        assert chars // 4 + answered["max_tokens"] <= 2048
        # told the size up front it fits the first time; else after one 400
        assert len(chats) == (1 if report else 2)
        assert client.messages == []  # nothing for the user to fix


async def test_a_chosen_model_is_kept_and_its_context_learned_from_the_400(lsp, repo: Path):
    with FakeOpenAI("Add handlers", models=["mine"], context_tokens=2048) as server:
        _big_change(repo)
        client = await lsp(repo, env=server.env(), init_options={"model": "mine"})
        result = await command(client, "ctx.commitMessage", {})
        assert result["text"] == "Add handlers"
        # not asked up front for a chosen model: one 400, then the prompt cut to fit
        assert [r.body["model"] for r in server.chat_requests()] == ["mine", "mine"]
