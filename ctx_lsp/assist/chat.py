"""Chat turns: the question's @mentions and slash command, the files it names, the streamed
answer (masked as it arrives, kept when the user stops it), its code blocks, and the restored
conversation. Shared by the server's `ctx.chat` and the CLI's `ctx-lsp chat`."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ctx_lsp.assist.assistant import Assistant, Request
from ctx_lsp.assist.tasks import FIX_CONTEXT_LINES, TaskError, View, maybe_summarize
from ctx_lsp.assist.testgen import plan_tests
from ctx_lsp.backends.openai_compat import Usage
from ctx_lsp.text.languages import fence_language, language_of
from ctx_lsp.text.maskstream import MaskedStream
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.redact import redact
from ctx_lsp.text.tokens import count_tokens, truncate_to_tokens
from ctx_lsp.workspace.folder import Folder, PathError
from ctx_lsp.workspace.pins import MAX_PINNED_CHARS

#: A question starting with one of these reuses that task's template.
SLASH_COMMANDS = {"/explain": "explain", "/fix": "fix", "/tests": "tests"}
#: `@path` at the start of a word; a trailing punctuation mark is not part of it.
_MENTION = re.compile(r"(?<!\S)@([\w./\-]+)")
_TRAILING = ".,:;!?)'\""
#: Share of the prompt budget that the files of a turn may take together.
FILES_SHARE = 0.5
#: Turns `ctx.chatHistory` returns by default.
HISTORY_TURNS = 50

Delta = Callable[[str], None]


@dataclass(frozen=True)
class Question:
    """A question as typed, taken apart."""

    raw: str
    text: str  # without the slash command
    command: str | None  # template of the slash command
    mentions: tuple[str, ...]  # workspace paths named with @


def parse(question: str) -> Question:
    raw = question.strip()
    head, _, rest = raw.partition(" ") if raw.startswith("/") else ("", "", raw)
    command = SLASH_COMMANDS.get(head.lower()) if head else None
    if head and command is None:  # "/usr/bin is …": a path, not a command
        rest = raw
    mentions = []
    for m in _MENTION.finditer(raw):
        name = m.group(1).rstrip(_TRAILING)
        # a bare word (@property, @alice) is no path: only names with a dot or a slash count
        if ("." in name or "/" in name) and name not in mentions:
            mentions.append(name)
    return Question(raw, rest.strip(), command, tuple(mentions))


def read_files(
    folder: Folder, names: Iterable[str], open_docs: Mapping[str, OpenDoc]
) -> list[OpenDoc]:
    """The named workspace files, unsaved editor text first, masked. Refuses with a message
    naming the file one outside the workspace, missing, or excluded (ignored, secrets, keys).
    Reads the disk: not for the event loop."""
    docs: list[OpenDoc] = []
    for name in dict.fromkeys(names):
        try:
            path = folder.resolve_path(name)
        except PathError as exc:
            raise TaskError(f"@{name}: {exc}") from None
        rel = folder.relpath(path)
        literal = name.replace("\\", "/").lstrip("./") or rel
        for candidate in dict.fromkeys((literal, rel)):
            if (why := folder.excluder.reason(candidate)) is not None:
                raise TaskError(
                    f"@{name} refused: {candidate} is excluded from the context ({why}); "
                    "it never enters a prompt"
                )
        if rel in open_docs:
            docs.append(open_docs[rel])
            continue
        if not path.is_file():
            raise TaskError(f"@{name}: no such file in the workspace ({folder.root})")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")[:MAX_PINNED_CHARS]
            mtime = path.stat().st_mtime
        except OSError as exc:
            raise TaskError(f"@{name}: cannot read {rel} ({exc.strerror or exc})") from None
        docs.append(OpenDoc(path.as_uri(), rel, language_of(rel), redact(text), mtime))
    return docs


def files_block(docs: Sequence[OpenDoc], budget_tokens: int) -> str:
    """The files of a turn as fenced sections, each cut to its share of the budget."""
    if not docs:
        return ""
    share = max(64, budget_tokens // len(docs))
    sections = []
    for d in docs:
        text = d.text
        if count_tokens(text) > share:
            text = truncate_to_tokens(text, share) + "\n…"
        ticks = "```"
        while ticks in text:
            ticks += "`"
        sections.append(f"### {d.path}\n{ticks}{fence_language(d.path)}\n{text.rstrip()}\n{ticks}")
    return "Files the user named:\n\n" + "\n\n".join(sections)


@dataclass
class Turn:
    """One chat turn's input: the question, the editor's document and selection, the files."""

    question: Question
    doc: OpenDoc | None = None
    selection: tuple[int, int] | None = None  # offsets in doc.text
    files: Sequence[OpenDoc] = ()


@dataclass
class Outcome:
    """What a turn produced, filled as it goes: still there when the turn is cancelled."""

    text: str = ""
    history_id: str = ""
    cut: bool = False
    cached: bool = False
    usage: Usage = field(default_factory=Usage)


def request(a: Assistant, turn: Turn) -> Request:
    """The request behind a turn: the chat template, or the slash command's."""
    q, doc = turn.question, turn.doc
    selected = doc.text[slice(*turn.selection)] if doc and turn.selection else ""
    files = list(turn.files)
    if doc is not None and not selected.strip() and all(f.path != doc.path for f in files):
        files.insert(0, doc)  # no selection: the current file is what the question is about
    subject = doc or (files[0] if files else None)
    budget = int(a.settings.context_tokens * FILES_SHARE)
    language = (subject.language_id or language_of(subject.path)) if subject else ""
    values = {"language": language or "text", "selection": selected, "question": q.text}
    note = ""
    template = q.command or "chat"
    if q.command is None:
        values["files"] = files_block(files, budget)
    else:
        if subject is None:
            raise TaskError(f"/{q.command} needs code: select some, or name a file with @path")
        code = selected if selected.strip() else subject.text
        others = [f for f in files if f.path != subject.path]
        values["code"] = code
        note = "\n\n".join(p for p in (q.text, files_block(others, budget)) if p)
        if q.command == "fix":
            values["error_message"] = q.text or "the problem the user asks about"
            values["context"] = _around(subject.text, code, selected, turn.selection)
            note = files_block(others, budget)
        elif q.command == "tests":
            plan = plan_tests(a.folder.root, subject.path, subject.language_id)
            values["test_framework"], values["test_path"] = plan.framework, plan.test_path
    about = [f.path for f in files if subject is None or f.path != subject.path]
    return Request(
        kind="chat",
        template=template,
        values=values,
        summary=q.raw,
        file=subject.path if subject else None,
        files=tuple(about),
        note=note,
        current=doc,
        cursor=turn.selection[0] if doc and turn.selection else (0 if doc else None),
        stream=True,
    )


