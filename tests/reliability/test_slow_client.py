"""A client that stops reading: the server's answers fill the pipe, and the server keeps
reading and handling what comes meanwhile, without its loop waiting for room (answers are
written straight from the loop while the pipe takes them, the rest by the writer thread).
When the client reads again, every answer is there, whole and in order."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from ._rpc import frame, isolated_env

#: Answers of ~20 KB each (the unknown method's name comes back in its error): 400 of them are
#: 8 MB, over a hundred times what a pipe holds.
NAME_CHARS = 20_000
REQUESTS = 400


def _read_message(out) -> dict:
    length = None
    while True:
        line = out.readline()
        assert line, "the server closed its output"
        line = line.strip()
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    assert length is not None
    body = b""
    while len(body) < length:
        chunk = out.read(length - len(body))
        assert chunk, "the server closed its output"
        body += chunk
    return json.loads(body)


def _next_answer(out) -> dict:
    while True:
        msg = _read_message(out)
        if "id" in msg and "method" not in msg:
            return msg


def test_a_client_that_stops_reading_gets_every_answer_in_order(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "ws"
    home.mkdir()
    root.mkdir()
    log = tmp_path / "server.log"
    env = isolated_env(home, {"CTX_LSP_SLOW_CALLBACK_MS": "200"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "ctx_lsp", "--log-file", str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=root,
        bufsize=0,
    )
    killer = threading.Timer(60, proc.kill)  # a hung server fails the test, not CI
    killer.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None

        def send(obj: dict) -> None:
            proc.stdin.write(frame(json.dumps(obj).encode()))

        params = {"processId": None, "rootUri": root.as_uri(), "capabilities": {}}
        send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        assert "result" in _next_answer(proc.stdout)
        send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

        # the client writes everything and reads nothing: the pipe fills at once
        names = [f"x/{i:04d}/" + "n" * NAME_CHARS for i in range(REQUESTS)]
        for i, name in enumerate(names, start=1):
            send({"jsonrpc": "2.0", "id": i, "method": name, "params": {}})
        # the loop still answers: a request sent last is handled (its answer queued behind
        # the others) while nothing has been read
        send({"jsonrpc": "2.0", "id": REQUESTS + 1, "method": "shutdown"})
        time.sleep(1.0)

        answers = [_next_answer(proc.stdout) for _ in range(REQUESTS + 1)]
        assert [a["id"] for a in answers] == list(range(1, REQUESTS + 2))
        for a, name in zip(answers, names, strict=False):
            assert a["error"]["code"] == -32601  # method not found
            assert name in a["error"]["message"]  # whole, not cut or interleaved
        assert answers[-1].get("result", "missing") is None

        send({"jsonrpc": "2.0", "method": "exit"})
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    held = [line for line in log.read_text().splitlines() if "held the loop" in line]
    assert held == [], held
