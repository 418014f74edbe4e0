"""Masking cost: each pattern tried only near the literal text it needs, beside scanning the
whole text with every pattern (the same result, checked here on every input).

Run: .venv/bin/python bench/bench_masking.py   (about 20 s)

Inputs: real Python source (the packages installed beside pygls) cut to 20 KB (a prompt),
100 KB (an open document) and 1 MB, plain and with one secret of every kind sprinkled in.
Figures are medians of several runs of `redact._mask` (no memo) in this process.

Then the inputs that once made a pattern backtrack (tests/test_redact.py counts the pattern
attempts on them): each masked at its size and at twice it, the growth beside that of plain
code of the same sizes (about 2× is linear).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _lsp import code_corpus, machine, median, table

from ctx_lsp.text.redact import _mask, _mask_everywhere, redact
from tests.secrets_corpus import Corpus
from tests.test_redact import _ADVERSARIAL

SIZES = [("20 KB", 20_000), ("100 KB", 100_000), ("1 MB", 1_000_000)]


def timed(fn, text: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(text, ())
        times.append(time.perf_counter() - t0)
    return median(times)


def main() -> int:
    print(f"machine: {machine()}")
    source = "".join(code_corpus(12, 100_000))
    secrets = [s.text for s in Corpus(seed=5).one_of_each("py")]
    rows = []
    worst = 0.0
    for label, size in SIZES:
        plain = source[:size]
        step = max(1, len(plain) // (len(secrets) + 1))
        salted = "".join(
            plain[i * step : (i + 1) * step] + "\n" + (secrets[i] if i < len(secrets) else "")
            for i in range(len(secrets) + 1)
        )
        for kind, text in (("code", plain), ("code + secrets", salted)):
            if _mask(text, ()) != _mask_everywhere(text, ()):
                print(f"MISMATCH on {label} {kind}")
                return 1
            runs = 5 if size >= 1_000_000 else 20
            near, full = timed(_mask, text, runs), timed(_mask_everywhere, text, runs)
            worst = max(worst, near / full)
            rows.append(
                [f"{label} {kind}", f"{near * 1e3:.2f}", f"{full * 1e3:.2f}", f"{full / near:.1f}×"]
            )
    table(["text", "near needles ms", "every pattern ms", "speed-up"], rows)
    print(f"\nsame result on every input; slowest ratio {worst:.2f} (lower is better)")
    print()
    rows = []
    for param in _ADVERSARIAL:
        make, n = param.values
        small, big = make(n), make(2 * n)
        t_small, t_big = timed(_mask, small, 3), timed(_mask, big, 3)
        code_small, code_big = (source * 20)[: len(small)], (source * 20)[: len(big)]
        base = timed(_mask, code_big, 3) / timed(_mask, code_small, 3)
        rows.append(
            [param.id, f"{len(small) // 1000} KB", f"{t_small * 1e3:.1f}", f"{t_big * 1e3:.1f}",
             f"{t_big / t_small:.1f}×", f"{base:.1f}×"]
        )  # fmt: skip
    table(["input", "size", "ms", "ms at 2× size", "growth", "code's growth"], rows)
    doc = "value = compute(1, 2)  # padding padding padding\n" * 80_000  # 4 MB, no secret
    assert redact(doc) is doc
    t0 = time.perf_counter()
    for _ in range(1000):
        redact(doc)
    hit = (time.perf_counter() - t0) / 1000
    t0 = time.perf_counter()
    doc.encode()
    one_pass = time.perf_counter() - t0
    print(
        f"\nmemo hit on a 4 MB document: {hit * 1e6:.1f} µs, one pass over it (encode) "
        f"{one_pass * 1e6:.0f} µs: {one_pass / hit:.0f}× a hit"
    )
    print(f"machine at the end: {machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
