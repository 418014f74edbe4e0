"""pack_diff on a synthetic 5 MB diff (many files, realistic hunks) at a 4096-token budget.

Run: .venv/bin/python bench/bench_commit.py
Target: median <= 200 ms, and the packed text within the budget (counted with count_tokens).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctx_lsp.assist.commit import pack_diff
from ctx_lsp.text.tokens import count_tokens, tokenizer_name
from ctx_lsp.workspace.git import Diff, FileStat

TARGET_BYTES = 5_000_000
BUDGET = 4096
RUNS = 7

_WORDS = ("self", "value", "result", "items", "config", "request", "response", "handler")


def _code_line(rng: random.Random) -> str:
    a, b, c = rng.sample(_WORDS, 3)
    indent = " " * (4 * rng.randint(1, 3))
    return rng.choice(
        [
            f"{indent}{a} = {b}.get({c!r}, None)",
            f"{indent}if {a} is not None and {b}:",
            f"{indent}return {a}({b}, {c}=True)",
            f"{indent}for {a} in {b}.{c}():",
            f"{indent}# {a} {b} {c}: keep in sync with the {c} module",
        ]
    )


def _file_diff(rng: random.Random, path: str, hunks: int) -> tuple[str, FileStat]:
    out = [
        f"diff --git a/{path} b/{path}",
        f"index {rng.getrandbits(28):07x}..{rng.getrandbits(28):07x} 100644",
        f"--- a/{path}",
        f"+++ b/{path}",
    ]
    added = deleted = 0
    line_no = 1
    for _ in range(hunks):
        line_no += rng.randint(5, 80)
        ctx = [_code_line(rng) for _ in range(6)]
        minus = [_code_line(rng) for _ in range(rng.randint(0, 8))]
        plus = [_code_line(rng) for _ in range(rng.randint(1, 12))]
        old_n, new_n = 6 + len(minus), 6 + len(plus)
        out.append(f"@@ -{line_no},{old_n} +{line_no},{new_n} @@ def f{line_no}():")
        out += [" " + x for x in ctx[:3]] + ["-" + x for x in minus]
        out += ["+" + x for x in plus] + [" " + x for x in ctx[3:]]
        added, deleted = added + len(plus), deleted + len(minus)
        line_no += new_n
    return "\n".join(out) + "\n", FileStat(path, added, deleted, False)


def make_diff(target: int = TARGET_BYTES, seed: int = 1) -> Diff:
    rng = random.Random(seed)
    parts: list[str] = []
    files: list[FileStat] = []
    size = 0
    i = 0
    while size < target:
        # Mostly small files, some large ones (a long tail like real changes).
        hunks = max(1, int(rng.paretovariate(1.2)))
        text, stat = _file_diff(rng, f"src/pkg{i % 40}/module_{i}.py", min(hunks, 400))
        parts.append(text)
        files.append(stat)
        size += len(text)
        i += 1
    return Diff("".join(parts), files, staged=True, truncated=False)


def main() -> None:
    diff = make_diff()
    print(f"diff: {len(diff.text) / 1e6:.1f} MB, {len(diff.files)} files; {tokenizer_name()}")
    pack_diff(diff, BUDGET)  # warm-up (tokenizer load, regex compile)
    times = []
    packed = ""
    for _ in range(RUNS):
        t0 = time.perf_counter()
        packed = pack_diff(diff, BUDGET)
        times.append((time.perf_counter() - t0) * 1000)
    median = statistics.median(times)
    tokens = count_tokens(packed)
    shown = packed.count("\ndiff --git ") + packed.startswith("diff --git ")
    print(f"pack_diff: median {median:.1f} ms (min {min(times):.1f}, max {max(times):.1f})")
    print(f"packed: {tokens} tokens of a {BUDGET} budget, {shown} file diffs shown")
    ok = median <= 200 and tokens <= BUDGET
    print("OK" if ok else "TARGET MISSED: <= 200 ms and within budget")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
