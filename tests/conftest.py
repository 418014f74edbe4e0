"""Shared fixtures: real git repositories, an isolated environment, and LSP clients
(pytest-lsp's own client) talking to `python -m ctx_lsp` in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Union

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

pytest_plugins = ["tests.fake_openai"]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    return subprocess.run(
        ["git", *args], cwd=root, env=full_env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME and config dirs so no test reads or writes the machine's."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    for key, value in {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "CTX_LSP_CONFIG": str(home / "ctx-user-config.toml"),
        **GIT_ENV,
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CTX_LSP_USER"):
        monkeypatch.delenv(key, raising=False)
    return home


@pytest.fixture
def repo(tmp_path: Path, home: Path) -> Path:
    """A real git repository with one commit on `main`."""
    root = tmp_path / "work"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "app.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "README.md").write_text("# demo\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "feat: initial commit")
    return root


def trust(root: Path) -> None:
    """The user trusts `root`'s `.ctx/` files as they are now (as `ctx-lsp trust` does)."""
    from ctx_lsp.runtime import Runtime

    rt = Runtime(os.environ)
    folder = rt.add_folder(root)
    rt.load()
    rt.set_trust(folder, True)


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(extra or {})
    return env


ClientFactory = Callable[..., Any]


def _fix_code_action_union(converter: Any) -> None:
    """lsprotocol reads any code action with a `command` as a bare Command; editors
    tell them apart by whether `command` is a string, and so must the test client."""

    def hook(obj: Any, _: Any) -> Any:
        kind = types.Command if isinstance(obj.get("command"), str) else types.CodeAction
        return converter.structure(obj, kind)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], hook)  # noqa: UP007


@pytest_asyncio.fixture
async def lsp(home: Path) -> AsyncIterator[ClientFactory]:
    """Factory: `await lsp(root, env=..., init_options=..., caps="neovim")` starts a
    server process and returns an initialized pytest-lsp client."""
    clients: list[LanguageClient] = []

    async def start(
        root: Path | None,
        *,
        env: dict[str, str] | None = None,
        init_options: Any = None,
        caps: str | types.ClientCapabilities = "visual_studio_code",
        configuration: dict[str, Any] | None = None,
        folders: list[Path] | None = None,
        position_encodings: list[str] | None = None,
        args: list[str] | None = None,
    ) -> LanguageClient:
        config = ClientServerConfig(
            [sys.executable, "-m", "ctx_lsp", *(args or [])], server_env=server_env(env)
        )
        client = await config.start()
        _fix_code_action_union(client.protocol._converter)
        client.applied_edits = []  # type: ignore[attr-defined]

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(
            ls: LanguageClient, params: types.ApplyWorkspaceEditParams
        ) -> types.ApplyWorkspaceEditResult:
            ls.applied_edits.append(params)  # type: ignore[attr-defined]
            return types.ApplyWorkspaceEditResult(applied=True)

        # window/showMessageRequest: recorded; answered with `client.answer` (a title, or
        # None to dismiss it as a user closing the notification would)
        client.message_requests = []  # type: ignore[attr-defined]
        client.answer = None  # type: ignore[attr-defined]

        @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
        def show_message_request(
            ls: LanguageClient, params: types.ShowMessageRequestParams
        ) -> types.MessageActionItem | None:
            ls.message_requests.append(params)  # type: ignore[attr-defined]
            answer = ls.answer  # type: ignore[attr-defined]
            return types.MessageActionItem(title=answer) if answer else None

        if configuration is not None:
            client.set_configuration(configuration, section="ctx")
        capabilities = client_capabilities(caps) if isinstance(caps, str) else caps
        if position_encodings is not None:
            capabilities.general = types.GeneralClientCapabilities(
                position_encodings=position_encodings
            )
        roots = folders if folders is not None else ([root] if root else [])
        client.init_result = await client.initialize_session(  # type: ignore[attr-defined]
            types.InitializeParams(
                capabilities=capabilities,
                root_uri=root.as_uri() if root else None,
                workspace_folders=[
                    types.WorkspaceFolder(uri=r.as_uri(), name=r.name) for r in roots
                ]
                or None,
                initialization_options=init_options,
            )
        )
        clients.append(client)
        return client

    yield start
    for client in clients:
        with contextlib.suppress(Exception):  # a test may have shut it down already
            await client.shutdown_session()
        await client.stop()


def open_doc(
    client: LanguageClient, path: Path, text: str | None = None, language: str = "python"
) -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri,
                language_id=language,
                version=1,
                text=path.read_text() if text is None else text,
            )
        )
    )
    return uri


async def command(client: LanguageClient, name: str, args: dict[str, Any] | None = None) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=name, arguments=[args or {}])
    )


async def index_state(client: LanguageClient) -> dict[str, Any]:
    """The first folder's code index once it is built (as `ctx.showContext` tells): a prompt
    asked for before takes no definitions from files that are not open."""
    for _ in range(200):
        shown = await command(client, "ctx.showContext")
        if shown["indexes"] and shown["indexes"][0]["ready"]:
            return shown["indexes"][0]
        await asyncio.sleep(0.05)
    raise AssertionError("the index was never ready")
