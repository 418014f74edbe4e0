"""Server foundation: start-up time and per-edit cost over stdio, beside a bare pygls server.

Run: .venv/bin/python bench/bench_server.py   (about 1-2 minutes)

1. Start-up: time from process start to the `initialize` response, `python -m ctx_lsp` vs a
   bare pygls `LanguageServer` script started the same way (same interpreter, same client, same
   workspace folder: a temp git repo), runs interleaved, median of RUNS each after one warm-up.
   Target: ctx-lsp ≤ 1.5× the bare server.
2. Typing: N single-character incremental `didChange` notifications sent back to back over
   stdio (20 characters typed at a random spot, then a jump), then one cheap request to sync
   (an inline completion on a document nobody opened); per edit = (elapsed - one sync round
   trip) / N, REPEATS runs with the 5 KB and the 1 MB document taking turns. The bare server
   keeps pygls' stock TextDocument, which re-splits the whole text on every change.
   Target: ctx-lsp's 1 MB cost within 1.3× of its 5 KB cost, judged on the best run of each
   (other processes only ever add time, so the minimum is the steadiest estimate of the cost
   itself on a shared machine); the ratio of medians is printed too.
"""

from __future__ import annotations

import asyncio
import random
import time

from _lsp import (
    CTX_CMD,
    Sandbox,
    code_corpus,
    insert,
    machine,
    median,
    open_doc,
    server,
    start_server,
    stop_server,
    sync,
    table,
    verdict,
)

RUNS = 10
REPEATS = 9
EDITS = 2000
BARE_1MB_EDITS = 150  # pygls' TextDocument is linear in the size: fewer edits fit the time
BURST = 20
SIZES = [("5 KB", 5_000), ("1 MB", 1_000_000)]
STARTUP_TARGET = 1.5
EDIT_TARGET = 1.3


async def startup(sb: Sandbox, root) -> dict[str, list[float]]:
    cmds = {"ctx-lsp": CTX_CMD, "bare pygls": sb.bare_cmd()}
    env = sb.env()
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for i in range(RUNS + 1):
        order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
        for name in order:
            started = await start_server(cmds[name], env, root)
            await stop_server(started.client)
            if i:  # the first round warms the file cache
                times[name].append(started.init_s)
    return times


async def sync_rtt(client, n: int = 30) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await sync(client)
        samples.append(time.perf_counter() - t0)
    return median(samples)


def edit_script(lines: list[str], n: int, rnd: random.Random) -> list[tuple[int, int]]:
    """(line, character) of `n` one-character inserts: jump to a random spot of a non-empty
    line, type BURST characters one after another, jump again (as in bench_documents)."""
    script: list[tuple[int, int]] = []
    while len(script) < n:
        line = rnd.randrange(len(lines) - 1)
        if not lines[line].strip():
            continue
        col = rnd.randrange(len(lines[line]) + 1)
        script += [(line, col + i) for i in range(BURST)]
        lines[line] = lines[line][:col] + "x" * BURST + lines[line][col:]
    return script[:n]


async def typing(client, root, texts: dict[str, str], n_edits: dict[str, int]):
    """{label: (median seconds per edit, sync round trip)}: `n_edits[label]` inserts per run,
    REPEATS runs, the documents taking turns so that noise hits both alike."""
    docs = {}
    for label, text in texts.items():
        uri = (root / f"typing_{label.replace(' ', '')}.py").as_uri()
        open_doc(client, uri, text)
        docs[label] = (uri, text.split("\n"), random.Random(len(text)))
    await sync(client)
    rtt = await sync_rtt(client)
    version = 1
    per_edit: dict[str, list[float]] = {label: [] for label in texts}
    for _ in range(REPEATS):
        for label, (uri, lines, rnd) in docs.items():
            n = n_edits[label]
            script = edit_script(lines, n, rnd)
            t0 = time.perf_counter()
            for line, char in script:
                version += 1
                insert(client, uri, version, line, char, "x")
            await sync(client)
            elapsed = time.perf_counter() - t0
            per_edit[label].append(max(elapsed - rtt, 0.0) / n)
    return {label: (min(v), median(v), rtt) for label, v in per_edit.items()}


