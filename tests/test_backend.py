"""Backend against a real HTTP server (tests/fake_openai.py): no mocks, no network."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ctx_lsp.backends import openai_compat
from ctx_lsp.backends.errors import retry_after as _retry_after
from ctx_lsp.backends.openai_compat import (
    Backend,
    BackendConfig,
    BackendError,
    Completion,
    Usage,
    require_text,
)
from ctx_lsp.text.messages import ChatMessage
from tests.fake_openai import CutStream, Empty, FakeOpenAI, Garbage, Hang, Reply, Status

KEY = "sk-secret-0123456789abcdef"
MSGS = [ChatMessage("system", "be brief"), ChatMessage("user", "say hi please")]


@pytest.fixture(autouse=True, params=["loopback", "httpx"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test over both ways to a server on this machine: the loopback transport, and
    httpx's own (which any other server gets)."""
    monkeypatch.setattr(Backend, "loopback", request.param == "loopback")
    return request.param


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply="Hi there, friend.") as s:
        yield s


_OPEN: list[Backend] = []


def new(config: BackendConfig, env: dict[str, str]) -> Backend:
    """A Backend closed after the test (unclosed clients leak sockets into later tests)."""
    _OPEN.append(Backend(config, env=env))
    return _OPEN[-1]


def make(server: FakeOpenAI, **config: Any) -> Backend:
    cfg = BackendConfig(**{"model": "test-model", "base_url": server.base_url, **config})
    return new(cfg, {"OPENAI_API_KEY": KEY})


@pytest.fixture(autouse=True)
async def _close_backends() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the backend sleeps between attempts (the sleeps still happen)."""
    got: list[float] = []
    real = asyncio.sleep

    async def sleep(delay: float, *args: Any, **kwargs: Any) -> Any:
        if delay > 0:
            got.append(delay)
        return await real(delay, *args, **kwargs)

    monkeypatch.setattr(openai_compat.asyncio, "sleep", sleep)
    return got


@pytest.fixture
def backend(server: FakeOpenAI) -> Backend:
    return make(server)


async def eventually(cond: Callable[[], bool], timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_transport_is_the_one_chosen(
    server: FakeOpenAI, backend: Backend, transport: str
) -> None:  # the only test here that looks inside the client
    await backend.chat(MSGS)
    pool = backend._client._client._transport  # type: ignore[union-attr]
    assert (type(pool).__name__ == "LoopbackTransport") == (transport == "loopback")
    # a later plain request to this machine is the transport's to send, past the client's
    # pipeline: what the "later" failure cases go through
    body = {"model": "test-model", "messages": [m.as_api() for m in MSGS]}
    replayed = await backend.post(backend._client, "/chat/completions", body)
    assert b"Hi there, friend." in replayed
    assert bool(getattr(pool, "_posted", None)) == (transport == "loopback")


async def test_plain(server: FakeOpenAI, backend: Backend) -> None:
    got = await backend.chat(MSGS, max_tokens=7, temperature=0.5, stop=["\n\n"])
    assert got == Completion("Hi there, friend.", Usage(5, 3), "test-model", "stop")
    (req,) = server.requests
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.body == {
        "model": "test-model",
        "messages": [m.as_api() for m in MSGS],
        "max_tokens": 7,
        "temperature": 0.5,
        "stop": ["\n\n"],
    }


async def test_later_requests_send_what_the_first_sent(
    server: FakeOpenAI, backend: Backend, transport: str
) -> None:
    """The client's headers go with every request, however it is sent."""
    bodies = []
    for n in range(3):
        msgs = [*MSGS, ChatMessage("user", f"and then {n} é ü 🙂")]
        assert (await backend.chat(msgs)).text == "Hi there, friend."
        bodies.append({"model": "test-model", "messages": [m.as_api() for m in msgs],
                       "max_tokens": 256, "temperature": 0.2})  # fmt: skip
    first, *later = server.requests
    assert [r.body for r in server.requests] == bodies

    def sent(r: Any) -> dict[str, str]:
        return {
            k: v for k, v in r.headers.items() if k not in ("content-length", "idempotency-key")
        }

    assert first.headers["authorization"] == f"Bearer {KEY}" and "user-agent" in first.headers
    assert all(sent(r) == sent(first) for r in later)


