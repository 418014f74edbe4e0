"""The one read-only view of a document that prompting, tasks and the CLI share.

An open editor buffer, a pinned file or a file read by the CLI all become an `OpenDoc`; the
live, editable buffer is :class:`ctx_lsp.text.documents.Document`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Documents longer than this never enter a prompt as related code (nor get masked whole).
MAX_RELATED_CHARS = 1_000_000


@dataclass(frozen=True)
class OpenDoc:
    uri: str
    path: str
    language_id: str
    text: str
    modified: float
