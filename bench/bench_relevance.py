"""Context relevance on real code nobody here wrote: does the prompt carry the definition of
what the cursor line calls?

Run: .venv/bin/python bench/bench_relevance.py   (about 1 minute; the first run downloads
rich's wheel with pip into ~/.cache/ctx-lsp-bench/, later runs reuse it)

1. The sources of a well-known pure-Python package (rich 13.9.4, from the registry) go into a
   temp git repo; OPEN_FILES of its modules are opened with didOpen, as an editor would.
2. Cases, found with `ast`: a call `name(...)` on one line of an open module, where `name`
   comes from `from .mod import name` and is a top-level def/class of ANOTHER open module (and
   that definition's first line does not occur in the calling module). At most
   PER_FILE cases per calling module, spread over the modules.
3. For each case: cursor at the end of the call's line, one `textDocument/inlineCompletion`
   (cache off, debounce 0, default contextTokens); hit = the definition's first line
   (`def name(...` / `class Name...`) is in the prompt the fake backend received.
4. BASELINE, computed for the same cases and budget: the prompt filled with the most recently
   opened files' text (newest first, the calling file excluded), whole files while they fit,
   then the start of the next, up to contextTokens as counted by ctx_lsp.text.tokens.count_tokens;
   hit = the definition's line falls inside that text.

Misses are listed with the reason, from the server's own dry run (`ctx.showPrompt`: what was
dropped) and from ctx_lsp.prompting.relevance.rank on the same texts (where the definition ranked).
Target: recall ≥ 80% at the default contextTokens, and well above the baseline.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _lsp import (
    CTX_CMD,
    Sandbox,
    command,
    fake_backend,
    inline_params,
    machine,
    open_doc,
    server,
    sync,
    table,
    tokenizer,
    verdict,
)

from ctx_lsp.config.settings import Settings
from ctx_lsp.prompting.relevance import rank
from ctx_lsp.text import tokens
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.tokens import ESTIMATE_NAME as ESTIMATE
from ctx_lsp.text.tokens import count_tokens, truncate_to_tokens

PACKAGE, VERSION = "rich", "13.9.4"
CACHE = Path(os.path.expanduser("~")) / ".cache" / "ctx-lsp-bench"
OPEN_FILES = 30
MIN_CASES = 30
MAX_CASES = 45
PER_FILE = 2
EXTRA_BUDGETS = (2, 4)  # also report recall at these multiples of the default budget
RECALL_TARGET = 0.80


# --------------------------------------------------------------------------------------------
# The package


def package_sources() -> Path:
    """Folder holding `rich/*.py`, from the cached wheel (downloaded once with pip)."""
    dest = CACHE / f"{PACKAGE}-{VERSION}"
    if (dest / PACKAGE / "__init__.py").is_file():
        return dest
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps",
             "--only-binary", ":all:", "--quiet", "-d", str(CACHE)],
            check=True,
        )  # fmt: skip
        wheels = sorted(CACHE.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf:
        members = [n for n in zf.namelist() if n.startswith(f"{PACKAGE}/") and n.endswith(".py")]
        zf.extractall(dest, members)
    return dest


@dataclass
class Module:
    name: str  # "console" for rich/console.py
    rel: str  # "rich/console.py"
    text: str
    tree: ast.Module
    top: dict[str, int]  # top-level def/class name → 1-based line


@dataclass
class Case:
    module: str  # calling module
    line: int  # 0-based line of the call
    char: int  # end of that line, UTF-16 units
    name: str  # the name called (as written)
    target: str  # module defining it
    def_name: str
    def_line: int  # 1-based line of the def in the target
    signature: str  # that line, stripped


def load_modules(src: Path) -> dict[str, Module]:
    mods = {}
    for path in sorted((src / PACKAGE).glob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        top = {
            n.name: n.lineno
            for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
        mods[path.stem] = Module(path.stem, f"{PACKAGE}/{path.name}", text, tree, top)
    return mods


def imported_names(mod: Module, mods: dict[str, Module]) -> dict[str, tuple[str, str]]:
    """Local name → (module, name there) for `from .x import name [as local]` anywhere."""
    out: dict[str, tuple[str, str]] = {}
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in mods:
            for alias in node.names:
                out.setdefault(alias.asname or alias.name, (node.module, alias.name))
    return out


def call_sites(mod: Module, mods: dict[str, Module], open_set: set[str]) -> list[Case]:
    imports = imported_names(mod, mods)
    lines = mod.text.split("\n")
    seen: set[int] = set()
    cases = []
    for node in ast.walk(mod.tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        local = node.func.id
        if local not in imports or local in mod.top or node.lineno != node.end_lineno:
            continue
        target, def_name = imports[local]
        if target == mod.name or target not in open_set or def_name not in mods[target].top:
            continue
        def_line = mods[target].top[def_name]
        signature = mods[target].text.split("\n")[def_line - 1].strip()
        if signature in mod.text or node.lineno in seen:
            continue  # the cursor window could hold it: not a test of relevance
        seen.add(node.lineno)
        line = lines[node.lineno - 1]
        char = len(line.encode("utf-16-le")) // 2
        cases.append(
            Case(mod.name, node.lineno - 1, char, local, target, def_name, def_line, signature)
        )
    return sorted(cases, key=lambda c: c.line)


def choose(mods: dict[str, Module]) -> tuple[list[str], list[Case]]:
    """The OPEN_FILES modules with the most cross-module call sites, and the cases."""
    everything = set(mods)
    score = {m: 0 for m in mods}
    for m in mods.values():
        for case in call_sites(m, mods, everything):
            score[m.name] += 1
            score[case.target] += 1
    chosen = sorted(sorted(mods), key=lambda m: -score[m])[:OPEN_FILES]
    open_set = set(chosen)
    per_module = {m: call_sites(mods[m], mods, open_set) for m in sorted(chosen)}
    cases: list[Case] = []
    # Round robin over the calling modules, different targets first, at most PER_FILE each.
    for turn in range(PER_FILE):
        for m, sites in per_module.items():
            used = {c.def_name for c in cases if c.module == m}
            fresh = [c for c in sites if c.def_name not in used]
            if len(fresh) > 0 and turn < len(sites) and len(cases) < MAX_CASES:
                cases.append(fresh[0])
    return chosen, cases


# --------------------------------------------------------------------------------------------
# Baseline


@contextlib.contextmanager
def token_counter(name: str) -> Iterator[None]:
    """Run with this token counter, here and in the servers started meanwhile (their
    environment is copied from ours)."""
    saved = os.environ.get("CTX_LSP_TOKENIZER")
    if name == ESTIMATE:
        os.environ["CTX_LSP_TOKENIZER"] = "estimate"
    tokens.reset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CTX_LSP_TOKENIZER", None)
        else:
            os.environ["CTX_LSP_TOKENIZER"] = saved
        tokens.reset()


def baseline_hit(case: Case, mods: dict[str, Module], open_order: list[str], budget: int) -> bool:
    """Would the definition be in a prompt filled with the most recently opened files?"""
    left = budget
    for name in reversed(open_order):
        if name == case.module:
            continue
        text = mods[name].text
        cost = count_tokens(text)
        part = text if cost <= left else truncate_to_tokens(text, left, keep="start")
        if name == case.target:
            return case.signature in part
        left -= count_tokens(part)
        if left <= 0:
            return False
    return False


# --------------------------------------------------------------------------------------------
# Through the server


@dataclass
class Outcome:
    case: Case
    hit: bool
    baseline: bool
    reason: str = ""


def why_missed(
    case: Case, mods: dict[str, Module], open_order: list[str], dry: dict, prompt: str
) -> str:
    dropped = dry.get("dropped") or {}
    cur = mods[case.module]
    docs = {
        n: OpenDoc(f"file:///{mods[n].rel}", mods[n].rel, "python", mods[n].text, float(i))
        for i, n in enumerate(open_order)
    }
    offset = _offset(cur.text, case.line)
    ranked = rank(docs[case.module], offset, [d for n, d in docs.items() if n != case.module])
    pos = next(
        (i for i, s in enumerate(ranked) if case.signature in s.text and s.path.endswith(
            f"/{case.target}.py")),
        None,
    )  # fmt: skip
    where = f"ranked #{pos + 1} of {len(ranked)}" if pos is not None else "not ranked"
    if "Related code from other open files" not in prompt:
        trimmed = {k: v for k, v in dropped.items() if k.startswith("cursor")}
        if trimmed:
            return (
                f"no related code at all: cursor window trimmed ({_fmt(trimmed)}), so every "
                f"optional part was dropped ({where})"
            )
        return f"no related code section ({_fmt(dropped)}; {where})"
    if pos is None:
        return "definition not ranked by relevance.rank"
    kept = len(ranked) - int(dropped.get("related", 0))
    return f"{where}, only {kept} snippet(s) fit ({_fmt(dropped)})"


def _offset(text: str, line: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[:line]) + len(lines[line])


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "nothing dropped"


async def run_cases(
    sb: Sandbox,
    root: Path,
    mods: dict[str, Module],
    open_order: list[str],
    cases: list[Case],
    fake,
    budget: int | None,
) -> list[Outcome]:
    opts: dict = {"model": "test-model", "debounceMs": 0, "cache": False}
    if budget is not None:
        opts["contextTokens"] = budget
    effective = budget if budget is not None else Settings().context_tokens
    env = sb.env(fake.env())
    out = []
    async with server(CTX_CMD, env, root, opts) as client:
        for name in open_order:
            open_doc(client, (root / mods[name].rel).as_uri(), mods[name].text)
        await sync(client)
        for case in cases:
            uri = (root / mods[case.module].rel).as_uri()
            fake.reset()
            await client.text_document_inline_completion_async(
                inline_params(uri, case.line, case.char)
            )
            prompts = fake.prompts()
            if len(prompts) != 1:
                raise RuntimeError(f"expected one backend call, got {len(prompts)}")
            prompt = prompts[0]
            hit = case.signature in prompt
            base = baseline_hit(case, mods, open_order, effective)
            reason = ""
            if not hit:
                pos = {"line": case.line, "character": case.char}
                dry = await command(client, "ctx.showPrompt", {"uri": uri, "position": pos})
                reason = why_missed(case, mods, open_order, dry, prompt)
            out.append(Outcome(case, hit, base, reason))
    return out


async def run() -> bool:
    src = package_sources()  # before the sandbox: the cache lives in the real home
    default_budget = Settings().context_tokens
    with Sandbox() as sb, fake_backend("pass") as fake:
        sb.activate()
        mods = load_modules(src)
        chosen, cases = choose(mods)
        files = {m.rel: m.text for m in mods.values()}
        root = sb.repo(files=files)
        open_order = list(chosen)
        random.Random(13).shuffle(open_order)  # the order an editor opened them in
        size = sum(len(mods[m].text) for m in chosen)
        print(
            f"{PACKAGE} {VERSION}: {len(mods)} modules; opened {len(chosen)} "
            f"({size / 1e3:.0f} KB) in this order: {', '.join(open_order)}"
        )
        print(
            f"{len(cases)} cases in {len({c.module for c in cases})} calling modules, "
            f"{len({(c.target, c.def_name) for c in cases})} distinct definitions; token "
            f"counter: {tokenizer()}; default contextTokens {default_budget}\n"
        )
        if len(cases) < MIN_CASES:
            print(f"WARNING: only {len(cases)} cases (wanted ≥ {MIN_CASES})")
        results: dict[tuple[int, str], list[Outcome]] = {}
        counter = tokenizer()
        runs = [(default_budget, counter)] + [(default_budget * k, counter) for k in EXTRA_BUDGETS]
        if counter != ESTIMATE:  # what a machine without tiktoken's cached file counts with
            runs.append((default_budget, ESTIMATE))
        for budget, name in runs:
            with token_counter(name):
                results[(budget, name)] = await run_cases(
                    sb, root, mods, open_order, cases, fake,
                    None if budget == default_budget else budget,
                )  # fmt: skip

    rows = []
    for (budget, name), outs in results.items():
        recall = sum(o.hit for o in outs) / len(outs)
        base = sum(o.baseline for o in outs) / len(outs)
        label = f"{budget}" + (" (default)" if budget == default_budget else "")
        rows.append([label, name, f"{recall:.0%}", f"{base:.0%}", f"{recall - base:+.0%}"])
    print("== recall of the called definition's signature line in the prompt ==")
    table(["contextTokens", "token counter", "ctx-lsp", "baseline: recent files", "difference"],
          rows)  # fmt: skip

    outs = results[(default_budget, counter)]
    misses = [o for o in outs if not o.hit]
    print(f"\nper case at the default budget ({len(outs) - len(misses)}/{len(outs)} hit):")
    table(
        ["calling site", "calls", "defined at", "ctx", "baseline"],
        [
            [
                f"{mods[o.case.module].rel}:{o.case.line + 1}",
                o.case.name,
                f"{o.case.target}.py:{o.case.def_line} {o.case.def_name}",
                "hit" if o.hit else "MISS",
                "hit" if o.baseline else "-",
            ]
            for o in outs
        ],
    )
    if misses:
        print("\nwhy the misses missed:")
        for o in misses:
            print(f"  {mods[o.case.module].rel}:{o.case.line + 1} {o.case.name}: {o.reason}")
    recall = sum(o.hit for o in outs) / len(outs)
    base = sum(o.baseline for o in outs) / len(outs)
    ok = recall >= RECALL_TARGET and recall >= base + 0.3
    print(f"\nmachine at the end: {machine()}")
    print(
        f"summary: recall {recall:.0%} at contextTokens {default_budget} ({counter}) over "
        f"{len(outs)} "
        f"cases vs baseline {base:.0%} (target ≥ {RECALL_TARGET:.0%} and well above the "
        f"baseline: {verdict(ok)})"
    )
    return ok


def main() -> int:
    print(f"machine: {machine()}")
    return 0 if asyncio.run(run()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