async def edits(sb: Sandbox, root) -> dict[tuple[str, str], tuple[float, float, float, int]]:
    cmds = {"ctx-lsp": CTX_CMD, "bare pygls": sb.bare_cmd()}
    corpus = code_corpus(1, 1_000_000)[0]
    texts = {label: corpus[: corpus.rfind("\n", 0, size) + 1] for label, size in SIZES}
    out: dict[tuple[str, str], tuple[float, float, float, int]] = {}
    for name, cmd in cmds.items():
        n_edits = {label: EDITS for label, _ in SIZES}
        if name == "bare pygls":
            n_edits["1 MB"] = BARE_1MB_EDITS
        async with server(cmd, sb.env(), root, {"model": "test-model"}) as client:
            res = await typing(client, root, texts, n_edits)
        for label, (best, med, rtt) in res.items():
            out[(name, label)] = (best, med, rtt, n_edits[label])
    return out


async def run() -> bool:
    with Sandbox() as sb:
        root = sb.repo(files={"app.py": "def add(a, b):\n    return a + b\n"})
        print(f"== start-up: process start → initialize response ({RUNS} runs each) ==")
        times = await startup(sb, root)
        ctx, bare = median(times["ctx-lsp"]), median(times["bare pygls"])
        table(
            ["server", "median ms", "min ms", "max ms"],
            [
                [name, f"{median(t) * 1e3:.1f}", f"{min(t) * 1e3:.1f}", f"{max(t) * 1e3:.1f}"]
                for name, t in times.items()
            ],
        )
        start_ratio = ctx / bare
        start_ok = start_ratio <= STARTUP_TARGET
        print(f"ratio ctx-lsp / bare: {start_ratio:.2f}× (target ≤ {STARTUP_TARGET}×)\n")

        print(f"== typing: single-character didChange over stdio, median of {REPEATS} ==")
        res = await edits(sb, root)
        rows = []
        for (name, label), (best, med, rtt, n) in res.items():
            rows.append(
                [name, label, n, f"{best * 1e6:.1f}", f"{med * 1e6:.1f}", f"{rtt * 1e3:.2f}"]
            )
        table(
            ["server", "document", "edits/run", "µs/edit best", "µs/edit median", "sync RTT ms"],
            rows,
        )
        c5, c1 = res[("ctx-lsp", "5 KB")][0], res[("ctx-lsp", "1 MB")][0]
        b5, b1 = res[("bare pygls", "5 KB")][0], res[("bare pygls", "1 MB")][0]
        m5, m1 = res[("ctx-lsp", "5 KB")][1], res[("ctx-lsp", "1 MB")][1]
        edit_ratio = c1 / c5
        edit_ok = edit_ratio <= EDIT_TARGET
        print(
            f"ctx-lsp 1 MB / 5 KB: {edit_ratio:.2f}× best of {REPEATS} (target ≤ {EDIT_TARGET}×), "
            f"{m1 / m5:.2f}× by medians; "
            f"bare pygls 1 MB / 5 KB: {b1 / b5:.1f}×"
        )
        print(
            f"ctx-lsp vs bare pygls: 5 KB {c5 / b5:.2f}×, 1 MB {c1 / b1:.3f}× "
            f"(bare is {b1 / c1:.0f}× slower per edit at 1 MB)\n"
        )
        print(f"machine at the end: {machine()}")
        print(
            f"summary: start-up {start_ratio:.2f}× bare (≤ {STARTUP_TARGET}×: "
            f"{verdict(start_ok)}); per-edit 1 MB {edit_ratio:.2f}× 5 KB "
            f"(≤ {EDIT_TARGET}×: {verdict(edit_ok)})"
        )
        return start_ok and edit_ok


def main() -> int:
    print(f"machine: {machine()}")
    ok = asyncio.run(run())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
