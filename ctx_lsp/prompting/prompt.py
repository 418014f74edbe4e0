"""Build the chat messages of one request within a token budget.

Everything that may go into a prompt is collected in one typed, ordered container,
:class:`PromptParts`, and :func:`build_messages` turns it into messages that fit in
``budget - reserve_output`` tokens, as measured by :func:`count_message_tokens`
(:func:`ctx_lsp.text.tokens.count_tokens` of every message content, plus
:data:`MESSAGE_OVERHEAD` per message and :data:`REPLY_OVERHEAD` once).

The task and the cursor window
------------------------------
The final user message (the *task*) comes from the template. When the request has a cursor
window (completion), the caller does not pass a finished task but a function
``render_task(prefix, suffix) -> str`` together with ``cursor_prefix`` / ``cursor_suffix``: the
builder can then re-render the task with a smaller window when the whole window does not fit.
Only then is the window trimmed: the prefix loses its start, the suffix its end (about three
quarters of the room go to the prefix), snapped to whole lines where that costs little.
:func:`task_renderer` makes such a function from a template of a
:class:`~ctx_lsp.prompting.templates.TemplateLibrary`. Without ``render_task`` the ``task``
string is used as is, and ``cursor_prefix`` / ``cursor_suffix`` are ignored.

Only when even the system text and the task with an empty window do not fit are those cut as
well (the system text keeps its start, the task its start and end), so that the result always
fits.

Priorities (what is kept first)
-------------------------------
1. system text and task, with the cursor window;
2. related code, in rank order: the lowest-ranked snippets are dropped first; the first
   snippet that does not fit whole is cut to the room left when that is at least
   :data:`MIN_PARTIAL_SNIPPET` tokens, and the ones after it are dropped;
3. history: the oldest messages are dropped first, and the history summary (which stands for
   older history still) is dropped before any message;
4. the project summary.

The order is strict: once something is dropped or cut, everything after it in this list is
dropped too (a small part of lower priority never sneaks into the room a bigger part of higher
priority could not use). So the project summary is kept only when everything else is, and
nothing optional is kept when the cursor window had to be trimmed.

Message order: system (system text, project summary, related code sections labelled with their
path and reason) → history summary as a system note → history messages → the task.

``BuiltPrompt.dropped`` tells what was left out: ``related``, ``history``, ``history_summary``
and ``project_summary`` count items; ``related_truncated`` is 1 when a snippet was cut;
``cursor_prefix``, ``cursor_suffix``, ``system`` and ``task`` count the characters removed.
Parts with nothing dropped are absent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ctx_lsp.prompting.relevance import Snippet
from ctx_lsp.prompting.templates import TemplateLibrary
from ctx_lsp.text.languages import fence_language
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.text.textkey import LruMemo, text_key
from ctx_lsp.text.tokens import (
    count_joined,
    count_tokens,
    joinable,
    remember_count,
    start_within,
    tokenizer_name,
    truncate_to_tokens,
)

#: Tokens a chat API adds per message (role and separators), counted generously.
MESSAGE_OVERHEAD = 4
#: Tokens that prime the reply, counted once per request.
REPLY_OVERHEAD = 3
#: Smallest ``budget - reserve_output`` accepted.
MIN_BUDGET = 32


class BudgetError(ValueError):
    """Settings that leave too few tokens for a prompt (contextTokens against maxTokens)."""


#: A related snippet is cut to fit only if at least this many tokens are left for it.
MIN_PARTIAL_SNIPPET = 48
#: Share of the cursor window's room given to the prefix when both sides do not fit.
PREFIX_SHARE = 0.75

_SEP = "\n\n"
_ELLIPSIS = "\n…\n"
_RELATED_HEADER = "Related code from the workspace (most relevant first):"
_PROJECT_HEADER = "Project context:"
_SUMMARY_HEADER = "Summary of the earlier conversation:"

TaskRenderer = Callable[[str, str], str]


@dataclass
class PromptParts:
    system: str
    #: The rendered user message; ignored when ``render_task`` is set.
    task: str = ""
    #: The cursor window, passed to ``render_task``; kept before everything else.
    cursor_prefix: str = ""
    cursor_suffix: str = ""
    related: list[Snippet] = field(default_factory=list)
    history: list[ChatMessage] = field(default_factory=list)
    history_summary: str = ""
    project_summary: str = ""
    #: ``(prefix, suffix) -> task``; lets the builder shrink the cursor window to fit.
    render_task: TaskRenderer | None = None
    #: ``kind`` of the final user message (see :data:`ctx_lsp.text.messages.Kind`).
    kind: str = "chat"


@dataclass(frozen=True)
class BuiltPrompt:
    messages: list[ChatMessage]
    tokens: int
    dropped: dict[str, int]
    #: one line per definition of related code that made it into the prompt, with why
    picks: tuple[str, ...] = ()
    #: the reply limit the prompt was built to leave room for (0: not set)
    max_tokens: int = 0


def kept_picks(related: Sequence[Snippet], dropped: Mapping[str, int]) -> tuple[str, ...]:
    """The pick lines of the related snippets a built prompt kept (the first ones)."""
    kept = len(related) - dropped.get("related", 0)
    return tuple(line for s in related[:kept] for line in s.picks)


def count_message_tokens(messages: Sequence[ChatMessage]) -> int:
    """Tokens of a request made of ``messages``, as :func:`build_messages` budgets them."""
    if not messages:
        return 0
    return REPLY_OVERHEAD + sum(count_tokens(m.content) + MESSAGE_OVERHEAD for m in messages)


def task_renderer(
    library: TemplateLibrary,
    name: str,
    values: Mapping[str, str],
    branch: str | None = None,
) -> TaskRenderer:
    """``render_task`` for template ``name``: its user text with ``$prefix`` / ``$suffix`` set
    to the window and the other placeholders from ``values``."""
    base = dict(values)

    def render(prefix: str, suffix: str) -> str:
        return library.render(name, {**base, "prefix": prefix, "suffix": suffix}, branch).user

    return render


# --------------------------------------------------------------------------------------------


def _cost(text: str) -> int:
    return count_tokens(text) + MESSAGE_OVERHEAD


def _trim_prefix(prefix: str, tokens: int) -> str:
    """The end of ``prefix`` within ``tokens``, starting at a line start when that is cheap."""
    cut = truncate_to_tokens(prefix, tokens, keep="end")
    if cut and len(cut) < len(prefix) and prefix[len(prefix) - len(cut) - 1] != "\n":
        nl = cut.find("\n")
        if 0 <= nl < len(cut) // 2:
            cut = cut[nl + 1 :]
    return cut


def _trim_suffix(suffix: str, tokens: int) -> str:
    """The start of ``suffix`` within ``tokens``, ending at a line end when that is cheap."""
    cut = truncate_to_tokens(suffix, tokens, keep="start")
    if cut and len(cut) < len(suffix) and suffix[len(cut)] != "\n":
        nl = cut.rfind("\n")
        if nl >= len(cut) // 2:
            cut = cut[:nl]
    return cut


def _cut_middle(text: str, tokens: int) -> str:
    """``text`` within ``tokens``, keeping its start and end around an ellipsis."""
    if count_tokens(text) <= tokens:
        return text
    marker = count_tokens(_ELLIPSIS)
    room = tokens - marker
    while room > 1:
        head = truncate_to_tokens(text, room - room // 2, keep="start")
        tail = truncate_to_tokens(text, room // 2, keep="end")
        out = head + _ELLIPSIS + tail
        over = count_tokens(out) - tokens
        if over <= 0:
            return out
        room -= over
    return truncate_to_tokens(text, tokens, keep="start")


def _fit_window(
    render: TaskRenderer, prefix: str, suffix: str, room: int
) -> tuple[str, str, str] | None:
    """(task, prefix, suffix) with ``count_tokens(task) <= room``, trimming the window;
    None when even an empty window does not fit."""
    task = render(prefix, suffix)
    if count_tokens(task) <= room:
        return task, prefix, suffix
    skeleton = count_tokens(render("", ""))
    if skeleton > room:
        return None
    p_need, s_need = count_tokens(prefix), count_tokens(suffix)
    window = room - skeleton
    for _ in range(12):
        if window <= 0:
            break
        p_room = max(int(window * PREFIX_SHARE), window - s_need)
        s_room = window - min(p_room, p_need)
        p, s = _trim_prefix(prefix, p_room), _trim_suffix(suffix, s_room)
        task = render(p, s)
        over = count_tokens(task) - room
        if over <= 0:
            return task, p, s
        window -= max(over, 1)
    task = render("", "")
    return (task, "", "") if count_tokens(task) <= room else None


def _fence(path: str, text: str) -> str:
    lang = fence_language(path)
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _snippet_section(s: Snippet, text: str | None = None) -> str:
    body = (s.text if text is None else text).strip("\n")
    return f"### {s.path} ({s.reason})\n{_fence(s.path, body)}"


def _core(parts: PromptParts, room: int, dropped: dict[str, int]) -> tuple[str, str]:
    """System text and task such that both messages fit in ``room`` tokens."""
    system = parts.system

    def sys_cost() -> int:
        return _cost(system) if system else 0

    def cut_system(task_tokens: int) -> None:
        # The system text gets at most half of the room, unless the task needs less.
        nonlocal system
        content_room = room - 2 * MESSAGE_OVERHEAD
        sys_room = max(content_room // 2, content_room - task_tokens)
        if count_tokens(system) > sys_room:
            new_system = truncate_to_tokens(system, sys_room, keep="start")
            dropped["system"] = len(parts.system) - len(new_system)
            system = new_system

    def window_fits(fitted: tuple[str, str, str] | None) -> str | None:
        if fitted is None:
            return None
        task, p, s = fitted
        if len(p) < len(parts.cursor_prefix):
            dropped["cursor_prefix"] = len(parts.cursor_prefix) - len(p)
        if len(s) < len(parts.cursor_suffix):
            dropped["cursor_suffix"] = len(parts.cursor_suffix) - len(s)
        return task

    render = parts.render_task
    if render is not None:
        prefix, suffix = parts.cursor_prefix, parts.cursor_suffix
        task = window_fits(
            _fit_window(render, prefix, suffix, room - sys_cost() - MESSAGE_OVERHEAD)
        )
        if task is not None:
            return system, task
        # Not even an empty window fits next to the system text: cut that, then try again.
        cut_system(count_tokens(render(prefix, suffix)))  # the window gets half the room
        fitted = _fit_window(render, prefix, suffix, room - sys_cost() - MESSAGE_OVERHEAD)
        found = window_fits(fitted)
        if found is not None:
            return system, found
        task = render("", "")
        if prefix:
            dropped["cursor_prefix"] = len(prefix)
        if suffix:
            dropped["cursor_suffix"] = len(suffix)
    else:
        task = parts.task
        if sys_cost() + _cost(task) <= room:
            return system, task
        cut_system(count_tokens(task))
    # The task alone (with an empty window) is too big: keep its start and end.
    task_room = room - sys_cost() - MESSAGE_OVERHEAD
    new_task = _cut_middle(task, task_room)
    if len(new_task) < len(task):
        dropped["task"] = len(task) - len(new_task)
    return system, new_task


def _joined_cost(piece: str, by_lines: bool = False) -> int:
    """Tokens ``piece`` adds to a message it is joined into, followed by another piece
    (see :func:`ctx_lsp.text.tokens.count_joined`)."""
    return count_tokens(piece + _SEP, by_lines=by_lines)


def _section_cost(section: str) -> int:
    """`_joined_cost` of a related-code section. Its own count, for when it ends the message,
    follows from it: the section ends with its closing fence, a line that starts a chunk of
    its own, with the separator after it or without."""
    cost = _joined_cost(section)
    remember_count(section, cost + _own_delta(section))
    return cost


def _own_delta(section: str) -> int:
    """A section's count alone less its count with the separator after it."""
    return _fence_delta(section[section.rfind("\n") + 1 :], tokenizer_name())


