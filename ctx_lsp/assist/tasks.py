"""The assistant's jobs besides completion: explain, fix, tests, commit message,
history summary and chat. Shared by the server's commands and the CLI."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ctx_lsp.assist.assistant import Answer, Assistant, Request
from ctx_lsp.assist.commit import clean_message, convention_hint, detect_convention, pack_diff
from ctx_lsp.assist.suggestions import strip_fences
from ctx_lsp.assist.testgen import TestPlan
from ctx_lsp.prompting.regions import Region
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.tokens import count_tokens
from ctx_lsp.workspace.git import Diff, GitError

Delta = Callable[[str], None] | None

#: Share of the prompt budget the packed diff may take in a commit prompt.
DIFF_SHARE = 0.6
#: Most bytes of diff read for a commit message (packed under the budget afterwards).
COMMIT_DIFF_BYTES = 8_000_000
#: Share of the budget history may take before older history is summarized.
HISTORY_SHARE = 0.3
#: Messages a summary condenses at most (the history keeps ~1,000 recent ones in memory).
SUMMARIZE_MESSAGES = 200
#: Lines of context shown around the lines a fix replaces.
FIX_CONTEXT_LINES = 30


class TaskError(Exception):
    """A job that cannot run, with a message for the user (no repository, nothing staged…)."""


@dataclass(frozen=True)
class View:
    """What the job sees of the workspace: open and pinned documents, project summary."""

    docs: Sequence[OpenDoc]
    summary: str


def _lines(text: str, start: int, end: int) -> tuple[int, int]:
    return text.count("\n", 0, start) + 1, text.count("\n", 0, end) + 1


async def explain(
    a: Assistant, view: View, doc: OpenDoc, region: Region, on_delta: Delta = None
) -> Answer:
    code = doc.text[region.start : region.end]
    if not code.strip():
        raise TaskError("nothing to explain: the selection is empty")
    first, last = _lines(doc.text, region.start, region.end)
    what = f"{region.kind} {region.name}" if region.name else region.kind
    req = Request(
        kind="explain",
        template="explain",
        values={"language": doc.language_id or "text", "code": code, "selection": code},
        summary=f"Explain {doc.path}:{first}-{last} ({what})\n{code}",
        file=doc.path,
        current=doc,
        cursor=region.start,
        stream=True,
    )
    await maybe_summarize(a)
    return await a.run(req, view.docs, view.summary, on_delta)


async def fix(
    a: Assistant,
    view: View,
    doc: OpenDoc,
    span: tuple[int, int],
    message: str,
    on_delta: Delta = None,
) -> str:
    """Replacement text for the lines `span` (char offsets of whole lines)."""
    start, end = span
    code = doc.text[start:end]
    before = doc.text[:start].splitlines(keepends=True)[-FIX_CONTEXT_LINES:]
    after = doc.text[end:].splitlines(keepends=True)[:FIX_CONTEXT_LINES]
    first, last = _lines(doc.text, start, max(start, end - 1))
    req = Request(
        kind="fix",
        template="fix",
        values={
            "language": doc.language_id or "text",
            "code": code,
            "error_message": message,
            "context": "".join(before) + code + "".join(after),
        },
        summary=f"Fix {doc.path}:{first}-{last}: {message}",
        file=doc.path,
        current=doc,
        cursor=start,
    )
    await maybe_summarize(a)
    answer = await a.run(req, view.docs, view.summary, on_delta)
    fixed = strip_fences(answer.text.strip("\n") + "\n")
    if code.endswith("\n") and not fixed.endswith("\n"):
        fixed += "\n"
    elif not code.endswith("\n"):
        fixed = fixed.rstrip("\n")
    return fixed


async def tests(
    a: Assistant, view: View, doc: OpenDoc, region: Region, plan: TestPlan, on_delta: Delta = None
) -> str:
    code = doc.text[region.start : region.end]
    first, last = _lines(doc.text, region.start, region.end)
    req = Request(
        kind="tests",
        template="tests",
        values={
            "language": doc.language_id or "text",
            "code": code,
            "test_framework": plan.framework,
            "test_path": plan.test_path,
        },
        summary=f"Write {plan.framework} tests for {doc.path}:{first}-{last} in {plan.test_path}",
        file=doc.path,
        current=doc,
        cursor=region.start,
        stream=True,
    )
    answer = await a.run(req, view.docs, view.summary, on_delta)
    return strip_fences(answer.text.strip()).rstrip() + "\n"


async def commit_message(
    a: Assistant, view: View, staged: bool | None = None, on_delta: Delta = None
) -> tuple[str, bool]:
    """(message, whether it describes the staged diff). Never commits."""
    git = a.folder.git
    if not git.branch().has_repo:
        raise TaskError(f"no git repository at {a.folder.root}")
    try:
        cap = COMMIT_DIFF_BYTES
        diff = await (git.diff_auto(cap) if staged is None else git.diff(staged, cap))
        commits = await git.recent_commits(10)
    except GitError as exc:
        raise TaskError(str(exc)) from exc
    if diff.empty:
        raise TaskError("nothing to commit: no staged or unstaged changes")
    diff = without_excluded(diff, a.folder.excluder.reason)
    convention = detect_convention(commits)
    packed = pack_diff(diff, int(a.settings.context_tokens * DIFF_SHARE))
    req = Request(
        kind="commit",
        template="commit",
        values={
            "diff": packed,
            "recent_commits": "\n".join(c.subject for c in commits) or "(no commits yet)",
            "commit_convention": convention_hint(convention, commits),
        },
        summary="Commit message for the {} diff of {} file(s): {}".format(
            "staged" if diff.staged else "working-tree",
            len(diff.files),
            ", ".join(f.path for f in diff.files[:10]),
        ),
        # the diff's files: the fixes and tests of those files inform the message
        files=tuple(f.path for f in diff.files),
    )
    answer = await a.run(req, view.docs, view.summary, on_delta)
    try:
        return clean_message(answer.text, convention), diff.staged
    except ValueError as exc:
        raise TaskError(f"the model gave no usable commit message ({exc})") from exc


_SECTION = re.compile(r"(?m)^diff --git a/(.*?) b/(.*)$")


def without_excluded(diff: Diff, reason: Callable[[str], str | None]) -> Diff:
    """The diff with the changes of excluded files (.env, keys…) replaced by a note: the
    file list still names them, their content never reaches a prompt."""
    parts = _SECTION.split(diff.text)
    out = [parts[0]]
    for i in range(1, len(parts), 3):
        old, new, body = parts[i], parts[i + 1], parts[i + 2]
        why = reason(new) or reason(old)
        out.append(f"diff --git a/{old} b/{new}")
        out.append(f"\n(changes not shown: {why})\n" if why else body)
    return replace(diff, text="".join(out))


async def summarize(a: Assistant, view: View, keep_recent: int = 4) -> str:
    """Condense the history before the last `keep_recent` messages into a summary that
    replaces them in prompts; the full history stays on disk."""
    # the newest part only: older messages were condensed by the previous summary or are too
    # old to matter, and reading a long history back from disk costs a second and tens of MB
    history = a.folder.history.for_prompt(SUMMARIZE_MESSAGES)
    previous = "\n".join(m.content for m in history if m.kind == "summary")
    turns = [m for m in history if m.kind != "summary"]
    older = turns[:-keep_recent] if keep_recent else turns
    if not older:
        raise TaskError("nothing to summarize yet")
    transcript = "\n\n".join(f"{m.role} ({m.kind}): {m.content}" for m in older)
    req = Request(
        kind="summary",
        template="summary",
        values={"history": transcript, "history_summary": previous or "(none)"},
        summary=f"Summarize {len(older)} messages",
        record=False,
    )
    answer = await a.run(req, [], view.summary)
    a.folder.history.add_summary(answer.text.strip(), older[-1].id, model=a.settings.model)
    return answer.text.strip()


async def maybe_summarize(a: Assistant) -> bool:
    """Summarize by itself when the history in a prompt would take more than its share
    of the budget, as a long chat would otherwise push code out of the prompt."""
    recent = a.folder.history.for_prompt(a.settings.history_messages)
    turns = [m for m in recent if m.kind != "summary"]
    used = sum(count_tokens(m.content) for m in recent)
    if len(turns) <= 4 or used <= a.settings.context_tokens * HISTORY_SHARE:
        return False
    await summarize(a, View([], ""))
    return True
