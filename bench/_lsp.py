"""Shared helpers for the protocol benchmarks (bench_server, bench_completion, bench_relevance,
bench_actions).

* :class:`Sandbox`: a temporary HOME / XDG / git config, so nothing touches the machine's, and
  temporary git repositories made with the real ``git``.
* :func:`start_server`: a server process (``python -m ctx_lsp`` or the bare pygls server below)
  and a pytest-lsp client, through ``initialize``; returns the client and the time from process
  start to the ``initialize`` response.
* :data:`BARE_SERVER`: a minimal pygls ``LanguageServer`` (stock text documents, trivial
  handlers), written to a temp file and started the same way: the baseline every figure is
  printed beside.
* statistics (:func:`median`, :func:`pct`), a realistic code corpus (:func:`code_corpus`) and
  table printing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # for tests.fake_openai
    sys.path.insert(0, str(REPO))

from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

CTX_CMD = [sys.executable, "-m", "ctx_lsp"]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench User",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench User",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}

#: The baseline server: pygls' stock LanguageServer (its own TextDocument for text sync) with
#: handlers that do nothing but build a fixed answer of the same shape as ctx-lsp's.
BARE_SERVER = '''\
"""Bare pygls server for ctx-lsp benchmarks: stock text sync, trivial handlers."""
from lsprotocol import types
from pygls.lsp.server import LanguageServer

server = LanguageServer("bare-bench", "0")


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls, params):
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.PlainText, value="x"))


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
def inline_completion(ls, params):
    at = types.Range(start=params.position, end=params.position)
    item = types.InlineCompletionItem(insert_text="x = 1", range=at)
    return types.InlineCompletionList(items=[item])


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION)
def code_action(ls, params):
    uri = params.text_document.uri
    actions = [types.CodeAction(title="Explain", kind=types.CodeActionKind.Refactor)]
    for diag in params.context.diagnostics:
        actions.append(
            types.CodeAction(
                title="Fix: " + diag.message,
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diag],
                data={"action": "fix", "uri": uri},
            )
        )
    actions.append(types.CodeAction(title="Tests", kind=types.CodeActionKind.Refactor))
    return actions


server.start_io()
'''


# --------------------------------------------------------------------------------------------
# Isolation


def git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=root,
        env=env or os.environ.copy(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout


class Sandbox:
    """A temp folder with a private HOME and config dirs. :meth:`activate` also points this
    process' own environment at them (for in-process git calls), restored on exit."""

    def __init__(self, prefix: str = "ctx-bench-") -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
        self.home = self.tmp / "home"
        self.home.mkdir()
        (self.home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
        self.vars = {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "GIT_CONFIG_GLOBAL": str(self.home / ".gitconfig"),
            "CTX_LSP_CONFIG": str(self.home / "ctx-user-config.toml"),
            **GIT_ENV,
        }
        self._saved: dict[str, str | None] = {}
        self._bare: Path | None = None

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a server process: ours, isolated, without OPENAI_* unless given."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        base.pop("CTX_LSP_USER", None)
        return {**base, **self.vars, **(extra or {})}

    def activate(self) -> None:
        for key, value in self.vars.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def repo(self, name: str = "work", files: dict[str, str] | None = None) -> Path:
        """A real git repository with one commit on `main` holding `files`."""
        root = self.tmp / name
        root.mkdir(parents=True)
        env = self.env()
        git(root, "init", "-q", "-b", "main", env=env)
        for rel, text in (files or {"README.md": "# bench\n"}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(root, "add", "-A", env=env)
        git(root, "commit", "-q", "-m", "feat: initial commit", env=env)
        return root

    def bare_cmd(self) -> list[str]:
        if self._bare is None:
            self._bare = self.tmp / "bare_server.py"
            self._bare.write_text(BARE_SERVER)
        return [sys.executable, str(self._bare)]

    def close(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Servers and clients


@dataclass
class Started:
    client: LanguageClient
    init_s: float  # process start → initialize response
    result: types.InitializeResult


async def start_server(
    cmd: Sequence[str],
    env: dict[str, str],
    root: Path | None = None,
    init_options: Any = None,
    caps: str = "visual_studio_code",
) -> Started:
    """Start `cmd`, send `initialize` (then `initialized`); time start → initialize response."""
    config = ClientServerConfig(list(cmd), server_env=env)
    t0 = time.perf_counter()
    client = await config.start()
    _capture_stderr(client)

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(_params: types.RegistrationParams) -> None:
        """Taken, as an editor takes them (ctx-lsp registers its file watcher)."""

    params = types.InitializeParams(
        capabilities=client_capabilities(caps),
        process_id=os.getpid(),
        root_uri=root.as_uri() if root else None,
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)]
        if root
        else None,
        initialization_options=init_options,
    )
    client.capabilities = params.capabilities
    result = await client.initialize_async(params)
    init_s = time.perf_counter() - t0
    client.initialized(types.InitializedParams())
    return Started(client, init_s, result)


def _capture_stderr(client: LanguageClient) -> None:
    """Keep the server's stderr (its log) in `client.bench_stderr` instead of printing it:
    the benchmark's tables stay readable; :func:`server_log` shows it when needed."""
    forwarder = getattr(client, "_stderr_forwarder", None)
    if forwarder is not None:
        forwarder.cancel()
    lines: deque[str] = deque(maxlen=500)
    client.bench_stderr = lines  # type: ignore[attr-defined]
    proc = client._server  # the server's asyncio subprocess

    async def drain() -> None:
        while proc is not None and proc.stderr is not None:
            line = await proc.stderr.readline()
            if not line:
                return
            lines.append(line.decode("utf-8", errors="replace").rstrip())

    client.bench_drain = asyncio.ensure_future(drain())  # type: ignore[attr-defined]


def server_log(client: LanguageClient) -> list[str]:
    """The last lines the server wrote to stderr."""
    return list(getattr(client, "bench_stderr", ()))


async def stop_server(client: LanguageClient) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.shutdown_session(), 10)
    with contextlib.suppress(Exception):
        await client.stop()


