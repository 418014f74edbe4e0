"""The HTTP transport for a model server on this machine (a loopback address).

At a local server's round trip of a millisecond or two, the client's own work is most of
the HTTP time of a completion: httpx's transport (httpcore over anyio) costs ~0.75 ms of the
~2.5 ms that a 17 KB completion request takes through the `openai` client on these 2-core
machines. This one writes a request in one send on a kept-alive connection and reads the
answer with asyncio's streams; h11 (the HTTP/1.1 state machine httpcore itself uses) does the
protocol: framing, chunked bodies, keep-alive. Anything else (https, another host after a
redirect) goes through httpx's own transport, and so does a URL a proxy setting applies to
(httpx picks the proxy's transport before this one).

A kept connection the server has closed while idle (llama.cpp's server closes them) is found
closed before it is used. When the close crosses the request, the request is sent once more
on a new connection, only if not a byte of an answer came back (what browsers and curl do).

A plain (not streamed) POST, a completion, can skip the `openai` client's own request
pipeline, which costs about 1 ms a completion on these machines, as much as the rest of the
HTTP time (options copied, URLs parsed four times, twenty headers merged and normalized,
the answer wrapped twice): `Poster` sends the body with the headers and timeouts of the
client's own last request to that URL, as this transport saw it, and raises the client's
own errors. Until the client has posted there through this transport (a proxy setting may
take its requests elsewhere), and after a redirect, requests go through the client.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import select
from typing import TYPE_CHECKING, Any

import h11

from ctx_lsp.backends.openai_compat import is_local_host

if TYPE_CHECKING:
    from openai import AsyncOpenAI


def _httpx() -> Any:
    """The httpx package the `openai` client is built on (httpx, or httpx2 in newer ones)."""
    import openai

    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        top = cls.__module__.split(".")[0]
        if top.startswith("httpx"):
            return importlib.import_module(top)
    raise ImportError("the openai client is not built on httpx")


httpx = _httpx()

#: Bytes asked of the socket per read: a whole answer to a completion, usually.
READ_SIZE = 65536
#: Idle connections kept per server.
MAX_IDLE = 4
#: Headers that belong to one request alone: a replay of the client's headers has its own.
_PER_REQUEST = frozenset({b"content-length", b"transfer-encoding", b"idempotency-key"})

Headers = list[tuple[bytes, bytes]]


class _Stale(Exception):
    """A kept connection was closed before a byte of the answer came back."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.reused = False

    def idle_and_open(self) -> bool:
        """Open, and nothing to read: a kept connection with something to read was closed by
        the server (or it spoke out of turn), whether or not the loop has seen it yet."""
        if self.writer.is_closing() or self.reader.at_eof():
            return False
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return False
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        self.writer.close()

    async def read(self, timeout: float | None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise httpx.ReadTimeout("No answer within the read timeout") from None
        except OSError as exc:  # reset by the server
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def send(
        self, method: bytes, target: bytes, headers: Headers, body: bytes, timeouts: dict[str, Any]
    ) -> Any:
        """The answer's status and headers; its body is read with `next_chunk`."""
        try:
            data = self.h11.send(h11.Request(method=method, target=target, headers=headers))
            if body:
                data += self.h11.send(h11.Data(data=body))
            data += self.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        try:
            self.writer.write(data)
            if self.writer.transport.get_write_buffer_size():
                async with asyncio.timeout(timeouts.get("write")):
                    await self.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("The request could not be sent in time") from None
        except OSError as exc:
            if self.reused:
                raise _Stale from exc
            raise httpx.WriteError(str(exc) or type(exc).__name__) from exc
        got = False
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self.reused and not got:
                    raise _Stale from exc
                raise httpx.RemoteProtocolError(
                    str(exc) if got else "Server disconnected without sending a response."
                ) from exc
            if event is h11.NEED_DATA:
                try:
                    chunk = await self.read(timeouts.get("read"))
                except httpx.ReadError:
                    if self.reused and not got:
                        raise _Stale from None
                    raise
                got = got or bool(chunk)
                self.h11.receive_data(chunk)
            elif isinstance(event, h11.Response):
                return event
            # an informational (1xx) answer: the real one follows

    async def next_chunk(self, timeout: float | None) -> bytes | None:
        """The next piece of the answer's body; None at its end."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.read(timeout))
            elif isinstance(event, h11.Data):
                return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return None

    def reusable(self) -> bool:
        """The answer was read to its end, and both sides may go on."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return True
        return False


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; its connection goes back to the pool when the body was
    read to its end and both sides may go on, else it is closed (a cancelled completion)."""

    def __init__(self, transport: LoopbackTransport, key: tuple[str, int],
                 conn: _Connection, timeout: float | None) -> None:  # fmt: skip
        self._transport, self._key, self._conn, self._timeout = transport, key, conn, timeout
        self._done = False

    async def __aiter__(self) -> Any:
        while not self._done:
            chunk = await self._conn.next_chunk(self._timeout)
            if chunk is None:
                self._done = True
            else:
                yield chunk

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._transport._release(self._key, conn, self._done)


class LoopbackTransport(httpx.AsyncBaseTransport):
    """See the module's text. `fallback` takes every request that is not plain HTTP to a
    loopback host."""

    def __init__(self, fallback: Any) -> None:
        self._fallback = fallback
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        #: (host, port, target) → the headers and timeouts of the client's last POST there
        self._posted: dict[tuple[str, int, bytes], tuple[Headers, dict[str, Any]]] = {}
        #: targets that redirected a replay: the client's to send from then on
        self._redirected: set[tuple[str, int, bytes]] = set()

    async def handle_async_request(self, request: Any) -> Any:
        url = request.url
        if url.scheme != "http" or not is_local_host(url.host):
            return await self._fallback.handle_async_request(request)
        key = (url.host, url.port or 80)
        timeouts = request.extensions.get("timeout", {})
        target, headers = url.raw_path, request.headers.raw
        if request.method == "POST" and (*key, target) not in self._redirected:
            mine = [(k, v) for k, v in headers if k.lower() not in _PER_REQUEST]
            self._posted[(*key, target)] = (mine, timeouts)
        body = await request.aread()
        conn, head = await self._exchange(key, request.method, target, headers, body, timeouts)
        return httpx.Response(
            head.status_code,
            headers=head.headers,
            stream=_Body(self, key, conn, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
        )

    async def post(
        self, key: tuple[str, int], target: bytes, body: bytes
    ) -> tuple[int, Headers, bytes] | None:
        """POST `body` to `target` as the client last did (its headers and timeouts) and read
        the whole answer: status, headers, body. None: the client has not posted there."""
        posted = self._posted.get((*key, target))
        if posted is None:
            return None
        headers, timeouts = posted
        headers = [*headers, (b"Content-Length", b"%d" % len(body))]
        conn, head = await self._exchange(key, b"POST", target, headers, body, timeouts)
        chunks = []
        try:
            while (chunk := await conn.next_chunk(timeouts.get("read"))) is not None:
                chunks.append(chunk)
        except BaseException:
            conn.close()
            raise
        self._release(key, conn, True)
        if 300 <= head.status_code < 400:  # a redirect: the client follows it from now on
            del self._posted[(*key, target)]
            self._redirected.add((*key, target))
        return head.status_code, head.headers, b"".join(chunks)

    async def _exchange(
        self,
        key: tuple[str, int],
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes,
        timeouts: dict[str, Any],
    ) -> tuple[_Connection, Any]:
        """The request sent on a kept or new connection, and the answer's head."""
        while True:
            conn = await self._connection(key, timeouts.get("connect"))
            try:
                return conn, await conn.send(method, target, headers, body, timeouts)
            except _Stale:
                conn.close()  # a new connection is never stale
            except BaseException:  # cancelled, timed out, failed: its state is unknown
                conn.close()
                raise

    async def _connection(self, key: tuple[str, int], timeout: float | None) -> _Connection:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.idle_and_open():
                conn.reused = True
                return conn
            conn.close()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(*key, limit=READ_SIZE)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"No connection to {key[0]}:{key[1]} in time") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return _Connection(reader, writer)

    def _release(self, key: tuple[str, int], conn: _Connection, whole: bool) -> None:
        """Back to the pool when the answer was read `whole` and both sides may go on (and
        the pool has room), else closed."""
        idle = self._idle.setdefault(key, [])
        if whole and len(idle) < MAX_IDLE and conn.reusable():
            idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        await self._fallback.aclose()


