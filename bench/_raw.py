"""A raw LSP client over a server's stdio, for the per-message benchmarks: frames are encoded
before the clock starts, so what is timed is the server's work, not a client library's.

It answers every request the server sends (configuration, registrations, progress) with a
null result, and waits for responses by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any


def frame(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, ensure_ascii=False).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def did_change(uri: str, version: int, line: int, char: int, text: str) -> bytes:
    at = {"line": line, "character": char}
    return frame(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": at, "end": at}, "text": text}],
            },
        }
    )


def did_open(uri: str, text: str, language: str = "python") -> bytes:
    item = {"uri": uri, "languageId": language, "version": 1, "text": text}
    return frame(
        {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": item}}
    )


class RawClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._next = 0
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.ensure_future(self._read())
        self._stderr = asyncio.ensure_future(self._drain_stderr())
        self.stderr: list[str] = []

    @classmethod
    async def start(cls, cmd: list[str], env: dict[str, str], cwd: Path) -> RawClient:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            limit=64 * 1024 * 1024,
        )
        return cls(proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    async def drain(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.drain()

    def request_frame(self, method: str, params: Any) -> tuple[int, bytes]:
        self._next += 1
        msg = {"jsonrpc": "2.0", "id": self._next, "method": method, "params": params}
        return self._next, frame(msg)

    async def request(self, method: str, params: Any) -> Any:
        msg_id, data = self.request_frame(method, params)
        fut = self.expect(msg_id)
        self.send(data)
        await self.drain()
        return await fut

    def expect(self, msg_id: int) -> asyncio.Future[Any]:
        fut = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = fut
        return fut

    def notify(self, method: str, params: Any) -> None:
        self.send(frame({"jsonrpc": "2.0", "method": method, "params": params}))

    async def initialize(self, root: Path, options: Any = None) -> None:
        await self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                "capabilities": {},
                "initializationOptions": options,
            },
        )
        self.notify("initialized", {})
        await self.drain()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.request("shutdown", None), 10)
            self.notify("exit", None)
            await self.drain()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 10)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()
        self._stderr.cancel()

    async def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while (line := await out.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if not line:
                return
            msg = json.loads(await out.readexactly(length))
            if "method" in msg and "id" in msg:  # a request from the server
                self.send(frame({"jsonrpc": "2.0", "id": msg["id"], "result": None}))
            elif "id" in msg and (fut := self._waiting.pop(msg["id"], None)) is not None:
                fut.done() or fut.set_result(msg.get("result", msg.get("error")))

    async def _drain_stderr(self) -> None:
        err = self.proc.stderr
        assert err is not None
        while line := await err.readline():
            self.stderr.append(line.decode("utf-8", "replace").rstrip())
            del self.stderr[:-200]


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


__all__ = ["RawClient", "did_change", "did_open", "frame", "rss_kb"]
