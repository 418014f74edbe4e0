"""A small fixed evaluation of the embedded model's answers (not its speed alone).

Run: python bench/eval_local.py [--model PATH] [--split tune|held_out|all]

The cases are data under bench/data/ (see each file's "source"):
- completion_cases.json: 30 cursors in more-itertools 11.2.1 (a third-party codebase from
  the package registry), at the start of a function body's first or last statement. Scored:
  exact line (the first line written equals the author's line, whitespace aside) and edit
  similarity (difflib ratio of the two lines, 0-1).
- commit_cases.json: 13 small staged diffs from this project's history with the messages
  their authors wrote. The first line of the message is scored by a stated rubric, each an
  automatable check: imperative (the first word is not a past tense, a gerund, a third
  person "Adds" or a filler like "This"), at most 72 characters, names what changed (a word
  of 4+ letters that is in a changed path or line), nothing invented (every code-like token
  of the subject, `quoted`, a --flag, dotted, snake_case or CamelCase, is in the diff).
- explain_cases.json: 10 more-itertools recipes without their docstrings. Checks: names
  the function or a parameter, no prompt echo, no line repeated 3 times, under 160 words.

Every request goes through the same code as the product: completions through
`LocalBackend.complete_raw`, commit messages and explanations through the built-in
templates, the backend and the commit message cleaner. The cases' `split` field keeps a
held-out third aside: prompts were tuned on "tune" only.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import re
import statistics
import sys
import time
from pathlib import Path

DATA = Path(__file__).with_name("data")
_IDENT = re.compile(r"`([^`]+)`|(--?[A-Za-z][\w-]*)|\b([A-Za-z_][\w.]*(?:_|\.|[a-z][A-Z])[\w.]*)\b")
_WORD = re.compile(r"[A-Za-z]{4,}")
_FILLERS = {"this", "the", "a", "an", "we", "i", "it", "here", "commit", "changes", "update:"}


def load(name: str, split: str) -> list[dict]:
    cases = json.loads((DATA / name).read_text())["cases"]
    return [c for c in cases if split == "all" or c["split"] == split]


# --- scoring ------------------------------------------------------------------------------------


def first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def score_completion(text: str, expected: str) -> tuple[bool, float]:
    got = first_line(text)
    return got == expected.strip(), difflib.SequenceMatcher(None, got, expected.strip()).ratio()


def commit_checks(subject: str, diff: str) -> dict[str, bool]:
    body = re.sub(r"^\w+(\([^)]*\))?!?:\s*", "", subject)  # a Conventional Commits type
    word = (body.split() or [""])[0].strip(":,").lower()
    imperative = (
        word.isalpha()
        and word not in _FILLERS
        and not word.endswith(("ed", "ing"))
        and not (word.endswith("s") and not word.endswith("ss"))
    )
    changed = " ".join(
        ln for ln in diff.splitlines() if ln.startswith(("+", "-", "diff --git"))
    ).lower()
    names = any(w.lower() in changed for w in _WORD.findall(body))
    tokens = [a or b or c for a, b, c in _IDENT.findall(subject)]
    invented = [t for t in tokens if t.strip("()") not in diff]
    return {
        "imperative": imperative,
        "<=72": 0 < len(subject) <= 72,
        "names what changed": names,
        "nothing invented": not invented and not subject.startswith(("diff", "+", "-")),
    }


def explain_checks(text: str, case: dict) -> dict[str, bool]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    repeated = any(lines.count(ln) >= 3 for ln in set(lines))
    echo = any(s in text for s in ("Code:", "Explanation:", "<CURSOR>", "def " + case["id"]))
    named = case["id"] in text or any(p in text for p in case["params"] if len(p) > 1)
    return {
        "names it": named,
        "no echo": not echo,
        "no loop": not repeated,
        "<160 words": 0 < len(text.split()) < 160,
    }


# --- running ------------------------------------------------------------------------------------


def _rates(kind: str, checks: list[dict[str, bool]], lat: list[float]) -> dict[str, float]:
    """Each check's pass rate over the cases, all four together, and the median latency."""
    if not checks:
        return {}
    out = {f"{kind} {name}": sum(ch[name] for ch in checks) / len(checks) for name in checks[0]}
    out[f"{kind} all four"] = sum(all(ch.values()) for ch in checks) / len(checks)
    out[f"{kind} median s"] = statistics.median(lat)
    return out