#: (joined cost, own count) of related sections by what they are made of and the counter:
#: the same snippets come back prompt after prompt (a file's imports, a pick's body), and a
#: section's text, a new string each time, would be hashed and looked up twice to count it.
_SECTIONS: LruMemo[tuple[int, int]] = LruMemo(2048)


def _related_section(snip: Snippet) -> tuple[str, int, int]:
    """The section of a snippet of related code, its `_joined_cost` and its own count."""
    section = _snippet_section(snip)
    key = (snip.path, snip.reason, text_key(snip.text), tokenizer_name())
    costs = _SECTIONS.get(key)
    if costs is None:
        cost = _joined_cost(section, snip.by_lines)
        costs = (cost, cost + _own_delta(section))
        _SECTIONS.put(key, costs)
    return section, *costs


@functools.cache
def _fence_delta(fence: str, counter: str) -> int:
    """What a closing fence costs alone less what it costs with the separator after it."""
    return count_tokens(fence) - count_tokens(fence + _SEP)


def _assemble(
    parts: PromptParts,
    system: str,
    task: str,
    room: int,
    complete: bool,
    dropped: dict[str, int],
) -> tuple[list[ChatMessage], int]:
    """Add the optional parts into ``room`` tokens, strictly by priority: once a part (or an
    item of it) is dropped, everything of lower priority is dropped too. ``complete`` is False
    when the core itself had to be trimmed (then no optional part goes in).

    Returns the messages and their exact count. Each piece of the system message is counted
    with the separator after it (as it stands in the joined text): counts of recurring pieces
    are memo hits, and the joined message is never encoded whole. Only its last piece counts
    without the separator, so the total may come out a token or so off the sum the room was
    filled by; the caller checks it."""
    task_cost = _cost(task)
    left = room - (_cost(system) if system else 0) - task_cost
    # What the first optional piece costs besides itself: the system text it follows gets
    # the separator, or the system message is opened.
    opening = _joined_cost(system) - count_tokens(system) if system else MESSAGE_OVERHEAD
    opened = False

    # 2. Related code, in rank order; the first snippet that does not fit may be cut.
    related_sections: list[str] = []
    related_costs: list[int] = []  # each with the separator after it
    last_own = 0  # the last one's count alone
    n_related = 0
    for snip in parts.related if complete else []:
        extra = 0 if opened else opening + _joined_cost(_RELATED_HEADER)
        section, cost, own = _related_section(snip)
        if cost + extra <= left:
            related_sections.append(section)
            related_costs.append(cost)
            last_own = own
            left -= cost + extra
            n_related += 1
            opened = True
            continue
        shell = _joined_cost(_snippet_section(snip, "")) + extra
        text_room = left - shell - count_tokens(_ELLIPSIS)
        if text_room >= MIN_PARTIAL_SNIPPET:
            # whole lines of it, counted from its pieces; else a cut for size only: the
            # section is counted exactly below
            cut = start_within(snip.text, text_room, by_lines=snip.by_lines) or (
                truncate_to_tokens(snip.text, text_room, keep="start", exact=False)
            )
            cut = cut.rstrip("\n") + "\n…"
            section = _snippet_section(snip, cut)
            cost = _section_cost(section)
            if cost + extra <= left:
                related_sections.append(section)
                related_costs.append(cost)
                last_own = cost + _own_delta(section)
                left -= cost + extra
                n_related += 1
                opened = True
                dropped["related_truncated"] = 1
        break
    complete = complete and n_related == len(parts.related) and "related_truncated" not in dropped
    if n_related < len(parts.related):
        dropped["related"] = len(parts.related) - n_related

    # 3. History, newest first; then its summary, which stands for older messages still.
    kept_rev: list[ChatMessage] = []
    for msg in reversed(parts.history) if complete else []:
        need = _cost(msg.content)
        if need > left:
            break
        kept_rev.append(msg)
        left -= need
    if len(kept_rev) < len(parts.history):
        dropped["history"] = len(parts.history) - len(kept_rev)
        complete = False
    summary_msg: ChatMessage | None = None
    if parts.history_summary:
        note = f"{_SUMMARY_HEADER}\n{parts.history_summary}"
        need = _cost(note)
        if complete and need <= left:
            summary_msg = ChatMessage(role="system", content=note, kind="summary")
            left -= need
        else:
            dropped["history_summary"] = 1
            complete = False

    # 4. Project summary.
    project = ""
    if parts.project_summary:
        project = f"{_PROJECT_HEADER}\n{parts.project_summary}"
        need = _joined_cost(project) + (0 if opened else opening)
        if not complete or need > left:
            project = ""
            dropped["project_summary"] = 1

    system_pieces = [p for p in (system, project) if p]
    if related_sections:
        system_pieces.append(_RELATED_HEADER)
        system_pieces.extend(related_sections)
    messages: list[ChatMessage] = []
    total = REPLY_OVERHEAD + task_cost
    if system_pieces:
        messages.append(ChatMessage(role="system", content=_SEP.join(system_pieces)))
        if related_sections and joinable(system_pieces, _SEP):
            # the sections' counts are known already: only the pieces before them are looked
            # up, and the last section's count alone, kept for that
            head = system_pieces[: -len(related_sections)]
            joined = sum(_joined_cost(p) for p in head) + sum(related_costs[:-1])
            remember_count(related_sections[-1], last_own)
            total += joined + count_tokens(related_sections[-1]) + MESSAGE_OVERHEAD
        else:
            total += count_joined(system_pieces, _SEP) + MESSAGE_OVERHEAD
    if summary_msg is not None:
        messages.append(summary_msg)
        total += _cost(summary_msg.content)
    messages.extend(reversed(kept_rev))
    total += sum(_cost(m.content) for m in kept_rev)
    messages.append(ChatMessage(role="user", content=task, kind=parts.kind))
    return messages, total


