"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests.

It speaks the wire format of `POST /v1/chat/completions` (plain and SSE streaming) and
`GET /v1/models`, records every request, and can be scripted to misbehave (error statuses,
hangs, garbage, cut streams, empty answers) so clients can be tested end to end with no
mocks and no network.

In-process::

    with FakeOpenAI(reply="hi") as server:          # or the `fake_openai` pytest fixture
        env = server.env()                         # OPENAI_BASE_URL + OPENAI_API_KEY
        server.enqueue(Status(429), Reply("ok"))   # next two chat requests
        ...
        server.prompts(), server.requests, server.aborted

Standalone (editor and CLI tests)::

    python tests/fake_openai.py --port 0 --reply "x" --log FILE   # prints "PORT <n>"

and script it from another process over HTTP: `POST /_fake/enqueue` with
`{"kind": "status", "code": 500}` (or a list of such), `POST /_fake/fail_all` with a behaviour
or null, `POST /_fake/reply` with `{"text": ...}`, `GET /_fake/requests`, `GET /_fake/stats`.
Control requests are not recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import select
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY = "Hello from the fake model."


# --- Behaviours ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A normal answer; `delay_s` before the first byte, `chunk_delay_s` between SSE chunks."""

    text: str
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    usage: bool = True  # False: omit `usage`, so clients must estimate
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Status:
    """An error status with the real OpenAI error body for that code (or `body` verbatim)."""

    code: int
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"Retry-After": "1"})


@dataclass(frozen=True)
class Hang:
    """Read the request, then say nothing until the client leaves or `seconds` pass.

    When the time is up the connection is closed without a response (a dead upstream)."""

    seconds: float = 30.0


@dataclass(frozen=True)
class Garbage:
    """200 with a body that is not what the client expects (by default a proxy's HTML page)."""

    body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    content_type: str = "text/html"


@dataclass(frozen=True)
class CutStream:
    """Send `after_chunks` content chunks then drop the connection without finishing.

    For non-streamed requests: announce the full Content-Length, send part, drop."""

    after_chunks: int = 1
    text: str | None = None  # default: the server's reply text


@dataclass(frozen=True)
class Empty:
    """A well-formed answer with empty content (`null=True`: content is JSON null)."""

    null: bool = False


Behaviour = Reply | Status | Hang | Garbage | CutStream | Empty

_KINDS: dict[str, type] = {
    "reply": Reply,
    "status": Status,
    "hang": Hang,
    "garbage": Garbage,
    "cut_stream": CutStream,
    "empty": Empty,
}


def behaviour_from_json(data: dict[str, Any]) -> Behaviour:
    """`{"kind": "status", "code": 503}` → Status(503); used by the control endpoints."""
    fields = dict(data)
    kind = fields.pop("kind")
    return _KINDS[kind](**fields)


