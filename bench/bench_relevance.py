"""Context relevance on real code nobody here wrote: does the prompt carry the definition of
what the cursor line is about to call?

Run: python bench/bench_relevance.py [--quick]   (a few minutes; the first run fetches the
codebases with `pip download` / `npm pack` into ~/.cache/ctx-lsp-bench/, later runs reuse them)

Corpora (third-party, from the package registries, versions pinned): click 8.1.7 and Jinja2
3.1.4 (Python), RxJS 7.8.1 (TypeScript sources). Each goes into a temp git repository.

Cases: a line of module A that calls a name B imports from another module of the corpus
(`from .utils import url_quote` / `import { operate } from '../util/lift'`), whose definition
line does not occur in A. Found with `ast` (Python) and with regular expressions over the
imports and `export function|class|const ...` lines (TypeScript): not with the index under
test. Two kinds, each case once:
  removed  the cursor at the start of that line, its text removed (about to type the call);
  typed    the line cut three characters into the called name (`url_q|`, `util.Reg|`).
A quarter of the cases (every fourth, in a fixed shuffle) is held out: the ranking was tuned
on the others; both parts are reported.

Open files, as an editor would: all of the corpus, or only the current file and its two
neighbours in its folder ("three"). Prompts are built by the server's own path
(`Assistant.build` on a `completion_request`, default settings: contextTokens 4096), with the
workspace index built as the server builds it. A hit: the definition's signature line (its
first line, stripped) is in the prompt. Beside it, from the same run and cases:
  recent   the prompt filled with the most recently opened files' text, newest first;
  before   the ranking before the workspace index (`relevance.rank` of the open documents, as
           of commit 8544f3b, loaded from git into a temp module and swapped in for this run).
Then index figures: build, re-build from `.ctx/index/`, one edit, memory, on the largest
corpus and on a 10,000-file synthetic workspace.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _lsp import REPO, Sandbox, machine, table, tokenizer, verdict

from ctx_lsp.assist import assistant as assistant_module
from ctx_lsp.assist.completion import completion_request
from ctx_lsp.config.settings import Settings
from ctx_lsp.prompting.relevance import Snippet
from ctx_lsp.runtime import Runtime
from ctx_lsp.text.documents import Document
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.tokens import count_tokens, truncate_to_tokens

CACHE = Path(os.path.expanduser("~")) / ".cache" / "ctx-lsp-bench"
OLD_RANK_COMMIT = "8544f3b"
CASES_PER_CORPUS = 48
TARGET = 0.85
SYNTHETIC_FILES = 10_000


@dataclass(frozen=True)
class Corpus:
    name: str
    version: str
    kind: str  # pip or npm
    language: str
    prefix: str  # folder of the sources inside the archive


CORPORA = [
    Corpus("click", "8.1.7", "pip", "python", "click/"),
    Corpus("Jinja2", "3.1.4", "pip", "python", "jinja2/"),
    Corpus("rxjs", "7.8.1", "npm", "typescript", "package/src/internal/"),
]


def fetch(c: Corpus) -> dict[str, str]:
    """rel path → text of the corpus sources (fetched once into CACHE)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    if c.kind == "pip":
        pattern = f"{c.name.lower()}-{c.version}-*.whl"
        if not list(CACHE.glob(pattern)):
            subprocess.run(
                [sys.executable, "-m", "pip", "download", f"{c.name}=={c.version}", "--no-deps",
                 "--only-binary", ":all:", "--quiet", "-d", str(CACHE)],
                check=True,
            )  # fmt: skip
        with zipfile.ZipFile(sorted(CACHE.glob(pattern))[0]) as zf:
            return {
                n: zf.read(n).decode("utf-8")
                for n in zf.namelist()
                if n.startswith(c.prefix) and n.endswith(".py")
            }
    archive = CACHE / f"{c.name}-{c.version}.tgz"
    if not archive.exists():
        subprocess.run(
            ["npm", "pack", f"{c.name}@{c.version}", "--silent", "--pack-destination", str(CACHE)],
            check=True, capture_output=True,
        )  # fmt: skip
    out = {}
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            if m.isfile() and m.name.startswith(c.prefix) and m.name.endswith(".ts"):
                data = tf.extractfile(m)
                if data is not None:
                    out[m.name.removeprefix("package/")] = data.read().decode("utf-8")
    return out


# --------------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Case:
    path: str  # calling file
    line: int  # 0-based
    name: str  # as called
    col: int  # where the name starts on the line
    target: str  # defining file
    signature: str  # the definition's first line, stripped
    held_out: bool = False


