"""Third-party plugins, discovered through the entry-point group ``ctx_lsp.plugins``.

A plugin subclasses :class:`Plugin` and overrides the hooks it needs (all are no-ops)::

    # pyproject.toml of the plugin's package
    [project.entry-points."ctx_lsp.plugins"]
    ticket = "ctx_ticket_plugin:TicketPlugin"

The entry point names a :class:`Plugin` subclass (instantiated with no arguments) or a
ready instance. Hooks other than command handlers run for every prompt or code-action
request: they must be quick. ``context()`` runs on a thread of its own with a time limit
(`CONTEXT_TIMEOUT_S`): a plugin over it is disabled and said so once, and the prompt goes
without it. Command handlers may be ``async``.

Faults are contained: a plugin that fails to load is skipped; a hook that raises or returns
the wrong type disables its plugin. Either is reported once through :meth:`take_problems`
and the other plugins carry on. A command handler that raises fails that one request
(:class:`PluginError`) and leaves the plugin enabled: the user asked and sees the error.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ctx_lsp.prompting.templates import Template

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ctx_lsp.plugins"
#: Command names plugins may not take: the server's own.
RESERVED_PREFIX = "ctx."
#: Context text longer than this is cut: a plugin must not crowd out the code.
MAX_CONTEXT_CHARS = 4000
#: Seconds all plugins' ``context()`` together may take for one prompt.
CONTEXT_TIMEOUT_S = 1.0

Handler = Callable[["CommandContext", dict[str, Any]], Any]


@dataclass(frozen=True)
class ContextRequest:
    """For :meth:`Plugin.context`: the folder, its branch, the current file (relative to the
    root, if any) and the kind of job (``prompt`` for the shared project summary)."""

    root: Path
    branch: str | None
    file: str | None
    kind: str


@dataclass(frozen=True)
class CommandContext:
    root: Path
    branch: str | None


@dataclass(frozen=True)
class ActionRequest:
    """For :meth:`Plugin.code_actions`: the document (``file`` relative to ``root``) and the
    0-based lines of the range the editor asks about."""

    root: Path
    branch: str | None
    file: str
    text: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class PluginAction:
    """A code action; it only points at a command (a plugin's own or a ``ctx.*`` one),
    which the editor runs with ``arguments`` as its one JSON object."""

    title: str
    command: str
    arguments: dict[str, Any] = dataclasses.field(default_factory=dict)


class Plugin:
    """Base class with no-op hooks."""

    name: str = "plugin"

    def templates(self) -> list[Template]:
        """Prompt templates; user and workspace templates of the same name win."""
        return []

    def context(self, request: ContextRequest) -> str | None:
        """Extra text for prompts, or None."""
        return None

    def commands(self) -> dict[str, Handler]:
        """Command name → handler(ctx, args); it returns a dict with "text" (or a str)."""
        return {}

    def code_actions(self, request: ActionRequest) -> list[PluginAction]:
        return []


class PluginError(Exception):
    """A plugin command that cannot run or failed; the message says which and why."""


_FAILED = object()


class PluginManager:
    def __init__(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        self._entry_points = entry_points
        self.plugins: list[Plugin] = []
        self.problems: list[str] = []  # not yet reported
        self.disabled: set[str] = set()  # plugins that failed to load or whose hook failed
        self._commands: dict[str, tuple[Plugin, Handler]] | None = None

    # -- loading -----------------------------------------------------------------
    def load(self) -> None:
        """Instantiate every plugin; one that fails is reported and skipped."""
        self.plugins, self.disabled, self._commands = [], set(), None
        eps = self._entry_points
        if eps is None:  # sorted: "first wins" must not depend on the file system's order
            eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        for ep in eps:
            where = f"plugin {ep.name!r} ({ep.value})"
            try:
                obj = ep.load()
                plugin = obj() if isinstance(obj, type) else obj
            except Exception as exc:
                self._problem(f"{where} failed to load: {_describe(exc)}", exc)
                self.disabled.add(ep.name)
                continue
            if not isinstance(plugin, Plugin):
                self._problem(f"{where} is not a ctx_lsp.plugins.Plugin: {type(plugin).__name__}")
                self.disabled.add(ep.name)
                continue
            if plugin.name == Plugin.name:
                plugin.name = ep.name
            if any(p.name == plugin.name for p in self.plugins):
                self._problem(f"{where}: another plugin is named {plugin.name!r}; skipped")
                continue
            self.plugins.append(plugin)
            log.info("loaded %s", where)

    def take_problems(self) -> list[str]:
        """Problems not reported yet; each is returned once."""
        out, self.problems = self.problems, []
        return out

    def active(self) -> list[Plugin]:
        return [p for p in self.plugins if p.name not in self.disabled]

    # -- hooks -------------------------------------------------------------------
    def templates(self) -> list[Template]:
        out: list[Template] = []
        for plugin in self.active():
            found = self._call(plugin, "templates")
            source = f"plugin {plugin.name}"
            for t in () if found is _FAILED else found:
                out.append(t if t.source != "builtin" else dataclasses.replace(t, source=source))
        return out

    def context(self, request: ContextRequest, timeout_s: float = CONTEXT_TIMEOUT_S) -> list[str]:
        """Each active plugin's text for ``request`` (empty answers left out), within
        `timeout_s` for all of them: the one that runs out of it is disabled."""
        out: list[str] = []
        deadline = time.monotonic() + timeout_s
        for plugin in self.active():
            done, text = _bounded(
                lambda p=plugin: self._call(p, "context", request), deadline - time.monotonic()
            )
            if not done:
                self._disable(plugin, f"context() took longer than {timeout_s:g} s")
                continue
            if text is _FAILED or not text or not text.strip():
                continue
            text = text.strip()
            if len(text) > MAX_CONTEXT_CHARS:
                text = text[:MAX_CONTEXT_CHARS] + f"\n[… cut by ctx-lsp: {plugin.name}]"
            out.append(text)
        return out

    def commands(self, reserved: Collection[str] = ()) -> dict[str, Handler]:
        """Every plugin command, collected (and checked) on the first call. A name starting
        with ``ctx.``, in ``reserved`` or taken by an earlier plugin is reported and skipped."""
        if self._commands is None:
            self._commands = {}
            for plugin in self.active():
                table = self._call(plugin, "commands")
                for name, handler in {} if table is _FAILED else table.items():
                    if name.startswith(RESERVED_PREFIX) or name in reserved:
                        self._problem(f"plugin {plugin.name!r}: command {name!r} is the server's")
                    elif (owner := self._commands.get(name)) is not None:
                        self._problem(
                            f"plugin {plugin.name!r}: command {name!r} is already plugin "
                            f"{owner[0].name!r}'s; ignored"
                        )
                    else:
                        self._commands[name] = (plugin, handler)
        return {name: handler for name, (_, handler) in self._commands.items()}

    async def run_command(
        self, name: str, ctx: CommandContext, args: dict[str, Any]
    ) -> dict[str, Any]:
        """Run a plugin command; raises :class:`PluginError` for the request's response."""
        self.commands()
        if (entry := (self._commands or {}).get(name)) is None:
            raise PluginError(f"unknown plugin command {name!r}")
        plugin, handler = entry
        if plugin.name in self.disabled:
            raise PluginError(f"{name}: plugin {plugin.name!r} is disabled after an error")
        try:
            result = handler(ctx, args)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            log.error("plugin %r: command %s failed", plugin.name, name, exc_info=exc)
            raise PluginError(f"{name} (plugin {plugin.name!r}) failed: {_describe(exc)}") from exc
        if result is None or isinstance(result, str):
            return {"text": result or ""}
        if not isinstance(result, dict):
            raise PluginError(f"{name} (plugin {plugin.name!r}) returned {type(result).__name__}")
        return result

    def code_actions(self, request: ActionRequest) -> list[PluginAction]:
        """Actions pointing at a known command (a plugin's or ``ctx.*``)."""
        known = self.commands()
        out: list[PluginAction] = []
        for plugin in self.active():
            actions = self._call(plugin, "code_actions", request)
            if actions is _FAILED:
                continue
            bad = [a for a in actions if a.command not in known]
            bad = [a for a in bad if not a.command.startswith(RESERVED_PREFIX)]
            if bad:
                why = f"code action {bad[0].title!r} runs unknown command {bad[0].command!r}"
                self._disable(plugin, why)
                continue
            out += actions
        return out

    # -- guard -------------------------------------------------------------------
    def _call(self, plugin: Plugin, hook: str, *args: Any) -> Any:
        """The hook's result, or _FAILED after disabling the plugin."""
        valid, want = _EXPECTED[hook]
        try:
            result = getattr(plugin, hook)(*args)
        except Exception as exc:
            self._disable(plugin, f"{hook}() raised {_describe(exc)}", exc)
            return _FAILED
        if not valid(result):
            if inspect.iscoroutine(result):
                result.close()  # an `async def` hook: never awaited, and said once
            self._disable(plugin, f"{hook}() returned {type(result).__name__}, not {want}")
            return _FAILED
        return result

    def _disable(self, plugin: Plugin, why: str, exc: BaseException | None = None) -> None:
        self.disabled.add(plugin.name)
        self._problem(f"plugin {plugin.name!r} disabled: {why}", exc)

    def _problem(self, message: str, exc: BaseException | None = None) -> None:
        log.error("%s", message, exc_info=exc)
        self.problems.append(message)


def _bounded(call: Callable[[], Any], timeout_s: float) -> tuple[bool, Any]:
    """(True, result) of `call` run on a thread of its own, or (False, None) when it has not
    finished within `timeout_s`. The thread is a daemon: a hook that never returns holds
    neither the caller nor the process's exit."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True, name="ctx-plugin")
    thread.start()
    thread.join(max(timeout_s, 0.0))
    return (True, box[0]) if box else (False, None)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _list_of(kind: type, ok: Callable[[Any], bool] = lambda _: True) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list | tuple) and all(isinstance(x, kind) and ok(x) for x in v)


def _action_ok(a: PluginAction) -> bool:
    return all(isinstance(v, t) for v, t in ((a.title, str), (a.command, str), (a.arguments, dict)))


def _command_table(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and k.strip() and callable(h) for k, h in v.items()
    )


_EXPECTED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "templates": (_list_of(Template), "a list of Template"),
    "context": (lambda v: v is None or isinstance(v, str), "a str or None"),
    "commands": (_command_table, "a dict of name → callable"),
    "code_actions": (_list_of(PluginAction, _action_ok), "a list of PluginAction"),
}
