"""Which part of the history each task's prompt carries.

Chat turns form the conversation: every prompt carries them. The other tasks' exchanges
(explain, fix, tests, commit, completions) are all kept (history, summaries) but enter a prompt
only where they help it: an exchange must concern a file the prompt is about, and its kind must
inform the prompt's task.
So a fix sees the explanation of the same file, a commit message never sees an explanation
(of any file), and completions never see another task's exchange, so one bad answer does not
feed every next prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from ctx_lsp.text.messages import ChatMessage

#: For each task, the kinds of other tasks' exchanges that inform it (about one of its files).
INFORMS: dict[str, frozenset[str]] = {
    "chat": frozenset({"explain", "fix", "tests", "commit"}),
    "explain": frozenset({"explain", "fix", "commit"}),
    "fix": frozenset({"explain", "fix"}),
    "tests": frozenset({"explain", "tests"}),
    "commit": frozenset({"fix", "tests"}),
    "completion": frozenset(),
}
#: Tasks whose prompts carry the history summary (it condenses every kind of exchange).
TAKES_SUMMARY = frozenset({"chat", "explain", "fix", "tests", "commit"})


def about(m: ChatMessage) -> set[str]:
    """The workspace files an exchange was about."""
    return {f for f in (m.file, *m.files) if f}


def keeper(kind: str, files: Collection[str]) -> Callable[[ChatMessage], bool] | None:
    """Whether a history message goes into the prompt of a `kind` task about `files`; None
    (every message of the conversation) for kinds without a rule, as a plugin's own."""
    informs = INFORMS.get(kind)
    if informs is None:
        return None
    ours = set(files)

    def keep(m: ChatMessage) -> bool:
        return m.kind == "chat" or (m.kind in informs and not ours.isdisjoint(about(m)))

    return keep


def takes_summary(kind: str) -> bool:
    return kind in TAKES_SUMMARY or kind not in INFORMS
