"""A soak of mixed editor traffic on 50 open documents, watching the server's resident memory
(VmRSS from /proc/<pid>/status). Used by test_soak.py (1 minute) and bench/soak.py (10).

Traffic, one request at a time like a typing user with a fast model: edits that insert a line
and later take it out again (so the documents keep their size), inline completions,
completion items, code actions and their resolve (a fix), and commands: explain, fix with
apply false, show context, show prompt, pin and unpin, save, close and reopen.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._rpc import RawServer, RpcError, rng_json

DOCS = 50


@dataclass
class SoakResult:
    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, KiB)
    warm_kb: int = 0
    warm_at: float = 0.0
    end_kb: int = 0
    start_kb: int = 0
    slowest_s: float = 0.0
    slowest_what: str = ""
    alive: bool = True

    @property
    def slope_mib_per_min(self) -> float:
        """Least-squares growth of RSS after warm-up."""
        after = [(t, kb) for t, kb in self.samples if kb and t >= self.warm_at]
        if len(after) < 2:
            return 0.0
        mt = sum(t for t, _ in after) / len(after)
        mk = sum(kb for _, kb in after) / len(after)
        var = sum((t - mt) ** 2 for t, _ in after)
        cov = sum((t - mt) * (kb - mk) for t, kb in after)
        return cov / var * 60 / 1024 if var else 0.0

    @property
    def ratio(self) -> float:
        return self.end_kb / self.warm_kb if self.warm_kb else 0.0

    def line(self, label: str) -> str:
        ops = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        errs = dict(self.errors) or "none"
        return (
            f"[soak: {label}] RSS start={self.start_kb / 1024:.1f} MiB "
            f"after warm-up={self.warm_kb / 1024:.1f} MiB end={self.end_kb / 1024:.1f} MiB "
            f"ratio={self.ratio:.3f} peak={max(kb for _, kb in self.samples) / 1024:.1f} MiB "
            f"growth after warm-up {self.slope_mib_per_min:+.2f} MiB/min; "
            f"requests={sum(self.counts.values())} ({ops}); errors={errs}; "
            f"slowest={self.slowest_s:.2f} s ({self.slowest_what}); alive={self.alive}"
        )


def make_workspace(root: Path, git_env: dict[str, str]) -> list[Path]:
    """A git repository with DOCS python files of ~120 lines."""
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(DOCS):
        body = "".join(
            f"def handler_{i}_{j}(request, limit={j}):\n"
            f"    values = [v * {j} for v in request.values if v < limit]\n"
            f"    return sum(values) / max(len(values), 1)\n\n\n"
            for j in range(24)
        )
        path = root / f"pkg{i % 5}" / f"module_{i}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f'"""Module {i}."""\n\nimport math\n\n\n{body}')
        files.append(path)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "soak"]):
        subprocess.run(["git", *args], cwd=root, env=git_env, check=True, capture_output=True)
    return files


class _Doc:
    def __init__(self, path: Path, uri: str, text: str) -> None:
        self.path = path
        self.uri = uri
        self.lines = text.count("\n")
        self.version = 1
        self.inserted_at: int | None = None  # a line we added and will take out again


def run_soak(
    server: RawServer,
    root: Path,
    files: list[Path],
    seconds: float,
    warmup_s: float,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> SoakResult:
    rnd = random.Random(seed)
    res = SoakResult(start_kb=server.rss_kb())
    docs = [_Doc(p, server.open(p), p.read_text()) for p in files]
    t0 = time.monotonic()
    next_sample = 0.0
    pinned: list[str] = []

    def timed(what: str, method: str, params: object) -> object:
        start = time.monotonic()
        result = None
        try:
            result = server.request(method, params, timeout=60)
        except RpcError as exc:
            res.errors[f"{what}: {str(exc)[:60]}"] += 1
        took = time.monotonic() - start
        res.counts[what] += 1
        if took > res.slowest_s:
            res.slowest_s, res.slowest_what = took, what
        return result

    def cmd(name: str, args: dict | None = None) -> object:
        return timed(name, "workspace/executeCommand", {"command": name, "arguments": [args or {}]})

    def edit(d: _Doc) -> None:
        d.version += 1
        if d.inserted_at is None:
            line = rnd.randrange(5, d.lines)
            change = {"range": rng_json(line, 0, line, 0), "text": f"    # note {d.version}\n"}
            d.inserted_at = line
        else:
            line, d.inserted_at = d.inserted_at, None
            change = {"range": rng_json(line, 0, line + 1, 0), "text": ""}
        server.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": d.uri, "version": d.version},
                "contentChanges": [change],
            },
        )
        res.counts["didChange"] += 1

    while (elapsed := time.monotonic() - t0) < seconds:
        if elapsed >= next_sample:
            res.samples.append((elapsed, server.rss_kb()))
            if not res.warm_kb and elapsed >= warmup_s:
                res.warm_at, res.warm_kb = res.samples[-1]
            if progress and len(res.samples) % 30 == 0:
                progress(f"{elapsed:.0f} s: {res.samples[-1][1] / 1024:.1f} MiB")
            next_sample += 1.0
        d = rnd.choice(docs)
        edit(d)
        line = rnd.randrange(5, d.lines - 2)
        pos = {"line": line, "character": rnd.randrange(0, 30)}
        td = {"uri": d.uri}
        roll = rnd.random()
        if roll < 0.45:
            ctx = {"triggerKind": 2}
            params = {"textDocument": td, "position": pos, "context": ctx}
            timed("inlineCompletion", "textDocument/inlineCompletion", params)
        elif roll < 0.60:
            params = {"textDocument": td, "position": pos}
            timed("completion", "textDocument/completion", params)
        elif roll < 0.75:
            diag = {"range": rng_json(line, 4, line, 12), "message": f"E{line}: bad", "severity": 1}
            params = {
                "textDocument": td,
                "range": rng_json(line, 0, line, 0),
                "context": {"diagnostics": [diag]},
            }
            got = timed("codeAction", "textDocument/codeAction", params)
            fixes = [a for a in got or [] if isinstance(a, dict) and a.get("kind") == "quickfix"]
            if fixes and rnd.random() < 0.15:
                timed("codeAction/resolve", "codeAction/resolve", fixes[0])
        elif roll < 0.82:
            cmd("ctx.explain", {"uri": d.uri, "range": rng_json(line, 0, line + 2, 0)})
        elif roll < 0.86:
            diag = {
                "range": rng_json(line, 4, line, 12),
                "message": "undefined name",
                "severity": 1,
            }
            cmd("ctx.fixError", {"uri": d.uri, "diagnostic": diag, "apply": False})
        elif roll < 0.90:
            cmd("ctx.showContext")
        elif roll < 0.92:
            cmd("ctx.showPrompt", {"uri": d.uri, "position": pos})
        elif roll < 0.95:
            if pinned and (len(pinned) >= 5 or rnd.random() < 0.5):
                cmd("ctx.removeFile", {"path": pinned.pop(rnd.randrange(len(pinned)))})
            else:
                rel = rnd.choice(files).relative_to(root).as_posix()
                if rel not in pinned:
                    pinned.append(rel)
                cmd("ctx.addFile", {"path": rel})
        elif roll < 0.98:
            server.notify("textDocument/didSave", {"textDocument": td})
            res.counts["didSave"] += 1
        else:  # close and reopen: the server forgets and relearns the document
            server.notify("textDocument/didClose", {"textDocument": td})
            if d.inserted_at is not None:  # the editor reverts the unsaved line
                d.inserted_at = None
            d.version = 1
            server.open(d.path)
            res.counts["didClose+didOpen"] += 1
    res.samples.append((time.monotonic() - t0, server.rss_kb()))
    res.end_kb = res.samples[-1][1]
    res.alive = server.alive()
    return res
