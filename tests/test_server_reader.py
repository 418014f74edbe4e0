"""`ctx_lsp.server.reader`: raw stdin bytes in, the frames pygls' reader loop gets out."""

from __future__ import annotations

import io
import json

import pytest
from pygls.exceptions import JsonRpcInvalidRequest, JsonRpcParseError
from pygls.lsp.server import LanguageServer

from ctx_lsp.server import reader
from ctx_lsp.server.reader import UNPARSEABLE as U
from ctx_lsp.server.reader import Reframed, answer_without_id

OK = b'{"jsonrpc":"2.0","method":"initialized","params":{}}'
NEXT = b'{"jsonrpc":"2.0","id":7,"method":"shutdown"}'


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def bodies(raw: bytes) -> list[bytes]:
    """Every body pygls' loop would read, through the same calls it makes."""
    stream, out = Reframed(io.BytesIO(raw)), []
    while header := stream.readline():
        assert header.startswith(b"Content-Length: ") and header.endswith(b"\r\n")
        assert stream.readline() == b"\r\n"
        n = int(header[16:-2])
        body = stream.read(n)
        assert n > 0 and len(body) == n  # the loop skips a length of 0
        out.append(body)
    return out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(frame(OK), [OK], id="one"),
        pytest.param(frame(OK) + frame(NEXT), [OK, NEXT], id="two"),
        pytest.param(b"content-length: %d\n\n%s" % (len(OK), OK), [OK], id="lowercase-lf"),
        pytest.param(
            b"Content-Length:%d \r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
            b"\r\n%s" % (len(OK), OK),
            [OK],
            id="content-type",
        ),
        pytest.param(b"\r\n\n" + frame(OK), [OK], id="blank-lines-between"),
        pytest.param(frame('{"a":"é😀"}'.encode()), ['{"a":"é😀"}'.encode()], id="non-ascii"),
        pytest.param(frame(b" \n "), [b" \n "], id="whitespace-left-to-json"),
        pytest.param(frame(b"}{") + frame(NEXT), [b"}{", NEXT], id="bad-json-left-to-json"),
        pytest.param(frame(b"") + frame(NEXT), [U, NEXT], id="empty"),
        pytest.param(frame(b'{"\xff":1}') + frame(NEXT), [U, NEXT], id="not-utf8"),
        pytest.param(frame(b'"\xed\xa0\x80"'), [U], id="encoded-surrogate"),
        pytest.param(frame(b"\xef\xbb\xbf" + OK), [U], id="bom"),
        pytest.param(frame(b"1\x00"), [U], id="utf16-guess"),
        pytest.param(frame(b"1\x00\x00\x00"), [U], id="utf32-guess"),
        pytest.param(b"Content-Length: abc\r\n\r\n" + OK + frame(NEXT), [U, NEXT], id="cl-text"),
        pytest.param(b"Content-Length: -5\r\n\r\n" + OK + frame(NEXT), [U, NEXT], id="cl-neg"),
        pytest.param(b"Content-Length: \r\n\r\n" + OK + frame(NEXT), [U, NEXT], id="cl-empty"),
        pytest.param(b"Content-Length: \xd9\xa3\r\n\r\n" + frame(NEXT), [U, NEXT], id="cl-arabic"),
        pytest.param(
            b"Content-Type: application/json\r\n\r\n" + OK + frame(NEXT), [U, NEXT], id="cl-missing"
        ),
        pytest.param(b"Content-Type: x\r\n\r\n" + frame(NEXT), [U, NEXT], id="cl-missing-no-body"),
        pytest.param(
            b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}" + frame(NEXT),
            [U, NEXT],
            id="cl-twice",
        ),
        pytest.param(b"hello\r\n\r\n" + frame(NEXT), [U, NEXT], id="junk-line"),
        pytest.param(b'{"a": 1}\n' + frame(NEXT), [U, NEXT], id="body-without-header"),
        pytest.param(
            b"Content-Length: 3\r\n\r\n{}xyz" + frame(NEXT), [b"{}x", U, NEXT], id="body-too-long"
        ),
        pytest.param(
            b"Content-Length: 2\r\n{}" + frame(NEXT), [U, NEXT], id="no-blank-line-after-header"
        ),
        pytest.param(frame(OK) + b"Content-Length: 10\r\n\r\n{}", [OK], id="cut-in-body"),
        pytest.param(frame(OK) + b"Content-Length: 10\r\n", [OK], id="cut-in-header"),
        pytest.param(b"Content-Length: 1000000000000\r\n\r\n{}", [], id="huge-length-then-eof"),
    ],
)
def test_frames(raw: bytes, expected: list[bytes]) -> None:
    assert bodies(raw) == expected


def test_a_body_longer_than_a_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "CHUNK", 4)
    assert bodies(frame(OK) + frame(NEXT)) == [OK, NEXT]


def test_unparseable_is_what_pygls_fails_to_parse() -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(U)


@pytest.mark.parametrize(
    ("error", "code"),
    [pytest.param(JsonRpcParseError(), -32700, id="parse"), (JsonRpcInvalidRequest(), -32600)],
)
def test_answer_without_id_sends_a_null_id(error: Exception, code: int) -> None:
    """Goes through pygls' private `_send_data`: this fails if pygls changes it."""
    sent: list[bytes] = []

    class Writer:
        def write(self, data: bytes) -> None:
            sent.append(data)

        def close(self) -> None:
            pass

    server = LanguageServer("t", "0")
    server.protocol.set_writer(Writer())
    answer_without_id(server.protocol, error)
    [data] = sent
    header, _, body = data.partition(b"\r\n\r\n")
    assert header.startswith(b"Content-Length: %d\r\n" % len(body))
    message = json.loads(body)
    assert message == {"jsonrpc": "2.0", "id": None, "error": message["error"]}
    assert message["error"]["code"] == code
