"""The embedded local backend (llama.cpp's server engine, Gemma 3 270M Q4_K_M) through the protocol.

Run: .venv/bin/python bench/bench_local.py [--model PATH] [-n N]   (about 2-3 minutes on 2 cores)
Needs the `local` extra (pip install -e '.[local]').

Set-up: a temp git repo with small Python files; servers are `python -m ctx_lsp` processes
with no API key (so `auto` selects the local backend) in a private HOME.

1. Time to first completion after start: process start → initialize → didOpen → the first
   `textDocument/inlineCompletion` answered with text. Model load is included. Two cases:
   the very first start on a machine (the model's chunks are joined into the user cache
   first) and a later start (the model file exists; the usual case).
2. 40-token completions (maxTokens 40, cache off, debounce 0): median and p90 round trip
   over N requests at different places, beside the same requests through the
   OpenAI-compatible test server (tests/fake_openai.py, fixed reply, no latency): that is
   the server's own share, the rest is the model. Tokens the model wrote per answer are
   counted in-process (the same prompts through LocalBackend.complete_raw), with the pure
   model speed (a fixed 40-token continuation) and the prompt cache (a long prefix typed
   on by one character, beside one of the same length that is not cached).
3. Typing burst: 10 keystrokes 30 ms apart, each with an inline completion request (the
   default debounce); time from the last keystroke to its answer, beside one request alone.
   Stale requests are dropped before they reach the model, so this stays near (2).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from _lsp import (
    CTX_CMD,
    Sandbox,
    fake_backend,
    inline_params,
    insert,
    median,
    open_doc,
    pct,
    server,
    server_log,
    table,
)

SNIPPETS = {
    "fib.py": 'def fibonacci(n):\n    """Return the n-th Fibonacci number, recursively."""\n',
    "mean.py": 'def mean(values):\n    """The arithmetic mean of a list of numbers."""\n',
    "words.py": 'def count_words(text):\n    """How often each word occurs in text."""\n',
    "stack.py": "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, item):\n",
    "files.py": 'import json\n\n\ndef load_config(path):\n    """Read a JSON file."""\n',
    "primes.py": 'def is_prime(n):\n    """True when n is a prime number."""\n',
    "reverse.py": 'def reverse_words(s):\n    """The words of s in reverse order."""\n',
    "maxk.py": 'def largest(values, k):\n    """The k largest values, biggest first."""\n',
}
REPLY_40 = "    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)"


def ms(v: float) -> str:
    return f"{v * 1e3:.0f}"


def end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines) - 1, len(lines[-1])


async def first_completion(sb: Sandbox, root: Path, opts: dict) -> tuple[float, float, str]:
    """Seconds from process start to initialize, and to the first answered completion."""
    t0 = time.perf_counter()
    async with server(CTX_CMD, sb.env(), root, {"debounceMs": 0, "cache": False, **opts}) as c:
        t_init = time.perf_counter() - t0
        name, text = "fib.py", SNIPPETS["fib.py"]
        uri = (root / name).as_uri()
        open_doc(c, uri, text)
        result = await c.text_document_inline_completion_async(
            inline_params(uri, *end_position(text))
        )
        total = time.perf_counter() - t0
        got = result.items[0].insert_text if result.items else ""
        if not got:
            print("WARNING: empty first completion; server log:\n" + "\n".join(server_log(c)))
    return t_init, total, got


async def latencies(sb: Sandbox, root: Path, env: dict, opts: dict, n: int) -> list[float]:
    out: list[float] = []
    async with server(CTX_CMD, env, root, opts) as c:
        uris = []
        for name, text in SNIPPETS.items():
            uri = (root / name).as_uri()
            open_doc(c, uri, text)
            uris.append((uri, text))
        # warm-up (model load on the local backend), not counted
        await c.text_document_inline_completion_async(inline_params(uris[0][0], 0, 0))
        for i in range(n):
            uri, text = uris[i % len(uris)]
            line, char = end_position(text)
            if i >= len(uris):  # later rounds: another spot (end of the first line)
                line, char = 0, len(text.split("\n")[0])
            t0 = time.perf_counter()
            await c.text_document_inline_completion_async(inline_params(uri, line, char))
            out.append(time.perf_counter() - t0)
    return out


async def burst(sb: Sandbox, root: Path, opts: dict) -> tuple[float, float, int, int]:
    """(alone, after a burst, stale answered empty, completions that reached the model):
    seconds for the answer to the last request of the burst, and to the same request
    sent again alone (same text, so the same prompt and answer length)."""
    text = SNIPPETS["mean.py"]
    uri = (root / "mean.py").as_uri()
    cmd = [*CTX_CMD, "-v"]  # INFO log: one "local completion:" line per model call
    async with server(cmd, sb.env(), root, {"cache": False, **opts}) as c:
        open_doc(c, uri, text)
        line, char = end_position(text)
        await c.text_document_inline_completion_async(inline_params(uri, line, char))  # load
        before = _model_calls(c)
        tasks = []
        typed = "    total "
        for i, ch in enumerate(typed):
            insert(c, uri, 2 + i, line, char + i, ch)
            req = inline_params(uri, line, char + i + 1)
            tasks.append(asyncio.ensure_future(c.text_document_inline_completion_async(req)))
            t_last = time.perf_counter()
            await asyncio.sleep(0.030)
        results = await asyncio.gather(*tasks)
        after = time.perf_counter() - t_last
        await asyncio.sleep(0.2)  # the log line of the last call
        calls = _model_calls(c) - before
        empty = sum(1 for r in results[:-1] if not r.items)
        t0 = time.perf_counter()
        await c.text_document_inline_completion_async(inline_params(uri, line, char + len(typed)))
        alone = time.perf_counter() - t0
    return alone, after, empty, calls


def _model_calls(client) -> int:
    return sum("local completion:" in line for line in server_log(client))


async def in_process(model: str, n: int) -> dict[str, float]:
    """Straight to the engine: load, fixed 40-token continuations, and the prompt cache
    (a long prefix typed on by one character, beside the same length cold)."""
    from ctx_lsp.backends.local import LocalBackend
    from ctx_lsp.backends.openai_compat import BackendConfig

    backend = LocalBackend(BackendConfig(temperature=0.2), model_setting=model)
    t0 = time.perf_counter()
    await backend.ensure_loaded()
    load = time.perf_counter() - t0
    counts, texts = [], list(SNIPPETS.values())
    for i in range(n):
        out = await backend.complete_raw(texts[i % len(texts)], "", max_tokens=40)
        counts.append(out.usage.completion_tokens)
    gen40 = []
    for i in range(5):
        t = time.perf_counter()
        await backend.complete_text(
            texts[i % len(texts)], max_tokens=40, extra={"ignore_eos": True, "cache_prompt": True}
        )
        gen40.append(time.perf_counter() - t)
    long = Path(__file__).read_text()[:6000]  # ~1,500 tokens of code
    t = time.perf_counter()
    cold = await backend.complete_raw(long[::-1], "", max_tokens=4)  # same length, not cached
    cold_s = time.perf_counter() - t
    await backend.complete_raw(long, "", max_tokens=4)
    t = time.perf_counter()
    typed = await backend.complete_raw(long + "x", "", max_tokens=4)
    warm_s = time.perf_counter() - t
    await backend.aclose()
    return {"load": load, "tokens": statistics.median(counts), "gen40": statistics.median(gen40),
            "cold": cold_s, "warm": warm_s, "prompt": cold.usage.prompt_tokens,
            "cached": typed.usage.cached_tokens}  # fmt: skip


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="GGUF file (default: the bundled Gemma 3 270M)")
    parser.add_argument("-n", type=int, default=24, help="completions to time")
    args = parser.parse_args()
    from ctx_lsp.backends.local_model import extra_installed, resolve_model_path

    if not extra_installed():
        print("the 'local' extra is not installed: pip install -e '.[local]'")
        return 2
    model = args.model or str(resolve_model_path(""))  # the real user cache, outside sandbox
    with Sandbox("ctx-bench-local-") as sb:
        root = sb.repo(files=SNIPPETS)

        print("== 1. time to first completion after start (model load included) ==")
        rows = []
        init_s, first_s, text = await first_completion(sb, root, {})
        rows.append(["first start ever (model assembled, then loaded)", ms(init_s), ms(first_s)])
        init_w, first_w, _ = await first_completion(sb, root, {})
        rows.append(["later start (model file cached)", ms(init_w), ms(first_w)])
        table(["case", "initialize ms", "first completion ms"], rows)
        print(f"first completion: {text!r}\n")

        print(f"== 2. 40-token completions: {args.n} requests, cache off, debounce 0 ==")
        opts = {"debounceMs": 0, "cache": False, "maxTokens": 40}
        local = await latencies(sb, root, sb.env(), {**opts, "localModel": model}, args.n)
        fake = fake_backend(REPLY_40)
        with fake:
            remote = await latencies(sb, root, sb.env(fake.env()), {**opts, "model": "m"}, args.n)
        rows = [
            ["local backend (embedded Gemma 3 270M)", ms(median(local)), ms(pct(local, 90)),
             ms(min(local)), ms(max(local))],
            ["OpenAI-compatible test server (no latency)", ms(median(remote)),
             ms(pct(remote, 90)), ms(min(remote)), ms(max(remote))],
        ]  # fmt: skip
        table(["backend", "median ms", "p90 ms", "min ms", "max ms"], rows)
        stats = await in_process(model, args.n)
        print(
            f"in-process: load {stats['load']:.2f} s; the model wrote a median of "
            f"{stats['tokens']:.0f} tokens per completion (stops at the end of the block); "
            f"a fixed 40-token continuation takes {stats['gen40'] * 1e3:.0f} ms (median of 5); "
            f"a {stats['prompt']:.0f}-token prefix: cold {stats['cold'] * 1e3:.0f} ms, typed on "
            f"by one character {stats['warm'] * 1e3:.0f} ms ({stats['cached']:.0f} tokens "
            "from the prompt cache)\n"
        )

        print("== 3. typing burst: 10 keystrokes 30 ms apart, default debounce ==")
        alone, after, empty, calls = await burst(sb, root, {"localModel": model, "maxTokens": 40})
        table(
            ["request", "answer ms"],
            [["last of a burst of 10", ms(after)], ["the same request again, alone", ms(alone)]],
        )
        print(f"stale requests answered empty: {empty} of 9; model calls for the burst: {calls}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
