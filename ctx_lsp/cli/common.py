"""What every command shares: the workspace, exit codes, output, files named on the command
line, the spinner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from ctx_lsp.assist.tasks import View
from ctx_lsp.config.settings import Layer
from ctx_lsp.runtime import Runtime
from ctx_lsp.store.ctxdir import CORRUPT_DIR, CTX_DIR
from ctx_lsp.text.documents import Document, Encoding
from ctx_lsp.text.languages import language_of
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.workspace.folder import Folder, PathError
from ctx_lsp.workspace.pins import MAX_PINNED_CHARS

# Exit codes (documented in `ctx-lsp --help`).
OK = 0
FAILED = 1  # the task could not be done: nothing to commit, nothing to summarize, a check failed
USAGE = 2  # bad arguments: unknown template, missing/excluded/outside file, bad range
BACKEND = 3  # the model backend failed: no key, unreachable, rejected, timed out
STATE = 4  # a damaged .ctx file was moved aside (the command still ran); config problems
INTERRUPTED = 130

#: Files from the last editor session read into a CLI prompt, most recently active first.
SESSION_FILES = 10


class CliError(Exception):
    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def find_root(start: Path) -> Path:
    """The nearest ancestor of `start` (itself included) holding `.ctx` or `.git`, else start."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / CTX_DIR).is_dir() or (candidate / ".git").exists():
            return candidate
    return start


def workspace_root(arg: Path | None, cwd: Path) -> Path:
    """--root when given (relative to cwd), else `find_root(cwd)`."""
    if arg is None:
        return find_root(cwd)
    root = arg if arg.is_absolute() else cwd / arg
    if not root.is_dir():
        raise CliError(f"--root {arg}: not a folder", USAGE)
    return root.resolve()


def moved_aside(root: Path) -> set[str]:
    """What `.ctx/corrupt/` holds: damaged files land there when they are moved aside."""
    try:
        return {p.name for p in (root / CTX_DIR / CORRUPT_DIR).iterdir()}
    except OSError:
        return set()


class Workspace:
    """The CLI's view of one workspace folder, on the same Runtime as the server."""

    def __init__(
        self, root: Path, env: Mapping[str, str], cwd: Path, layers: tuple[Layer, ...] = ()
    ) -> None:
        self.cwd = cwd
        self.root = root
        self.rt = Runtime(env)
        self.folder: Folder = self.rt.add_folder(self.root)
        self._layers = layers
        self.config_problems = self.rt.load(*layers)

    def reload(self) -> None:
        """Settings and templates again (after the trust in the workspace changed)."""
        self.config_problems = self.rt.load(*self._layers)

    @property
    def settings(self):
        return self.rt.config(self.folder).settings

    def state_problems(self) -> list[str]:
        return self.rt.store_problems()

    # -- files named on the command line ----------------------------------------------------
    def rel(self, arg: str) -> str:
        """A path argument (relative to the current directory) as a workspace-relative path
        of an existing file that may enter the context; CliError(USAGE) otherwise."""
        candidate = Path(arg).expanduser()
        if not candidate.is_absolute():
            candidate = self.cwd / candidate
        try:
            path = self.folder.resolve_path(str(candidate))
        except PathError as exc:
            raise CliError(str(exc).replace(str(candidate), arg), USAGE) from None
        rel = self.folder.relpath(path)
        if not path.is_file():
            raise CliError(f"{arg}: no such file", USAGE)
        if (why := self.folder.excluder.reason(rel)) is not None:
            raise CliError(f"refused {rel}: it never enters the context because {why}", USAGE)
        return rel

    def document(self, rel: str) -> Document:
        path = self.root / rel
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CliError(f"{rel}: cannot read ({exc.strerror or exc})", USAGE) from None
        doc = Document(path.as_uri(), text, language_of(rel), 0, Encoding.UTF32)
        with contextlib.suppress(OSError):
            doc.modified = path.stat().st_mtime
        return doc

    def view(self, named: list[tuple[str, Document]]) -> View:
        """Files named on the command line, then the files open in the last editor session
        (read from disk), then pinned files (added by the Runtime), and the summary."""
        files = list(named)
        seen = {rel for rel, _ in files}
        recent = sorted(self.folder.session.open_files, key=lambda f: f.last_active, reverse=True)
        for record in recent[:SESSION_FILES]:
            rel = record.path
            if rel in seen or self.folder.excluder.reason(rel) is not None:
                continue
            path = self.root / rel
            if not path.is_file():
                continue
            try:
                doc = self.document(rel)
            except CliError:
                continue
            if len(doc.text) > MAX_PINNED_CHARS:
                continue
            seen.add(rel)
            files.append((rel, doc))
        docs = [OpenDoc(d.uri, rel, d.language_id, d.text, d.modified) for rel, d in files]
        return self.rt.view(self.folder, docs, [(rel, d, False) for rel, d in files])

    def open_doc(self, rel: str, doc: Document) -> OpenDoc:
        return OpenDoc(doc.uri, rel, doc.language_id, doc.text, doc.modified)

    async def aclose(self) -> None:
        await self.rt.aclose()


# -- output ----------------------------------------------------------------------------------


def emit_json(obj: Any, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    out.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    out.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"ctx-lsp: warning: {message}\n")
    sys.stderr.flush()


def note(message: str) -> None:
    sys.stderr.write(f"ctx-lsp: {message}\n")
    sys.stderr.flush()


class Spinner:
    """A spinner on stderr while the model works, only when stderr is a terminal. Stops for
    good at the first streamed text (which goes to stdout) or at the end."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = _isatty(self.stream) and os.environ.get("TERM") != "dumb"
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Spinner:
        if self.enabled:
            self._task = asyncio.ensure_future(self._spin())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    async def _spin(self) -> None:
        i = 0
        while True:
            frame = self.FRAMES[i % len(self.FRAMES)]
            self.stream.write(f"\r{frame} {self.label}")
            self.stream.flush()
            i += 1
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self.stream.write("\r\033[K")
            self.stream.flush()


class Streamer:
    """on_delta for streamed answers: text to stdout as it arrives."""

    def __init__(self, spinner: Spinner | None = None, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.spinner = spinner
        self.text = ""

    def __call__(self, delta: str) -> None:
        if self.spinner is not None:
            self.spinner.stop()
        self.out.write(delta)
        self.out.flush()
        self.text += delta

    def finish(self) -> None:
        if self.text and not self.text.endswith("\n"):
            self.out.write("\n")
            self.out.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
