"""What the server and the CLI share: settings from every layer, the template library
(built-ins, config files, `.ctx/templates/`, plugins), the backend, and the folders."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ctx_lsp.assist.assistant import Assistant, backend_config
from ctx_lsp.assist.tasks import View
from ctx_lsp.backends.openai_compat import Backend
from ctx_lsp.config.files import read_config, user_config_path, workspace_config_path
from ctx_lsp.config.settings import Layer, Settings, resolve
from ctx_lsp.plugins import ContextRequest, PluginManager
from ctx_lsp.prompting.templates import TemplateError, TemplateLibrary, parse_template
from ctx_lsp.text.opendoc import MAX_RELATED_CHARS, OpenDoc
from ctx_lsp.text.redact import redact, register_secret, registered_count
from ctx_lsp.workspace.context import prompt_summary, snapshot
from ctx_lsp.workspace.exclusion import ANSWER_TTL_S
from ctx_lsp.workspace.folder import Folder
from ctx_lsp.workspace.pins import read_pinned

log = logging.getLogger(__name__)

#: Open files larger than this are not offered as related code: generated files and data
#: dumps, which would cost masking and indexing on every request for little help.


#: A folder changed this recently (ns) may change again within the same mtime tick.
_RACY_NS = 2_000_000_000


def _mtime_ns(path: Path) -> int:
    """The modification time, -1 for a missing file (a stamp entry either way)."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def templates_from_tables(tables: Mapping[str, Any], source: str) -> tuple[list[Any], list[str]]:
    """`[templates.NAME]` tables of a config file: `system`, `user`, optional `description`,
    `branches`, `max_tokens`."""
    out, problems = [], []
    section = tables.get("templates", {})
    if not isinstance(section, dict):
        return [], [f"{source}: [templates] must be a table"]
    for name, spec in section.items():
        if not isinstance(spec, dict):
            problems.append(f"{source}: templates.{name} must be a table")
            continue
        front = [f"{k}: {spec[k]}" for k in ("description", "branches", "max_tokens") if k in spec]
        text = "---\n" + "\n".join([f"name: {name}", *front]) + "\n---\n"
        text += f"## system\n{spec.get('system', '')}\n## user\n{spec.get('user', '')}\n"
        try:
            out.append(parse_template(text, name, f"{source} [templates.{name}]"))
        except TemplateError as exc:
            problems.append(str(exc))
    return out, problems