async def test_config_defaults_are_sent(server: FakeOpenAI, backend: Backend) -> None:
    await backend.chat(MSGS)
    body = server.requests[0].body
    assert (body["max_tokens"], body["temperature"], "stop" in body) == (256, 0.2, False)


async def test_stream_with_deltas(server: FakeOpenAI, backend: Backend) -> None:
    deltas: list[str] = []
    got = await backend.chat(MSGS, stream=True, on_delta=deltas.append)
    assert deltas == ["Hi ", "there, ", "friend."]
    assert got == Completion("Hi there, friend.", Usage(5, 3), "test-model", "stop")
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_on_delta_errors_propagate_unchanged(server: FakeOpenAI, backend: Backend) -> None:
    def boom(_: str) -> None:
        raise ValueError("caller bug")

    with pytest.raises(ValueError, match="caller bug"):
        await backend.chat(MSGS, stream=True, on_delta=boom)
    assert len(server.requests) == 1  # not retried, not mapped


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="sse")])
async def test_usage_estimated_when_absent(
    server: FakeOpenAI, backend: Backend, stream: bool
) -> None:
    server.enqueue(Reply("x" * 40, usage=False, finish_reason="length"))
    got = await backend.chat(MSGS, stream=stream)
    chars = sum(len(m.content) for m in MSGS)
    assert got.usage == Usage(chars // 4, 10) and got.finish_reason == "length"


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="sse")])
@pytest.mark.parametrize("null", [pytest.param(False, id="empty"), pytest.param(True, id="null")])
async def test_empty_is_returned_not_raised(
    server: FakeOpenAI, backend: Backend, stream: bool, null: bool
) -> None:
    server.enqueue(Empty(null=null))
    got = await backend.chat(MSGS, stream=stream)
    assert got.text == ""
    with pytest.raises(BackendError) as info:
        require_text(got)
    assert info.value.kind == "empty"
    assert require_text(Completion("ok", Usage(), "m")) == "ok"


# --- failures: each behaviour maps to one kind ----------------------------------------------

FAST = {"retry-after-ms": "10"}  # keep retried cases quick
QUOTA = {"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}
JSON = "application/json"

FAILURES = [  # behaviours, config, kind, requests made
    pytest.param([Status(401)], {}, "unauthorized", 1, id="401"),
    pytest.param([Status(403)], {}, "forbidden", 1, id="403"),
    pytest.param([Status(404)], {}, "bad_model", 1, id="404-model"),
    pytest.param([Status(400, headers={})], {}, "bad_request", 1, id="400"),
    pytest.param([Status(429, headers=FAST)] * 3, {}, "rate_limited", 3, id="429-exhausted"),
    pytest.param([Status(429, body=QUOTA)], {}, "rate_limited", 1, id="429-quota-no-retry"),
    pytest.param(
        [Status(429, headers={"Retry-After": "60"})], {}, "rate_limited", 1, id="429-too-long"
    ),
    pytest.param([Status(503, headers=FAST)] * 3, {}, "server", 3, id="503-exhausted"),
    pytest.param([Status(502, headers={})], {"max_retries": 0}, "server", 1, id="502-no-retries"),
    pytest.param([Hang(5)], {"timeout_s": 0.3}, "timeout", 1, id="hang-timeout"),
    pytest.param([Garbage()], {}, "bad_response", 1, id="garbage-html"),
    pytest.param([Garbage("{oops", JSON)], {}, "bad_response", 1, id="garbage-json"),
    pytest.param([Garbage('{"id": 1}', JSON)], {}, "bad_response", 1, id="json-no-choices"),
    pytest.param([CutStream(1)] * 2, {"max_retries": 1}, "bad_response", 2, id="cut-body"),
]


@pytest.mark.parametrize("later", [pytest.param(False, id="first"), pytest.param(True, id="later")])
@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="sse")])
@pytest.mark.parametrize(("behaviours", "config", "kind", "requests"), FAILURES)
async def test_failure_kinds(
    server: FakeOpenAI,
    behaviours: list[Any],
    config: dict[str, Any],
    kind: str,
    requests: int,
    stream: bool,
    later: bool,
) -> None:
    """On a backend's first request and on a later one: a later plain request to a server on
    this machine takes the loopback transport's own way past the client's pipeline."""
    if stream and isinstance(behaviours[0], CutStream):
        kind, requests = "bad_response", 1  # mid-stream: deltas went out, so never retried
    backend = make(server, **config)
    if later:
        assert (await backend.chat(MSGS, stream=stream)).text == "Hi there, friend."
    before = len(server.requests)
    server.enqueue(*behaviours)
    start = time.monotonic()
    with pytest.raises(BackendError) as info:
        await backend.chat(MSGS, stream=stream)
    assert info.value.kind == kind
    assert len(server.requests) - before == requests
    # not waited for: a hang past timeout_s, a Retry-After past max_retry_wait_s (5 s, 60 s:
    # far beyond what a loaded machine adds to the 0.3 s timeout and 10 ms retries)
    never = [b.seconds for b in behaviours if isinstance(b, Hang)] + [
        float(b.headers["Retry-After"])
        for b in behaviours
        if isinstance(b, Status) and "Retry-After" in b.headers
    ]
    if never:
        assert time.monotonic() - start < min(never)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert server.base_url in info.value.message  # every message says where it went wrong


