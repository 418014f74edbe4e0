"""Commit messages: the project's convention, a diff packed for the prompt, the reply cleaned.

Pure functions, no I/O: :mod:`ctx_lsp.assist.tasks` feeds them the output of
:mod:`ctx_lsp.workspace.git`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ctx_lsp.text.tokens import count_tokens, truncate_to_tokens
from ctx_lsp.workspace.git import Commit, Diff, FileStat

_CC = re.compile(
    r"(?:feat|fix|docs|style|refactor|perf|test|build|ci|chore|revert)(?:\([^()\n]*\))?!?: \S",
    re.I,
)
_MERGE = re.compile(r"(?:Merge (?:branch|pull request|remote-tracking|tag)|Merge \S+ into )")


def _subjects(commits: Sequence[Commit]) -> list[str]:
    """Subjects that say something about style: merge commits are made by tools."""
    return [c.subject.strip() for c in commits if c.subject.strip() and not _MERGE.match(c.subject)]


def detect_convention(commits: Sequence[Commit]) -> str:
    """Return "conventional" when at least 2, and at least half, of the recent (non-merge)
    subjects follow Conventional Commits, else "plain"."""
    subjects = _subjects(commits)
    hits = sum(1 for s in subjects if _CC.match(s))
    return "conventional" if hits >= 2 and 2 * hits >= len(subjects) else "plain"


def convention_hint(convention: str, commits: Sequence[Commit]) -> str:
    """The prompt's $commit_convention: the convention, with up to 3 recent examples."""
    subjects = _subjects(commits)
    if convention == "conventional":
        examples = [s for s in subjects if _CC.match(s)][:3]
        text, default = "Conventional Commits (type(scope): subject)", "feat(api): add login"
    else:
        examples = subjects[:3]
        text, default = "plain imperative subjects", "Add login page"
    shown = "; ".join(s if len(s) <= 72 else s[:71] + "…" for s in examples)
    return f"{text}, as in: {shown or default}"


# --------------------------------------------------------------------------------------------
# Packing a diff

_HEAD = "diff --git "
_MAX_CHARS_PER_TOKEN = 8  # sections longer than room * this cannot fit whole: not counted
_MAX_MISSES = 3  # sections are tried smallest first: stop after this many in a row miss
_MIN_PARTIAL = 40  # tokens: less room than this is not worth a partial section


@dataclass
class _Section:
    start: int
    end: int
    hunk: int  # offset of the first "@@" line, or -1 (binary, pure rename, mode change)
    path: str
    entry: str  # the file-list line


def _path_of(raw: str, known: dict[str, FileStat]) -> str:
    raw = raw.rstrip("\t").strip('"')
    if raw in known or raw[1:2] != "/":
        return raw
    return raw[2:]  # "b/", or "w/", "i/"... with diff.mnemonicPrefix


