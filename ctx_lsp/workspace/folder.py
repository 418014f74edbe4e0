"""One workspace folder: its root, git repository, `.ctx/` store, session and history.

Each folder of a multi-root workspace has its own; the server keeps them by root.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ctx_lsp.config.settings import Settings
from ctx_lsp.store.cache import ResponseCache
from ctx_lsp.store.ctxdir import CtxStore, scope_part
from ctx_lsp.store.history import History
from ctx_lsp.store.session import FileRecord, Session, SessionStore
from ctx_lsp.workspace.exclusion import Excluder
from ctx_lsp.workspace.git import GitRepo

log = logging.getLogger(__name__)


class PathError(ValueError):
    """A path argument that points outside the workspace or cannot be used."""


class Folder:
    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root.resolve()
        self.git = GitRepo(self.root, timeout_s=10.0)
        self.excluder = Excluder(self.root)
        self.user = settings.effective_user()
        self.branch_sessions = settings.branch_sessions
        self._open_scope(self._scope())

    # -- scope: per user, optionally per branch --------------------------------
    def _scope(self) -> tuple[str, ...]:
        scope: tuple[str, ...] = ("users", scope_part(self.user))
        if self.branch_sessions:
            branch = self.git.branch()
            scope += ("branches", scope_part(branch.branch or branch.head or "none"))
        return scope

    def _open_scope(self, scope: tuple[str, ...]) -> None:
        self.scope = scope
        self.store = CtxStore(self.root, scope)
        self.store.sweep_temp_files()
        self.history = History(self.store)
        self.history.refresh()  # reads the file, keeping only its recent part in memory
        self.sessions = SessionStore(self.store)
        self.session: Session = self.sessions.load()
        # per scope, like the history: users sharing a folder never see each other's answers
        self.cache = ResponseCache(
            self.store.path("cache/responses.sqlite"),
            ensure=self.store.ensure,
            quarantine=self.store.quarantine,
        )

    def refresh_scope(self, settings: Settings) -> bool:
        """Switch session and history when the user, or the branch (if per-branch), changed."""
        self.user = settings.effective_user()
        self.branch_sessions = settings.branch_sessions
        scope = self._scope()
        if scope == self.scope:
            return False
        # keep what the old scope had; a scope never used (start-up defaults) leaves no trace
        if (
            self.session.pinned
            or self.session.open_files
            or self.store.path("session.json").exists()
        ):
            self.save_session()
        self._open_scope(scope)
        return True

    # -- paths -----------------------------------------------------------------
    def contains(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.root)
        except ValueError:
            return False
        return True

    def relpath(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def resolve_path(self, arg: str) -> Path:
        """A user-given path as a file inside this folder; refuses `..`, absolute and
        symlinked paths that lead out of the workspace."""
        if not isinstance(arg, str) or not arg.strip():
            raise PathError("a file path is required")
        candidate = Path(arg).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = candidate.resolve()
        if not self.contains(resolved):
            raise PathError(f"{arg} is outside the workspace folder {self.root}")
        return resolved

    # -- pins ------------------------------------------------------------------
    @property
    def pinned(self) -> list[str]:
        return self.session.pinned

    def pin(self, rel: str) -> bool:
        if rel in self.session.pinned:
            return False
        self.session.pinned.append(rel)
        return True

    def unpin(self, rel: str) -> bool:
        if rel not in self.session.pinned:
            return False
        self.session.pinned.remove(rel)
        return True

    # -- session ---------------------------------------------------------------
    def update_session(
        self, open_files: list[FileRecord], env_names: list[str], branch: str | None
    ) -> None:
        self.session.open_files = open_files
        self.session.env_names = env_names
        self.session.branch = branch
        self.session.last_active = time.time()

    def save_session(self) -> None:
        try:
            self.sessions.save(self.session)
        except OSError as exc:
            log.error("cannot save the session in %s: %s", self.store.dir, exc)

    def clear_session(self) -> None:
        self.sessions.clear()
        self.session = Session()
