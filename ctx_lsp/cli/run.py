"""Run one parsed command: build the workspace, call the handler, turn failures into a
message on stderr and an exit code (never a traceback for a user error)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from ctx_lsp.assist.tasks import TaskError
from ctx_lsp.backends.openai_compat import BackendError
from ctx_lsp.cli.common import (
    BACKEND,
    FAILED,
    INTERRUPTED,
    OK,
    STATE,
    USAGE,
    CliError,
    Workspace,
    moved_aside,
    note,
    warn,
    workspace_root,
)
from ctx_lsp.cli.trust import held_back_note
from ctx_lsp.store.ctxdir import CTX_DIR
from ctx_lsp.workspace.folder import PathError
from ctx_lsp.workspace.git import GitError
from ctx_lsp.workspace.merge import MergeError

#: Commands that report configuration problems themselves (as their result, not warnings).
REPORTS_CONFIG = {"info:templates_check", "info:doctor"}
#: Commands that say themselves what the workspace's files may decide.
REPORTS_TRUST = {"info:doctor", "trust:trust", "trust:untrust"}


def _handler(name: str):
    module, _, func = name.partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), func)


async def _run(args: argparse.Namespace, env: Mapping[str, str], cwd: Path) -> int:
    root = workspace_root(getattr(args, "root", None), cwd)
    before = moved_aside(root)
    # no repository and no .ctx/ found: the current folder stands in, and its .ctx/ is new
    stand_in = getattr(args, "root", None) is None and not (
        (root / ".git").exists() or (root / CTX_DIR).is_dir()
    )
    ws = Workspace(root, env, cwd)
    try:
        if args.handler not in REPORTS_CONFIG:
            for problem in ws.config_problems:
                warn(problem)
        if args.handler not in REPORTS_TRUST and (held := held_back_note(ws)) is not None:
            warn(held)
        code = await _handler(args.handler)(ws, args)
    finally:
        for problem in ws.state_problems():
            warn(problem)
        await ws.aclose()
        if stand_in and (root / CTX_DIR).is_dir():
            note(f"no repository here; keeping state in {root / CTX_DIR}")
        # A file (or damaged lines of one) moved aside is state lost: the exit code says so
        # although the command ran. What could not be moved is a warning only, or every later
        # command would fail too.
        damaged = bool(moved_aside(root) - before)
    return STATE if code == OK and damaged else code


def run(
    args: argparse.Namespace, env: Mapping[str, str], cwd: Path, out: IO[str], err: IO[str]
) -> int:
    try:
        code = asyncio.run(_run(args, env, cwd))
    except CliError as exc:
        return _fail(err, exc.message, exc.code)
    except TaskError as exc:
        return _fail(err, str(exc), FAILED)
    except BackendError as exc:
        return _fail(err, exc.message, BACKEND)
    except PathError as exc:
        return _fail(err, str(exc), USAGE)
    except MergeError as exc:
        return _fail(err, str(exc), STATE if exc.damaged else USAGE)
    except GitError as exc:
        return _fail(err, str(exc), FAILED)
    except KeyboardInterrupt:
        return _fail(err, "interrupted", INTERRUPTED)
    except BrokenPipeError:  # `ctx-lsp history show | head`: the reader has had enough
        with contextlib.suppress(OSError):  # no second error when Python flushes at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return OK
    except OSError as exc:  # a .ctx/ that cannot be written, a full disk...
        return _fail(err, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), STATE)
    return code


def _fail(err: IO[str], message: str, code: int) -> int:
    err.write(f"ctx-lsp: error: {message}\n")
    err.flush()
    return code
