"""Prompt building within a token budget: fit, priorities, order, window trimming."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ctx_lsp.prompting.prompt import (
    MIN_BUDGET,
    BuiltPrompt,
    PromptParts,
    build_messages,
    count_message_tokens,
    task_renderer,
)
from ctx_lsp.prompting.relevance import Snippet
from ctx_lsp.prompting.templates import TemplateLibrary
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.text.tokens import count_tokens

LIB = TemplateLibrary.builtin()
VALUES = {"file": "app/main.py", "language": "python", "branch": "main"}
SYSTEM = LIB.render("completion", {**VALUES, "prefix": "", "suffix": ""}).system


def lines(tag: str, n: int) -> str:
    return "".join(f"{tag}_{i} = compute({i})\n" for i in range(n))


def snippet(i: int, n_lines: int = 10) -> Snippet:
    return Snippet(f"lib/mod{i}.py", lines(f"def_{i}", n_lines), 20.0 - i, f"defines f{i}")


def history(n: int, size: int = 20) -> list[ChatMessage]:
    return [
        ChatMessage("user" if i % 2 == 0 else "assistant", f"message {i} " + "word " * size)
        for i in range(n)
    ]


def completion_parts(**kw) -> PromptParts:
    base = {
        "system": SYSTEM,
        "cursor_prefix": lines("before", 40),
        "cursor_suffix": lines("after", 20),
        "render_task": task_renderer(LIB, "completion", VALUES),
        "related": [snippet(i) for i in range(4)],
        "history": history(6),
        "history_summary": "We refactored the loader; open question: retries.",
        "project_summary": "Root: /proj, branch main, 120 files, Python 3.11.",
        "kind": "completion",
    }
    base.update(kw)
    return PromptParts(**base)


def check_fits(built: BuiltPrompt, budget: int, reserve: int = 0) -> None:
    assert built.tokens == count_message_tokens(built.messages)
    assert built.tokens <= budget - reserve


def kept_related(built: BuiltPrompt, parts: PromptParts) -> list[int]:
    system = built.messages[0].content if built.messages[0].role == "system" else ""
    return [i for i, s in enumerate(parts.related) if f"### {s.path} ({s.reason})" in system]


def kept_history(built: BuiltPrompt, parts: PromptParts) -> list[int]:
    ids = {m.id for m in built.messages}
    return [i for i, m in enumerate(parts.history) if m.id in ids]


def has_summary(built: BuiltPrompt) -> bool:
    return any(m.kind == "summary" for m in built.messages)


def has_project(built: BuiltPrompt) -> bool:
    return built.messages[0].role == "system" and "Project context:" in built.messages[0].content


# ----------------------------------------------------------------------------- layout


def test_everything_fits_in_order() -> None:
    parts = completion_parts()
    built = build_messages(parts, budget=100_000, reserve_output=256)
    check_fits(built, 100_000, 256)
    assert built.dropped == {}
    roles = [m.role for m in built.messages]
    assert roles == ["system", "system"] + [m.role for m in parts.history] + ["user"]
    system = built.messages[0].content
    assert system.startswith(SYSTEM)
    project_at = system.index("Project context:\nRoot: /proj")
    related_at = [system.index(f"### lib/mod{i}.py (defines f{i})\n```python\n") for i in range(4)]
    assert project_at < related_at[0] and related_at == sorted(related_at)
    assert built.messages[1].kind == "summary" and "open question" in built.messages[1].content
    assert [m.id for m in built.messages[2:-1]] == [m.id for m in parts.history]
    task = built.messages[-1]
    assert task.kind == "completion"
    assert parts.cursor_prefix + "<CURSOR>" + parts.cursor_suffix in task.content


def test_fixed_task_and_no_system() -> None:
    parts = PromptParts(system="", task="What does this do?", project_summary="Root: /x")
    built = build_messages(parts, budget=1000)
    check_fits(built, 1000)
    assert [m.role for m in built.messages] == ["system", "user"]
    assert built.messages[0].content == "Project context:\nRoot: /x"
    assert built.messages[1].content == "What does this do?"


def test_cursor_fields_ignored_without_renderer() -> None:
    parts = PromptParts(system="s", task="the task", cursor_prefix="x" * 10_000)
    built = build_messages(parts, budget=200)
    assert built.messages[-1].content == "the task"
    assert built.dropped == {}


def test_budget_too_small() -> None:
    with pytest.raises(ValueError, match="budget too small"):
        build_messages(completion_parts(), budget=300, reserve_output=300 - MIN_BUDGET + 1)


# ----------------------------------------------------------------------------- trimming


def test_cursor_window_trimmed_at_its_far_ends() -> None:
    parts = completion_parts(
        cursor_prefix=lines("before", 400), cursor_suffix=lines("after", 400), related=[]
    )
    built = build_messages(parts, budget=1500)
    check_fits(built, 1500)
    task = built.messages[-1].content
    body = task.split("<file>\n", 1)[1].split("\n</file>", 1)[0]
    prefix, suffix = body.split("<CURSOR>")
    assert prefix and suffix
    assert parts.cursor_prefix.endswith(prefix) and prefix.startswith("before_")  # whole lines
    assert parts.cursor_suffix.startswith(suffix) and suffix.endswith(")")
    assert len(prefix) > len(suffix)  # the prefix gets the larger share
    assert built.dropped["cursor_prefix"] == len(parts.cursor_prefix) - len(prefix)
    assert built.dropped["cursor_suffix"] == len(parts.cursor_suffix) - len(suffix)
    # Nothing optional once the window itself had to be trimmed.
    assert kept_related(built, parts) == [] and kept_history(built, parts) == []
    assert not has_summary(built) and not has_project(built)


def test_short_suffix_leaves_room_to_prefix() -> None:
    parts = completion_parts(cursor_prefix=lines("before", 400), cursor_suffix="\n", related=[])
    built = build_messages(parts, budget=1000)
    check_fits(built, 1000)
    assert "<CURSOR>\n\n</file>" in built.messages[-1].content
    assert "cursor_suffix" not in built.dropped


def test_related_dropped_before_cursor_window() -> None:
    parts = completion_parts(related=[snippet(i, 30) for i in range(6)])
    full_window = build_messages(PromptParts(**{**parts.__dict__, "related": []}), 100_000)
    budget = full_window.tokens - count_message_tokens(full_window.messages[1:-1]) + 400
    built = build_messages(parts, budget)
    check_fits(built, budget)
    assert "cursor_prefix" not in built.dropped and "cursor_suffix" not in built.dropped
    kept = kept_related(built, parts)
    assert kept == list(range(len(kept))) and len(kept) < 6  # a prefix of the ranking
    assert built.dropped["related"] == 6 - len(kept)
    assert kept_history(built, parts) == [] and not has_project(built)


def test_partial_snippet() -> None:
    parts = completion_parts(related=[snippet(0, 300)], history=[], project_summary="")
    base = build_messages(PromptParts(**{**parts.__dict__, "related": []}), 100_000).tokens
    built = build_messages(parts, base + 300)
    check_fits(built, base + 300)
    assert built.dropped == {"related_truncated": 1, "history_summary": 1}
    assert kept_related(built, parts) == [0]
    assert built.messages[0].content.rstrip("`").rstrip().endswith("…")
    # whole lines of the snippet, filling the room but for less than a line and the shell
    body = built.messages[0].content.split("```python\n", 1)[1].rsplit("\n…", 1)[0]
    assert parts.related[0].text.startswith(body + "\n")
    assert count_tokens(body) >= 300 - 30


def test_history_drops_oldest_first_summary_before_messages() -> None:
    parts = completion_parts(related=[], history=history(10, size=30))
    no_history = build_messages(
        PromptParts(**{**parts.__dict__, "history": [], "history_summary": ""}), 100_000
    )
    per_message = count_tokens(parts.history[0].content) + 4
    budget = no_history.tokens + 4 * per_message + 10
    built = build_messages(parts, budget)
    check_fits(built, budget)
    kept = kept_history(built, parts)
    assert kept == list(range(10 - len(kept), 10)) and 0 < len(kept) < 10
    assert built.dropped["history"] == 10 - len(kept)
    assert built.dropped["history_summary"] == 1 and not has_summary(built)
    assert built.dropped["project_summary"] == 1 and not has_project(built)


def test_project_summary_is_dropped_first() -> None:
    parts = completion_parts(project_summary="Root: /proj. " + "file.py " * 150)
    full = build_messages(parts, 100_000)
    budget = full.tokens - 50  # pieces are budgeted a little generously: leave some slack
    built = build_messages(parts, budget)
    check_fits(built, budget)
    assert built.dropped == {"project_summary": 1}
    assert has_summary(built) and len(kept_history(built, parts)) == len(parts.history)


def test_huge_system_and_fixed_task_are_cut() -> None:
    parts = PromptParts(system="rules " * 3000, task="head " + "body " * 5000 + " tail")
    built = build_messages(parts, budget=400)
    check_fits(built, 400)
    task = built.messages[-1].content
    assert task.startswith("head ") and task.endswith(" tail") and "…" in task
    assert built.dropped["system"] > 0 and built.dropped["task"] > 0


# ----------------------------------------------------------------------------- properties


@st.composite
def random_parts(draw: st.DrawFn) -> PromptParts:
    # Texts of any size up to ~20 KB, from a short random seed (fast to generate).
    text = st.builds(
        lambda seed, n: (seed * (n // len(seed) + 1))[:n],
        st.text(alphabet=st.sampled_from(list("abcdefghij   _(){}:=.\n\téü日🚀")), min_size=1),
        st.integers(0, 20_000) | st.integers(0, 300),
    )
    n_related = draw(st.integers(0, 6))
    n_history = draw(st.integers(0, 8))
    use_window = draw(st.booleans())
    return PromptParts(
        system=draw(text),
        task="" if use_window else draw(text),
        cursor_prefix=draw(text) if use_window else "",
        cursor_suffix=draw(text) if use_window else "",
        render_task=task_renderer(LIB, "completion", VALUES) if use_window else None,
        related=[
            Snippet(f"p{i}.py", draw(text), 10.0 - i, f"defines f{i}") for i in range(n_related)
        ],
        history=[
            ChatMessage(draw(st.sampled_from(["user", "assistant"])), draw(text))
            for _ in range(n_history)
        ],
        history_summary=draw(text),
        project_summary=draw(text),
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=random_parts(),
    budget=st.integers(MIN_BUDGET, 6000),
    reserve=st.integers(0, 2000),
)
def test_budget_never_exceeded_and_priorities_hold(
    parts: PromptParts, budget: int, reserve: int
) -> None:
    budget += reserve
    built = build_messages(parts, budget, reserve)
    check_fits(built, budget, reserve)
    assert built.messages[-1].role == "user"
    dropped = built.dropped
    for key in dropped:
        event(f"dropped {key}")
    related = kept_related(built, parts)
    hist = kept_history(built, parts)
    # Related: a prefix of the ranking. History: the newest messages.
    assert related == list(range(len(related)))
    assert hist == list(range(len(parts.history) - len(hist), len(parts.history)))
    window_cut = any(k in dropped for k in ("cursor_prefix", "cursor_suffix", "system", "task"))
    if window_cut:
        assert not related and not hist and not has_summary(built) and not has_project(built)
    if "related" in dropped or "related_truncated" in dropped:
        assert not hist and not has_summary(built) and not has_project(built)
    if "history" in dropped:
        assert not has_summary(built) and not has_project(built)
    if "history_summary" in dropped:
        assert not has_project(built)
    if has_project(built):
        assert set(dropped) == set()


def test_fits_when_the_last_piece_costs_more_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The room is filled by counts of pieces with the separator after them; the system
    message's last piece stands without one. A counter for which that costs more (here: 5
    tokens for a text that does not end in a line break) still gets a prompt that fits, and the
    count reported is the counter's for the final messages."""
    import ctx_lsp.prompting.prompt as prompt_module
    import ctx_lsp.text.tokens as tokens_module

    real = tokens_module.count_tokens

    def lumpy(text: str, by_lines: bool = False) -> int:
        return real(text, by_lines=by_lines) + (5 if text and not text.endswith("\n") else 0)

    monkeypatch.setattr(prompt_module, "count_tokens", lumpy)
    monkeypatch.setattr(tokens_module, "count_tokens", lumpy)
    parts = completion_parts(related=[snippet(i, 5) for i in range(8)])
    for budget in range(200, 2000, 37):
        built = build_messages(parts, budget)
        total = 3 + sum(lumpy(m.content) + 4 for m in built.messages)
        assert built.tokens == total <= budget


def test_huge_system_leaves_half_the_room_to_the_window() -> None:
    parts = completion_parts(system="rules " * 3000, cursor_prefix=lines("before", 400))
    built = build_messages(parts, budget=1000)
    check_fits(built, 1000)
    assert built.dropped["system"] > 0
    task = built.messages[-1].content
    assert count_tokens(task) >= 400 and "before_399 = compute(399)\n<CURSOR>" in task
