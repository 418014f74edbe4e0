"""Plugins: discovery through entry points, faults contained, and the example plugins
(`tests/example_plugin`, `tests/broken_plugin`) installed with pip and used by the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from ctx_lsp.plugins import (
    ENTRY_POINT_GROUP,
    MAX_CONTEXT_CHARS,
    ActionRequest,
    CommandContext,
    ContextRequest,
    Plugin,
    PluginAction,
    PluginError,
    PluginManager,
)
from ctx_lsp.prompting.templates import Template
from tests.conftest import command, git, open_doc
from tests.fake_openai import FakeOpenAI

TESTS = Path(__file__).parent
HERE = __name__  # entry points below name classes of this module


# --- plugins for the in-memory entry points ---------------------------------------------------


class Greeter(Plugin):
    """Every hook, working."""

    def templates(self) -> list[Template]:
        return [Template(name="greet", system="", user="Hello $question")]

    def context(self, request: ContextRequest) -> str | None:
        return f"greetings from {request.root.name} on {request.branch}"

    def commands(self) -> dict[str, Any]:
        return {"greet.hello": self.hello, "greet.later": self.later}

    def hello(self, ctx: CommandContext, args: dict[str, Any]) -> str:
        return f"hello {args.get('who', 'world')}"

    async def later(self, ctx: CommandContext, args: dict[str, Any]) -> dict[str, Any]:
        return {"text": "later", "branch": ctx.branch}

    def code_actions(self, request: ActionRequest) -> list[PluginAction]:
        return [PluginAction("Say hello", "greet.hello", {"who": request.file})]


class Quiet(Plugin):
    """Only the defaults."""


class Named(Plugin):
    name = "custom-name"


class Exploding(Plugin):
    name = "exploding"

    def context(self, request: ContextRequest) -> str | None:
        raise ConnectionError("tracker unreachable")

    def code_actions(self, request: ActionRequest) -> list[PluginAction]:
        raise RuntimeError("no actions today")

    def commands(self) -> dict[str, Any]:
        return {"exploding.run": self.run}

    def run(self, ctx: CommandContext, args: dict[str, Any]) -> Any:
        raise ValueError("bad arguments")


class FailsInInit(Plugin):
    def __init__(self) -> None:
        raise RuntimeError("no config")


class NotAPlugin:
    pass


READY = Greeter()


class AsyncContext(Plugin):
    async def context(self, request: ContextRequest) -> str | None:  # type: ignore[override]
        return "never awaited"


class WrongTypes(Plugin):
    def templates(self) -> list[Template]:
        return ["not a template"]  # type: ignore[list-item]


class Stuck(Plugin):
    """A context() that waits on something that never comes (a tracker that hangs)."""

    name = "stuck"
    release = threading.Event()

    def context(self, request: ContextRequest) -> str | None:
        self.release.wait(30)
        return "too late"


class Wordy(Plugin):
    def context(self, request: ContextRequest) -> str | None:
        return "x" * (MAX_CONTEXT_CHARS + 100)


class Greedy(Plugin):
    """Commands colliding with the server's and with Greeter's."""

    def commands(self) -> dict[str, Any]:
        return {
            "ctx.explain": lambda ctx, args: "mine",
            "server.own": lambda ctx, args: "mine",
            "greet.hello": lambda ctx, args: "mine",
            "greedy.ok": lambda ctx, args: "ok",
        }


class BadAction(Plugin):
    def code_actions(self, request: ActionRequest) -> list[PluginAction]:
        return [PluginAction("Do it", "nobody.has.this", {})]


def ep(name: str, value: str) -> EntryPoint:
    if ":" not in value and "." not in value:
        value = f"{HERE}:{value}"
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def manager(*entry_points: EntryPoint) -> PluginManager:
    m = PluginManager(entry_points)
    m.load()
    return m


CTX = ContextRequest(root=Path("/work/demo"), branch="main", file="app.py", kind="prompt")
ACTION = ActionRequest(Path("/work/demo"), "main", "app.py", "x = 1\n", 0, 0)
COMMAND = CommandContext(Path("/work/demo"), "main")


# --- loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param(
            "no_such_module_xyz:Plugin", "ModuleNotFoundError: No module named", id="no-module"
        ),
        pytest.param(f"{HERE}:Missing", "AttributeError", id="no-attribute"),
        pytest.param("FailsInInit", "RuntimeError: no config", id="init-raises"),
        pytest.param("NotAPlugin", "is not a ctx_lsp.plugins.Plugin: NotAPlugin", id="not-plugin"),
    ],
)
def test_a_plugin_that_cannot_load_is_reported_and_skipped(value: str, problem: str):
    m = manager(ep("good", "Greeter"), ep("bad", value), ep("quiet", "Quiet"))
    assert [p.name for p in m.plugins] == ["good", "quiet"]
    (message,) = m.take_problems()
    assert message.startswith("plugin 'bad' (") and problem in message
    assert m.take_problems() == []  # reported once
    assert m.disabled == {"bad"}
    assert m.context(CTX) == ["greetings from demo on main"]


def test_names_come_from_the_class_or_the_entry_point():
    m = manager(ep("a", "Named"), ep("b", "Quiet"), ep("c", "Named"))
    assert [p.name for p in m.plugins] == ["custom-name", "b"]
    (message,) = m.take_problems()
    assert "another plugin is named 'custom-name'" in message


def test_an_instance_may_stand_for_the_class():
    m = manager(ep("ready", "READY"))
    assert m.plugins == [READY] and READY.name == "ready"


def test_no_plugins_installed_means_no_problems():
    m = PluginManager()  # the real entry points: none in the test environment
    m.load()
    assert m.take_problems() == []
    assert m.context(CTX) == [] and m.commands() == {} and m.templates() == []


# --- hooks ------------------------------------------------------------------------------------


def test_a_raising_hook_disables_its_plugin_once_and_others_keep_working():
    m = manager(ep("exploding", "Exploding"), ep("good", "Greeter"))
    assert m.context(CTX) == ["greetings from demo on main"]
    (message,) = m.take_problems()
    assert message == (
        "plugin 'exploding' disabled: context() raised ConnectionError: tracker unreachable"
    )
    assert m.disabled == {"exploding"}
    assert m.context(CTX) == ["greetings from demo on main"]
    assert [a.title for a in m.code_actions(ACTION)] == ["Say hello"]
    assert m.take_problems() == []  # disabled: not called, not reported again


@pytest.mark.parametrize(
    ("plugin", "hook", "want"),
    [
        pytest.param("AsyncContext", "context", "coroutine, not a str or None", id="async-hook"),
        pytest.param("WrongTypes", "templates", "list, not a list of Template", id="bad-list"),
    ],
)
def test_a_hook_returning_the_wrong_type_disables_its_plugin(plugin: str, hook: str, want: str):
    m = manager(ep("odd", plugin), ep("good", "Greeter"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        m.templates()
        assert m.context(CTX) == ["greetings from demo on main"]
    (message,) = m.take_problems()
    assert message == f"plugin 'odd' disabled: {hook}() returned {want}"


def test_a_context_hook_over_the_time_limit_is_disabled_once_and_the_prompt_goes_on():
    m = manager(ep("stuck", "Stuck"), ep("good", "Greeter"))
    try:
        assert m.context(CTX, timeout_s=0.2) == ["greetings from demo on main"]
        assert m.take_problems() == ["plugin 'stuck' disabled: context() took longer than 0.2 s"]
        assert m.context(CTX, timeout_s=0.2) == ["greetings from demo on main"]
        assert m.take_problems() == []  # disabled: not called, not reported again
    finally:
        Stuck.release.set()


def test_templates_are_labelled_with_their_plugin():
    m = manager(ep("good", "Greeter"))
    (template,) = m.templates()
    assert (template.name, template.source) == ("greet", "plugin good")


def test_long_context_is_cut():
    (text,) = manager(ep("wordy", "Wordy")).context(CTX)
    assert len(text) < MAX_CONTEXT_CHARS + 50 and text.endswith("[… cut by ctx-lsp: wordy]")


# --- commands and code actions ------------------------------------------------------------


def test_command_name_collisions_are_reported_and_the_first_wins():
    m = manager(ep("good", "Greeter"), ep("greedy", "Greedy"))
    table = m.commands(reserved={"server.own"})
    assert sorted(table) == ["greedy.ok", "greet.hello", "greet.later"]
    assert table["greet.hello"].__self__ is m.plugins[0]  # type: ignore[attr-defined]
    assert m.take_problems() == [
        "plugin 'greedy': command 'ctx.explain' is the server's",
        "plugin 'greedy': command 'server.own' is the server's",
        "plugin 'greedy': command 'greet.hello' is already plugin 'good''s; ignored",
    ]
    m.commands()
    assert m.take_problems() == []  # the table is built once


async def test_run_command_sync_async_and_plain_text_results():
    m = manager(ep("good", "Greeter"))
    assert await m.run_command("greet.hello", COMMAND, {"who": "you"}) == {"text": "hello you"}
    assert await m.run_command("greet.later", COMMAND, {}) == {"text": "later", "branch": "main"}
    with pytest.raises(PluginError, match=r"unknown plugin command 'greet\.nope'"):
        await m.run_command("greet.nope", COMMAND, {})


async def test_a_failing_command_fails_the_request_not_the_plugin():
    m = manager(ep("exploding", "Exploding"))
    with pytest.raises(PluginError, match=r"exploding.run \(plugin 'exploding'\) failed: Value"):
        await m.run_command("exploding.run", COMMAND, {})
    assert m.disabled == set()
    m.context(CTX)  # now a hook fails: the plugin is off, its command too
    with pytest.raises(PluginError, match="disabled after an error"):
        await m.run_command("exploding.run", COMMAND, {})


def test_code_actions_point_at_known_commands():
    m = manager(ep("bad", "BadAction"), ep("good", "Greeter"))
    (action,) = m.code_actions(ACTION)
    assert action == PluginAction("Say hello", "greet.hello", {"who": "app.py"})
    (message,) = m.take_problems()
    assert message == (
        "plugin 'bad' disabled: code action 'Do it' runs unknown command 'nobody.has.this'"
    )


# --- installed with pip ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/example_plugin and tests/broken_plugin installed with pip into a folder."""
    site = tmp_path_factory.mktemp("plugins") / "site"
    packages = [str(TESTS / "example_plugin"), str(TESTS / "broken_plugin")]
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    done = subprocess.run(
        [*pip, *packages],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return site


def _ticket_repo(repo: Path) -> Path:
    git(repo, "checkout", "-q", "-b", "feature/ABC-123-login")
    (repo / ".tickets").mkdir()
    (repo / ".tickets" / "ABC-123.md").write_text(
        "# Login with SSO\n\nUsers sign in with the company's SSO.\nKeep password login.\n"
    )
    return repo


PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from ctx_lsp.plugins import *

    root = Path(sys.argv[1])
    m = PluginManager()
    m.load()
    ctx = ContextRequest(root, "feature/ABC-123-login", "app.py", "prompt")
    act = ActionRequest(root, "feature/ABC-123-login", "app.py", "", 0, 0)
    out = {
        "plugins": [p.name for p in m.plugins],
        "templates": [t.name for t in m.templates()],
        "commands": sorted(m.commands()),
        "context": m.context(ctx),
        "actions": [[a.title, a.command, a.arguments] for a in m.code_actions(act)],
        "show": asyncio.run(
            m.run_command("ticket.show", CommandContext(root, "feature/ABC-123-login"), {})
        ),
        "problems": m.take_problems(),
    }
    print(json.dumps(out))
    """
)


def test_installed_plugins_are_found_and_broken_ones_reported(plugin_site: Path, repo: Path):
    root = _ticket_repo(repo)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(root)],
        env=_env_with_site(plugin_site),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["plugins"] == ["raising", "ticket"]
    assert out["templates"] == ["ticket-summary"]
    assert out["commands"] == ["broken.echo", "ticket.show"]
    ticket = (
        "Ticket ABC-123: Login with SSO\n"
        "Users sign in with the company's SSO.\nKeep password login."
    )
    assert out["context"] == [ticket]
    assert out["actions"] == [["Link ticket ABC-123", "ticket.show", {"ticket": "ABC-123"}]]
    assert out["show"]["text"] == ticket and out["show"]["ticket"] == "ABC-123"
    broken_import, raising = out["problems"]
    assert broken_import.startswith("plugin 'broken_import' (ctx_broken_plugin.outdated:")
    assert "failed to load: ImportError: cannot import name 'PluginV2'" in broken_import
    assert raising == (
        "plugin 'raising' disabled: context() raised ConnectionError: tracker unreachable"
    )
    assert "Traceback" in done.stderr  # the log keeps the details


def _env_with_site(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


# --- through the server -----------------------------------------------------------------------


async def _start(lsp, root: Path, site: Path, fake: FakeOpenAI):
    env = {**fake.env(), "PYTHONPATH": _env_with_site(site)["PYTHONPATH"]}
    return await lsp(root, env=env, init_options={"model": "test-model", "debounceMs": 0})


def _range(line: int) -> dict[str, Any]:
    return {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}}


async def test_the_server_works_with_broken_plugins_installed(
    lsp, repo: Path, plugin_site: Path, fake_openai: FakeOpenAI
):
    client = await _start(lsp, _ticket_repo(repo), plugin_site, fake_openai)
    uri = open_doc(client, repo / "app.py")
    for _ in range(2):
        result = await command(client, "ctx.explain", {"uri": uri, "range": _range(1)})
        assert result["text"] == fake_openai.reply
    assert "Branch: feature/ABC-123-login" in (await command(client, "ctx.showContext"))["text"]


async def test_the_ticket_plugin_through_the_server(
    lsp, repo: Path, plugin_site: Path, fake_openai: FakeOpenAI
):
    client = await _start(lsp, _ticket_repo(repo), plugin_site, fake_openai)
    announced = client.init_result.capabilities.execute_command_provider.commands
    assert {"ticket.show", "broken.echo", "ctx.explain"} <= set(announced)

    shown = await command(client, "ticket.show")
    assert shown["text"].startswith("Ticket ABC-123: Login with SSO\n")

    uri = open_doc(client, repo / "app.py")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(1, 0), end=types.Position(1, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    (link,) = [a for a in actions if a.title == "Link ticket ABC-123"]
    assert link.command.command == "ticket.show"
    assert list(link.command.arguments) == [{"ticket": "ABC-123"}]

    for _ in range(2):  # the raising plugin fails on the first prompt only: then it is off
        await command(client, "ctx.explain", {"uri": uri, "range": _range(1)})
        assert "Ticket ABC-123: Login with SSO" in fake_openai.prompts()[-1]

    texts = [m.message for m in client.messages]
    assert len([t for t in texts if "'broken_import'" in t and "failed to load" in t]) == 1
    assert len([t for t in texts if "plugin 'raising' disabled" in t]) == 1
    # the disabled plugin's command answers with an error; the server carries on
    with pytest.raises(Exception, match="disabled after an error"):
        await command(client, "broken.echo", {"text": "hi"})
    assert (await command(client, "ticket.show", {"ticket": "ABC-123"}))["ticket"] == "ABC-123"
