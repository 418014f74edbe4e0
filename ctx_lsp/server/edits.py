"""From a job's answer to what the editor applies: fix and test edits, saved answers."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ctx_lsp.assist import tasks
from ctx_lsp.assist.testgen import plan_tests
from ctx_lsp.prompting.regions import Region, enclosing_region
from ctx_lsp.server import CtxServer, uri_path
from ctx_lsp.server.progress import Progress
from ctx_lsp.text.documents import Document, DocumentError
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.workspace.folder import Folder

#: Answers kept under .ctx/answers/ per user; older ones are removed.
MAX_ANSWERS = 50


@dataclass
class Target:
    """An open document an action or command is about."""

    uri: str
    doc: Document
    folder: Folder
    rel: str

    def open_doc(self) -> OpenDoc:
        return OpenDoc(self.uri, self.rel, self.doc.language_id, self.doc.text, self.doc.modified)


def target(ls: CtxServer, uri: Any) -> Target:
    if not isinstance(uri, str):
        raise JsonRpcInvalidParams("'uri' must be a document URI")
    doc = ls.documents.get(uri)
    if doc is None:
        raise JsonRpcInvalidParams(f"{uri} is not open in the editor")
    path = uri_path(uri)
    folder = ls.folder_for_uri(uri)
    if path is None or folder is None:
        raise JsonRpcInvalidParams(f"{uri} is outside the workspace folders")
    rel = folder.relpath(path)
    if (why := folder.excluder.reason(rel)) is not None:
        raise JsonRpcInvalidParams(f"{rel} is excluded from the context: {why}")
    return Target(uri, doc, folder, rel)


def offsets(doc: Document, rng: types.Range) -> tuple[int, int]:
    try:
        start = doc.offset_at(rng.start.line, rng.start.character)
        end = doc.offset_at(rng.end.line, rng.end.character)
    except DocumentError as exc:
        raise JsonRpcInvalidParams(f"bad range: {exc}") from exc
    return (start, end) if start <= end else (end, start)


def region_for(t: Target, rng: types.Range) -> Region:
    start, end = offsets(t.doc, rng)
    doc = t.open_doc()
    if not doc.text[start:end].strip():
        end = start  # a blank selection means "the code around the cursor"
    return enclosing_region(doc, start, end)


async def view(ls: CtxServer, folder: Folder) -> tasks.View:
    return await ls.view(folder)


def lsp_range(doc: Document, start: int, end: int) -> types.Range:
    (sl, sc), (el, ec) = doc.position_at(start), doc.position_at(end)
    return types.Range(start=types.Position(sl, sc), end=types.Position(el, ec))


def diagnostic_span(doc: Document, diagnostic: types.Diagnostic) -> tuple[int, int]:
    """Whole lines the diagnostic covers; a range past the end is stale."""
    first, last = diagnostic.range.start.line, diagnostic.range.end.line
    if last > first and diagnostic.range.end.character == 0:
        last -= 1  # a range ending at column 0 does not touch that line
    if (
        first < 0
        or first >= doc.line_count
        or (first == doc.line_count - 1 and not doc.line(first))
    ):
        raise tasks.TaskError(
            f"the diagnostic is out of date: line {first + 1} is past the end of the file "
            f"({doc.line_count} lines); run the linter again"
        )
    last = min(max(last, first), doc.line_count - 1)
    start = doc.offset_at(first, 0)
    end = doc.offset_at(last + 1, 0) if last + 1 < doc.line_count else doc.size
    return start, end


async def fix_edit(
    ls: CtxServer, t: Target, diagnostic: types.Diagnostic, progress: Progress | None = None
) -> tuple[types.WorkspaceEdit, str]:
    span = diagnostic_span(t.doc, diagnostic)
    version = t.doc.version
    a = ls.assistant(t.folder)
    on_delta = progress.stream if progress else None
    v = await view(ls, t.folder)
    fixed = await tasks.fix(a, v, t.open_doc(), span, diagnostic.message, on_delta)
    if t.doc.version != version:
        raise tasks.TaskError("the file changed while the fix was being written; try again")
    edit = types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=t.uri, version=version),
        edits=[types.TextEdit(range=lsp_range(t.doc, *span), new_text=fixed)],
    )
    return types.WorkspaceEdit(document_changes=[edit]), fixed


async def tests_edit(
    ls: CtxServer, t: Target, rng: types.Range, progress: Progress | None = None
) -> tuple[types.WorkspaceEdit, str, Path]:
    region = region_for(t, rng)
    # looks through the project's test folders: off the event loop
    plan = await asyncio.to_thread(plan_tests, t.folder.root, t.rel, t.doc.language_id)
    a = ls.assistant(t.folder)
    on_delta = progress.stream if progress else None
    code = await tasks.tests(a, await view(ls, t.folder), t.open_doc(), region, plan, on_delta)
    path = t.folder.root / plan.test_path
    uri = path.as_uri()
    open_test = ls.documents.get(uri)
    changes: list[Any] = []
    if open_test is not None or path.exists():
        existing = (
            open_test.text if open_test else path.read_text(encoding="utf-8", errors="replace")
        )
        # a file on disk is counted in the negotiated encoding too
        at_end = open_test or Document(uri, existing, encoding=ls.documents.encoding)
        end = at_end.position_at(at_end.size)
        sep = "" if not existing else ("\n" if existing.endswith("\n") else "\n\n")
        new_text = sep + ("\n" if existing.strip() else "") + code
        version = open_test.version if open_test else None
    else:
        changes.append(
            types.CreateFile(uri=uri, options=types.CreateFileOptions(ignore_if_exists=True))
        )
        end, new_text, version = (0, 0), code, None
    at = types.Range(start=types.Position(*end), end=types.Position(*end))
    changes.append(
        types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
            edits=[types.TextEdit(range=at, new_text=new_text)],
        )
    )
    return types.WorkspaceEdit(document_changes=changes), code, path


def save_answer(folder: Folder, title: str, text: str) -> Path:
    """Long answers also go to .ctx/answers/ as Markdown (bounded: oldest removed).

    Each in a folder of its own named by the time (they sort in time order, and two answers on
    the same code keep apart), under a short name an editor's tab shows: "explain x.py 3-9.md".
    """
    name = re.sub(r'[\x00-\x1f<>:"/\\|?*]+', "-", title).strip(" .-")[:80] or "answer"
    now = time.time_ns()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now / 1e9)) + f"-{now % 10**9:09d}"
    path = folder.store.write_text_atomic(f"answers/{stamp}/{name}.md", text)
    # earlier versions kept answers as files in answers/ itself: named by the time too
    entries = sorted(p for p in path.parent.parent.iterdir() if not p.name.startswith("."))
    for old in entries[:-MAX_ANSWERS]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    return path


async def show(ls: CtxServer, path: Path) -> bool:
    window = ls.client_capabilities.window
    if not (window and window.show_document and window.show_document.support):
        return False
    try:
        result = await ls.window_show_document_async(
            types.ShowDocumentParams(uri=path.as_uri(), take_focus=True)
        )
    except Exception:
        return False
    return bool(result and result.success)
