"""Item 7, backend faults through the protocol. Each row breaks the backend one way and drives
three features: `ctx.explain` (streamed), `ctx.fixError` (plain, applies an edit) and an
inline completion (plain, may be empty). Each fault must give one clear message, in bounded
time, without a crash, without partial garbage (no edit applied, no completion item, no answer
file) and without a history entry claiming success."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.conftest import command, open_doc
from tests.fake_openai import CutStream, Empty, FakeOpenAI, Garbage, Hang, Status

CODE = "def mean(values):\n    total = sum(values)\n    return total / len(valuez)\n"
INTERNAL = "internal error"
#: Most seconds any one call may take (timeouts are set to 1 s; retries wait 0 s).
BOUND_S = 8.0


@dataclass(frozen=True)
class Fault:
    said: tuple[str, ...]  # words of the one message (lower case)
    behaviour: Any = None  # for the fake backend
    base_url: str | None = None  # instead of the fake backend
    settings: dict[str, Any] = field(default_factory=dict)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NO_RETRY_WAIT = {"Retry-After": "0"}
MALFORMED = ("malformed answer",)
HALF_JSON = Garbage('{"choices": [{"mess', "application/json")
CUT = CutStream(3, text="one two three four five six")
FAULTS = {
    "connection-refused": Fault(("cannot reach", "127.0.0.1"), base_url="http://127.0.0.1:{port}/v1"),
    "dns-failure": Fault(("cannot reach", ".invalid"), base_url="http://ctx-lsp-test.invalid/v1"),
    "timeout": Fault(("no answer", "within 1 s"), Hang(30), settings={"timeoutS": 1}),
    "401": Fault(("rejected the api key", "401"), Status(401, headers=NO_RETRY_WAIT)),
    "403": Fault(("refused access", "403"), Status(403, headers=NO_RETRY_WAIT)),
    "404-model": Fault(("not found", "404"), Status(404, headers=NO_RETRY_WAIT)),
    "429": Fault(("rate limited", "429"), Status(429, headers=NO_RETRY_WAIT)),
    "500": Fault(("500",), Status(500, headers=NO_RETRY_WAIT)),
    "503": Fault(("503",), Status(503, headers=NO_RETRY_WAIT)),
    "malformed-json": Fault(MALFORMED, HALF_JSON),
    "html-instead-of-json": Fault(MALFORMED, Garbage()),
    "stream-cut-halfway": Fault(MALFORMED, CUT),
    "empty-answer": Fault(("empty answer",), Empty()),
    "null-content": Fault(("empty answer",), Empty(null=True)),
}  # fmt: skip


def _range(l1: int, c1: int, l2: int, c2: int) -> dict:
    return {"start": {"line": l1, "character": c1}, "end": {"line": l2, "character": c2}}


async def _timed(coro) -> tuple[float, Any, BaseException | None]:
    t0 = time.monotonic()
    try:
        result, error = await coro, None
    except Exception as exc:
        result, error = None, exc
    return time.monotonic() - t0, result, error


@pytest.mark.parametrize(
    "name",
    list(FAULTS),
)
async def test_backend_fault(lsp, repo: Path, fake_openai: FakeOpenAI, name: str):
    fault = FAULTS[name]
    (repo / "calc.py").write_text(CODE)
    env = fake_openai.env()
    if fault.base_url:
        env["OPENAI_BASE_URL"] = fault.base_url.format(port=_closed_port())
    else:
        fake_openai.fail_all(fault.behaviour)
    settings = {"model": "test-model", "debounceMs": 0, "timeoutS": 1, **fault.settings}
    client = await lsp(repo, env=env, init_options=settings)
    uri = open_doc(client, repo / "calc.py")
    diagnostic = {
        "range": _range(2, 4, 2, 30),
        "message": "undefined name 'valuez'",
        "severity": 1,
    }

    explain = await _timed(
        command(client, "ctx.explain", {"uri": uri, "range": _range(0, 0, 3, 0)})
    )
    fix = await _timed(command(client, "ctx.fixError", {"uri": uri, "diagnostic": diagnostic}))
    inline = await _timed(
        client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=2, character=24),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
    )
    await asyncio.sleep(0.5)  # completions are recorded off the request path
    ctx = await command(client, "ctx.showContext")  # also: the server is still up
    said = [m.message for m in client.messages]
    slowest = max(explain[0], fix[0], inline[0])
    print(
        f"\n[backend fault: {name}] explain {explain[0]:.2f} s: {explain[2]}; fix {fix[0]:.2f} s; "
        f"inline {inline[0]:.2f} s; backend requests {len(fake_openai.chat_requests())}; "
        f"said={said}"
    )

    assert explain[2] is not None and fix[2] is not None, "the commands report the failure"
    for word in fault.said:
        assert word in str(explain[2]).lower(), (word, str(explain[2]))
    assert inline[2] is None and not inline[1].items, "no completion made of garbage"
    clear = [m for m in said if all(word in m.lower() for word in fault.said)]
    assert len(clear) == 1, said
    # anything else said is the "internal error" of test_expected_failures_are_not_internal_errors
    assert all(m in clear or INTERNAL in m for m in said), said
    assert not [m for m in said if "sk-test-fake" in m]
    assert slowest < BOUND_S, f"took {slowest:.1f} s"
    assert client.applied_edits == [], "no edit applied"
    assert "History: 0 messages" in ctx["text"], "no history entry claims success"
    assert not list((repo / ".ctx").rglob("answers/*.md")), "no answer file"


async def test_expected_failures_are_not_internal_errors(lsp, repo: Path, fake_openai):
    fake_openai.fail_all(Status(500, headers=NO_RETRY_WAIT))
    client = await lsp(
        repo, env=fake_openai.env(), init_options={"model": "test-model", "maxRetries": 0}
    )
    uri = open_doc(client, repo / "app.py")
    with pytest.raises(Exception, match="500"):
        await command(client, "ctx.explain", {"uri": uri, "range": _range(0, 0, 1, 0)})
    with pytest.raises(Exception, match="not open"):
        await command(client, "ctx.explain", {"uri": uri + "x", "range": _range(0, 0, 1, 0)})
    said = [m.message for m in client.messages]
    print(f"\n[backend fault: internal error message] said={said}")
    assert [m for m in said if INTERNAL in m] == []