def _py_cases(files: dict[str, str]) -> list[Case]:
    mods = {p.rsplit("/", 1)[-1][:-3]: p for p in files}
    top: dict[str, dict[str, int]] = {}
    trees = {}
    for p, text in files.items():
        tree = trees[p] = ast.parse(text)
        top[p] = {
            n.name: n.lineno
            for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
    out = []
    for p, tree in trees.items():
        imported: dict[str, tuple[str, str]] = {}
        modules: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                for a in node.names:
                    if node.module in mods:
                        imported[a.asname or a.name] = (mods[node.module], a.name)
                    elif node.module is None and a.name in mods:
                        modules[a.asname or a.name] = mods[a.name]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or node.lineno != node.end_lineno:
                continue
            f = node.func
            if isinstance(f, ast.Name) and f.id in imported:
                target, name, col = *imported[f.id], f.col_offset
            elif (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and f.value.id in modules
            ):
                target, name = modules[f.value.id], f.attr
                col = f.end_col_offset - len(f.attr)
            else:
                continue
            if target == p or name not in top[target]:
                continue
            sig = files[target].split("\n")[top[target][name] - 1].strip()
            if sig in files[p]:
                continue
            out.append(Case(p, node.lineno - 1, name, col, target, sig))
    return out


_TS_IMPORT = re.compile(r"import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*'(\.[^']+)'")


def _ts_cases(files: dict[str, str]) -> list[Case]:
    out = []
    for p, text in files.items():
        here = p.rsplit("/", 1)[0]
        for m in _TS_IMPORT.finditer(text):
            target = os.path.normpath(os.path.join(here, m.group(2)))
            target = next((t for t in (target + ".ts", target + "/index.ts") if t in files), None)
            if target is None:
                continue
            for part in m.group(1).split(","):
                name = part.strip().split(" as ")[-1].strip()
                orig = part.strip().split(" as ")[0].strip()
                if not re.fullmatch(r"\w+", name or "-"):
                    continue
                d = re.search(
                    rf"^export (?:declare )?(?:abstract )?(?:function|class|const) {orig}\b.*$",
                    files[target],
                    re.M,
                )
                if d is None:
                    continue
                sig = d.group().strip().removesuffix("{").strip()
                if sig in text:
                    continue
                for i, line in enumerate(text.split("\n")):
                    c = re.search(rf"(?<![\w.]){name}\(", line)
                    if c and "import" not in line and not line.lstrip().startswith(("*", "//")):
                        out.append(Case(p, i, name, c.start(), target, sig))
    return out


def cases_for(c: Corpus, files: dict[str, str]) -> list[Case]:
    found = _py_cases(files) if c.language == "python" else _ts_cases(files)
    rng = random.Random(16)
    rng.shuffle(found)
    picked: list[Case] = []
    per_file: dict[str, int] = {}
    for case in found:  # spread over the calling files, each definition once per file
        if per_file.get(case.path, 0) >= 8 or any(
            x.path == case.path and x.name == case.name for x in picked
        ):
            continue
        per_file[case.path] = per_file.get(case.path, 0) + 1
        picked.append(case)
        if len(picked) >= CASES_PER_CORPUS:
            break
    return [
        Case(*(getattr(x, f) for f in ("path", "line", "name", "col", "target", "signature")),
             held_out=i % 4 == 3)
        for i, x in enumerate(picked)
    ]  # fmt: skip


def edited(text: str, case: Case, kind: str) -> tuple[str, int]:
    """The calling file as the editor holds it, and the cursor offset."""
    lines = text.split("\n")
    line = lines[case.line]
    if kind == "removed":
        indent = line[: len(line) - len(line.lstrip())]
        lines[case.line] = indent
        cut = len(indent)
    else:
        cut = case.col + 3
        lines[case.line] = line[:cut]
    offset = sum(len(x) + 1 for x in lines[: case.line]) + cut
    return "\n".join(lines), offset


def neighbours(path: str, files: dict[str, str]) -> list[str]:
    folder = path.rsplit("/", 1)[0]
    same = sorted(p for p in files if p.rsplit("/", 1)[0] == folder)
    i = same.index(path)
    around = [same[j] for j in (i - 1, i + 1, i - 2, i + 2) if 0 <= j < len(same) and j != i]
    return around[:2]


# --------------------------------------------------------------------------------------------
# Prompts


def old_rank() -> Callable:
    """`relevance.rank` as it was before the index, from git, as a module of its own."""
    src = subprocess.run(
        ["git", "show", f"{OLD_RANK_COMMIT}:ctx_lsp/prompting/relevance.py"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "relevance_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("relevance_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["relevance_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)

    def rank(current: OpenDoc, cursor: int, others: list[OpenDoc]) -> list[Snippet]:
        return [
            Snippet(s.path, s.text, s.score, s.reason) for s in module.rank(current, cursor, others)
        ]

    return rank


def recent_hit(case: Case, texts: dict[str, str], order: list[str], budget: int) -> bool:
    left = budget
    for p in reversed(order):
        if p == case.path:
            continue
        cost = count_tokens(texts[p])
        part = texts[p] if cost <= left else truncate_to_tokens(texts[p], left, keep="start")
        if case.signature in part:
            return True
        left -= count_tokens(part)
        if left <= 0:
            return False
    return False


def run_corpus(c: Corpus, sb: Sandbox, rank_before: Callable) -> tuple[list[list], dict]:
    files = fetch(c)
    cases = cases_for(c, files)
    root = sb.repo(c.name.lower(), files)
    rt = Runtime(sb.env())
    folder = rt.add_folder(root)
    rt.load()
    index = rt.index(folder)
    t = time.perf_counter()
    index.build()
    build_s = time.perf_counter() - t
    settings = rt.settings
    budget = settings.context_tokens - settings.max_tokens
    a = rt.assistant(folder)
    lang = c.language
    order_all = sorted(files)
    random.Random(13).shuffle(order_all)
    results: dict[tuple[str, str, str], list[tuple[bool, bool]]] = {}
    misses: list[str] = []
    for case in cases:
        for kind in ("removed", "typed"):
            text, offset = edited(files[case.path], case, kind)
            for mode in ("all", "three"):
                names = order_all if mode == "all" else [*neighbours(case.path, files)]
                order = [p for p in names if p != case.path] + [case.path]
                docs = [
                    OpenDoc((root / p).as_uri(), p, lang, text if p == case.path else files[p], i)
                    for i, p in enumerate(order)
                ]
                doc = Document((root / case.path).as_uri(), text, lang)
                req = completion_request(settings, doc.uri, doc, case.path, offset)
                got = {}
                for method in ("ctx", "before"):
                    if method == "before":
                        saved = assistant_module.related_code
                        assistant_module.related_code = lambda cur, cursor, others, *_: rank_before(
                            cur, cursor, others
                        )
                    try:
                        built = a.build(req, docs, "")
                    finally:
                        if method == "before":
                            assistant_module.related_code = saved
                    prompt = "\n".join(m.content for m in built.messages)
                    got[method] = case.signature in prompt
                texts = {p: files[p] for p in order}
                texts[case.path] = text
                got["recent"] = recent_hit(case, texts, order, budget)
                for method, hit in got.items():
                    results.setdefault((kind, mode, method), []).append((hit, case.held_out))
                if not got["ctx"] and mode == "three":
                    misses.append(
                        f"  {kind} {case.path}:{case.line + 1} {case.name} → {case.target}"
                    )
    rows = []
    for kind in ("removed", "typed"):
        for mode in ("all", "three"):
            row = [c.name, kind, mode]
            for method in ("ctx", "before", "recent"):
                r = results[(kind, mode, method)]
                tuned = [h for h, held in r if not held]
                held = [h for h, held in r if held]
                row.append(f"{sum(h for h, _ in r) / len(r):.0%}")
                if method == "ctx":
                    row.append(f"{sum(tuned) / len(tuned):.0%} / {sum(held) / len(held):.0%}")
            rows.append(row)
    info = {
        "files": len(files),
        "kb": sum(len(t) for t in files.values()) / 1e3,
        "cases": len(cases),
        "held": sum(x.held_out for x in cases),
        "build_s": build_s,
        "root": root,
        "index": index,
        "misses": misses,
        "ok": all(
            sum(h for h, _ in results[(k, "three", "ctx")]) / len(results[(k, "three", "ctx")])
            >= TARGET
            for k in ("removed", "typed")
        ),
    }
    return rows, info


# --------------------------------------------------------------------------------------------
# Index figures


def index_figures(label: str, root: Path, sb: Sandbox, edit_rel: str) -> list:
    from ctx_lsp.prompting.index.workspace import WorkspaceIndex
    from ctx_lsp.store.ctxdir import CtxStore

    store = CtxStore(root)
    (root / ".ctx" / "index" / "files.json").unlink(missing_ok=True)
    tracemalloc.start()
    index = WorkspaceIndex(root, lambda _r: True, store)
    t = time.perf_counter()
    index.build()
    build = time.perf_counter() - t
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    t = time.perf_counter()
    again = WorkspaceIndex(root, lambda _r: True, store)
    again.build()
    rebuild = time.perf_counter() - t
    path = root / edit_rel
    times = []
    for i in range(20):
        path.write_text(path.read_text() + f"\n\ndef added_{i}(x):\n    return x\n")
        t = time.perf_counter()
        index.update(edit_rel)
        times.append(time.perf_counter() - t)
    times.sort()
    size = path.stat().st_size
    return [
        label,
        f"{len(index):,}",
        f"{build:.2f} s",
        f"{rebuild:.2f} s ({int(again.stats.get('loaded', 0)):,} loaded, "
        f"{int(again.stats.get('parsed', 0))} parsed)",
        f"{times[len(times) // 2] * 1e3:.2f} ms ({size / 1e3:.0f} KB file)",
        f"{memory / 2**20:.1f} MiB",
    ]


def synthetic(sb: Sandbox, n: int) -> Path:
    root = sb.tmp / "synthetic"
    for i in range(n):
        d = root / f"pkg{i // 100}"
        d.mkdir(parents=True, exist_ok=True)
        body = "\n\n".join(
            f"def func_{i}_{k}(value: int, scale: float = 1.0) -> float:\n"
            f'    """Scale value number {k} of module {i}."""\n'
            f"    return value * scale + {k}\n"
            for k in range(8)
        )
        cls = f'\n\nclass Model{i}:\n    """Model {i}."""\n\n    def run(self, x):\n'
        cls += "        return x\n"
        (d / f"mod{i}.py").write_text(
            f"from .mod{max(0, i - 1)} import func_{max(0, i - 1)}_0\n\n{body}{cls}"
        )
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=sb.env())
    return root


def main() -> int:
    quick = "--quick" in sys.argv
    print(f"machine: {machine()}; token counter: {tokenizer()}")
    print(f"default contextTokens {Settings().context_tokens}, maxTokens {Settings().max_tokens}\n")
    rank_before = old_rank()
    all_rows, infos = [], {}
    with Sandbox() as sb:
        sb.activate()
        for c in CORPORA:
            rows, info = run_corpus(c, sb, rank_before)
            infos[c.name] = info
            all_rows += rows
            print(
                f"{c.name} {c.version} ({c.language}): {info['files']} files, {info['kb']:.0f} KB, "
                f"{info['cases']} cases ({info['held']} held out), index built in "
                f"{info['build_s']:.2f} s"
            )
        print("\n== recall: the needed definition's signature line in the prompt ==")
        table(
            [
                "corpus",
                "kind",
                "open",
                "ctx-lsp",
                "ctx: tuned / held out",
                "before",
                "recent files",
            ],
            all_rows,
        )
        for name, info in infos.items():
            if info["misses"]:
                print(f"\n{name}: misses with three files open")
                print("\n".join(info["misses"][:12]))
        print("\n== the index ==")
        largest = max(infos.values(), key=lambda i: i["kb"])
        top = largest["root"]
        rows = [
            index_figures("rxjs, edit to its median file", top, sb, _median_file(top)),
            index_figures("rxjs, edit to its largest file", top, sb, _largest_file(top)),
        ]
        if not quick:
            root = synthetic(sb, SYNTHETIC_FILES)
            rows.append(
                index_figures(f"synthetic, {SYNTHETIC_FILES:,} files", root, sb, "pkg50/mod5000.py")
            )
        table(
            [
                "workspace",
                "files",
                "build",
                "restart (from .ctx/index/)",
                "one edit (median of 20)",
                "memory",
            ],
            rows,
        )
    ok = all(i["ok"] for i in infos.values())
    print(f"\nmachine at the end: {machine()}")
    print(
        f"summary: with three files open, recall ≥ {TARGET:.0%} in every corpus and both kinds: "
        f"{verdict(ok)}"
    )
    return 0 if ok else 1


def _largest_file(root: Path) -> str:
    best = max((p for p in root.rglob("*.ts")), key=lambda p: p.stat().st_size)
    return best.relative_to(root).as_posix()


def _median_file(root: Path) -> str:
    files = sorted((p for p in root.rglob("*.ts")), key=lambda p: p.stat().st_size)
    return files[len(files) // 2].relative_to(root).as_posix()


if __name__ == "__main__":
    raise SystemExit(main())
