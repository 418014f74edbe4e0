"""The fake OpenAI server, exercised through the real `openai` client and raw HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fake_openai import (
    CutStream,
    Empty,
    FakeOpenAI,
    Garbage,
    Hang,
    Reply,
    Status,
    fake_openai,  # noqa: F401 (the fixture under test)
)

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hi"}]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply="Hi there, friend.") as s:
        yield s


_CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def client(server: FakeOpenAI, **kw: object) -> openai.OpenAI:
    """A client without retries, closed after the test."""
    c = openai.OpenAI(base_url=server.base_url, api_key="sk-test-fake", max_retries=0, **kw)
    _CLIENTS.append(c)
    return c


def chat(server: FakeOpenAI, **kw: object) -> object:
    return client(server).chat.completions.create(model="test-model", messages=MSGS, **kw)


def until(cond: object, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_plain_completion_and_recording(server: FakeOpenAI) -> None:
    resp = chat(server, max_tokens=20)
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "Hi there, friend."
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "test-model"
    assert resp.usage.completion_tokens == 3 and resp.usage.prompt_tokens == 4
    (rec,) = server.requests
    assert (rec.method, rec.path) == ("POST", "/v1/chat/completions")
    assert rec.headers["authorization"] == "Bearer sk-test-fake"
    assert rec.body["max_tokens"] == 20 and rec.body["messages"] == MSGS
    assert server.prompts() == ["be brief\nsay hi"]


def test_stream_with_usage(server: FakeOpenAI) -> None:
    chunks = list(chat(server, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hi there, friend."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3


def test_stream_without_usage_request_has_no_usage(server: FakeOpenAI) -> None:
    chunks = list(chat(server, stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_reply_callable_sees_the_body() -> None:
    with FakeOpenAI(reply=lambda body: body["messages"][-1]["content"].upper()) as s:
        assert chat(s).choices[0].message.content == "SAY HI"


def test_models_and_unknown_model(server: FakeOpenAI) -> None:
    assert [m.id for m in client(server).models.list()] == ["test-model"]
    with pytest.raises(openai.NotFoundError) as info:
        client(server).chat.completions.create(model="nope", messages=MSGS)
    assert info.value.code == "model_not_found"
    assert "The model `nope` does not exist" in info.value.message


@pytest.mark.parametrize(
    ("code", "exc"),
    [
        pytest.param(401, openai.AuthenticationError, id="401"),
        pytest.param(403, openai.PermissionDeniedError, id="403"),
        pytest.param(404, openai.NotFoundError, id="404"),
        pytest.param(429, openai.RateLimitError, id="429"),
        pytest.param(500, openai.InternalServerError, id="500"),
        pytest.param(503, openai.InternalServerError, id="503"),
    ],
)
def test_status(server: FakeOpenAI, code: int, exc: type[Exception]) -> None:
    server.enqueue(Status(code))
    with pytest.raises(exc) as info:
        chat(server)
    assert info.value.response.headers["retry-after"] == "1"
    assert isinstance(info.value.body, dict) and info.value.body["message"]
    assert chat(server).choices[0].message.content == "Hi there, friend."  # FIFO consumed


def test_status_custom_body_and_headers(server: FakeOpenAI) -> None:
    server.enqueue(Status(429, body={"error": {"message": "slow down"}}, headers={"x-a": "b"}))
    with pytest.raises(openai.RateLimitError) as info:
        chat(server)
    assert "slow down" in str(info.value) and "retry-after" not in info.value.response.headers


def test_fifo_then_sticky_then_default(server: FakeOpenAI) -> None:
    server.enqueue(Reply("one"), Reply("two"))
    server.fail_all(Status(500, headers={}))
    assert chat(server).choices[0].message.content == "one"
    assert chat(server).choices[0].message.content == "two"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            chat(server)
    with pytest.raises(openai.InternalServerError):  # sticky applies to model listing too
        client(server).models.list()
    server.fail_all(None)
    assert chat(server).choices[0].message.content == "Hi there, friend."


def test_hang_times_out_and_counts_abort(server: FakeOpenAI) -> None:
    server.enqueue(Hang(10))
    with pytest.raises(openai.APITimeoutError):  # not the connection dropped when it ends
        chat(server, timeout=0.3)
    assert until(lambda: server.aborted == 1)  # the server saw the client leave mid-hang


def test_hang_elapses_then_drops_the_connection(server: FakeOpenAI) -> None:
    server.enqueue(Hang(0.1))
    with pytest.raises(openai.APIConnectionError):
        chat(server)
    assert server.aborted == 0


def test_slow_reply_and_client_disconnect(server: FakeOpenAI) -> None:
    server.enqueue(Reply("late", delay_s=0.2))
    assert chat(server).choices[0].message.content == "late"
    server.enqueue(Reply("later", delay_s=5))
    with pytest.raises(openai.APITimeoutError):
        chat(server, timeout=0.2)
    assert until(lambda: server.aborted == 1)


def test_slow_stream_abort_is_counted(server: FakeOpenAI) -> None:
    server.enqueue(Reply("a b c d e", chunk_delay_s=0.3))
    stream = chat(server, stream=True)
    first = [next(stream) for _ in range(2)]
    assert first[1].choices[0].delta.content == "a "
    stream.close()
    assert until(lambda: server.aborted == 1)


def test_garbage(server: FakeOpenAI) -> None:
    server.enqueue(Garbage())
    # The client hands back the raw text for a non-JSON content type...
    assert "Bad Gateway" in str(chat(server))
    server.enqueue(Garbage("not json {", content_type="application/json"))
    with pytest.raises(json.JSONDecodeError):  # ...and fails to decode a JSON one.
        chat(server)


def test_cut_stream(server: FakeOpenAI) -> None:
    server.enqueue(CutStream(after_chunks=2))
    got: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for c in chat(server, stream=True):
            got.append(c.choices[0].delta.content)
    assert got == ["", "Hi ", "there, "]


def test_cut_plain_response(server: FakeOpenAI) -> None:
    server.enqueue(CutStream(after_chunks=1))
    with pytest.raises(openai.APIConnectionError) as info:
        chat(server)
    assert "incomplete" in str(info.value.__cause__) or "expected" in str(info.value.__cause__)


@pytest.mark.parametrize("null", [pytest.param(False, id="empty"), pytest.param(True, id="null")])
def test_empty(server: FakeOpenAI, null: bool) -> None:
    server.enqueue(Empty(null=null))
    assert chat(server).choices[0].message.content == (None if null else "")
    server.enqueue(Empty())
    chunks = list(chat(server, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_no_usage_and_finish_reason(server: FakeOpenAI) -> None:
    server.enqueue(Reply("cut off", usage=False, finish_reason="length"))
    resp = chat(server)
    assert resp.usage is None and resp.choices[0].finish_reason == "length"


def test_api_key_enforced() -> None:
    with FakeOpenAI(api_key="sk-right") as s:
        assert s.env()["OPENAI_API_KEY"] == "sk-right"
        with pytest.raises(openai.AuthenticationError):
            chat(s)  # sends sk-test-fake


def in_thread(server: FakeOpenAI) -> tuple[threading.Thread, list[BaseException]]:
    """Run a chat in a thread, collecting what it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            chat(server)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_concurrent_connections(server: FakeOpenAI) -> None:
    server.enqueue(Hang(30))
    hung, errors = in_thread(server)
    server.wait_for_requests(1)
    assert chat(server).choices[0].message.content == "Hi there, friend."
    assert hung.is_alive() and not errors, "answered while the other connection still hangs"
    server.stop()
    hung.join(5)
    assert isinstance(errors[0], openai.APIConnectionError)


