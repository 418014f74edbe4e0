"""`ctx-lsp trust` / `untrust`: the user's word on a workspace's own `.ctx/` files."""

from __future__ import annotations

import argparse
import sys

from ctx_lsp.cli.common import OK, Workspace, emit_json


def held_back_note(ws: Workspace) -> str | None:
    """One line for stderr when the workspace's files ask for something held back."""
    held = ws.rt.config(ws.folder).held_back
    if not held:
        return None
    return f"held back from {ws.root}/.ctx/ until you run `ctx-lsp trust`: {held.describe()}"


def trust_state(ws: Workspace) -> tuple[str, str]:
    """(state, detail): "trusted", "held back" or "not needed", and what it covers."""
    held = ws.rt.config(ws.folder).held_back
    if held:
        return "held back", f"until `ctx-lsp trust`: {held.describe()}"
    if ws.rt.trust.trusted_fingerprint(ws.root) is not None:
        return "trusted", f"the workspace's .ctx/ files as they are now ({ws.rt.trust.path})"
    return "not needed", "the workspace's .ctx/ files decide nothing that needs trust"


def _result(ws: Workspace, args: argparse.Namespace, text: str) -> int:
    held = ws.rt.config(ws.folder).held_back
    if args.json:
        emit_json({"text": text, "trusted": not held, "heldBack": held.to_json()})
    else:
        sys.stdout.write(text + "\n")
    return OK


async def trust(ws: Workspace, args: argparse.Namespace) -> int:
    held = ws.rt.set_trust(ws.folder, True)
    ws.reload()
    if not held:
        return _result(ws, args, f"{ws.root}/.ctx/: nothing is held back; nothing to trust")
    return _result(ws, args, f"trusted {ws.root}/.ctx/ as it is now: {held.describe()}")


async def untrust(ws: Workspace, args: argparse.Namespace) -> int:
    ws.rt.set_trust(ws.folder, False)
    ws.reload()
    note = held_back_note(ws)
    return _result(ws, args, f"stopped trusting {ws.root}/.ctx/" + (f"; {note}" if note else ""))
