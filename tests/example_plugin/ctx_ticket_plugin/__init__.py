"""Example ctx-lsp plugin: the issue-tracker ticket that the git branch names.

Branch ``feature/ABC-123-login`` → ticket ``ABC-123`` → file ``.tickets/ABC-123.md`` in the
workspace (its first line is the title). A real plugin would ask the tracker's API instead;
it would do so in the command (which may be async), and cache what prompts need.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ctx_lsp.plugins import (
    ActionRequest,
    CommandContext,
    ContextRequest,
    Plugin,
    PluginAction,
)
from ctx_lsp.prompting.templates import Template, parse_template

SHOW = "ticket.show"
#: Lines of the ticket's body that go into prompts after its title.
BODY_LINES = 5

_TICKET_RE = re.compile(r"(?<![A-Za-z0-9])([A-Z][A-Z0-9]+-[0-9]+)(?![0-9])")

SUMMARY_TEMPLATE = """\
---
description: Summarize the branch's work against its ticket
---
## system
You compare a change with the ticket it implements. Be brief.
## user
Branch: $branch
$context

Changes:
$diff

Say what of the ticket is done and what is left.
"""


def ticket_id(text: str | None) -> str | None:
    """The first ticket key (``ABC-123``) in a branch name, or None."""
    m = _TICKET_RE.search(text or "")
    return m.group(1) if m else None


def ticket_path(root: Path, ticket: str) -> Path:
    return root / ".tickets" / f"{ticket}.md"


def ticket_text(root: Path, ticket: str) -> str | None:
    """ "Ticket ABC-123: <title>" and the first lines of its body; None without a file."""
    try:
        lines = ticket_path(root, ticket).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        return f"Ticket {ticket}"
    title = lines[0].lstrip("#").strip()
    return "\n".join([f"Ticket {ticket}: {title}", *lines[1 : 1 + BODY_LINES]])


class TicketPlugin(Plugin):
    name = "ticket"

    def templates(self) -> list[Template]:
        return [parse_template(SUMMARY_TEMPLATE, "ticket-summary", "plugin ticket")]

    def context(self, request: ContextRequest) -> str | None:
        ticket = ticket_id(request.branch)
        return ticket_text(request.root, ticket) if ticket else None

    def commands(self) -> dict[str, Any]:
        return {SHOW: self.show}

    def show(self, ctx: CommandContext, args: dict[str, Any]) -> dict[str, Any]:
        wanted = args.get("ticket")
        ticket = ticket_id(wanted) if isinstance(wanted, str) else ticket_id(ctx.branch)
        if ticket is None:
            raise ValueError(f"no ticket key (like ABC-123) in {wanted or ctx.branch!r}")
        text = ticket_text(ctx.root, ticket)
        path = ticket_path(ctx.root, ticket)
        if text is None:
            return {"text": f"Ticket {ticket}: no {path.name} in .tickets/", "ticket": ticket}
        return {"text": text, "ticket": ticket, "path": str(path)}

    def code_actions(self, request: ActionRequest) -> list[PluginAction]:
        ticket = ticket_id(request.branch)
        if ticket is None or not ticket_path(request.root, ticket).is_file():
            return []
        return [PluginAction(f"Link ticket {ticket}", SHOW, {"ticket": ticket})]