def test_stop_releases_hung_clients() -> None:
    s = FakeOpenAI().start()
    s.enqueue(Hang(30))
    t, errors = in_thread(s)
    s.wait_for_requests(1)
    s.stop()
    t.join(3)
    assert not t.is_alive() and isinstance(errors[0], openai.APIConnectionError)


def test_log_file_and_env(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with FakeOpenAI(log_path=str(log)) as s:
        assert s.env() == {"OPENAI_BASE_URL": s.base_url, "OPENAI_API_KEY": "sk-test-fake"}
        assert s.base_url == f"http://127.0.0.1:{s.port}/v1"
        chat(s)
        client(s).models.list()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["method"], r["path"]) for r in lines] == [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
    ]
    assert lines[0]["body"]["messages"] == MSGS


def test_fixture(fake_openai: FakeOpenAI) -> None:  # noqa: F811
    assert chat(fake_openai).choices[0].message.content
    assert len(fake_openai.requests) == 1


def test_standalone_process_and_control_endpoints(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    script = Path(__file__).with_name("fake_openai.py")
    cmd = [sys.executable, str(script), "--port", "0", "--reply", "from cli", "--log", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT ")
        base = f"http://127.0.0.1:{int(line.split()[1])}"
        c = openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0)
        _CLIENTS.append(c)
        ask = lambda: c.chat.completions.create(model="test-model", messages=MSGS)  # noqa: E731
        assert ask().choices[0].message.content == "from cli"

        def post(path: str, obj: object) -> object:
            req = urllib.request.Request(base + path, data=json.dumps(obj).encode(), method="POST")
            with urllib.request.urlopen(req) as r:
                return json.loads(r.read())

        post("/_fake/enqueue", [{"kind": "status", "code": 503, "headers": {}}])
        with pytest.raises(openai.InternalServerError):
            ask()
        post("/_fake/reply", {"text": "new"})
        assert ask().choices[0].message.content == "new"
        with urllib.request.urlopen(base + "/_fake/stats") as r:
            assert json.loads(r.read()) == {"aborted": 0, "requests": 3}
        assert len(log.read_text().splitlines()) == 3
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()