def _header_path(rest: str, known: dict[str, FileStat]) -> str:
    """The path in "diff --git a/P b/P" (a rename is resolved from its "rename to" line)."""
    for prefix in (2, 0):  # "a/P b/P", or "P P" with diff.noprefix
        n2 = len(rest) - 1 - 2 * prefix
        if n2 >= 2 and n2 % 2 == 0 and rest[n2 // 2 + prefix] == " ":
            left, right = rest[prefix : n2 // 2 + prefix], rest[n2 // 2 + 1 + 2 * prefix :]
            if left == right:
                return right
    for i, c in enumerate(rest):
        if c == " " and _path_of(rest[i + 1 :], known) in known:
            return _path_of(rest[i + 1 :], known)
    return rest


def _entry(status: str, path: str, old: str | None, stat: FileStat | None, binary: bool) -> str:
    name = f"{old} -> {path}" if old and old != path else path
    if binary or (stat is not None and stat.binary):
        return f"{status} {name} (binary)"
    return f"{status} {name} +{stat.added if stat else 0} -{stat.deleted if stat else 0}"


def _sections(text: str, known: dict[str, FileStat]) -> list[_Section]:
    starts = [0] if text.startswith(_HEAD) else []
    pos = text.find("\n" + _HEAD)
    while pos >= 0:
        starts.append(pos + 1)
        pos = text.find("\n" + _HEAD, pos + 1)
    if not starts:
        return [_Section(0, len(text), 0, "(diff)", "M (diff)")] if text.strip() else []
    out = []
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        hunk = text.find("\n@@", start, end)
        hunk = hunk + 1 if hunk >= 0 else -1
        lines = text[start : hunk if hunk >= 0 else min(end, start + 4000)].split("\n")
        path, old, status, binary = _header_path(lines[0][len(_HEAD) :], known), None, "M", False
        for line in lines[1:]:
            if line.startswith("new file mode"):
                status = "A"
            elif line.startswith("deleted file mode"):
                status = "D"
            elif line.startswith(("rename from ", "copy from ")):
                status, old = line[0].upper(), line.split(" ", 2)[2]
            elif line.startswith(("rename to ", "copy to ")):
                path = line.split(" ", 2)[2]
            elif line[:4] == ("--- " if status == "D" else "+++ "):
                path = _path_of(line[4:], known)
            elif line.startswith(("Binary files ", "GIT binary patch")):
                binary = True
        stat = known.get(path)
        if stat is None and hunk >= 0:  # numstat was cut short: count the lines ourselves
            stat = FileStat(path, text.count("\n+", hunk, end), text.count("\n-", hunk, end), False)
        out.append(_Section(start, end, hunk, path, _entry(status, path, old, stat, binary)))
    return out


def _render(text: str, sec: _Section, limit: int | None = None) -> str:
    """The section without its "index" line, cut to whole lines within `limit` chars."""
    end = sec.end if limit is None else min(sec.end, sec.start + limit)
    body = text[sec.start : end]
    if end < sec.end:
        body = body[: body.rfind("\n") + 1]
    i = body.find("\nindex ", 0, sec.hunk - sec.start if sec.hunk >= 0 else len(body))
    if i >= 0:
        j = body.find("\n", i + 1)
        body = body[:i] + (body[j:] if j >= 0 else "")
    return body if body.endswith("\n") or not body else body + "\n"


def _capped(items: list[str], cap: int, sep: str) -> str:
    """`items`, each followed by `sep`, while they fit in `cap` tokens; then "… and N more"."""
    out: list[str] = []
    used = 0
    for i, item in enumerate(items):
        cost = count_tokens(item + sep)
        rest = len(items) - i - 1
        reserve = count_tokens(f"… and {rest} more{sep}") if rest else 0
        if used + cost + reserve > cap:
            out.append(f"… and {len(items) - i} more{sep}")
            break
        out.append(item + sep)
        used += cost
    return "".join(out)


def _partial(text: str, sec: _Section, room: int) -> str | None:
    """The first hunks (or lines) of `sec` within `room` tokens, with a marker; None if not
    even one line of the first hunk fits."""
    total = text.count("\n", sec.start, sec.end) + (not text.endswith("\n", sec.start, sec.end))
    total -= text.find("\nindex ", sec.start, sec.hunk) >= 0  # dropped by _render
    marker = f"[… {total} more lines of {sec.path}]\n"
    piece = _render(text, sec, limit=room * _MAX_CHARS_PER_TOKEN)
    first = piece.find("\n@@")  # the newline before the first hunk's "@@" line
    if first < 0:
        return None
    cut = truncate_to_tokens(piece, room - count_tokens(marker))
    last_hunk = cut.rfind("\n@@")
    if last_hunk > first and last_hunk + 1 >= len(cut) // 2:
        stop = last_hunk + 1  # whole hunks only, unless that wastes more than half the room
    else:
        stop = cut.rfind("\n") + 1
    if stop <= piece.find("\n", first + 1) + 1:  # nothing of the first hunk
        return None
    kept = cut[:stop]
    return kept + f"[… {total - kept.count(chr(10))} more lines of {sec.path}]\n"


def pack_diff(diff: Diff, budget_tokens: int) -> str:
    """`diff` within `budget_tokens`: the changed files with their stats first, then whole file
    diffs, smallest first (so that more files are shown), then the first hunks of the next one
    with a "[… N more lines of path]" marker, then the files whose diff was left out."""
    if budget_tokens <= 0 or diff.empty:
        return ""
    text = diff.text
    known = {f.path: f for f in diff.files}
    sections = _sections(text, known)
    listed = {s.path for s in sections}
    entries = [s.entry for s in sections] + [
        _entry("R" if f.old_path else "M", f.path, f.old_path, f, False)
        for f in diff.files
        if f.path not in listed  # numstat saw it, the (cut) diff text did not
    ]
    added, deleted = sum(f.added for f in diff.files), sum(f.deleted for f in diff.files)
    title = f"{len(entries)} file(s) changed, +{added} -{deleted}"
    title += " (diff truncated)" if diff.truncated else ""
    shown = [s for s in sections if s.hunk >= 0]  # binary files, pure renames: list only
    # The notice naming the files left out, at its shortest; the list may take half the budget
    # if that leaves room for some diff, else all of it.
    bare = count_tokens(f"\n[diff not shown for {len(shown)} file(s): … and 9 more]")
    fixed = count_tokens(title + "\n\n") + (bare if shown else 0)
    listing = _capped(entries, budget_tokens - fixed, "\n")
    half = budget_tokens // 2
    if shown and count_tokens(listing) + fixed > half and half - bare >= _MIN_PARTIAL:
        listing = _capped(entries, half - fixed + bare, "\n")
    head = f"{title}\n{listing}\n"
    room = budget_tokens - count_tokens(head)
    reserve = max(bare, min(120, room // 4)) if shown else 0
    room -= reserve

    chosen: list[str] = []
    left: list[_Section] = []
    misses = 0
    for sec in sorted(shown, key=lambda s: s.end - s.start):
        if misses >= _MAX_MISSES or sec.end - sec.start > room * _MAX_CHARS_PER_TOKEN:
            left.append(sec)
            continue
        piece = _render(text, sec)
        cost = count_tokens(piece)
        if cost <= room:
            chosen.append(piece)
            room, misses = room - cost, 0
        else:
            left.append(sec)
            misses += 1
    if len(left) == 1:  # no notice needed if it fits partially
        room, reserve = room + reserve - bare, bare
    if left and room >= _MIN_PARTIAL and (part := _partial(text, left[0], room)) is not None:
        chosen.append(part)
        room -= count_tokens(part)
        left.pop(0)
    notice = ""
    if left:
        prefix = f"{chr(10) if chosen else ''}[diff not shown for {len(left)} file(s): "
        cap = room + reserve - count_tokens(prefix + "]")
        names = [s.path for s in sorted(left, key=lambda s: s.start)]
        listed_names = _capped(names, cap, ", ").removesuffix(", ")
        notice = prefix[:-2] + "]" if listed_names.startswith("…") else f"{prefix}{listed_names}]"
    out = (head + "".join(chosen) + notice).rstrip("\n")
    if count_tokens(out) > budget_tokens:  # a tiny budget, or a tokenizer that is not additive
        out = truncate_to_tokens(out, budget_tokens)
        out = out[: out.rfind("\n")] if "\n" in out else out
    return out


# --------------------------------------------------------------------------------------------
# Cleaning the model's reply

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)
_FENCE_LINE = re.compile(r"^[ \t]*(?:```|~~~).*$\n?", re.M)
_CHATTER_START = re.compile(
    r"^(?:(?:sure|certainly|of course|absolutely|okay|ok|great|alright|got it)\b\s*[!,.:—-]"
    r"|(?:here(?:'s| is| are| you go)|below is|i(?:'d| would)? (?:suggest|propose|recommend)"
    r"|i(?:'ve| have) (?:written|generated|created)|based on|this (?:is|would be) (?:a|the|my)"
    r"|(?:a |the )?(?:suggested|proposed|generated|possible) commit message)\b)",
    re.I,
)
# Chatter after the message: anywhere after the subject, or (weaker) only after a blank line.
_CHATTER_END = re.compile(
    r"^(?:let me know|feel free|i hope|hope this|if you(?:'d| would)? (?:like|want|prefer|need)"
    r"|would you like|do you want|you (?:can|may|might) (?:adjust|modify|tweak|change|edit))\b",
    re.I,
)
_CHATTER_AFTER_BLANK = re.compile(
    r"^(?:\(?note:|this commit message|this message|the (?:above|subject line)|alternatively"
    r"|explanation:|[-*_]{3,}\s*$)",
    re.I,
)
_LABEL = re.compile(
    r"^[#>*_\s]*(?:commit message|commit subject|subject(?: line)?|title|summary|header|body"
    r"|description|details|commit)[*_\s]*:[*_\s]*",
    re.I,
)
_GIT_COMMIT = re.compile(r"^git commit(?: -\w+)* -m\s*([\"'])(.*)\1\s*$", re.S)
_QUOTES = (('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("`", "`"))


def _unquote(s: str) -> str:
    for a, b in _QUOTES:
        if len(s) >= 2 and s.startswith(a) and s.endswith(b) and a not in s[1:-1]:
            return s[1:-1].strip()
    return s


def _strip_markup(line: str) -> str:
    """A subject line without markdown heading marks, list marks, emphasis or quotes."""
    line = re.sub(r"^\s*(?:#{1,6}\s+|[-*+]\s+(?=\S)|\d{1,2}[.)]\s+|>\s*)", "", line).strip()
    for mark in ("**", "__", "*", "_"):
        if len(line) > 2 * len(mark) and line.startswith(mark) and line.endswith(mark):
            line = line[len(mark) : -len(mark)].strip()
    return _unquote(line)


def _cut_subject(subject: str, max_len: int) -> str:
    subject = subject.strip()
    if len(subject) > max_len:
        space = subject.rfind(" ", 0, max_len + 1)
        subject = subject[:space] if space > max_len // 2 else subject[:max_len]
        subject = subject.rstrip(" ,;:-–—(/&")
    return subject.rstrip(" .").rstrip()


def clean_message(text: str, convention: str, max_subject: int = 72) -> str:
    """The model's reply as a commit message: subject, a blank line, the body (if any).

    Removes preambles ("Here is the commit message:"), code fences (keeping the first fenced
    block if there is one), surrounding quotes, trailing chatter ("Let me know if…"), labels
    ("Subject:", "**Body:**") and markdown on the subject, which is cut to `max_subject` chars
    at a word boundary, with no trailing period. Runs of blank lines become one, as
    `git stripspace` does. A subject without a Conventional Commits type is kept as written
    even when `convention` is "conventional". ValueError when nothing is left."""
    del convention  # no rewriting: a missing type is not invented
    text = _THINK.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    blocks = [m.group(2) for m in _FENCE.finditer(text) if m.group(2).strip()]
    text = blocks[0] if blocks else _FENCE_LINE.sub("", text)
    text = _unquote(text.strip())
    if m := _GIT_COMMIT.match(text):
        text = m.group(2)
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and (not lines[0].strip() or _CHATTER_START.match(_strip_markup(lines[0]))):
        first = _strip_markup(lines.pop(0))
        rest = first.split(":", 1)[1].strip() if ":" in first else ""
        if rest and not _CHATTER_START.match(rest):  # "Here is the commit message: fix: x"
            lines.insert(0, rest)
    for i, line in enumerate(lines):  # trailing chatter: from its first line to the end
        plain = _strip_markup(line)
        if i and (
            _CHATTER_END.match(plain)
            or (not lines[i - 1].strip() and _CHATTER_AFTER_BLANK.match(plain))
        ):
            lines = lines[:i]
            break
    out: list[str] = []
    for line in lines:
        label = _LABEL.match(line)
        if label:
            mark = next((m for m in ("**", "__") if m in label.group()), None)
            line = line[label.end() :].rstrip()
            line = line.removesuffix(mark).rstrip() if mark else line
            if not line.strip():
                continue
        if not out and not line.strip():
            continue
        if out and not line.strip() and (not out[-1].strip() or len(out) == 1):
            continue  # runs of blank lines, and blank lines between subject and body
        out.append(line if out else line.strip())
    while out and not out[-1].strip():
        out.pop()
    if not out:
        raise ValueError("empty commit message")
    subject = _cut_subject(_strip_markup(out[0]), max_subject)
    if not subject:
        raise ValueError("empty commit message")
    body = "\n".join(out[1:]).strip("\n")
    return f"{subject}\n\n{body}" if body else subject
