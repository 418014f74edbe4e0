"""Inline completions and completion items through the protocol, against the local
OpenAI-compatible test server and the real `openai` client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types

from tests.conftest import command, git, index_state, open_doc
from tests.fake_openai import FakeOpenAI, Hang, Status

UTIL = "def scale_vector(values, factor):\n    return [v * factor for v in values]\n"
APP = "from util import scale_vector\n\n\ndef double(xs):\n    return \n"


def _pos(line: int, char: int) -> types.Position:
    return types.Position(line=line, character=char)


async def _inline(client, uri: str, line: int, char: int) -> types.InlineCompletionList:
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=_pos(line, char),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )


@pytest.fixture
def project(repo: Path) -> Path:
    (repo / "util.py").write_text(UTIL)
    (repo / "app.py").write_text(APP)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feat: util")
    git(repo, "checkout", "-q", "-b", "feature/vectors")
    return repo


async def _start(lsp, root: Path, fake: FakeOpenAI, **settings):
    opts = {"model": "test-model", "debounceMs": 0, **settings}
    return await lsp(root, env=fake.env(), init_options=opts)


async def test_inline_completion_uses_file_branch_related_code_and_history(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    from ctx_lsp.config.settings import Settings
    from ctx_lsp.store.ctxdir import CtxStore
    from ctx_lsp.store.history import History
    from ctx_lsp.text.messages import ChatMessage

    History(CtxStore(project, ("users", Settings().effective_user()))).append(
        ChatMessage("user", "We agreed vectors are plain lists of floats", kind="chat"),
        ChatMessage("assistant", "Noted: lists of floats.", kind="chat"),
    )
    fake_openai.reply = "```python\n    return scale_vector(xs, 2)\n```"
    client = await _start(lsp, project, fake_openai)
    open_doc(client, project / "util.py")
    uri = open_doc(client, project / "app.py")
    result = await _inline(client, uri, 4, 11)
    assert [i.insert_text for i in result.items] == ["scale_vector(xs, 2)"]
    assert result.items[0].range == types.Range(start=_pos(4, 11), end=_pos(4, 11))

    (prompt,) = fake_openai.prompts()
    assert "def double(xs):" in prompt  # the file's code
    assert "feature/vectors" in prompt  # the branch
    assert "return [v * factor for v in values]" in prompt  # related code, another open file
    assert "plain lists of floats" in prompt  # the earlier history
    body = fake_openai.chat_requests()[0].body
    assert body["model"] == "test-model"
    assert fake_openai.chat_requests()[0].headers.get("authorization") == "Bearer sk-test-fake"


async def test_completion_item_offers_the_same_suggestion(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    fake_openai.reply = "scale_vector(xs, 2)"
    client = await _start(lsp, project, fake_openai)
    uri = open_doc(client, project / "app.py", APP.replace("return \n", "return sca\n"))
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=_pos(4, 14)
        )
    )
    (item,) = result.items
    # the model repeated "sca": the item replaces the typed word with the whole name
    assert item.text_edit.new_text == "scale_vector(xs, 2)"
    assert item.text_edit.range == types.Range(start=_pos(4, 11), end=_pos(4, 14))
    assert item.filter_text.startswith("sca")


async def test_typing_burst_makes_one_backend_call_and_answers_stale_requests_empty(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    fake_openai.reply = "scale_vector(xs, 3)"
    client = await _start(lsp, project, fake_openai, debounceMs=150)
    uri = open_doc(client, project / "app.py")
    first = asyncio.ensure_future(_inline(client, uri, 4, 11))
    await asyncio.sleep(0.02)
    second = asyncio.ensure_future(_inline(client, uri, 4, 11))
    done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
    assert first in done and second not in done, "the stale request is answered first"
    assert first.result().items == ()
    fresh = await second
    assert [i.insert_text for i in fresh.items] == ["scale_vector(xs, 3)"]
    assert len(fake_openai.chat_requests()) == 1


async def test_edit_makes_pending_request_stale_without_backend_call(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    client = await _start(lsp, project, fake_openai, debounceMs=300)
    uri = open_doc(client, project / "app.py")
    pending = asyncio.ensure_future(_inline(client, uri, 4, 11))
    await asyncio.sleep(0.05)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=_pos(4, 11), end=_pos(4, 11)), text="x"
                )
            ],
        )
    )
    assert (await pending).items == ()
    await asyncio.sleep(0.4)
    assert fake_openai.chat_requests() == []


async def test_a_superseded_request_answers_while_its_backend_call_hangs(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    """The newer request cancels the older one's backend call at once: the older answer
    (empty) comes while the backend still hangs on it, and that call is aborted."""
    fake_openai.enqueue(Hang(30))
    fake_openai.reply = "scale_vector(xs, 3)"
    client = await _start(lsp, project, fake_openai)
    uri = open_doc(client, project / "app.py")
    first = asyncio.ensure_future(_inline(client, uri, 4, 11))
    await asyncio.to_thread(fake_openai.wait_for_requests, 1)  # the hang has begun
    second = asyncio.ensure_future(_inline(client, uri, 4, 11))
    # waiting as long as the hang: the answer must not be the hang running out
    done, _ = await asyncio.wait({first}, timeout=30)
    assert first in done and first.result().items == ()
    assert [i.insert_text for i in (await second).items] == ["scale_vector(xs, 3)"]
    for _ in range(100):
        if fake_openai.aborted:
            break
        await asyncio.sleep(0.05)
    assert fake_openai.aborted == 1 and len(fake_openai.chat_requests()) == 2


async def test_cancel_request_aborts_the_backend_call(lsp, project: Path, fake_openai: FakeOpenAI):
    fake_openai.enqueue(Hang(30))
    client = await _start(lsp, project, fake_openai)
    uri = open_doc(client, project / "app.py")
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=_pos(4, 11),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )
    future = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="inline-1"
        )
    )
    await asyncio.to_thread(fake_openai.wait_for_requests, 1)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="inline-1"))
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(future, 5)
    for _ in range(50):
        if fake_openai.aborted:
            break
        await asyncio.sleep(0.05)
    assert fake_openai.aborted == 1


@pytest.mark.parametrize(
    ("status", "needle"),
    [
        pytest.param(401, "rejected", id="unauthorized"),
        pytest.param(429, "rate", id="rate-limited"),
        pytest.param(500, "500", id="server-error"),
    ],
)
async def test_backend_errors_are_told_once(
    lsp, project: Path, fake_openai: FakeOpenAI, status: int, needle: str
):
    fake_openai.fail_all(Status(status, headers={"Retry-After": "0"}))
    client = await _start(lsp, project, fake_openai, maxRetries=0)
    uri = open_doc(client, project / "app.py")
    for char in (11, 10, 9):
        assert (await _inline(client, uri, 4, char)).items == ()
    assert len(fake_openai.chat_requests()) == 3
    assert len(client.messages) == 1, [m.message for m in client.messages]
    assert needle in client.messages[0].message.lower()
    assert "sk-test-fake" not in client.messages[0].message


async def test_no_key_and_unreachable_are_clear(lsp, project: Path, home: Path):
    # an explicit backend: with "auto", no key would pick the local model when installed
    client = await lsp(project, init_options={"debounceMs": 0, "backend": "openai"})
    uri = open_doc(client, project / "app.py")
    assert (await _inline(client, uri, 4, 11)).items == ()
    assert len(client.messages) == 1 and "OPENAI_API_KEY" in client.messages[0].message

    dead = await lsp(
        project,
        env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-x"},
        init_options={"debounceMs": 0, "maxRetries": 0, "timeoutS": 2},
    )
    uri = open_doc(dead, project / "app.py")
    assert (await _inline(dead, uri, 4, 11)).items == ()
    assert len(dead.messages) == 1 and "127.0.0.1:9" in dead.messages[0].message


async def test_cache_answers_repeat_and_survives_restart(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    fake_openai.reply = "scale_vector(xs, 4)"
    client = await _start(lsp, project, fake_openai)
    # the prompt takes util.py's definitions once the index is built (read back from .ctx/
    # after the restart): asked for before, it would differ from the restarted server's
    await index_state(client)
    uri = open_doc(client, project / "app.py")
    for _ in range(2):
        assert [i.insert_text for i in (await _inline(client, uri, 4, 11)).items] == [
            "scale_vector(xs, 4)"
        ]
    assert len(fake_openai.chat_requests()) == 1
    await client.shutdown_session()

    second = await _start(lsp, project, fake_openai)
    await index_state(second)
    uri = open_doc(second, project / "app.py")
    assert [i.insert_text for i in (await _inline(second, uri, 4, 11)).items] == [
        "scale_vector(xs, 4)"
    ]
    assert len(fake_openai.chat_requests()) == 1

    third = await _start(lsp, project, fake_openai, cache=False)
    uri = open_doc(third, project / "app.py")
    await _inline(third, uri, 4, 11)
    assert len(fake_openai.chat_requests()) == 2


def _recorded(root: Path) -> list[tuple[str, str]]:
    from ctx_lsp.config.settings import Settings
    from ctx_lsp.store.ctxdir import CtxStore
    from ctx_lsp.store.history import History

    history = History(CtxStore(root, ("users", Settings().effective_user())))
    return [(m.role, m.content) for m in history.load() if m.kind == "completion"]


async def test_completions_reach_the_history_in_batches_and_at_shutdown(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    """Written together soon after (not one file write per suggestion), and none lost when
    the editor shuts the server down right after a suggestion."""
    fake_openai.reply = "scale_vector(xs, 3)"
    client = await _start(lsp, project, fake_openai, cache=False)
    uri = open_doc(client, project / "app.py")
    for _ in range(3):
        assert (await _inline(client, uri, 4, 11)).items
    for _ in range(100):  # the batch is written about a second after the first suggestion
        if len(_recorded(project)) == 6:
            break
        await asyncio.sleep(0.05)
    recorded = _recorded(project)
    assert [role for role, _ in recorded] == ["user", "assistant"] * 3
    assert all(text == "scale_vector(xs, 3)" for role, text in recorded if role == "assistant")
    assert "Complete app.py:5" in recorded[0][1]

    assert (await _inline(client, uri, 4, 11)).items
    await client.shutdown_session()
    assert len(_recorded(project)) == 8, "the suggestion just before shutdown is in the history"


async def test_position_past_end_is_clamped_and_unknown_document_is_empty(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    fake_openai.reply = "pass"
    client = await _start(lsp, project, fake_openai)
    uri = open_doc(client, project / "app.py")
    result = await _inline(client, uri, 400, 900)
    assert [i.insert_text for i in result.items] == ["pass"]
    missing = (project / "nope.py").as_uri()
    assert (await _inline(client, missing, 0, 0)).items == ()


async def test_opening_a_document_loads_what_suggestions_need_before_any_edit(
    lsp, project: Path, fake_openai: FakeOpenAI
):
    """openai and the tokenizer load at the first didOpen (off the loop, told as `warming`),
    so the first burst of typing does not wait behind them; a server with nothing open
    loads nothing."""
    fake_openai.reply = "[x * 2 for x in xs]"
    client = await lsp(project, env=fake_openai.env(), init_options={"model": "test-model"})
    assert (await command(client, "ctx.showContext"))["warming"] is False
    uri = open_doc(client, project / "app.py")
    assert (await command(client, "ctx.showContext"))["warming"] is True
    for _ in range(600):
        if not (await command(client, "ctx.showContext"))["warming"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("still warming up")
    result = await _inline(client, uri, 4, 11)
    assert [i.insert_text for i in result.items] == ["[x * 2 for x in xs]"]
