"""Broken frames over raw stdio: each gets one JSON-RPC error with `"id": null`, in order, and
the server reads the next message as if nothing had happened.

These go through pygls' reader loop and its private `_send_data` (see `ctx_lsp.server.reader`):
if a pygls release changes either, they fail here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ._rpc import RawServer, frame, isolated_env

GOOD = b'{"jsonrpc":"2.0","method":"initialized","params":{}}'
PARSE_ERROR, INVALID_REQUEST = -32700, -32600


def _null_id_errors(server: RawServer) -> list[int]:
    with server._cond:
        found = [m for m in server.unmatched if "id" in m and m["id"] is None and "error" in m]
        server.unmatched.clear()
    return [m["error"]["code"] for m in found]


@pytest.fixture
def server(tmp_path: Path):
    home, root = tmp_path / "home", tmp_path / "ws"
    home.mkdir()
    root.mkdir()
    with RawServer(isolated_env(home), cwd=root, stderr=tmp_path / "server.log") as server:
        server.initialize(root, {})
        yield server


@pytest.mark.parametrize(
    ("sent", "codes"),
    [
        pytest.param(frame(b""), [PARSE_ERROR], id="empty-body"),
        pytest.param(frame(b"  \r\n "), [PARSE_ERROR], id="whitespace-body"),
        pytest.param(frame(b"{"), [PARSE_ERROR], id="bad-json"),
        pytest.param(frame(b'{"\xff":1,"jsonrpc":"2.0","method":"x"}'), [PARSE_ERROR], id="utf8"),
        pytest.param(frame(b'"\xed\xa0\x80"'), [PARSE_ERROR], id="encoded-surrogate"),
        pytest.param(frame(b"\xef\xbb\xbf" + GOOD), [PARSE_ERROR], id="bom"),
        pytest.param(frame(b"1\x00"), [PARSE_ERROR], id="utf16-lookalike"),
        pytest.param(b"Content-Length: abc\r\n\r\n" + GOOD, [PARSE_ERROR], id="length-text"),
        pytest.param(b"Content-Length: -5\r\n\r\n" + GOOD, [PARSE_ERROR], id="length-negative"),
        pytest.param(b"Content-Type: x\r\n\r\n" + GOOD, [PARSE_ERROR], id="length-missing"),
        pytest.param(b"Content-Length: 3\r\n\r\n" + GOOD, [PARSE_ERROR] * 2, id="length-short"),
        pytest.param(b"content-length: 2\n\n[]", [INVALID_REQUEST], id="lowercase-lf"),
        pytest.param(frame(b"null") + frame(b"123"), [INVALID_REQUEST] * 2, id="not-an-object"),
        pytest.param(frame(b'{"id":1,"method":"shutdown"}'), [INVALID_REQUEST], id="no-jsonrpc"),
    ],
)
def test_a_broken_frame_gets_one_error_and_the_next_message_an_answer(
    server: RawServer, sent: bytes, codes: list[int]
) -> None:
    server.send_bytes(sent)
    reply: Any = server.request("workspace/executeCommand", {"command": "ctx.showContext"})
    assert "Workspace:" in reply["text"]
    assert _null_id_errors(server) == codes  # all before the answer: in order
    assert not [m for m in server.messages() if "internal error" in m]
    assert server.alive()


def test_broken_frames_between_requests_in_one_write(server: RawServer) -> None:
    ids = [101, 102, 103, 104]
    with server._cond:
        server._pending.update(ids)
    request = (
        b'{"jsonrpc":"2.0","id":%d,"method":"workspace/executeCommand",'
        b'"params":{"command":"ctx.showContext"}}'
    )
    server.send_bytes(
        frame(request % 101)
        + frame(b"")
        + frame(request % 102)
        + b"Content-Length: x\r\n\r\n{}"
        + frame(request % 103)
        + frame(b"\xff")
        + frame(request % 104)
    )
    for id_ in ids:
        assert "result" in server.wait(id_)
    assert _null_id_errors(server) == [PARSE_ERROR] * 3
    assert server.alive()


def test_a_huge_content_length_is_waited_for_not_allocated(server: RawServer) -> None:
    server.send_bytes(b"Content-Length: 1000000000000\r\n\r\n{}")
    time.sleep(0.5)
    assert server.alive()
    assert server.proc.stdin is not None
    server.proc.stdin.close()  # the body never comes: the end of input ends the server
    assert server.proc.wait(10) == 0
