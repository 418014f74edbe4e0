"""A minimal LSP client over raw stdio (Content-Length framing), for tests that need many
server processes, exact control of the bytes on the wire, or a process to kill.

The reader thread answers the server's own requests the way an editor would
(`workspace/configuration`, `window/workDoneProgress/create`, `workspace/applyEdit`,
`window/showDocument`, `client/registerCapability`) and collects notifications.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: What a plain editor announces: applyEdit and showDocument, no progress, no configuration.
CAPABILITIES: dict[str, Any] = {
    "workspace": {"applyEdit": True, "workspaceEdit": {"documentChanges": True}},
    "window": {"showDocument": {"support": True}},
    "textDocument": {
        "synchronization": {"didSave": True},
        "codeAction": {"resolveSupport": {"properties": ["edit"]}},
    },
}


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error
        self.code = error.get("code")


def isolated_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server process: private HOME and config, no OPENAI_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.pop("CTX_LSP_USER", None)
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "CTX_LSP_CONFIG": str(home / "ctx-user-config.toml"),
        }
    )
    env.update(extra or {})
    return env


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


class RawServer:
    """`python -m ctx_lsp` on pipes. `request()` blocks for the answer (or raises TimeoutError)."""

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path | None = None,
        stderr: Path | None = None,
        cmd: list[str] | None = None,
    ) -> None:
        self._stderr_fh = open(stderr, "ab") if stderr else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd or [sys.executable, "-m", "ctx_lsp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_fh,
            env=env,
            cwd=cwd,
            bufsize=0,
        )
        self.pid = self.proc.pid
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._responses: dict[Any, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.unmatched: list[dict[str, Any]] = []  # responses to ids never sent (id null...)
        self.applied_edits: list[dict[str, Any]] = []
        self.shown_documents: list[str] = []
        self.configuration: Any = None
        self.eof = False
        self.sent = 0
        self._pending: set[Any] = set()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # -- wire ----------------------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        with self._write_lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            self.sent += 1

    def send(self, obj: dict[str, Any]) -> None:
        self.send_bytes(frame(json.dumps(obj).encode()))

    def _read_loop(self) -> None:
        out = self.proc.stdout
        assert out is not None
        try:
            while True:
                length = None
                while True:
                    line = out.readline()
                    if not line:
                        return
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is None:
                    continue
                body = b""
                while len(body) < length:
                    chunk = out.read(length - len(body))
                    if not chunk:
                        return
                    body += chunk
                try:
                    msg = json.loads(body)
                except ValueError:
                    msg = {"unparseable": body}
                if isinstance(msg, dict):
                    self._dispatch(msg)
                else:
                    with self._cond:
                        self.unmatched.append({"batch": msg})
        finally:
            with self._cond:
                self.eof = True
                self._cond.notify_all()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if "method" in msg and "id" in msg:  # a request from the server
            self._answer(msg)
            return
        if "method" in msg:
            with self._cond:
                self.notifications.append(msg)
                self._cond.notify_all()
            return
        with self._cond:
            id_ = msg.get("id")
            if isinstance(id_, (int, str)) and id_ in self._pending:
                self._responses[id_] = msg
            else:
                self.unmatched.append(msg)
            self._cond.notify_all()

    def _answer(self, msg: dict[str, Any]) -> None:
        method, params = msg["method"], msg.get("params") or {}
        result: Any = None
        if method == "workspace/configuration":
            result = [self.configuration for _ in params.get("items", [])]
        elif method == "workspace/applyEdit":
            self.applied_edits.append(params)
            result = {"applied": True}
        elif method == "window/showDocument":
            self.shown_documents.append(params.get("uri"))
            result = {"success": True}
        with contextlib.suppress(OSError, ValueError):
            self.send({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    # -- requests ------------------------------------------------------------------------------
    def start_request(self, method: str, params: Any = None, id_: Any = None) -> Any:
        id_ = next(self._ids) if id_ is None else id_
        with self._cond:
            self._pending.add(id_)
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return id_

    def start_raw_request(self, payload: bytes, id_: Any) -> None:
        """Send an arbitrary body and expect an answer for `id_`."""
        with self._cond:
            self._pending.add(id_)
        self.send_bytes(frame(payload))

    def wait(self, id_: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while id_ not in self._responses:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no answer to request {id_!r} within {timeout} s")
                if self.eof:
                    raise ConnectionError(f"server closed stdout before answering {id_!r}")
                self._cond.wait(min(remaining, 0.5))
            self._pending.discard(id_)
            return self._responses.pop(id_)

    def answered(self) -> set[Any]:
        """Ids of the requests answered so far."""
        with self._cond:
            return set(self._responses)

    def request(self, method: str, params: Any = None, timeout: float = 30.0) -> Any:
        reply = self.wait(self.start_request(method, params), timeout)
        if "error" in reply:
            raise RpcError(reply["error"])
        return reply.get("result")

    def notify(self, method: str, params: Any = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    # -- LSP -----------------------------------------------------------------------------------
    def initialize(
        self,
        root: Path | None,
        init_options: Any = None,
        capabilities: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        params: dict[str, Any] = {
            "processId": os.getpid(),
            "rootUri": root.as_uri() if root else None,
            "capabilities": CAPABILITIES if capabilities is None else capabilities,
            "initializationOptions": init_options,
        }
        if root is not None:
            params["workspaceFolders"] = [{"uri": root.as_uri(), "name": root.name}]
        result = self.request("initialize", params, timeout)
        self.notify("initialized", {})
        return result

    def open(self, path: Path, text: str | None = None, language: str = "python") -> str:
        uri = path.as_uri()
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": language,
                    "version": 1,
                    "text": path.read_text() if text is None else text,
                }
            },
        )
        return uri

    def command(self, name: str, args: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        return self.request(
            "workspace/executeCommand", {"command": name, "arguments": [args or {}]}, timeout
        )

    def messages(self) -> list[str]:
        """window/showMessage texts so far."""
        with self._cond:
            return [
                n["params"]["message"]
                for n in self.notifications
                if n["method"] == "window/showMessage"
            ]

    # -- process -------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()
        self._close_pipes()

    def close(self, timeout: float = 10.0) -> int | None:
        """shutdown + exit; SIGKILL if it does not go."""
        if self.alive():
            with contextlib.suppress(Exception):
                self.request("shutdown", None, timeout)
                self.notify("exit")
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_pipes()
        return self.proc.returncode

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        if self._stderr_fh is not subprocess.DEVNULL:
            with contextlib.suppress(OSError):
                self._stderr_fh.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.kill()
        else:
            self._close_pipes()


def rss_kb(pid: int) -> int:
    """Resident memory of a process in KiB (VmRSS from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def rng_json(l1: int, c1: int, l2: int, c2: int) -> dict[str, Any]:
    return {"start": {"line": l1, "character": c1}, "end": {"line": l2, "character": c2}}