def _around(text: str, code: str, selected: str, span: tuple[int, int] | None) -> str:
    if not selected.strip() or span is None:
        return code
    before = text[: span[0]].splitlines(keepends=True)[-FIX_CONTEXT_LINES:]
    after = text[span[1] :].splitlines(keepends=True)[:FIX_CONTEXT_LINES]
    return "".join(before) + selected + "".join(after)


async def ask(
    a: Assistant, view: View, turn: Turn, on_text: Delta, outcome: Outcome | None = None
) -> Outcome:
    """One turn. `on_text` gets the answer in masked pieces as it streams; they add up to
    `outcome.text`. When the turn is cancelled, the question and what came of the answer are
    kept in the history, marked as cut, and `outcome` says so; CancelledError goes on."""
    out = outcome if outcome is not None else Outcome()
    req = request(a, turn)
    stream = MaskedStream(a.secrets)

    def emit(piece: str) -> None:
        if piece:
            out.text += piece
            on_text(piece)

    try:
        await maybe_summarize(a)
        answer = await a.run(req, view.docs, view.summary, lambda d: emit(stream.push(d)))
    except asyncio.CancelledError:
        emit(stream.finish())
        out.cut = True
        out.history_id = a.record_cut(req, out.text)
        raise
    emit(stream.finish())
    if not out.text and answer.text:  # an answer that did not stream (a local model's)
        emit(answer.text)
    out.history_id, out.cached, out.usage = answer.history_id, answer.cached, answer.usage
    return out


# -- code blocks -----------------------------------------------------------------------------

_OPEN = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n`]*$")


def code_blocks(text: str, whole_if_none: bool = False) -> list[str]:
    """The fenced code blocks of a Markdown answer, in order (an unclosed last one counts);
    with `whole_if_none`, an answer without a fence is one block (a /fix answer is code)."""
    blocks: list[str] = []
    fence: str | None = None
    lines: list[str] = []
    for line in text.split("\n"):
        if fence is None:
            m = _OPEN.match(line)
            if m:
                fence, lines = m.group(1), []
            continue
        stripped = line.strip()
        if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
            blocks.append("\n".join(lines) + "\n")
            fence = None
        else:
            lines.append(line)
    if fence is not None and lines:
        blocks.append("\n".join(lines) + "\n")
    if not blocks and whole_if_none and text.strip():
        blocks.append(text.strip("\n") + "\n")
    return blocks


# -- the restored conversation --------------------------------------------------------------


@dataclass(frozen=True)
class PastTurn:
    history_id: str
    question: str
    answer: str
    cut: bool
    time: float
    files: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "historyId": self.history_id,
            "question": self.question,
            "answer": self.answer,
            "cut": self.cut,
            "time": self.time,
        }


def past_turns(messages: Sequence[ChatMessage], limit: int = HISTORY_TURNS) -> list[PastTurn]:
    """The chat turns among `messages` (oldest first), the last `limit` of them."""
    turns: list[PastTurn] = []
    for q, ans in itertools.pairwise(messages):
        if (q.role, ans.role, q.kind, ans.kind) == ("user", "assistant", "chat", "chat"):
            files = tuple(f for f in (ans.file, *ans.files) if f)
            turns.append(PastTurn(ans.id, q.content, ans.content, ans.cut, q.time, files))
    return turns[-limit:] if limit > 0 else []


def transcript(turns: Sequence[PastTurn]) -> str:
    """The conversation as Markdown, for editors that show it as text."""
    parts = []
    for t in turns:
        mark = "\n\n*(answer cut short)*" if t.cut else ""
        parts.append(f"## You\n\n{t.question}\n\n## ctx\n\n{t.answer.rstrip()}{mark}")
    return "\n\n".join(parts)


def is_code_answer(question: str) -> bool:
    """A /fix or /tests answer is code, fenced or not."""
    head = question.strip().split(" ", 1)[0].lower()
    return SLASH_COMMANDS.get(head) in ("fix", "tests")
