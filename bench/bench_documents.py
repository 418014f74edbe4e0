"""Per-edit cost of typing into ctx_lsp.text.documents.Document vs pygls' stock TextDocument.

Run: .venv/bin/python bench/bench_documents.py   (about 15-25 s)

Each size gets the same edit script: jump to a pseudo-random spot, type 20 single characters
one after another, jump again. Ours runs the whole script (best of 3); pygls runs as much of
it as fits a time budget, since it is linear in the document size.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsprotocol import types
from pygls.workspace import TextDocument

from ctx_lsp.text.documents import Document

SIZES = [("50 KB", 50_000), ("250 KB", 250_000), ("1 MB", 1_000_000)]
OUR_EDITS = 20_000
PYGLS_BUDGET_S = 3.0
PYGLS_MAX_EDITS = 5_000
WORDS = ["self", "value", "result", "items", "index", "return", "if", "for", "in", "None"]


def make_text(size: int, rnd: random.Random) -> str:
    """Code-like text of about `size` characters, lines averaging ~60 characters."""
    out: list[str] = []
    total = 0
    while total < size:
        indent = "    " * rnd.randrange(4)
        words = [rnd.choice(WORDS) for _ in range(rnd.randrange(5, 11))]
        line = f"{indent}{words[0]} = {'('.join(words[1:3])}({', '.join(words[3:])}){')' * 1}\n"
        out.append(line)
        total += len(line)
    return "".join(out)


def make_script(text: str, n: int, rnd: random.Random) -> list[tuple[int, int, str]]:
    """(line, character, inserted char) for `n` single-character inserts."""
    lines = text.split("\n")
    script: list[tuple[int, int, str]] = []
    while len(script) < n:
        line = rnd.randrange(len(lines) - 1)
        col = rnd.randrange(len(lines[line]) + 1)
        for i in range(20):
            script.append((line, col + i, rnd.choice("abcdefghij_ ")))
    return script[:n]


def bench_ours(text: str, script: list[tuple[int, int, str]]) -> float:
    """Best-of-3 microseconds per edit."""
    edits = [(ch, (ln, col, ln, col)) for ln, col, ch in script]
    best = float("inf")
    for _ in range(3):
        doc = Document("file:///bench.py", text)
        apply = doc.apply_change
        t0 = time.perf_counter()
        for ch, rng in edits:
            apply(ch, rng)
        best = min(best, (time.perf_counter() - t0) / len(edits))
    return best * 1e6


def bench_pygls(text: str, script: list[tuple[int, int, str]]) -> tuple[float, int]:
    """Microseconds per edit over as many edits as fit the budget, and that count."""
    changes = [
        types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(ln, col), types.Position(ln, col)), text=ch
        )
        for ln, col, ch in script[:PYGLS_MAX_EDITS]
    ]
    doc = TextDocument("file:///bench.py", text)
    done = 0
    t0 = time.perf_counter()
    for change in changes:
        doc.apply_change(change)
        done += 1
        if done % 10 == 0 and time.perf_counter() - t0 > PYGLS_BUDGET_S:
            break
    return (time.perf_counter() - t0) / done * 1e6, done


def check_same(text: str, script: list[tuple[int, int, str]], n: int) -> None:
    """Both implementations must produce the same text, or the timing means nothing."""
    ours = Document("file:///bench.py", text)
    stock = TextDocument("file:///bench.py", text)
    for ln, col, ch in script[:n]:
        ours.apply_change(ch, (ln, col, ln, col))
        pos = types.Position(ln, col)
        stock.apply_change(
            types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=ch)
        )
    assert ours.text == stock.source, "implementations disagree"


def main() -> None:
    rnd = random.Random(20240611)
    print(
        f"{'size':>8} {'lines':>7} {'ours µs/edit':>13} {'pygls µs/edit':>14} {'ratio':>8}"
        f" {'(pygls edits)':>14} {'one .text join µs':>18}"
    )
    rows = []
    for label, size in SIZES:
        text = make_text(size, rnd)
        script = make_script(text, OUR_EDITS, rnd)
        check_same(text, script, 50)
        ours = bench_ours(text, script)
        stock, n = bench_pygls(text, script)
        doc = Document("file:///bench.py", text)
        doc.apply_change("x", (0, 0, 0, 0))
        t0 = time.perf_counter()
        _ = doc.text
        join = (time.perf_counter() - t0) * 1e6
        rows.append((label, ours, stock))
        print(
            f"{label:>8} {text.count(chr(10)):>7} {ours:>13.2f} {stock:>14.1f} "
            f"{stock / ours:>7.0f}× {n:>14} {join:>18.0f}"
        )
    small, big = rows[0][1], rows[-1][1]
    print(
        f"summary: at {rows[-1][0]} ours {big:.1f} µs/edit vs pygls {rows[-1][2]:.0f} µs/edit "
        f"({rows[-1][2] / big:.0f}× faster); ours {big / small:.2f}× from {rows[0][0]} to "
        f"{rows[-1][0]} (flat = 1)"
    )


if __name__ == "__main__":
    main()
