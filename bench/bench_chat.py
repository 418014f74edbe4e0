"""Chat: time from the question to the first streamed character.

Run: .venv/bin/python bench/bench_chat.py   (about 30 s)

`ctx.chat` over stdio with a client-made work-done token, against the zero-latency test
backend streaming its answer: the time from sending the request to the `$/progress` report
that carries the answer's first characters. Beside it, interleaved in the same run: the
backend's own first-chunk time through the `openai` client (the same streamed request body,
sent from this process with the very call the server makes), i.e. what any client of that
backend waits. The difference is ctx-lsp's own overhead: the command, the conversation and the
prompt, masking the stream, the report. Target: ≤ 50 ms.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from _lsp import CTX_CMD, Sandbox, fake_backend, machine, median, open_doc, pct, server, table
from lsprotocol import types

TURNS = 40
WARMUP = 5
TARGET_MS = 50.0
REPLY = "The function adds its two arguments and returns the sum; nothing else happens."
CODE = "def add(a, b):\n    return a + b\n\n\ndef mean(xs):\n    return sum(xs) / len(xs)\n"


def ms(v: float) -> str:
    return f"{v * 1e3:.2f}"


async def first_chunk(client: Any, body: dict[str, Any]) -> float:
    """Seconds from sending a streamed request to its first chunk with content."""
    from ctx_lsp.backends.openai_compat import _post

    t0 = time.perf_counter()
    stream = await _post(client, "/chat/completions", {**body, "stream": True}, stream=True)
    first = None
    async with stream:
        async for chunk in stream:
            if first is None and any(getattr(c.delta, "content", "") for c in chunk.choices):
                first = time.perf_counter() - t0
    assert first is not None, "the backend streamed no content"
    return first


async def main() -> int:
    import openai

    print(f"machine: {machine()}")
    fake = fake_backend(REPLY).start()
    sb = Sandbox()
    try:
        root = sb.repo("chat", files={"calc.py": CODE})
        uri = (root / "calc.py").as_uri()
        env = sb.env(fake.env())
        opts = {"model": "test-model", "debounceMs": 0, "cache": False, "historyMessages": 4}
        direct = openai.AsyncOpenAI(
            base_url=fake.base_url, api_key=fake.env()["OPENAI_API_KEY"], max_retries=0
        )
        ours: list[float] = []
        theirs: list[float] = []
        async with server(CTX_CMD, env, root, opts) as client:
            open_doc(client, uri, CODE)
            firsts: dict[str, float] = {}

            features = client.protocol.fm._features
            recorded = features[types.PROGRESS]  # pytest-lsp's own: keeps the reports

            def progress(params: types.ProgressParams) -> None:
                value = params.value
                message = value.get("message") if isinstance(value, dict) else None
                if value.get("kind") == "report" and message and params.token not in firsts:
                    firsts[params.token] = time.perf_counter()
                return recorded(params)

            features[types.PROGRESS] = progress

            for i in range(TURNS + WARMUP):
                token = f"bench-{i}"
                client.progress_reports.setdefault(token, [])
                args = {"question": f"What does add do? ({i})", "uri": uri}
                params = types.ExecuteCommandParams(
                    command="ctx.chat", arguments=[args], work_done_token=token
                )
                t0 = time.perf_counter()
                result = await client.workspace_execute_command_async(params)
                assert result["text"] == REPLY, result
                body = fake.chat_requests()[-1].body
                mine = firsts[token] - t0
                base = await first_chunk(direct, body)
                if i >= WARMUP:
                    ours.append(mine)
                    theirs.append(base)
        await direct.close()
    finally:
        fake.stop()
        sb.close()

    overhead = median(ours) - median(theirs)
    print(f"== ctx.chat: question → first streamed character, {TURNS} turns ==")
    table(
        ["path", "median ms", "p90 ms", "min ms"],
        [
            [
                "ctx.chat → first $/progress text",
                ms(median(ours)),
                ms(pct(ours, 90)),
                ms(min(ours)),
            ],
            [
                "backend alone: first chunk (openai client)",
                ms(median(theirs)),
                ms(pct(theirs, 90)),
                ms(min(theirs)),
            ],
        ],
    )
    ok = overhead * 1e3 <= TARGET_MS
    print(f"ctx-lsp's own overhead: {ms(overhead)} ms (target ≤ {TARGET_MS:g} ms)")
    print(f"machine: {machine()}")
    met = "MET" if ok else "NOT MET"
    print(f"summary: first streamed character overhead {ms(overhead)} ms: {met}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
