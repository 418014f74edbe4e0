"""Commands that inspect: templates, the project tree, doctor."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from ctx_lsp.backends.openai_compat import BackendError
from ctx_lsp.cli.common import FAILED, OK, STATE, USAGE, CliError, Workspace, emit_json
from ctx_lsp.cli.trust import trust_state
from ctx_lsp.config.settings import to_wire
from ctx_lsp.prompting.templates import Template
from ctx_lsp.workspace.tree import list_files, render_tree

#: Most seconds doctor waits for the backend's model list (less when ctx.timeoutS is less).
DOCTOR_TIMEOUT_S = 5.0
#: More seconds for the embedded model, whose first call loads it (1-2 s; more on a busy CPU).
LOCAL_LOAD_S = 60.0


# -- templates -------------------------------------------------------------------------------


def _template_json(t: Template) -> dict[str, Any]:
    return {
        "name": t.name,
        "description": t.description,
        "branches": t.branches,
        "maxTokens": t.max_tokens,
        "source": t.source,
        "placeholders": sorted(t.placeholders()),
    }


async def templates_list(ws: Workspace, args: argparse.Namespace) -> int:
    templates = ws.rt.templates.all()
    if args.json:
        emit_json({"templates": [_template_json(t) for t in templates]})
        return OK
    rows = [("NAME", "BRANCHES", "SOURCE", "DESCRIPTION")]
    rows += [(t.name, t.branches or "", t.source, t.description) for t in templates]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        sys.stdout.write("  ".join([*cells, row[3]]).rstrip() + "\n")
    return OK


def template_file_text(t: Template) -> str:
    """A template in the file format of `.ctx/templates/NAME.md` (copy it there to change it)."""
    front = [f"name: {t.name}", f"# source: {t.source}"]
    if t.description:
        front.append(f"description: {t.description}")
    if t.branches:
        front.append(f"branches: {t.branches}")
    if t.max_tokens:
        front.append(f"max_tokens: {t.max_tokens}")
    return "\n".join(["---", *front, "---", "## system", t.system, "## user", t.user]) + "\n"


async def templates_show(ws: Workspace, args: argparse.Namespace) -> int:
    branch = args.branch if args.branch is not None else ws.folder.git.branch().branch
    try:
        t = ws.rt.templates.get(args.name, branch)
    except KeyError as exc:
        raise CliError(str(exc.args[0]) if exc.args else str(exc), USAGE) from None
    if args.json:
        emit_json({**_template_json(t), "system": t.system, "user": t.user, "text": t.user})
    else:
        sys.stdout.write(template_file_text(t))
    return OK


async def templates_check(ws: Workspace, args: argparse.Namespace) -> int:
    problems = [*ws.config_problems, *ws.rt.templates.check()]
    count = len(ws.rt.templates.all())
    if args.json:
        emit_json({"ok": not problems, "templates": count, "problems": problems})
    elif problems:
        sys.stdout.write("".join(f"{p}\n" for p in problems))
    else:
        sys.stdout.write(f"OK: {count} templates, no problems\n")
    return STATE if problems else OK


# -- tree ------------------------------------------------------------------------------------


async def tree(ws: Workspace, args: argparse.Namespace) -> int:
    excluder = ws.folder.excluder
    files, source, cut = await list_files(
        ws.root, ws.folder.git, lambda rel: excluder.reason(rel) is not None
    )
    text = render_tree(files, root_name=ws.root.name, depth=args.depth)
    if cut:
        text += f"\n(cut at {len(files)} files)"
    if args.json:
        emit_json(
            {
                "root": str(ws.root),
                "source": source,
                "truncated": cut,
                "files": [{"path": p, "size": s} for p, s in files],
                "text": text,
            }
        )
    else:
        sys.stdout.write(text + "\n")
    return OK


# -- doctor ----------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


async def _backend_checks(ws: Workspace) -> list[Check]:
    backend = ws.rt.backend
    where = backend.describe()
    why = ""
    with contextlib.suppress(ImportError):  # which backend answers, and why
        from ctx_lsp.backends.select import select_backend

        why = f"; chosen because {select_backend(ws.settings, ws.rt.env)[1]}"
    wait = min(DOCTOR_TIMEOUT_S, ws.settings.timeout_s)
    if backend.kind == "local":
        wait += LOCAL_LOAD_S  # the first call starts the engine and loads the model
    try:
        await asyncio.wait_for(backend.prepare(), wait)  # the served model, the context size
        models = await asyncio.wait_for(backend.list_models(), wait)
    except TimeoutError:
        late = f"{where}: no answer within {wait:g} s{why}"
        return [Check("backend", False, late), Check("model", False, "not checked")]
    except BackendError as exc:
        failed = Check("backend", False, exc.message + why)
        return [failed, Check("model", False, "not checked")]
    model = backend.model  # ctx.model, or what the server serves when it was left unset
    listed = model in models
    shown = ", ".join(models[:8]) + (", …" if len(models) > 8 else "")
    detail = f"{model} is offered" if listed else f"{model} is not offered (offered: {shown})"
    if backend.context_window:
        detail += f"; its context window is {backend.context_window} tokens"
    checks = [
        Check("backend", True, f"{backend.describe()} answers ({len(models)} models){why}"),
        Check("model", listed, detail),
    ]
    served = getattr(getattr(backend, "engine", None), "served", None)
    if served is not None:  # the embedded model: which file, and how fast it loaded
        size = served.path.stat().st_size / 2**20
        took = backend.load_state.seconds or 0.0
        loaded = f"{served.path} ({size:.0f} MB), loaded in {took:.1f} s"
        checks.append(Check("model file", True, loaded))
    return checks


def _git_check(ws: Workspace) -> Check:
    exe = shutil.which("git")
    if exe is None:
        return Check("git", False, "git is not installed (not found on PATH)")
    try:
        version = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("git", False, f"{exe} does not run: {exc}")
    branch = ws.folder.git.branch()
    where = f"repository on {branch.label()}" if branch.has_repo else "not a git repository"
    return Check("git", True, f"{version} ({where})")


def _writable_check(ws: Workspace) -> Check:
    """Probe the nearest existing folder on the way to the scope folder, creating nothing."""
    target = ws.folder.store.dir
    probe_dir = next((p for p in (target, *target.parents) if p.is_dir()), None)
    if probe_dir is None:
        return Check(".ctx", False, f"no folder on the way to {target} exists")
    try:
        fd, name = tempfile.mkstemp(prefix=".ctx-doctor-", dir=probe_dir)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return Check(".ctx", False, f"{probe_dir} is not writable ({exc.strerror or exc})")
    state = "exists" if ws.folder.store.ctx_dir.is_dir() else "will be created on first write"
    return Check(".ctx", True, f"{ws.folder.store.ctx_dir} is writable ({state})")


async def doctor(ws: Workspace, args: argparse.Namespace) -> int:
    settings = to_wire(ws.settings)
    checks = [
        Check(
            "config",
            not ws.config_problems,
            "; ".join(ws.config_problems) or "settings files read without problems",
        )
    ]
    template_problems = ws.rt.templates.check()
    checks.append(
        Check(
            "templates",
            not template_problems,
            "; ".join(template_problems) or f"{len(ws.rt.templates.all())} templates",
        )
    )
    checks += await _backend_checks(ws)
    checks.append(_git_check(ws))
    checks.append(_writable_check(ws))
    damaged = ws.state_problems()
    checks.append(Check("state", not damaged, "; ".join(damaged) or ".ctx/ files are readable"))
    state, detail = trust_state(ws)
    checks.append(Check("trust", True, f"{state}: {detail}"))
    ok = all(c.ok for c in checks)
    if args.json:
        emit_json(
            {
                "ok": ok,
                "root": str(ws.root),
                "settings": {
                    k: {"value": v, "origin": ws.rt.origins.get(k, "default")}
                    for k, v in settings.items()
                },
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
            }
        )
        return OK if ok else FAILED
    out = [f"Workspace: {ws.root}", "Settings in force:"]
    width = max(len(k) for k in settings)
    for key, value in settings.items():
        shown = "(empty)" if value in ("", []) else value
        out.append(f"  {key.ljust(width)}  {shown!s:<24}  {ws.rt.origins.get(key, 'default')}")
    out.append("Checks:")
    out += [f"  {'OK  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in checks]
    sys.stdout.write("\n".join(out) + "\n")
    return OK if ok else FAILED
