"""Pinned files: workspace files in the context without being open in the editor."""

from __future__ import annotations

import logging

from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.redact import redact
from ctx_lsp.workspace.folder import Folder, PathError

log = logging.getLogger(__name__)

#: Larger pinned files are cut: related-code ranking needs the code, not megabytes.
MAX_PINNED_CHARS = 200_000


def read_pinned(folder: Folder) -> list[OpenDoc]:
    docs = []
    for rel in folder.pinned:
        if folder.excluder.reason(rel) is not None:
            continue  # a rule added after the pin still wins
        try:  # a pin from an old session.json, or a file since replaced by a symlink
            path = folder.resolve_path(rel)
        except PathError as exc:
            log.warning("pinned file %s skipped: %s", rel, exc)
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")[:MAX_PINNED_CHARS]
            mtime = path.stat().st_mtime
        except OSError as exc:
            log.info("pinned file %s unreadable: %s", rel, exc)
            continue
        docs.append(OpenDoc(path.as_uri(), rel, "", redact(text), mtime))
    return docs
