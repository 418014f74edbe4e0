"""History keeps only a bounded tail in memory; prompts still get the right recent messages and
whole-history views (`messages()`, `len()`, the CLI) read the rest back from the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctx_lsp.config.settings import Settings
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from ctx_lsp.text.messages import ChatMessage
from tests.test_cli import make_ws, run_json

N = 50_000


def traffic(n: int, start: int = 0) -> list[ChatMessage]:
    """Editor traffic: mostly completion exchanges, every fifth exchange an explain."""
    out = []
    for i in range(start, start + n):
        kind = "explain" if (i // 2) % 5 == 0 else "completion"
        role = "user" if i % 2 == 0 else "assistant"
        out.append(ChatMessage(role, f"message {i}", time=1000.0, kind=kind, id=f"m{i}"))
    return out


def mirrored(history: History) -> int:
    """Messages held in memory."""
    return len(history._talk.items) + len(history._completions.items)


def reference_for_prompt(
    messages: list[ChatMessage], covers: dict[str, str], n: int
) -> list[ChatMessage]:
    """`History.for_prompt` over a full list: the latest summary, then the last `n` messages
    of the conversation (not summaries, not completions) after what it covers (after the
    summary itself if that is not found before it)."""
    talk = ("summary", "completion")
    at = max((i for i, m in enumerate(messages) if m.kind == "summary"), default=None)
    if at is None:
        rest = [m for m in messages if m.kind not in talk]
        return rest[-n:] if n > 0 else []
    start = next(
        (i + 1 for i in range(at - 1, -1, -1) if messages[i].id == covers.get(messages[at].id)),
        at + 1,
    )
    rest = [m for m in messages[start:] if m.kind not in talk]
    return [messages[at], *(rest[-n:] if n > 0 else [])]


def test_memory_stays_bounded_while_views_see_everything(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    history = History(store, memory_messages=500)
    sent = traffic(N)
    most = 0
    for k in range(0, N, 1000):
        history.append(*sent[k : k + 1000])
        most = max(most, mirrored(history))
    print(f"\n[history memory] {N} messages appended, at most {most} in memory")
    assert most <= 2 * 500

    talk = [m for m in sent if m.kind != "completion"]
    assert history.for_prompt(10) == talk[-10:]
    assert history.for_prompt(3000) == talk[-3000:]  # more than memory holds: read back
    assert history.recent(5) == sent[-5:] and history.recent(2500) == sent[-2500:]
    assert len(history) == N
    assert history.messages() == sent
    assert mirrored(history) <= 2 * 500, "views read the file, they do not fill memory"

    again = History(store, memory_messages=500)
    assert again.load() == sent and mirrored(again) <= 2 * 500
    assert again.for_prompt(10) == talk[-10:] and len(again) == N
    assert store.take_problems() == []


def test_summary_of_messages_memory_let_go(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    history = History(store, memory_messages=20)
    sent = traffic(300)
    history.append(*sent)
    summary = history.add_summary("so far", "m10")  # m10 is no longer in memory
    later = traffic(300, start=300)
    history.append(*later)
    everything = [*sent, summary, *later]
    covers = {summary.id: "m10"}
    fresh = History(store, memory_messages=20)
    assert fresh.load() == everything
    for h in (history, fresh):
        for n in (0, 5, 50, 1000):
            assert h.for_prompt(n) == reference_for_prompt(everything, covers, n), n
        assert h.messages() == everything
    assert mirrored(history) <= 40


# a script step: a message of one kind, or a summary covering the message `back` steps before;
# written by one of two instances (two processes sharing the file)
STEP = st.tuples(
    st.one_of(
        st.sampled_from(["explain", "completion", "chat"]),
        st.tuples(st.just("summary"), st.integers(min_value=0, max_value=30)),
    ),
    st.booleans(),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    script=st.lists(STEP, max_size=80),
    memory=st.integers(min_value=1, max_value=6),
    n=st.integers(min_value=0, max_value=40),
)
def test_views_match_the_whole_list(
    tmp_path_factory: pytest.TempPathFactory, script: list, memory: int, n: int
) -> None:
    store = CtxStore(tmp_path_factory.mktemp("h"))
    history = History(store, memory_messages=memory)
    other = History(CtxStore(store.root), memory_messages=memory)
    everything: list[ChatMessage] = []
    covers: dict[str, str] = {}
    for i, (step, by_other) in enumerate(script):
        writer = other if by_other else history
        if isinstance(step, tuple):
            back = step[1]
            covered = everything[-1 - back].id if back < len(everything) else "gone"
            s = writer.add_summary(f"summary {i}", covered)
            covers[s.id] = covered
            everything.append(s)
        else:
            m = ChatMessage("user", f"message {i}", kind=step, id=f"m{i}")
            writer.append(m)
            everything.append(m)
    history.refresh()
    fresh = History(store, memory_messages=memory)
    assert fresh.load() == everything
    for h in (history, fresh):
        assert h.for_prompt(n) == reference_for_prompt(everything, covers, n)
        assert h.recent(n) == (everything[-n:] if n > 0 else [])
        assert h.messages() == everything and len(h) == len(everything)
        assert mirrored(h) <= 2 * memory


def test_rotation_reads_back_the_conversation_memory_let_go(tmp_path: Path) -> None:
    store = CtxStore(tmp_path)
    history = History(store, max_bytes=60_000, keep_on_rotate=20, memory_messages=5)
    sent: list[ChatMessage] = []
    i = 0
    while not store.path("history.1.jsonl").exists():
        batch = traffic(10, start=i)
        i += 10
        sent += batch
        history.append(*batch)
    kept = History(store).load()
    talk = [m for m in sent if m.kind != "completion"]
    assert [m for m in kept if m.kind != "completion"] == talk[-20:]
    assert 0 < sum(m.kind == "completion" for m in kept) <= 2  # keep_on_rotate // 10


def test_cli_shows_the_whole_history(repo: Path) -> None:
    ws = make_ws(repo)
    store = CtxStore(ws, ("users", Settings().effective_user()))
    history = History(store)
    sent = traffic(N)
    for k in range(0, N, 5000):
        history.append(*sent[k : k + 5000])
    shown = run_json(ws, "history", "show")
    assert shown["total"] == N and len(shown["messages"]) == N
    assert [m["id"] for m in shown["messages"][:2]] == ["m0", "m1"]
    last = run_json(ws, "history", "show", "--last", "3")
    assert [m["id"] for m in last["messages"]] == [f"m{N - 3}", f"m{N - 2}", f"m{N - 1}"]
