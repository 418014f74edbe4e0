"""Incoming LSP frames, read so that every malformed one gets an answer.

`inbox` reads stdin through `Reframed` (`next_body`) in place of pygls' stdio loop; the
`readline`/`read` stream below is what that loop would read, kept for its tests. pygls 2.1.1's
stdio loop (`pygls.io_.run_async`) knows one header spelling, `Content-Length: <digits>`
and CRLF. It skips a frame of `Content-Length: 0` without a word, and after a length it cannot
read (not a number, negative, missing, lowercase) it takes the body for headers, which loses
the messages after it too. It parses bodies with `json.loads(bytes)`, which guesses UTF-16 or
UTF-32 from NUL bytes, drops a UTF-8 BOM and lets encoded surrogates through, where LSP says
UTF-8.

`Reframed` stands between stdin and that loop. It reads frames leniently (header names in any
case, LF or CRLF, blank lines between frames), finds the next header after a broken one, and
hands the loop every message framed canonically. A body the loop would skip or misread, and a
frame without a usable length, become `UNPARSEABLE`: the loop fails to parse it like any
invalid JSON, and the server answers with one JSON-RPC parse error, in order with the rest.
"""

from __future__ import annotations

import codecs
import logging
import re
from typing import Any, BinaryIO

from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCProtocol

log = logging.getLogger(__name__)

#: What the loop gets instead of a frame it cannot parse correctly: invalid JSON, plain ASCII.
UNPARSEABLE = b"<unparseable frame>"
#: A body is read in pieces of at most this size, so a huge Content-Length that the client
#: never sends costs nothing up front (one `read(n)` allocates n bytes before reading).
CHUNK = 64 * 1024 * 1024

_CONTENT_LENGTH = b"content-length"
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110)


class Reframed:
    """The binary stream pygls' reader loop reads (`readline()`, then `read(n)`): the frames
    of `raw`, each re-framed as `Content-Length: n` CRLF CRLF body."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._lines: list[bytes] = []  # header lines still to hand out
        self._body = b""
        self._pushback: bytes | None = None  # a header found inside a line of junk
        self._skipping = False  # after a frame without a usable length: look for a header

    # -- the stream pygls reads ----------------------------------------------------------------
    def readline(self) -> bytes:
        if not self._lines:
            body = self.next_body()
            if body is None:
                return b""
            self._body = body
            self._lines = [b"Content-Length: %d\r\n" % len(body), b"\r\n"]
        return self._lines.pop(0)

    def read(self, n: int = -1) -> bytes:
        """The body whose length the last header gave (pygls reads it whole, as `n`)."""
        body, self._body = self._body, b""
        return body

    # -- frames --------------------------------------------------------------------------------
    def next_body(self) -> bytes | None:
        """The next message's body as the loop should parse it; None at the end of input."""
        body = self._frame()
        if isinstance(body, str):
            log.warning("unparseable frame: %s", body)
            return UNPARSEABLE
        if body is not None and (problem := _not_utf8_json_text(body)):
            log.warning("unparseable message: %s", problem)
            return UNPARSEABLE
        return body

    def _frame(self) -> bytes | str | None:
        """A body, a str saying why there is no frame to read, or None at the end of input."""
        length: int | None = None
        problem: str | None = None
        headers = False
        while True:
            if self._pushback is not None:
                line, self._pushback = self._pushback, None
            else:
                line = self._raw.readline()
            if not line:
                return None  # a frame cut short by the end of input has nobody to answer
            at = line.lower().find(_CONTENT_LENGTH)
            if self._skipping:  # the body of a frame without a length, if any: up to a header
                if at < 0:
                    continue
                line, self._skipping = line[at:], False
            elif at > 0 and line[:at].strip():
                # bytes before a header: a body longer than its Content-Length said, or junk
                self._pushback = line[at:]
                return f"{line[:at][:60]!r} before a header"
            elif at == 0 and problem is not None:
                self._pushback = line  # junk lines, then a frame: the junk is one message
                return problem
            text = line.strip()
            if not text:
                if not headers:
                    continue  # blank lines between frames
                break
            headers = True
            name, colon, value = text.partition(b":")
            if not colon or not _TOKEN.fullmatch(name.strip()):
                problem = problem or f"not a header: {text[:60]!r}"
            elif name.strip().lower() == _CONTENT_LENGTH:
                value = value.strip()
                if not value.isdigit():  # ASCII digits only: no sign, no space, not empty
                    problem = problem or f"Content-Length {value[:30]!r} is not a length"
                elif length is not None and int(value) != length:
                    problem = problem or "two different Content-Length headers"
                else:
                    length = int(value)
        if problem is None and length is None:
            problem = "no Content-Length header"
        if problem is not None:
            self._skipping = True  # whatever body follows has no known end
            return problem
        return self._read_exactly(length or 0)

    def _read_exactly(self, n: int) -> bytes | None:
        chunks: list[bytes] = []
        while n:
            chunk = self._raw.read(min(n, CHUNK))
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _not_utf8_json_text(body: bytes) -> str | None:
    """Why pygls' `json.loads(body)` could skip or misread `body`, if it could; a body that is
    UTF-8 but not JSON is left to the loop, which reports it as it reports any bad JSON."""
    if not body:
        return "empty body"
    if body.startswith(codecs.BOM_UTF8):
        return "UTF-8 byte order mark"  # json.loads drops it from bytes, refuses it in text
    if b"\x00" in body[:4]:  # json.loads takes this for UTF-16 or UTF-32; never JSON in UTF-8
        return "NUL byte"
    if not body.isascii():
        try:
            body.decode("utf-8")  # strict: json.loads lets encoded surrogates through
        except UnicodeDecodeError as exc:
            return f"not UTF-8 ({exc.reason} at byte {exc.start})"
    return None


def answer_without_id(protocol: JsonRPCProtocol, error: JsonRpcException) -> None:
    """An error response with `"id": null`, for a message whose id cannot be known.

    pygls' `_send_response(None, ...)` leaves a null id out, and a response without an id is
    no response to a client (vscode-jsonrpc logs it as neither response nor notification). The
    one way to send a dict as it is, through pygls' writer and framing, is its private
    `_send_data` (pygls 2.1.1: no public call sends a raw message);
    `tests/reliability/test_framing.py` fails if that stops working.
    """
    response_error: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        response_error["data"] = error.data
    protocol._send_data({"jsonrpc": "2.0", "id": None, "error": response_error})