@contextlib.asynccontextmanager
async def server(
    cmd: Sequence[str],
    env: dict[str, str],
    root: Path | None = None,
    init_options: Any = None,
    caps: str = "visual_studio_code",
):
    started = await start_server(cmd, env, root, init_options, caps)
    try:
        yield started.client
    finally:
        await stop_server(started.client)


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )


def insert(client: LanguageClient, uri: str, version: int, line: int, char: int, text: str):
    """One incremental didChange inserting `text` at (line, char)."""
    pos = types.Position(line=line, character=char)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=pos, end=pos), text=text
                )
            ],
        )
    )


def inline_params(uri: str, line: int, char: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=char),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


#: A document nobody opens: an inline completion there is answered at once by both servers
#: (ctx-lsp answers empty without any work; the bare server with its fixed item).
SYNC_URI = "file:///ctx-bench/not-open.py"


async def sync(client: LanguageClient) -> None:
    """A cheap round trip both servers implement, so everything sent before it has been
    processed when it returns."""
    await client.text_document_inline_completion_async(inline_params(SYNC_URI, 0, 0))


async def command(client: LanguageClient, name: str, args: dict[str, Any] | None = None) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=name, arguments=[args or {}])
    )


def fake_backend(reply: str = "x = 1", nodelay: bool = True) -> Any:
    """tests/fake_openai.py's FakeOpenAI (not started). With `nodelay`, its handler sets
    TCP_NODELAY: it writes the status line and headers, then the body, in two sends, and
    without it the second waits for the client's delayed ACK (about 40 ms on Linux) —
    an artifact of the test server that no real backend has."""
    from tests import fake_openai

    fake_openai._Handler.disable_nagle_algorithm = nodelay
    return fake_openai.FakeOpenAI(reply=reply)


def machine() -> str:
    """Cores and the 1-minute load average: on a shared machine, read figures with it."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores, load average {load:.1f}"


def tokenizer() -> str:
    """The token counter the server will use (same environment as this process)."""
    from ctx_lsp.text import tokens

    return tokens.tokenizer_name()


#: Times `n` chat requests with the real `openai` client from a separate process (as the
#: server makes them), replaying one recorded request body: the backend's own share.
_DIRECT = """\
import asyncio, json, sys, time
from ctx_lsp.backends.openai_compat import Backend, BackendConfig

async def main():
    cfg = json.loads(sys.stdin.read())
    # the very client (and transport) the server makes, and the very call
    env = {"OPENAI_API_KEY": cfg["api_key"]}
    backend = Backend(BackendConfig(base_url=cfg["base_url"]), env=env)
    client = backend._get_client()
    out = []
    for _ in range(cfg["n"]):
        t0 = time.perf_counter()
        await backend.post(client, "/chat/completions", cfg["body"])
        out.append(time.perf_counter() - t0)
    await client.close()
    print(json.dumps(out))

asyncio.run(main())
"""


def direct_backend_times(fake_env: dict[str, str], body: dict[str, Any], n: int) -> list[float]:
    """Seconds per chat request sent straight to the fake backend (first 5 dropped: warm-up)."""
    import json

    cfg = {
        "base_url": fake_env["OPENAI_BASE_URL"],
        "api_key": fake_env["OPENAI_API_KEY"],
        "body": body,
        "n": n + 5,
    }
    out = subprocess.run(
        [sys.executable, "-c", _DIRECT],
        input=json.dumps(cfg),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)[5:]


# --------------------------------------------------------------------------------------------
# Statistics and output


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between closest ranks."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        padded = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs]
        print("  ".join(padded))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    out: list[float] = []
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# Realistic code


def code_corpus(n_docs: int, doc_chars: int) -> list[str]:
    """`n_docs` texts of about `doc_chars` characters each, made of real Python sources from
    the packages installed beside pygls (whole files, concatenated in path order)."""
    import pygls

    site = Path(pygls.__file__).resolve().parent.parent
    files: list[Path] = []
    for pkg in ("lsprotocol", "openai", "pygls", "cattrs", "attr", "httpx", "pydantic", "_pytest"):
        root = site / pkg
        if root.is_dir():
            files += sorted(p for p in root.rglob("*.py") if p.stat().st_size > 2000)
    docs: list[str] = []
    buf: list[str] = []
    have = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        buf.append(text)
        have += len(text)
        if have >= doc_chars:
            joined = "".join(buf)
            cut = joined.rfind("\n", 0, doc_chars)
            docs.append(joined[: cut + 1])
            buf, have = [], 0
            if len(docs) == n_docs:
                return docs
    raise RuntimeError(f"not enough source code under {site} for {n_docs} documents")
