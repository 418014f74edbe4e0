"""Pinned files: workspace files in the context without being open in the editor.

Every completion's view asks for them, so a pinned file is read (and masked) again only
when its stamp (mtime, size, inode) moved, the masked values grew, or it was written too
recently for its stamp to be trusted (`stamps.settled`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.redact import redact, registered_count
from ctx_lsp.text.textkey import LruMemo
from ctx_lsp.workspace.folder import Folder, PathError
from ctx_lsp.workspace.stamps import settled, stat_key

log = logging.getLogger(__name__)

#: Larger pinned files are cut: related-code ranking needs the code, not megabytes.
MAX_PINNED_CHARS = 200_000

#: Read and masked pinned files by (path, stamp, masked values): a few dozen at most.
_read: LruMemo[OpenDoc] = LruMemo(256, max_bytes=64 * MAX_PINNED_CHARS, size=lambda d: len(d.text))


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
        doc = _read_one(path, rel)
        if doc is not None:
            docs.append(doc)
    return docs


def _read_one(path: Path, rel: str) -> OpenDoc | None:
    stamp = stat_key(path)
    key = (path, rel, stamp, registered_count())
    if stamp is not None and (hit := _read.get(key)) is not None:
        return hit
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:MAX_PINNED_CHARS]
        mtime = path.stat().st_mtime
    except OSError as exc:
        log.info("pinned file %s unreadable: %s", rel, exc)
        return None
    doc = OpenDoc(path.as_uri(), rel, "", redact(text), mtime)
    if stamp is not None and settled(stamp[0]) and stat_key(path) == stamp:
        _read.put(key, doc)
    return doc
