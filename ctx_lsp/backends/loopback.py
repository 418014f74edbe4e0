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
"""

from __future__ import annotations

import asyncio
import importlib
import select
from typing import Any

import h11

from ctx_lsp.backends.openai_compat import is_local_host


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

    async def send(self, request: Any, body: bytes, timeouts: dict[str, Any]) -> Any:
        """The answer's status and headers; its body is read from `Body`."""
        try:
            data = self.h11.send(
                h11.Request(method=request.method, target=request.url.raw_path,
                            headers=request.headers.raw)
            )  # fmt: skip
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


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; its connection goes back to the pool when the body was
    read to its end and both sides may go on, else it is closed (a cancelled completion)."""

    def __init__(self, transport: LoopbackTransport, key: tuple[str, int],
                 conn: _Connection, timeout: float | None) -> None:  # fmt: skip
        self._transport, self._key, self._conn, self._timeout = transport, key, conn, timeout
        self._done = False

    async def __aiter__(self) -> Any:
        conn = self._conn
        while not self._done:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is h11.NEED_DATA:
                conn.h11.receive_data(await conn.read(self._timeout))
            elif isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._done = True

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            self._transport._keep(self._key, conn)
        else:
            conn.close()


class LoopbackTransport(httpx.AsyncBaseTransport):
    """See the module's text. `fallback` takes every request that is not plain HTTP to a
    loopback host."""

    def __init__(self, fallback: Any) -> None:
        self._fallback = fallback
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: Any) -> Any:
        url = request.url
        if url.scheme != "http" or not is_local_host(url.host):
            return await self._fallback.handle_async_request(request)
        key = (url.host, url.port or 80)
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        while True:
            conn = await self._connection(key, timeouts.get("connect"))
            try:
                head = await conn.send(request, body, timeouts)
            except _Stale:
                conn.close()
                continue  # a new connection is never stale
            except BaseException:  # cancelled, timed out, failed: its state is unknown
                conn.close()
                raise
            return httpx.Response(
                head.status_code,
                headers=head.headers,
                stream=_Body(self, key, conn, timeouts.get("read")),
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
            )

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

    def _keep(self, key: tuple[str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < MAX_IDLE:
            idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        await self._fallback.aclose()


def http_client(timeout: float) -> Any:
    """An httpx client for the `openai` client, with the openai client's own defaults, that
    sends requests to a loopback host through `LoopbackTransport`."""
    import openai

    fallback = httpx.AsyncHTTPTransport(limits=openai.DEFAULT_CONNECTION_LIMITS)
    return openai.DefaultAsyncHttpxClient(timeout=timeout, transport=LoopbackTransport(fallback))