# --- Recording -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One request as received. Header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    time: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _status_body(code: int, model: str | None) -> dict[str, Any]:
    """Bodies as the real API sends them."""
    if code == 401:
        return _error(
            "Incorrect API key provided: sk-te***ake. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
    if code == 403:
        return _error(
            "You are not allowed to sample from this model",
            "invalid_request_error",
            "model_not_allowed",
        )
    if code == 404:
        return _error(
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
    if code == 429:
        return _error(
            "Rate limit reached for requests. Please try again in 1s.",
            "requests",
            "rate_limit_exceeded",
        )
    if code == 503:
        return _error("The engine is currently overloaded, please try again later.", "server_error")
    if code >= 500:
        return _error(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
        )
    return _error(f"Request failed with status {code}.", "invalid_request_error")


def _pieces(text: str) -> list[str]:
    """Split like a tokenizer would, roughly: words with their trailing whitespace."""
    return re.findall(r"\S+\s*|\s+", text)


def _words(text: str) -> int:
    return len(text.split())


# --- Server ----------------------------------------------------------------------------------


class FakeOpenAI:
    """An OpenAI-compatible server in a background thread; see the module docstring.

    Order of behaviours for a chat request: the `enqueue` FIFO first, then the sticky
    `fail_all` behaviour, then the default `reply`. `fail_all` also applies to `/v1/models`
    (Status/Hang/Garbage only); the FIFO is for chat requests only, so a client listing models
    does not eat a behaviour scripted for a chat.
    """

    def __init__(
        self,
        reply: str | Callable[[dict[str, Any]], str] = DEFAULT_REPLY,
        *,
        models: Sequence[str] | None = ("test-model",),
        port: int = 0,
        log_path: str | None = None,
        api_key: str | None = None,
        context_tokens: int | None = None,
        report_context: bool = True,
    ) -> None:
        self.reply = reply
        #: like a llama.cpp server started with `-c N`: prompts of more tokens (4 characters
        #: each) plus max_tokens get llama.cpp's 400; `report_context` says N in /v1/models
        self.context_tokens = context_tokens
        self.report_context = report_context
        self.models: list[str] | None = list(models) if models is not None else None  # None: any
        self.api_key = api_key  # when set, other bearer tokens get the real 401
        self.log_path = log_path
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._queue: deque[Behaviour] = deque()
        self._sticky: Behaviour | None = None
        self._aborted = 0
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeOpenAI:
        self._httpd = _HTTPServer(("127.0.0.1", self._port), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # wake handler threads parked on keep-alive reads
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": self.api_key or "sk-test-fake"}

    # scripting
    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def fail_all(self, behaviour: Behaviour | None) -> None:
        with self._lock:
            self._sticky = behaviour

    def reset(self) -> None:
        """Forget requests, scripted behaviours and the abort count."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            self._sticky = None
            self._aborted = 0

    # inspection
    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def prompts(self) -> list[str]:
        """The message contents of each chat request, joined with newlines."""
        out = []
        for r in self.chat_requests():
            messages = (r.body or {}).get("messages") or []
            out.append("\n".join(str(m.get("content") or "") for m in messages))
        return out

    @property
    def aborted(self) -> int:
        """How many times a client hung up while a reply was pending or streaming."""
        with self._lock:
            return self._aborted

    @property
    def open_connections(self) -> int:
        """Client connections open now (kept alive between requests until the client closes)."""
        with self._lock:
            return len(self._conns)

    def wait_for_connections(self, n: int, timeout: float = 5.0) -> int:
        """Wait until `n` connections are open; the number open when it stops waiting."""
        deadline = time.monotonic() + timeout
        while self.open_connections != n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_connections

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {n} requests, got {len(self.requests)}")
            time.sleep(0.01)
        return self.requests

    # used by the handler
    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec.to_json()) + "\n")

    def _next(self, chat: bool) -> Behaviour | None:
        with self._lock:
            if chat and self._queue:
                return self._queue.popleft()
            return self._sticky

    def _reply_text(self, body: dict[str, Any]) -> str:
        return self.reply(body) if callable(self.reply) else self.reply

    def _count_abort(self) -> None:
        with self._lock:
            self._aborted += 1


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, as the real API
    # headers and body go in separate writes: without this, Nagle + delayed ACK add ~40 ms
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._conns.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    # plumbing
    def _send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
        self._send_bytes(code, data, "application/json", headers)

    def _send_bytes(
        self, code: int, data: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self._gone()

    def _gone(self) -> None:
        self.server.fake._count_abort()
        self.close_connection = True

    def _wait(self, seconds: float) -> bool:
        """Sleep, watching the socket; False (and count an abort) if the client hung up."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.server.fake._stopping.is_set():
                self.close_connection = True
                return False
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.02))
            if readable:
                try:
                    peek = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    peek = b""
                if not peek:
                    self._gone()
                    return False
                time.sleep(min(remaining, 0.02))  # unexpected bytes: don't spin
        return True

    def _write_chunk(self, data: bytes) -> bool:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            self._gone()
            return False

    # routing
    def _handle(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        if path.startswith("/_fake/"):
            return self._control(path, body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake._record(Recorded(self.command, path, headers, body, time.time()))

        if fake.api_key is not None and headers.get("authorization") != f"Bearer {fake.api_key}":
            return self._send_json(401, _status_body(401, None))
        text_api = self.command == "POST" and path == "/v1/completions"  # base models
        chat = (self.command == "POST" and path == "/v1/chat/completions") or text_api
        models = self.command == "GET" and path.startswith("/v1/models")
        if not (chat or models):
            msg = f"Invalid URL ({self.command} {path})"
            return self._send_json(404, _error(msg, "invalid_request_error"))

        behaviour = fake._next(chat)
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(behaviour, Status):
            payload = behaviour.body
            if payload is None:
                payload = _status_body(behaviour.code, model)
            return self._send_json(behaviour.code, payload, behaviour.headers)
        if isinstance(behaviour, Hang):
            if self._wait(behaviour.seconds):
                self.close_connection = True  # time's up: drop it, never answer
            return None
        if isinstance(behaviour, Garbage):
            return self._send_bytes(200, behaviour.body.encode(), behaviour.content_type)
        if models:
            return self._models(path)
        return self._chat(body, behaviour, text_api)

    def _models(self, path: str) -> None:
        known = self.server.fake.models or ["test-model"]
        entries = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in known
        ]
        fake = self.server.fake
        if fake.context_tokens and fake.report_context:
            for e in entries:
                e["meta"] = {"n_ctx": fake.context_tokens}
        if path.rstrip("/") == "/v1/models":
            return self._send_json(200, {"object": "list", "data": entries})
        name = path[len("/v1/models/") :]
        for e in entries:
            if e["id"] == name:
                return self._send_json(200, e)
        return self._send_json(404, _status_body(404, name))

    def _chat(self, body: Any, behaviour: Behaviour | None, text_api: bool = False) -> None:
        """A chat answer, or with `text_api` a `/v1/completions` one (`prompt` in, `text`
        out: the plain continuation base models are asked for)."""
        fake = self.server.fake
        if isinstance(body, dict) and text_api and isinstance(body.get("prompt"), str):
            body = {**body, "messages": [{"role": "user", "content": body["prompt"]}]}
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            msg = "We could not parse the JSON body of your request."
            return self._send_json(400, _error(msg, "invalid_request_error"))
        model = body.get("model")
        if not model:
            msg = "you must provide a model parameter"
            return self._send_json(400, _error(msg, "invalid_request_error"))
        if fake.models is not None and model not in fake.models:
            return self._send_json(404, _status_body(404, model))
        if fake.context_tokens:
            chars = sum(len(str(m.get("content") or "")) for m in body["messages"] if m)
            wanted = chars // 4 + int(body.get("max_tokens") or 0)
            if wanted > fake.context_tokens:
                n = fake.context_tokens
                msg = f"request ({wanted} tokens) exceeds the available context size ({n} tokens)"
                error = {"code": 400, "message": msg + ", try increasing it"}
                error |= {
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": wanted,
                    "n_ctx": n,
                }
                return self._send_json(400, {"error": error})

        if isinstance(behaviour, Reply):
            reply = behaviour
        elif isinstance(behaviour, Empty):
            reply = Reply("")
        elif isinstance(behaviour, CutStream):
            reply = Reply(behaviour.text if behaviour.text is not None else fake._reply_text(body))
        else:
            reply = Reply(fake._reply_text(body))
        null = isinstance(behaviour, Empty) and behaviour.null
        cut = behaviour.after_chunks if isinstance(behaviour, CutStream) else None

        if reply.delay_s and not self._wait(reply.delay_s):
            return None
        prompt = "\n".join(str(m.get("content") or "") for m in body["messages"] if m)
        usage = {
            "prompt_tokens": _words(prompt),
            "completion_tokens": _words(reply.text),
            "total_tokens": _words(prompt) + _words(reply.text),
        }
        base = {
            "id": f"chatcmpl-fake{len(fake.requests)}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if body.get("stream"):
            want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            with_usage = usage if reply.usage and (want_usage or text_api) else None
            return self._stream(base, reply, with_usage, cut, text_api)

        if text_api:
            choice = {"index": 0, "text": "" if null else reply.text, "logprobs": None}
            result = {**base, "object": "text_completion", "choices": [choice]}
        else:
            message = {"role": "assistant", "content": None if null else reply.text}
            choice = {"index": 0, "message": {**message, "refusal": None}, "logprobs": None}
            result = {**base, "object": "chat.completion", "choices": [choice]}
        choice["finish_reason"] = reply.finish_reason
        if reply.usage:
            result["usage"] = usage
        data = json.dumps(result).encode()
        if cut is not None:  # promise everything, deliver half, hang up
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return None
        return self._send_bytes(200, data, "application/json")

    def _stream(
        self,
        base: dict[str, Any],
        reply: Reply,
        usage: dict[str, int] | None,
        cut: int | None,
        text_api: bool = False,
    ) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return self._gone()

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            obj = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            if text_api:  # llama.cpp's /v1/completions stream: text pieces
                choice = {"index": 0, "text": delta.get("content") or "", "logprobs": None}
                obj = {
                    **base,
                    "object": "text_completion",
                    "choices": [choice | {"finish_reason": finish}],
                }
            if usage is not None:
                obj["usage"] = None  # the real API sends null usage until the last chunk
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        events: Iterator[bytes] = iter(
            [
                chunk({"role": "assistant", "content": "", "refusal": None}, None),
                *(chunk({"content": p}, None) for p in _pieces(reply.text)),
            ]
        )
        for i, event in enumerate(events):
            if cut is not None and i > cut:  # chunk 0 is the role-only chunk
                self.close_connection = True  # no terminating chunk: an incomplete body
                return None
            if i > 1 and reply.chunk_delay_s and not self._wait(reply.chunk_delay_s):
                return None
            if not self._write_chunk(event):
                return None
        if cut is not None:  # fewer pieces than the cut point: still never finish
            self.close_connection = True
            return None
        tail = [chunk({}, reply.finish_reason)]
        if usage is not None:
            last = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            tail.append(b"data: " + json.dumps(last).encode() + b"\n\n")
        tail.append(b"data: [DONE]\n\n")
        for event in tail:
            if not self._write_chunk(event):
                return None
        self._write_chunk(b"")  # zero-length chunk ends the body
        return None

    def _control(self, path: str, body: Any) -> None:
        fake = self.server.fake
        if path == "/_fake/enqueue":
            items = body if isinstance(body, list) else [body]
            fake.enqueue(*(behaviour_from_json(b) for b in items))
        elif path == "/_fake/fail_all":
            fake.fail_all(behaviour_from_json(body) if body else None)
        elif path == "/_fake/reply":
            fake.reply = body["text"]
        elif path == "/_fake/reset":
            fake.reset()
        elif path == "/_fake/requests":
            return self._send_json(200, [r.to_json() for r in fake.requests])
        elif path == "/_fake/stats":
            return self._send_json(200, {"aborted": fake.aborted, "requests": len(fake.requests)})
        else:
            return self._send_json(404, _error(f"unknown control {path}", "fake"))
        return self._send_json(200, {"ok": True})


# --- pytest fixture --------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # standalone use without pytest installed
    pass
else:

    @pytest.fixture
    def fake_openai() -> Iterator[FakeOpenAI]:
        """A started FakeOpenAI (model "test-model"), stopped after the test."""
        with FakeOpenAI() as server:
            yield server


# --- standalone ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible server for tests")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--log", default=None, help="append each request as a JSON line")
    parser.add_argument("--model", action="append", help="known model (repeatable)")
    parser.add_argument("--api-key", default=None, help="reject other keys with 401")
    args = parser.parse_args(argv)
    server = FakeOpenAI(
        args.reply,
        models=args.model or ("test-model",),
        port=args.port,
        log_path=args.log,
        api_key=args.api_key,
    )
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"PORT {server.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
