"""A ctx-lsp plugin whose hooks fail when called (the entry point `raising`).

Its command works: a plugin disabled by a failing hook must not take the server's or
other plugins' features down with it, and the tests check that it is reported once."""

from __future__ import annotations

from typing import Any

from ctx_lsp.plugins import ActionRequest, ContextRequest, Plugin, PluginAction

CONTEXT_ERROR = "tracker unreachable"


class RaisingPlugin(Plugin):
    name = "raising"

    def context(self, request: ContextRequest) -> str | None:
        raise ConnectionError(CONTEXT_ERROR)

    def code_actions(self, request: ActionRequest) -> list[PluginAction]:
        raise RuntimeError("code actions are broken too")

    def commands(self) -> dict[str, Any]:
        return {"broken.echo": lambda ctx, args: {"text": f"echo {args.get('text', '')}"}}