async def test_bad_model_message_names_model_and_setting(server: FakeOpenAI) -> None:
    backend = make(server, model="gpt-nope")
    with pytest.raises(BackendError) as info:
        await backend.chat(MSGS)
    assert info.value.kind == "bad_model" and info.value.status == 404
    assert "gpt-nope" in info.value.message and "ctx.model" in info.value.message
    assert backend.describe() == f"gpt-nope at {server.base_url}"


async def test_cut_stream_never_returns_partial_text(server: FakeOpenAI, backend: Backend) -> None:
    server.enqueue(CutStream(after_chunks=2), Reply("not used: no retry mid-stream"))
    deltas: list[str] = []
    with pytest.raises(BackendError) as info:
        await backend.chat(MSGS, stream=True, on_delta=deltas.append)
    assert info.value.kind == "bad_response"
    assert deltas == ["Hi ", "there, "] and len(server.requests) == 1


@pytest.mark.parametrize(
    "sse",
    [
        pytest.param("data: [DONE]\n\n", id="done-only"),
        pytest.param(
            'data: {"id":"x","choices":[{"index":0,"delta":{"content":"par"}}]}\n\n',
            id="content-then-eof",
        ),
    ],
)
async def test_stream_ending_without_finish_is_bad(sse: str) -> None:
    # Properly framed bodies (no transport error) that still never finish the answer.
    async with RawServer(sse) as url:
        backend = new(BackendConfig(model="m", base_url=url), {"OPENAI_API_KEY": KEY})
        with pytest.raises(BackendError) as info:
            await backend.chat(MSGS, stream=True)
        assert info.value.kind == "bad_response"


# --- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "wait_s"),
    [
        pytest.param(Status(429), 1.0, id="429-retry-after-seconds"),
        pytest.param(Status(429, headers={"retry-after-ms": "50"}), 0.05, id="429-ms"),
        pytest.param(Status(500, headers={}), 0.5, id="500-backoff"),
        pytest.param(CutStream(0), 0.5, id="dropped-connection"),
    ],
)
async def test_retried_then_success(
    server: FakeOpenAI, backend: Backend, waits: list[float], behaviour: Any, wait_s: float
) -> None:
    server.enqueue(behaviour)
    got = await backend.chat(MSGS)
    assert got.text == "Hi there, friend."
    assert waits == [wait_s]
    first, second = server.requests
    assert second.time - first.time >= wait_s * 0.9  # the retry really waited (coarse clock)