def http_client(timeout: float) -> tuple[Any, LoopbackTransport]:
    """An httpx client for the `openai` client, with the openai client's own defaults, that
    sends requests to a loopback host through `LoopbackTransport`; and that transport."""
    import openai

    fallback = httpx.AsyncHTTPTransport(limits=openai.DEFAULT_CONNECTION_LIMITS)
    transport = LoopbackTransport(fallback)
    return openai.DefaultAsyncHttpxClient(timeout=timeout, transport=transport), transport


class Poster:
    """Plain POSTs to a model server on this machine, past the `openai` client's request
    pipeline (see the module's text): the client's headers, its body encoding, and its own
    errors (`APITimeoutError`, `APIConnectionError`, its status errors)."""

    def __init__(self, transport: LoopbackTransport, base_url: str) -> None:
        url = httpx.URL(base_url)
        self._transport = transport
        self._base = base_url.rstrip("/")
        self._key = (url.host, url.port or 80)
        self._prefix = url.raw_path.rstrip(b"/")

    async def post(self, client: AsyncOpenAI, path: str, body: dict[str, Any]) -> bytes | None:
        """The answer's body; None when the client has to send it (see the module's text)."""
        import openai

        # as the client encodes a body (httpx's JSON defaults)
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        data = content.encode()
        try:
            got = await self._transport.post(self._key, self._prefix + path.encode(), data)
        except httpx.TimeoutException as exc:
            raise openai.APITimeoutError(request=self._request(path, data)) from exc
        except httpx.TransportError as exc:
            raise openai.APIConnectionError(request=self._request(path, data)) from exc
        if got is None:
            return None
        status, headers, answer = got
        if any(k == b"content-encoding" for k, _ in headers):  # decoded as the client does
            answer = httpx.Response(status, headers=headers, content=answer).content
        if status < 300:
            return answer
        if status < 400:
            return None
        response = httpx.Response(
            status, headers=headers, content=answer, request=self._request(path, data)
        )
        raise client._make_status_error_from_response(response)

    def _request(self, path: str, data: bytes) -> Any:
        """The request an error carries (errors only: it costs what the client would)."""
        return httpx.Request("POST", self._base + path, content=data)