async def run(model: str, split: str, only: str = "") -> dict[str, float]:
    from ctx_lsp.assist.commit import clean_message
    from ctx_lsp.backends.local import LocalBackend
    from ctx_lsp.backends.openai_compat import BackendConfig
    from ctx_lsp.prompting.templates import TemplateLibrary
    from ctx_lsp.text.messages import ChatMessage

    backend = LocalBackend(BackendConfig(temperature=0.0, timeout_s=120), model_setting=model)
    t0 = time.perf_counter()
    await backend.ensure_loaded()
    print(f"model {backend.model}: loaded in {time.perf_counter() - t0:.2f} s")
    templates = TemplateLibrary.builtin()

    def messages(name: str, values: dict[str, str]) -> list[ChatMessage]:
        r = templates.render(name, {"branch": "main", "file": "", "context": "", **values})
        return [ChatMessage("system", r.system), ChatMessage("user", r.user, kind=name)]

    out: dict[str, float] = {}
    exact, sims, lat = [], [], []
    for c in load("completion_cases.json", split) if only in ("", "completion") else []:
        t = time.perf_counter()
        got = await backend.complete_raw(c["prefix"], c["suffix"], max_tokens=48)
        lat.append(time.perf_counter() - t)
        hit, sim = score_completion(got.text, c["expected"])
        if not hit and split != "all":
            print(f"  completion {c['id']}: {first_line(got.text)!r} for {c['expected']!r}")
        exact.append(hit)
        sims.append(sim)
    if exact:
        out |= {
            "completion exact line": sum(exact) / len(exact),
            "completion edit similarity": statistics.mean(sims),
            "completion median s": statistics.median(lat),
        }

    checks: list[dict[str, bool]] = []
    lat = []
    for c in load("commit_cases.json", split) if only in ("", "commit") else []:
        values = {
            "diff": c["diff"],
            "recent_commits": "(no commits yet)",
            "commit_convention": "plain imperative subjects, as in: Add login page",
            "history_summary": "",
        }
        t = time.perf_counter()
        got = await backend.chat(messages("commit", values), max_tokens=256)
        lat.append(time.perf_counter() - t)
        try:
            subject = clean_message(got.text, "plain").split("\n", 1)[0]
        except ValueError:
            subject = ""
        checks.append(commit_checks(subject, c["diff"]))
        if split != "all":
            print(f"  commit {c['id']}: {subject!r}")
    out |= _rates("commit", checks, lat)

    checks, lat = [], []
    for c in load("explain_cases.json", split) if only in ("", "explain") else []:
        values = {"language": "python", "code": c["code"].rstrip("\n")}
        t = time.perf_counter()
        got = await backend.chat(messages("explain", values), max_tokens=256)
        lat.append(time.perf_counter() - t)
        checks.append(explain_checks(got.text, c))
        if split != "all":
            print(f"  explain {c['id']}: {got.text[:100]!r}")
    out |= _rates("explain", checks, lat)
    await backend.aclose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="", help="GGUF file (default: the bundled model)")
    parser.add_argument("--split", default="tune", choices=["tune", "held_out", "all"])
    parser.add_argument(
        "--before", action="store_true", help="without the base-model few-shot transcripts"
    )
    parser.add_argument("--only", default="", choices=["", "completion", "commit", "explain"])
    args = parser.parse_args()
    if args.before:
        import ctx_lsp.backends.base_model as base_model

        base_model._SHOTS = Path("/nonexistent")  # every task as the plain chat transcript
    from ctx_lsp.backends.local_model import extra_installed

    if not extra_installed():
        print("the 'local' extra is not installed: pip install -e '.[local]'")
        return 2
    figures = asyncio.run(run(args.model, args.split, args.only))
    print(f"== {args.split} cases ==")
    for name, value in figures.items():
        shown = f"{value:.2f} s" if name.endswith(" s") else f"{value:.0%}"
        if "similarity" in name:
            shown = f"{value:.2f}"
        print(f"{name:32} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