async def test_backoff_doubles(server: FakeOpenAI, waits: list[float]) -> None:
    server.enqueue(Status(503, headers={}), Status(503, headers={}))
    backend = make(server)
    assert (await backend.chat(MSGS)).text
    assert waits == [0.5, 1.0]
    t = [r.time for r in server.requests]
    assert t[1] - t[0] >= 0.45 and t[2] - t[1] >= 0.95


async def test_total_retry_wait_is_bounded(server: FakeOpenAI, waits: list[float]) -> None:
    server.fail_all(Status(503, headers={"Retry-After": "0.4"}))
    backend = make(server, max_retries=10, max_retry_wait_s=1.0)
    with pytest.raises(BackendError) as info:
        await backend.chat(MSGS)
    assert info.value.kind == "server" and "3 attempts" in info.value.message
    assert len(server.requests) == 3 and waits == [0.4, 0.4]  # a third would pass 1.0 s


def test_retry_after_parsing() -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (_retry_after({"retry-after": date}) or 0) <= 31
    assert _retry_after({"retry-after": "2"}) == 2.0
    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({}) is None


# --- connection, keys, urls -------------------------------------------------------------------


async def test_connection_refused(waits: list[float]) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    backend = new(BackendConfig(base_url=url, max_retries=1), {"OPENAI_API_KEY": KEY})
    start = time.monotonic()
    with pytest.raises(BackendError) as info:
        await backend.chat(MSGS)
    assert info.value.kind == "unreachable" and url in info.value.message
    assert waits == [0.5] and time.monotonic() - start >= 0.5  # one retry after 0.5 s
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("config", "env", "names"),
    [
        pytest.param({}, {}, "OPENAI_API_KEY", id="default-var"),
        pytest.param({"api_key_env": "MY_KEY"}, {"OPENAI_API_KEY": KEY}, "MY_KEY", id="other-var"),
        pytest.param({"base_url": "https://example.invalid/v1"}, {}, "OPENAI_API_KEY", id="remote"),
    ],
)
async def test_no_key(config: dict[str, Any], env: dict[str, str], names: str) -> None:
    backend = Backend(BackendConfig(**config), env=env)
    for call in (backend.chat(MSGS), backend.list_models()):
        with pytest.raises(BackendError) as info:
            await call
        assert info.value.kind == "no_key"
        assert names in info.value.message and "ctx.baseUrl" in info.value.message
    assert KEY not in backend.describe()


@pytest.mark.parametrize("via", ["config", "env"])
async def test_local_url_without_key(server: FakeOpenAI, via: str) -> None:
    url = server.base_url.replace("127.0.0.1", "localhost")
    if via == "config":
        backend = new(BackendConfig(model="test-model", base_url=url), {})
    else:
        backend = new(BackendConfig(model="test-model"), {"OPENAI_BASE_URL": url})
    assert backend.describe() == f"test-model at {url}"
    assert (await backend.chat(MSGS)).text == "Hi there, friend."
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"


async def test_base_url_and_key_from_env(server: FakeOpenAI) -> None:
    backend = new(BackendConfig(model="test-model"), server.env())
    assert (await backend.chat(MSGS)).text
    assert server.requests[0].headers["authorization"] == "Bearer sk-test-fake"
    assert new(BackendConfig(), {}).describe() == "gpt-4o-mini at https://api.openai.com/v1"


async def test_key_echoed_by_server_is_scrubbed(server: FakeOpenAI, backend: Backend) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}.", "code": "invalid_api_key"}}
    server.enqueue(Status(401, body=echo))
    with pytest.raises(BackendError) as info:
        await backend.chat(MSGS)
    assert info.value.kind == "unauthorized" and "Incorrect API key provided: ***" in str(
        info.value
    )
    assert KEY not in str(info.value) and info.value.__cause__ is None


def test_openai_is_imported_lazily() -> None:
    code = "import sys, ctx_lsp.backends.openai_compat; sys.exit('openai' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- models ------------------------------------------------------------------------------------


async def test_list_models(server: FakeOpenAI) -> None:
    server.models = ["a", "b"]
    backend = make(server)
    assert await backend.list_models() == ["a", "b"]
    server.fail_all(Status(500, headers={}))
    with pytest.raises(BackendError) as info:
        await make(server, max_retries=0).list_models()
    assert info.value.kind == "server"


