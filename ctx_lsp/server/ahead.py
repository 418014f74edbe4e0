"""Work done ahead of the first suggestion in a document: what its completion prompts compute
once per version of the file (its imports found and resolved against the workspace, 2 to 5 ms
for a large file), so that the first request at a new place pays only for that place.

Done when the user has stopped opening and typing for `QUIET_S`, one document at a time on
the prompt builder's thread (a request that comes meanwhile waits for one document at most),
and again for every open document once a folder's code index is built (what the imports
resolve to changed)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ctx_lsp.assist.assistant import ahead
from ctx_lsp.text.opendoc import MAX_RELATED_CHARS, OpenDoc

if TYPE_CHECKING:
    from ctx_lsp.server import CtxServer

log = logging.getLogger(__name__)

#: Seconds without an open or an edit before the work starts.
QUIET_S = 0.25
#: Documents remembered for it: the most recent ones (the file memo holds 64).
MAX_PENDING = 48


class Ahead:
    def __init__(self, ls: CtxServer) -> None:
        self._ls = ls
        self._pending: dict[str, None] = {}  # uris, the latest last
        #: set from an open or an edit until the quiet time after the last one has passed
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0  # loop time of the last open or edit
        self._task: asyncio.Task[None] | None = None

    def soon(self, *uris: str) -> None:
        """After an open or an edit of these documents (on the event loop, per keystroke:
        one timer for a whole burst, not one per edit)."""
        for uri in uris:
            self._pending.pop(uri, None)
            self._pending[uri] = None
        while len(self._pending) > MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        if self._handle is None:
            self._handle = loop.call_later(QUIET_S, self._start)

    def all_open(self) -> None:
        """Every open document again (an index was built)."""
        self.soon(*(d.uri for d in self._ls.documents))

    def busy(self) -> bool:
        return bool(self._pending) or (self._task is not None and not self._task.done())

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if (left := self._last + QUIET_S - loop.time()) > 0:
            self._handle = loop.call_later(left, self._start)  # edited meanwhile
            return
        self._handle = None
        if self._task is None or self._task.done():
            self._task = self._ls.run_task(self._run(), "work ahead of suggestions")

    async def _run(self) -> None:
        ls = self._ls
        while self._pending:
            if self._handle is not None:
                return  # typing again: `_start` comes back when it stops
            uri = next(reversed(self._pending))  # the latest first: the likeliest to be asked
            del self._pending[uri]
            doc = ls.documents.get(uri)
            if doc is None or len(doc.text) > MAX_RELATED_CHARS:
                continue
            owner, rel = ls.place(uri)
            folder = owner or ls.default_folder()
            index = ls.rt.indexes.get(folder.root)
            if folder.excluder.reason(rel) is not None or (index is not None and not index.ready):
                continue  # never read; or done for all once the index is built
            current = OpenDoc(uri, rel, doc.language_id, doc.text, doc.modified)
            try:
                assistant = ls.assistant(folder)
                view = await ls.view(folder, refresh=False)
                await ahead(lambda a=assistant, c=current, v=view: a.prepare(c, v.docs))
            except Exception as exc:  # the first suggestion does it then, nothing is lost
                log.warning("preparing suggestions for %s failed: %r", rel, exc)
