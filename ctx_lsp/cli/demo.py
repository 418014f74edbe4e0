"""`ctx-lsp demo`: a few real LSP exchanges with the server and the configured backend,
printed as an editor would show them. It starts `python -m ctx_lsp` like an editor does,
in a scratch git repository, so nothing of the user's is touched."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

FIB = "def fib(n):\n    # the n-th Fibonacci number, recursively\n    "
GIT_ID = {
    "GIT_AUTHOR_NAME": "ctx-lsp demo",
    "GIT_AUTHOR_EMAIL": "demo@localhost",
    "GIT_COMMITTER_NAME": "ctx-lsp demo",
    "GIT_COMMITTER_EMAIL": "demo@localhost",
}


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, env={**os.environ, **GIT_ID}
    )


def _say(title: str, body: str = "") -> None:
    print(f"\n== {title}", flush=True)
    if body:
        print(body.rstrip(), flush=True)


async def _run(root: Path, settings: dict[str, Any]) -> int:
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("ctx-lsp-demo", "1")
    messages: list[str] = []

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def show_message(ls: LanguageClient, params: types.ShowMessageParams) -> None:
        messages.append(params.message)

    await client.start_io(sys.executable, "-m", "ctx_lsp")
    try:
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
                initialization_options={"debounceMs": 0, **settings},
            )
        )
        client.initialized(types.InitializedParams())
        path = root / "fib.py"
        uri = path.as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=FIB
                )
            )
        )
        _say("open fib.py", FIB + "█")

        started = time.monotonic()
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=2, character=4),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        took = time.monotonic() - started
        items = result.items if result else []
        ghost = items[0].insert_text if items else ""
        if isinstance(ghost, types.StringValue):
            ghost = ghost.value
        _say(f"inline completion ({took:.1f} s): ghost text after the cursor", ghost or "(none)")
        if not ghost and messages:
            _say("the server says", "\n".join(messages))
            return 1

        ctx = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="ctx.showContext", arguments=[{}])
        )
        _say("answered by", ctx.get("backend") or ctx.get("model") or "?")

        path.write_text(FIB + ghost + "\n")
        whole = {"start": {"line": 0, "character": 0}, "end": {"line": 3, "character": 0}}
        started = time.monotonic()
        try:
            answer = await client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="ctx.explain", arguments=[{"uri": uri, "range": whole}]
                )
            )
            _say(f"ctx.explain ({time.monotonic() - started:.1f} s)", answer["text"])
        except Exception as exc:
            _say("ctx.explain failed", str(exc))

        _git(root, "add", "fib.py")
        started = time.monotonic()
        try:
            answer = await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="ctx.commitMessage", arguments=[{}])
            )
            _say(f"ctx.commitMessage ({time.monotonic() - started:.1f} s)", answer["text"])
        except Exception as exc:
            _say("ctx.commitMessage failed", str(exc))
        if messages:
            _say("messages shown to the user", "\n".join(messages))
        return 0
    finally:
        # the server exits only when told to; stop() alone would wait for it
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()


def _restored(root: Path) -> None:
    """The conversation as the next server (or `ctx-lsp chat`) finds it in .ctx/: read back
    by a new process, as after a restart."""
    started = time.monotonic()
    shown = subprocess.run(
        [sys.executable, "-m", "ctx_lsp", "history", "show"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    _say(f"the conversation, restored from .ctx/ by a new process ({took:.1f} s)", shown.stdout)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="ctx-lsp demo", description=__doc__)
    parser.add_argument("--model", help="model name (default: the configured one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch repository")
    args = parser.parse_args(argv)
    settings = {"model": args.model} if args.model else {}
    scratch = Path(tempfile.mkdtemp(prefix="ctx-lsp-demo-"))
    _git(scratch, "init", "-q")
    (scratch / "README.md").write_text("# demo\n")
    _git(scratch, "add", "README.md")
    _git(scratch, "commit", "-q", "-m", "Initial commit")
    print(f"scratch repository: {scratch}")
    started = time.monotonic()
    try:
        code = asyncio.run(_run(scratch, settings))
        if code == 0:
            _restored(scratch)
        print(f"\n(all of it in {time.monotonic() - started:.1f} s)")
        return code
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
