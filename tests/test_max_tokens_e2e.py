"""The reply limit sent to the model: the template's `max_tokens` (else `maxTokens`), under
the `maxTokens` cap."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types

from ctx_lsp.prompting.templates import TemplateLibrary
from tests.conftest import command, open_doc
from tests.fake_openai import FakeOpenAI

RANGE = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}


def _sent(fake: FakeOpenAI) -> list[int]:
    return [r.body["max_tokens"] for r in fake.chat_requests()]


async def test_each_task_asks_for_its_templates_max_tokens(
    lsp, repo: Path, home: Path, fake_openai: FakeOpenAI
):
    explain = TemplateLibrary.builtin().get("explain")
    templates = home / "templates"  # beside the user config file
    templates.mkdir()
    (templates / "explain.md").write_text(
        "---\ndescription: short explanations\nmax_tokens: 77\n---\n"
        f"## system\n{explain.system}\n## user\n{explain.user}\n"
    )
    (home / "ctx-user-config.toml").write_text("maxTokens = 100\n")
    client = await lsp(
        repo, env=fake_openai.env(), init_options={"model": "test-model", "debounceMs": 0}
    )
    uri = open_doc(client, repo / "app.py")
    await command(client, "ctx.explain", {"uri": uri, "range": RANGE})  # the user's template
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=1, character=4),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    await command(client, "ctx.generateTests", {"uri": uri, "range": RANGE})  # built-in: 2048
    # the user's template 77; a completion's 256 and the tests' 2048 under the user's cap, 100
    assert _sent(fake_openai) == [77, 100, 100]
