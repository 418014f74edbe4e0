"""The transport to a model server on this machine, against raw HTTP servers on 127.0.0.1 that
keep connections alive or close them after each answer without saying so (as llama.cpp's
server does): every answer arrives, each request is sent once, a kept connection is reused."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import pytest

from ctx_lsp.backends.openai_compat import Backend, BackendConfig
from ctx_lsp.text.messages import ChatMessage

MSGS = [ChatMessage("user", "say hi")]


def _answer(n: int, gzipped: bool = False) -> bytes:
    body = json.dumps(
        {
            "id": f"c{n}",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": f"answer {n}"}}
            ],
        }
    ).encode()  # fmt: skip
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    if gzipped:
        body, head = gzip.compress(body), head + b"Content-Encoding: gzip\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


class Raw:
    """Answers each request with "answer <n>". `mode`: "keep" keeps connections alive;
    "close" closes one right after its answer, with no `Connection: close`; "drop" keeps it
    until the next request comes, then closes it without reading it (the close crosses the
    request: the request must go again, on a new connection); "gzip" keeps them and sends
    its answers gzip-encoded."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self.requests = 0  # answered

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
                if self.mode == "drop" and served:
                    break
                await reader.readexactly(int(head.split("content-length:")[1].split()[0]))
                self.requests += 1
                served += 1
                writer.write(_answer(self.requests, gzipped=self.mode == "gzip"))
                await writer.drain()
                if self.mode == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture(params=["keep", "close", "drop", "gzip"])
async def raw(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Raw, Backend]]:
    server = Raw(request.param)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1"
    backend = Backend(BackendConfig(model="m", base_url=url), env={})
    try:
        yield server, backend
    finally:
        await backend.aclose()
        srv.close()
        await srv.wait_closed()


async def test_every_answer_arrives_and_each_request_is_sent_once(
    raw: tuple[Raw, Backend],
) -> None:
    server, backend = raw
    for n in range(1, 41):
        assert (await backend.chat(MSGS)).text == f"answer {n}"
    assert server.requests == 40
    pool = backend._client._client._transport  # type: ignore[union-attr]
    assert type(pool).__name__ == "LoopbackTransport"
    # one connection while the server keeps it; one per answer when it closes them
    assert server.connections == (1 if server.mode in ("keep", "gzip") else 40)


async def test_answers_in_parallel_each_on_its_connection(raw: tuple[Raw, Backend]) -> None:
    server, backend = raw
    answers = await asyncio.gather(*(backend.chat(MSGS) for _ in range(6)))
    assert sorted(a.text for a in answers) == [f"answer {n}" for n in range(1, 7)]
    assert server.requests == 6
    assert (await backend.chat(MSGS)).text == "answer 7"