class Runtime:
    def __init__(self, env: Mapping[str, str], plugins: PluginManager | None = None) -> None:
        self.env = dict(env)
        self.folders: dict[Path, Folder] = {}
        self.settings = Settings()
        self.origins: dict[str, str] = {}
        self.templates = TemplateLibrary.builtin()
        if plugins is None:
            plugins = PluginManager()
            plugins.load()
        self.plugins = plugins
        self.extra_templates: list[Any] = []  # from plugins, asked again on every load()
        self._backend: Backend | None = None
        self._backend_settings: Settings | None = None  # the settings it was chosen for
        self._stamp: tuple[tuple[str, int], ...] = ()
        self._listings: dict[Path, tuple[int, list[Path]]] = {}  # template folder → its files
        #: folder → (when, values registered, open documents, those readable, masked)
        self._readable: dict[Path, tuple[float, int, list[OpenDoc], list[OpenDoc]]] = {}

    # -- settings and templates --------------------------------------------------
    def config_files(self) -> list[Path]:
        """Files whose change means settings or templates must be read again."""
        user = user_config_path()
        dirs = [user.parent / "templates"] + [r / ".ctx" / "templates" for r in self.folders]
        files = [user] + [workspace_config_path(r) for r in self.folders]
        for d in dirs:
            files.append(d)
            files += self._templates_in(d, _mtime_ns(d))
        return files

    def _templates_in(self, folder: Path, mtime_ns: int) -> list[Path]:
        """The `*.md` files of a template folder, listed again only when the folder's mtime
        (which adding, removing or renaming a file changes) moved or is too recent to trust."""
        if mtime_ns < 0:
            return []
        cached = self._listings.get(folder)
        if cached is not None and cached[0] == mtime_ns:
            return cached[1]
        found = sorted(folder.glob("*.md"))
        if time.time_ns() - mtime_ns > _RACY_NS:
            self._listings[folder] = (mtime_ns, found)
        return found

    def _config_stamp(self) -> tuple[tuple[str, int], ...]:
        return tuple((str(path), _mtime_ns(path)) for path in self.config_files())

    @property
    def config_stamp(self) -> tuple[tuple[str, int], ...]:
        """The config files' state when last loaded."""
        return self._stamp

    def config_changed(self) -> bool:
        """A few stats: lets a running server pick up edited config and templates."""
        return self._config_stamp() != self._stamp

    def load(self, *client_layers: Layer) -> list[str]:
        """Re-read every layer (lowest first) and the templates; returns the problems."""
        self._stamp = self._config_stamp()
        layers: list[Layer] = []
        problems: list[str] = []
        templates = TemplateLibrary.builtin()
        self.extra_templates = self.plugins.templates()
        templates.add_all(self.extra_templates)
        sources = [(user_config_path(), "user config", user_config_path().parent / "templates")]
        for root in self.folders:
            sources.append(
                (workspace_config_path(root), "workspace config", root / ".ctx" / "templates")
            )
        for path, label, template_dir in sources:
            layer, tables, errs = read_config(path, label)
            layers.append(layer)
            problems += errs
            found, errs = templates_from_tables(tables, str(path))
            templates.add_all(found)
            problems += errs
            problems += templates.load_directory(template_dir, label)
        layers += client_layers
        resolved = resolve(layers)
        self.settings, self.origins = resolved.settings, resolved.origins
        # the key in use is masked wherever it might appear, logs included, whatever its shape
        register_secret(self.env.get(self.settings.api_key_env))
        self.templates = templates
        for folder in self.folders.values():
            folder.refresh_scope(self.settings)
        return problems + resolved.problems + self.plugins.take_problems()

    # -- folders -----------------------------------------------------------------
    def add_folder(self, root: Path) -> Folder:
        root = root.resolve()
        if root not in self.folders:
            self.folders[root] = Folder(root, self.settings)
        return self.folders[root]

    def folder_for_path(self, path: Path) -> Folder | None:
        best: Folder | None = None
        for folder in self.folders.values():
            if folder.contains(path) and (
                best is None or len(folder.root.parts) > len(best.root.parts)
            ):
                best = folder
        return best

    def store_problems(self) -> list[str]:
        problems: list[str] = []
        for folder in self.folders.values():
            problems += folder.store.take_problems()
            problems += folder.cache.problems
            folder.cache.problems.clear()
        return problems

    # -- AI ----------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """One backend for the settings in force; a new one when they change.

        Which one (OpenAI-compatible, embedded local model, or none) and why:
        `local_backend.select_backend`."""
        from ctx_lsp.backends.local import backend_identity, make_backend, select_backend

        if self._backend is not None and self._backend_settings is self.settings:
            return self._backend  # settings are replaced, never changed, when they change
        kind, reason = select_backend(self.settings, self.env)
        config = backend_config(self.settings)
        identity = backend_identity(kind, config, self.settings)
        if self._backend is None or getattr(self, "_backend_identity", None) != identity:
            log.info("backend: %s (%s)", kind, reason)
            self._backend = make_backend(kind, config, self.settings, self.env)
            self._backend_identity = identity
            preload = getattr(self._backend, "preload", None)
            if preload is not None:
                preload()  # the local model starts loading now, on its own thread
        # with none configured, ask again next time: the local extra may be installed meanwhile
        self._backend_settings = self.settings if kind != "none" else None
        return self._backend

    def assistant(self, folder: Folder) -> Assistant:
        return Assistant(
            folder, self.settings, self.backend, self.templates, folder.cache, self.env
        )

    def _readable_masked(self, folder: Folder, open_docs: list[OpenDoc]) -> list[OpenDoc]:
        """The open documents that may be read into prompts, masked.

        Masked before ranking: heads and snippets are cut from these texts, and a cut secret
        would no longer match its pattern. Every completion asks again with the same documents,
        so the answer is kept as long as exclusion answers are (`ANSWER_TTL_S`), for documents
        equal to these (a text compares by identity first)."""
        now = time.monotonic()
        memo = self._readable.get(folder.root)
        if (
            memo is not None
            and now - memo[0] < ANSWER_TTL_S
            and memo[1] == registered_count()
            and memo[2] == open_docs
        ):
            return list(memo[3])
        docs = [
            d if (masked := redact(d.text)) is d.text else replace(d, text=masked)
            for d in open_docs
            if folder.excluder.reason(d.path) is None and len(d.text) <= MAX_RELATED_CHARS
        ]
        self._readable[folder.root] = (now, registered_count(), list(open_docs), docs)
        return list(docs)

    def view(
        self,
        folder: Folder,
        open_docs: list[OpenDoc],
        documents: list[Any],
        kind: str = "prompt",
        file: str | None = None,
    ) -> View:
        """Open documents (minus excluded files) plus pinned files, and the summary with
        the plugins' context after it.

        `documents` are (rel, Document, unsaved) triples for the summary."""
        docs = self._readable_masked(folder, open_docs)
        paths = {d.path for d in docs}
        docs += [d for d in read_pinned(folder) if d.path not in paths]
        snap = snapshot(folder, documents, self.settings, self.env)
        request = ContextRequest(folder.root, snap.branch.branch, file, kind)
        summary = "\n\n".join([prompt_summary(snap), *self.plugins.context(request)])
        return View(docs, summary)