def build_messages(parts: PromptParts, budget: int, reserve_output: int = 0) -> BuiltPrompt:
    """Messages for ``parts`` within ``budget - reserve_output`` tokens; see the module doc.

    Raises BudgetError when ``budget - reserve_output`` is below :data:`MIN_BUDGET`.
    """
    available = budget - reserve_output
    if available < MIN_BUDGET:
        raise BudgetError(
            f"prompt budget too small: {budget} tokens minus {reserve_output} reserved for the "
            f"reply leaves {available}, at least {MIN_BUDGET} are needed"
        )
    room = available - REPLY_OVERHEAD
    dropped: dict[str, int] = {}
    system, task = _core(parts, room, dropped)
    complete = not dropped  # the core is whole: optional parts may follow
    # The room is filled by counts of pieces with the separator after them; the exact total
    # may differ by a token at the system message's last piece, so it is checked, and the room
    # for optional parts shrinks until it fits. Without any optional part the messages are
    # exactly the core, which fits by construction; should a counter disagree with itself,
    # the core is rebuilt smaller.
    slack = 0
    for _ in range(64):
        opt_dropped: dict[str, int] = {}
        messages, total = _assemble(parts, system, task, room - slack, complete, opt_dropped)
        if total <= available:
            dropped.update(opt_dropped)
            return BuiltPrompt(messages=messages, tokens=total, dropped=dropped)
        core_only = len(messages) == (2 if system else 1)
        if core_only:
            room -= total - available
            dropped = {}
            system, task = _core(parts, room, dropped)
            complete = False
        else:
            slack += total - available
    raise RuntimeError("could not fit the prompt into its budget")  # not reached in practice
