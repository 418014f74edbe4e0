"""Nothing holds the server's event loop: its slow-callback detection (asyncio's
`slow_callback_duration` check, less the time the loop's thread waited for a CPU, see
`ctx_lsp.server.inbox`), turned on with `CTX_LSP_SLOW_CALLBACK_MS=20`, logs no callback over
20 ms while the server answers a burst of completions, writes a commit message and explains
code, with 50 documents open (start-up, up to the first answered request, and shutdown, which
saves the session before it answers, are not part of it:
the first structuring of `initialize` by pygls' converter alone takes about 100 ms).

(The chat command is not in this branch yet: `ctx.explain` is the chat-like turn here, the
same path through the view, the prompt builder, the backend, the cache and the history.)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

from tests.conftest import command, git, server_env
from tests.fake_openai import FakeOpenAI

SLOW = re.compile(r"WARNING .* held the loop (\d+\.\d+) ms")


def module_text(i: int, functions: int = 120) -> str:
    """About 20 KB of Python that calls into the other modules."""
    parts = [f'"""Module {i}."""\n\nfrom pkg import mod_{(i + 1) % 50:02d}\n\n']
    for j in range(functions):
        parts.append(
            f"def compute_{i}_{j}(values, factor={j}):\n"
            f"    total = mod_{(i + 1) % 50:02d}.compute_{(i + 1) % 50}_{j}(values, factor)\n"
            f"    return [v * factor + total for v in values if v > {j}]\n\n\n"
        )
    return "".join(parts)


def _at(line: str) -> float:
    """The time of a log line (the server's log format: `2026-01-02 13:47:26,171 …`)."""
    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def change(uri: str, version: int, line: int, char: int, text: str):
    at = types.Position(line=line, character=char)
    return types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[
            types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=text)
        ],
    )


def inline(uri: str, line: int, char: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=char),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


async def test_no_callback_holds_the_loop_over_20_ms(repo: Path, tmp_path: Path, home: Path):
    pkg = repo / "pkg"
    pkg.mkdir()
    texts = {pkg / f"mod_{i:02d}.py": module_text(i) for i in range(50)}
    for path, text in texts.items():
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feat: fifty modules")
    (repo / "app.py").write_text("def add(a, b):\n    return a + b + 0\n")
    git(repo, "add", "app.py")  # a staged change for the commit message

    log = tmp_path / "server.log"
    argv = [sys.executable, "-m", "ctx_lsp", "--log-file", str(log)]
    with FakeOpenAI(reply="x = 1") as fake:
        env = server_env({**fake.env(), "CTX_LSP_SLOW_CALLBACK_MS": "20"})
        client = await ClientServerConfig(argv, server_env=env).start()
        try:
            await client.initialize_session(
                types.InitializeParams(
                    capabilities=client_capabilities("visual_studio_code"),
                    root_uri=repo.as_uri(),
                    workspace_folders=[types.WorkspaceFolder(uri=repo.as_uri(), name="work")],
                    initialization_options={"model": "test-model", "debounceMs": 0},
                )
            )
            uris = []
            for path, text in texts.items():
                uris.append(path.as_uri())
                client.text_document_did_open(
                    types.DidOpenTextDocumentParams(
                        text_document=types.TextDocumentItem(
                            uri=path.as_uri(), language_id="python", version=1, text=text
                        )
                    )
                )
            first = uris[0]
            await client.text_document_inline_completion_async(inline(uris[1], 0, 0))
            started = time.time()  # start-up (initialize, the first imports) is over

            # a completion burst: type in one module, asking for a suggestion after each key
            answers = []
            version = 1
            for n in range(30):
                version += 1
                client.text_document_did_change(change(first, version, 4, 4 + n, "y"))
                answers.append(
                    client.text_document_inline_completion_async(inline(first, 4, 5 + n))
                )
                await asyncio.sleep(0.01)
            results = await asyncio.gather(*answers)
            final = await client.text_document_inline_completion_async(inline(first, 4, 34))

            commit = await command(client, "ctx.commitMessage", {"staged": True})
            where = types.Range(start=types.Position(8, 0), end=types.Position(10, 0))
            explained = await command(
                client,
                "ctx.explain",
                {"uri": uris[7], "range": client.protocol._converter.unstructure(where)},
            )
            finished = time.time()  # then shutdown, which writes the session on the loop
        finally:
            with contextlib.suppress(Exception):
                await client.shutdown_session()
            await client.stop()

    # the server did the work a user would see
    assert [i.insert_text for i in final.items] == ["x = 1"]
    assert any(r.items for r in results)
    assert commit["text"].strip() and commit["staged"] is True
    assert explained["text"] == "x = 1"
    assert len(fake.chat_requests()) >= 3

    text = log.read_text(encoding="utf-8")
    assert "slow-callback detection on: 20 ms" in text  # the check was really on
    slow = [
        line for line in text.splitlines() if SLOW.search(line) and started <= _at(line) <= finished
    ]
    assert slow == [], "callbacks held the event loop over 20 ms:\n" + "\n".join(slow)
