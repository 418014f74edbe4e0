"""A backend replaced by a settings change, and every backend at shutdown, closes its HTTP
connections; a call still in flight on the replaced one finishes first."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types

from ctx_lsp.backends.openai_compat import Backend, BackendConfig
from ctx_lsp.config.settings import Layer
from ctx_lsp.runtime import Runtime
from ctx_lsp.text.messages import ChatMessage
from tests.conftest import command, open_doc
from tests.fake_openai import FakeOpenAI, Reply


async def _explain(client, uri: str) -> dict:
    rng = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}
    return await command(client, "ctx.explain", {"uri": uri, "range": rng})


async def test_changing_the_model_closes_the_old_connection_and_shutdown_closes_all(
    lsp, repo: Path, fake_openai: FakeOpenAI
):
    fake_openai.models = ["test-model", "other-model"]
    client = await lsp(repo, env=fake_openai.env(), configuration={"model": "test-model"})
    await asyncio.sleep(0.3)  # the configuration pull
    uri = open_doc(client, repo / "app.py")
    fake_openai.reply = "first answer"
    assert "first answer" in (await _explain(client, uri))["text"]
    assert await asyncio.to_thread(fake_openai.wait_for_connections, 1) == 1

    client.set_configuration({"model": "other-model"}, section="ctx")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await asyncio.sleep(0.3)
    fake_openai.reply = "second answer"
    assert "second answer" in (await _explain(client, uri))["text"]
    assert [r.body["model"] for r in fake_openai.chat_requests()] == ["test-model", "other-model"]
    # the first backend's keep-alive connection is gone, only the new one's is open
    assert await asyncio.to_thread(fake_openai.wait_for_connections, 1) == 1

    await client.shutdown_async(None)  # the process is still running: no exit yet
    try:
        assert await asyncio.to_thread(fake_openai.wait_for_connections, 0) == 0
    finally:
        client.exit(None)


async def test_closing_when_idle_lets_the_call_in_flight_finish(fake_openai: FakeOpenAI):
    fake_openai.enqueue(Reply("the slow answer", delay_s=0.5))
    backend = Backend(BackendConfig(model="test-model"), env=fake_openai.env())
    call = asyncio.ensure_future(backend.chat([ChatMessage("user", "hi")]))
    await asyncio.to_thread(fake_openai.wait_for_requests, 1)
    closing = asyncio.ensure_future(backend.aclose(when_idle=True))
    completion = await call
    assert completion.text == "the slow answer"
    await closing
    assert await asyncio.to_thread(fake_openai.wait_for_connections, 0) == 0


async def test_a_replaced_backend_closes_its_connection_while_still_referenced(
    home: Path, fake_openai: FakeOpenAI
):
    fake_openai.models = ["test-model", "other-model"]
    rt = Runtime(fake_openai.env())
    rt.load(Layer("initializationOptions", {"model": "test-model"}))
    first = rt.backend  # held, as by an assistant created before the change
    await first.chat([ChatMessage("user", "hi")])
    rt.load(Layer("initializationOptions", {"model": "other-model"}))
    second = rt.backend
    assert second is not first
    await second.chat([ChatMessage("user", "hi again")])
    assert [r.body["model"] for r in fake_openai.chat_requests()] == ["test-model", "other-model"]
    assert await asyncio.to_thread(fake_openai.wait_for_connections, 1) == 1
    await rt.aclose()
    assert await asyncio.to_thread(fake_openai.wait_for_connections, 0) == 0
