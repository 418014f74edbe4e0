"""Workspace trust on the server: ask once per workspace file, and `ctx.trustWorkspace`.

What is held back and why lives in `ctx_lsp.config.trust`; the runtime applies it."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ctx_lsp import commands
from ctx_lsp.config.trust import HeldBack
from ctx_lsp.server import CtxServer, folder_arg

log = logging.getLogger(__name__)

TRUST = "Trust"
NOT_NOW = "Not now"


def question(held: HeldBack) -> str:
    return (
        f"The workspace file {held.root / '.ctx' / 'config.toml'} (or its templates) asks for: "
        f"{held.describe()}. These decide where your code goes or what enters a prompt, so "
        "they are held back until you trust the workspace's .ctx/ files as they are now."
    )


def offer_trust(ls: CtxServer) -> None:
    """Once per server and per content of a folder's files: ask whether to trust them."""
    for held in ls.rt.held_back():
        key = f"trust:{held.root}:{held.fingerprint}"
        if key in ls.asked_trust:
            continue
        ls.asked_trust.add(key)
        if not ls.rt.editor_trusted:
            ls.tell(
                f"{question(held)} The editor has not trusted this workspace, so they stay "
                "held back.",
                types.MessageType.Info,
                key=key,
            )
            continue
        ls.run_task(_ask(ls, held), "ask to trust the workspace")


async def _ask(ls: CtxServer, held: HeldBack) -> None:
    log.warning("held back until trusted: %s: %s", held.root, ", ".join(held.keys) or "templates")
    try:
        answer = await ls.window_show_message_request_async(
            types.ShowMessageRequestParams(
                type=types.MessageType.Warning,
                message=f"ctx-lsp: {question(held)}",
                actions=[types.MessageActionItem(title=TRUST), types.MessageActionItem(NOT_NOW)],
            )
        )
    except Exception as exc:  # a client that cannot ask: held back, as for "Not now"
        log.info("window/showMessageRequest failed: %s", exc)
        return
    if answer is None or answer.title != TRUST:
        return
    folder = ls.folders.get(held.root)
    current = ls.rt.config(folder).held_back if folder is not None else None
    if folder is None or current is None or current.fingerprint != held.fingerprint:
        return  # the files changed while the question was open: the new ones are asked about
    ls.rt.set_trust(folder, True)
    ls.apply_settings()
    ls.tell(f"trusted {held.root}/.ctx/ as it is now", types.MessageType.Info)


def register(server: CtxServer) -> None:
    @server.command(commands.TRUST_WORKSPACE)
    def trust_workspace(ls: CtxServer, *args: Any) -> dict[str, Any]:
        """{folder?, trust: bool}: trust the folder's `.ctx/` files as they are now (or stop)."""
        obj = commands.one_object(list(args))
        trust = obj.get("trust", True)
        if not isinstance(trust, bool):
            raise JsonRpcInvalidParams("'trust' must be true or false")
        folder = folder_arg(ls, obj)
        if trust and not ls.rt.editor_trusted:
            raise JsonRpcInvalidParams(
                "the editor has not trusted this workspace: trust it in the editor first"
            )
        ls.refresh(folder)
        held = ls.rt.set_trust(folder, trust)
        ls.apply_settings()
        now = ls.rt.config(folder).held_back
        if trust:
            text = f"trusted {folder.root}/.ctx/: " + (held.describe() or "nothing was held back")
        else:
            text = f"stopped trusting {folder.root}/.ctx/" + (
                f"; held back now: {now.describe()}" if now else ""
            )
        return {"text": text, "trusted": not now, "heldBack": now.to_json()}
