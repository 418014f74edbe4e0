"""Prompts for a base model (no chat template): what the embedded backend sends, and where
the answer ends.

A small base model continues a document far better than it follows instructions: code
completion is the code before the cursor, ended at the end of the current block
(`BlockEnd`); commit messages and explanations are the next entry of a few-shot transcript
(`base_prompt`, files in base_model_shots/); any other task is the chat as a plain
transcript. The prefix window starts on a stable line (`window_prefix`), so that typing at
one place keeps the prompt's beginning and the engine reuses its cached evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ctx_lsp.text.messages import ChatMessage

#: Most tokens of one inline completion on the local backend: ghost text wants the current
#: statement or small block, and on one core every token costs 50-80 ms.
COMPLETION_MAX_TOKENS = 48
#: Characters of code before the cursor given to the model (~600-800 tokens: prompt eval
#: runs at ~100-200 tokens/s on one core, and only the first request at a place pays it all).
PREFIX_CHARS = 2500
#: Characters after the cursor, for models with fill-in-the-middle.
SUFFIX_CHARS = 1500
#: The start of the prefix window moves in steps of this many characters, so that while
#: the user types the prompt keeps its beginning and the engine reuses the cached prefix.
PREFIX_SNAP = 1024
_OPENERS = (":", "{", "(", "[")
_CLOSERS = ("}", ")", "]")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


# --- the prompt of a completion request -------------------------------------------------------


def parse_completion_prompt(messages: Sequence[ChatMessage]) -> tuple[str, str] | None:
    """(prefix, suffix) of a completion request built from the completion template, else None."""
    if not messages or messages[-1].role != "user" or messages[-1].kind != "completion":
        return None
    content = messages[-1].content
    start = content.find("<file>\n")
    if start < 0:
        return None
    start += len("<file>\n")
    cursor = content.find("<CURSOR>", start)
    end = content.rfind("\n</file>")
    if cursor < 0 or end < cursor:
        return None
    return content[start:cursor], content[cursor + len("<CURSOR>") : end]


def window_prefix(prefix: str, limit: int = PREFIX_CHARS, snap: int = PREFIX_SNAP) -> str:
    """The end of `prefix`, at most `limit` chars, starting on a line boundary that only
    moves when the cut point crosses a multiple of `snap` (stable while the user types)."""
    if len(prefix) <= limit:
        return prefix
    cut = -(-(len(prefix) - limit) // snap) * snap
    nl = prefix.find("\n", cut)
    return prefix[nl + 1 :] if 0 <= nl < len(prefix) - 1 else prefix[cut:]


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


class BlockEnd:
    """Where a plain continuation should stop: the end of the statement or block the cursor
    is in (a blank line, a line indented less than the cursor's block, the line that already
    follows the cursor, or a stop string)."""

    def __init__(self, prefix: str, suffix: str, stop: Sequence[str] = ()) -> None:
        lines = prefix.split("\n")
        line = lines[-1]
        if line.strip():
            self.base, self.opener = _indent(line), line.rstrip().endswith(_OPENERS)
        else:
            # a fresh line: the block is the one of the line above (or what was typed)
            above = next((ln for ln in reversed(lines[:-1]) if ln.strip()), "")
            self.opener = above.rstrip().endswith(_OPENERS)
            self.base = _indent(above) if self.opener or not line else len(line.expandtabs(4))
        rest = suffix.split("\n", 1)
        follows = rest[1] if len(rest) > 1 and not rest[0].strip() else ""
        self.next_line = next((ln.strip() for ln in follows.split("\n") if ln.strip()), "")
        self.stop = [s for s in stop if s]

    def cut(self, text: str) -> int | None:
        """Index at which `text` (the continuation so far) should end, or None to go on."""
        ends = [i for s in self.stop if (i := text.find(s)) >= 0]
        m = _BLANK_LINE.search(text)
        if m and text[: m.start()].strip():
            ends.append(m.start())
        pos = text.find("\n") + 1
        while pos > 0:
            nxt = text.find("\n", pos)
            line = text[pos:] if nxt < 0 else text[pos:nxt]
            if line.strip():  # its indentation is known once it has a visible character
                ind = _indent(line)
                closer = line.lstrip().startswith(_CLOSERS)
                if ind < self.base:
                    ends.append(pos - 1)
                    break
                if self.opener and ind <= self.base:
                    if not closer:
                        ends.append(pos - 1)
                    elif nxt >= 0:
                        ends.append(nxt)  # the closing line belongs to the block
                    break
                if len(self.next_line) >= 4 and line.strip() == self.next_line and nxt >= 0:
                    ends.append(pos - 1)
                    break
            pos = nxt + 1 if nxt >= 0 else 0
        return min(ends) if ends else None


#: A line this long (words joined by single spaces) seen twice in one answer means the
#: model has started over: small base models loop until their token limit otherwise.
REPEATED_LINE_CHARS = 16


def repetition_cut(text: str) -> int | None:
    """Where a plain answer should end because it repeats itself: the start of the first
    whole line (outside code fences) that is a copy of an earlier one, or None. Only whole
    lines are looked at, so the cut is never before a line already complete (see
    `Backend.complete_text`'s `until`)."""
    seen: set[str] = set()
    fenced = False
    pos = 0
    while (end := text.find("\n", pos)) >= 0:
        line = " ".join(text[pos:end].split())
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and len(line) >= REPEATED_LINE_CHARS:
            if line in seen:
                return pos
            seen.add(line)
        pos = end + 1
    return None


# --- chat messages for a chat template ---------------------------------------------------------


def chat_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """One system message first, then strictly alternating user/assistant turns ending
    with the user: what strict chat templates (Gemma's raises otherwise) accept."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"] += "\n\n" + m.content
        else:
            turns.append({"role": m.role, "content": m.content})
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": "(earlier in this conversation)"})
    if not turns or turns[-1]["role"] != "user":
        turns.append({"role": "user", "content": "Go on."})
    return ([{"role": "system", "content": system}] if system else []) + turns


#: Where a plain transcript's answer ends: the model starting the next turn.
PLAIN_STOPS = ["\nUser:", "\nAnswer:"]


def plain_prompt(messages: Sequence[ChatMessage]) -> str:
    """A chat as a document for a base model (no chat template) to continue."""
    turns = chat_messages(messages)
    parts = [turns.pop(0)["content"]] if turns[0]["role"] == "system" else []
    last = turns.pop()["content"]
    for t in turns:
        parts.append(f"{'User' if t['role'] == 'user' else 'Assistant'}: {t['content']}")
    parts.append(f"{last}\n\nAnswer:\n")
    return "\n\n".join(parts)


#: Few-shot transcripts for a base model, per task kind (files beside this module): a base
#: model continues a document far better than it follows instructions, so the task becomes
#: the next entry of a document of finished examples, ended by `_SHOT_STOPS`.
_SHOTS = Path(__file__).with_name("base_model_shots")
_SHOT_STOPS = {"commit": ["\n"], "explain": ["\nCode:", "\nExplanation:"]}
_FENCE = re.compile(r"```[\w+-]*\n(.*)\n```", re.DOTALL)
_DIFF_FILE = re.compile(r"^diff --git a/\S+ b/(\S+)", re.MULTILINE)
#: Comment lines a small model writes before the code (a line "# ..." or "// ..."): ghost
#: text that begins with one is dropped to the code after it.
COMMENT_LINE = re.compile(r"[ \t]*(#|//) [^\n]*\n")


def base_prompt(messages: Sequence[ChatMessage]) -> tuple[str, list[str]]:
    """(prompt, stop strings) for a base model: the task's few-shot transcript when there is
    one for its kind (the fenced code or diff of the task is its input), else the chat as a
    plain transcript."""
    task = messages[-1] if messages and messages[-1].role == "user" else None
    shots = _SHOTS / f"{task.kind}.txt" if task is not None else None
    if task is not None and shots is not None and shots.is_file():
        fenced = _FENCE.search(task.content)
        if fenced is not None:
            given = fenced.group(1).strip("\n")
            files = ", ".join(dict.fromkeys(_DIFF_FILE.findall(given))) or "(see the diff)"
            text = shots.read_text("utf-8").replace("{files}", files).replace("{input}", given)
            return text.rstrip("\n"), _SHOT_STOPS.get(task.kind, PLAIN_STOPS)
    return plain_prompt(messages), PLAIN_STOPS