# --- cancellation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "stream", "wait_for_delta"),
    [
        pytest.param(Hang(10), False, False, id="hang-plain"),
        pytest.param(Hang(10), True, False, id="hang-stream"),
        pytest.param(Reply("a b c d", chunk_delay_s=5), True, True, id="mid-stream"),
    ],
)
async def test_cancel_aborts_http_request(
    server: FakeOpenAI, backend: Backend, behaviour: Any, stream: bool, wait_for_delta: bool
) -> None:
    server.enqueue(behaviour)
    deltas: list[str] = []
    task = asyncio.create_task(backend.chat(MSGS, stream=stream, on_delta=deltas.append))
    assert await eventually(lambda: len(server.requests) == 1)
    if wait_for_delta:
        assert await eventually(lambda: deltas == ["a "])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await eventually(lambda: server.aborted == 1, timeout=1.0)
    # The backend is still usable afterwards.
    assert (await backend.chat(MSGS)).text == "Hi there, friend."


async def test_cancel_during_retry_wait(server: FakeOpenAI, backend: Backend) -> None:
    server.enqueue(Status(503, headers={"Retry-After": "5"}))
    task = asyncio.create_task(backend.chat(MSGS))
    assert await eventually(lambda: len(server.requests) == 1)
    await asyncio.sleep(0.05)
    task.cancel()
    # waiting as long as the Retry-After: ending by then would be the wait running out
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled() and len(server.requests) == 1


# --- a tiny raw server for bodies the fake would not send -----------------------------------


class RawServer:
    """Serves one fixed SSE body to every request, properly framed."""

    def __init__(self, sse: str) -> None:
        self.sse = sse.encode()

    async def __aenter__(self) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
            length = int(head.split("content-length:")[1].split()[0])
            await reader.readexactly(length)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(self.sse) + self.sse)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        self.srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.srv.sockets[0].getsockname()[1]}/v1"

    async def __aexit__(self, *exc: object) -> None:
        self.srv.close()
        await self.srv.wait_closed()


LOOP = (
    "The robot woke up in the lab.\n"
    "It looked at the window and saw the rain.\n"
    "```python\nprint('the same line in code')\nprint('the same line in code')\n```\n"
    "Then it went back to sleep.\n"
    "It looked at the window and saw the rain.\n"
    "Then it went back to sleep.\n"
)


def test_repetition_cut_ends_an_answer_where_it_starts_over() -> None:
    from ctx_lsp.backends.base_model import repetition_cut

    cut = repetition_cut(LOOP)
    assert cut is not None
    assert LOOP[:cut].endswith("Then it went back to sleep.\n")  # the code's repeat stays
    assert LOOP[cut:].startswith("It looked at the window")
    assert repetition_cut("ok\nok\nok\n") is None  # short lines repeat in real answers
    assert repetition_cut("It looked at the window and saw") is None  # no whole line yet


async def test_a_text_stream_with_until_is_cut_and_streams_whole_lines(
    server: FakeOpenAI, backend: Backend
) -> None:
    """A base model's plain continuation (`/v1/completions`, streamed), ended by `until`: the
    connection is closed at the cut, and what was streamed is exactly the answer kept."""
    from ctx_lsp.backends.base_model import repetition_cut

    server.enqueue(Reply(LOOP * 20, chunk_delay_s=0.002))
    deltas: list[str] = []
    got = await backend.complete_text(
        "Story:\n", max_tokens=500, on_delta=deltas.append, until=repetition_cut
    )
    assert got.text == LOOP[: repetition_cut(LOOP)]
    assert got.finish_reason == "stop"
    assert "".join(deltas) == got.text
    assert all(d.endswith("\n") for d in deltas)  # each a whole line (or several)
    (req,) = [r for r in server.requests if r.path == "/v1/completions"]
    assert req.body["prompt"] == "Story:\n" and req.body["stream"] is True
    for _ in range(100):  # the fake sees the client leave mid-stream
        if server.aborted:
            break
        await asyncio.sleep(0.02)
    assert server.aborted == 1
