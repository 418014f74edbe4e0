"""What the server and the CLI share: settings from every layer, the template library
(built-ins, config files, `.ctx/templates/`, plugins), the backend, and the folders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ctx_lsp.assist.assistant import Assistant, backend_config
from ctx_lsp.assist.tasks import View
from ctx_lsp.backends.openai_compat import Backend
from ctx_lsp.config.files import read_config, user_config_path, workspace_config_path
from ctx_lsp.config.settings import Layer, Settings, resolve
from ctx_lsp.config.trust import HeldBack, TrustStore, fingerprint, split_layer
from ctx_lsp.plugins import ContextRequest, PluginManager
from ctx_lsp.prompting.index.workspace import WorkspaceIndex
from ctx_lsp.prompting.templates import TemplateError, TemplateLibrary, parse_template
from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.text.opendoc import MAX_RELATED_CHARS, OpenDoc
from ctx_lsp.text.redact import redact, register_secret, registered_count
from ctx_lsp.workspace.context import prompt_summary, snapshot
from ctx_lsp.workspace.exclusion import ANSWER_TTL_S
from ctx_lsp.workspace.folder import Folder
from ctx_lsp.workspace.pins import read_pinned
from ctx_lsp.workspace.stamps import mtime_ns, settled

log = logging.getLogger(__name__)

#: A folder changed this recently (ns) may change again within the same mtime tick.


def close_later(backend: Backend) -> None:
    """Close a backend's HTTP client once the calls it still serves end: on the running loop
    when there is one, else now."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        with contextlib.suppress(Exception):
            asyncio.run(backend.aclose())
        return
    task = loop.create_task(backend.aclose(when_idle=True))
    _closing[task] = backend
    task.add_done_callback(_closed)


def _closed(task: asyncio.Task[None]) -> None:
    _closing.pop(task, None)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("closing a replaced backend failed: %r", exc)


#: backends waiting for their calls in flight to end before they close
_closing: dict[asyncio.Task[None], Backend] = {}


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


@dataclass
class FolderConfig:
    """Settings and templates in force for one workspace folder: the user's layers with this
    folder's own `.ctx/` files on top, minus what they may not decide until trusted."""

    settings: Settings
    origins: dict[str, str]
    templates: TemplateLibrary
    #: what the folder's files asked for and did not get (empty once trusted)
    held_back: HeldBack
    backend: Backend | None = None


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
        self.trust = TrustStore()
        #: False while the editor itself distrusts the workspace (VS Code's restricted mode):
        #: then no folder's files are trusted, whatever the trust file says
        self.editor_trusted = True
        self._client_layers: tuple[Layer, ...] = ()
        self._configs: dict[Path, FolderConfig] = {}
        self._base = FolderConfig(Settings(), {}, self.templates, HeldBack(Path()))
        self._backends: dict[tuple[Any, ...], Backend] = {}
        self._stamp: tuple[tuple[str, int], ...] = ()
        self._listings: dict[Path, tuple[int, list[Path]]] = {}  # template folder → its files
        self._config_paths: tuple[object, list[Path], list[Path]] = ((), [], [])
        #: folder → (when, values registered, open documents, those readable, masked)
        self._readable: dict[Path, tuple[float, int, list[OpenDoc], list[OpenDoc]]] = {}
        self._summaries: dict[Path, tuple[tuple, str]] = {}
        #: folder → its code index (built and updated by the caller, off the event loop)
        self.indexes: dict[Path, WorkspaceIndex] = {}

    # -- settings and templates --------------------------------------------------
    def config_files(self) -> list[Path]:
        """Files whose change means settings or templates must be read again."""
        user = user_config_path()
        key = (user, self.trust.path, tuple(self.folders))
        if self._config_paths[0] != key:  # asked before every request: built once
            dirs = [user.parent / "templates"] + [r / ".ctx" / "templates" for r in self.folders]
            files = [user, self.trust.path] + [workspace_config_path(r) for r in self.folders]
            self._config_paths = (key, files, dirs)
        _, fixed, dirs = self._config_paths
        files = list(fixed)
        for d in dirs:
            files.append(d)
            files += self._templates_in(d, mtime_ns(d))
        return files

    def _templates_in(self, folder: Path, stamp: int) -> list[Path]:
        """The `*.md` files of a template folder, listed again only when the folder's mtime
        (which adding, removing or renaming a file changes) moved or is too recent to trust."""
        if stamp < 0:
            return []
        cached = self._listings.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        found = sorted(folder.glob("*.md"))
        if settled(stamp):
            self._listings[folder] = (stamp, found)
        return found

    def _config_stamp(self) -> tuple[tuple[str, int], ...]:
        return tuple((str(path), mtime_ns(path)) for path in self.config_files())

    @property
    def config_stamp(self) -> tuple[tuple[str, int], ...]:
        """The config files' state when last loaded."""
        return self._stamp

    def config_changed(self) -> bool:
        """A few stats: lets a running server pick up edited config and templates."""
        return self._config_stamp() != self._stamp

    def load(self, *client_layers: Layer) -> list[str]:
        """Re-read every layer (lowest first) and the templates, for the user alone and for
        each folder with its own `.ctx/` files; returns the problems, each once."""
        self._client_layers = client_layers
        self._stamp = self._config_stamp()
        problems: dict[str, None] = {}
        self.extra_templates = self.plugins.templates()
        user_path = user_config_path()
        user_layer, user_tables, errs = read_config(user_path, "user config")
        user_templates, more = templates_from_tables(user_tables, str(user_path))
        problems.update(dict.fromkeys(errs + more))

        def library() -> TemplateLibrary:
            templates = TemplateLibrary.builtin()
            templates.add_all(self.extra_templates)
            templates.add_all(user_templates)
            problems.update(
                dict.fromkeys(templates.load_directory(user_path.parent / "templates", "user"))
            )
            return templates

        base_lib = library()
        resolved = resolve([user_layer, *client_layers])
        problems.update(dict.fromkeys(resolved.problems))
        self._base = FolderConfig(resolved.settings, resolved.origins, base_lib, HeldBack(Path()))
        configs: dict[Path, FolderConfig] = {}
        for root in self.folders:
            config, errs = self._folder_config(root, user_layer, library)
            configs[root] = config
            problems.update(dict.fromkeys(errs))
        self._configs = configs
        first = self.primary_config()
        self.settings, self.origins, self.templates = first.settings, first.origins, first.templates
        for config in self._configs.values():
            # the key in use is masked wherever it might appear, logs included
            register_secret(self.env.get(config.settings.api_key_env))
        for root, folder in self.folders.items():
            folder.refresh_scope(self._configs[root].settings)
        self._drop_unused_backends()
        return [*problems, *self.plugins.take_problems()]

    def _folder_config(
        self, root: Path, user_layer: Layer, library: Any
    ) -> tuple[FolderConfig, list[str]]:
        path = workspace_config_path(root)
        layer, tables, problems = read_config(path, "workspace config")
        safe, risky = split_layer(layer.values)
        found, errs = templates_from_tables(tables, str(path))
        problems += errs
        template_dir = root / ".ctx" / "templates"
        template_files = self._templates_in(template_dir, mtime_ns(template_dir))
        names = sorted({t.name for t in found} | {f.name[:-3] for f in template_files})
        held = HeldBack(root, risky, tuple(names))
        templates = library()
        if held:
            held = replace(held, fingerprint=fingerprint([path, *template_files], root))
            if self.editor_trusted and self.trust.is_trusted(root, held.fingerprint):
                held = HeldBack(root)
        if not held:  # nothing risky, or trusted as it is now: all of it applies
            safe = dict(layer.values)
            templates.add_all(found)
            problems += templates.load_directory(template_dir, "workspace")
        workspace = Layer(layer.source, safe, layer.lines)
        resolved = resolve([user_layer, workspace, *self._client_layers])
        config = FolderConfig(resolved.settings, resolved.origins, templates, held)
        return config, problems + resolved.problems

    def config(self, folder: Folder | None) -> FolderConfig:
        """The settings and templates in force for `folder` (the user's alone for None)."""
        if folder is None:
            return self._base
        return self._configs.get(folder.root) or self._base

    def primary_config(self) -> FolderConfig:
        """The first folder's: what commands without a document use."""
        return self._configs[next(iter(self.folders))] if self._configs else self._base

    def held_back(self) -> list[HeldBack]:
        return [c.held_back for c in self._configs.values() if c.held_back]

    def set_trust(self, folder: Folder, trusted: bool) -> HeldBack:
        """Trust `folder`'s `.ctx/` files as they are now (or stop trusting them); returns what
        was held back before. The caller reloads the settings."""
        config = self.config(folder)
        held = config.held_back
        if trusted:
            if not held:
                return held
            self.trust.set(folder.root, held.fingerprint)
        else:
            self.trust.set(folder.root, None)
        return held

    # -- folders -----------------------------------------------------------------
    def add_folder(self, root: Path) -> Folder:
        root = root.resolve()
        if root not in self.folders:
            self.folders[root] = Folder(root, self.config(None).settings)
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
        """The backend of the first folder (or of the user's settings alone)."""
        return self.backend_for(None)

    def backend_for(self, folder: Folder | None) -> Backend:
        """One backend per distinct configuration, kept while the settings stay.

        Which one (OpenAI-compatible, embedded local model, or none) and why:
        `backends.select.select_backend`."""
        from ctx_lsp.backends.select import backend_identity, make_backend, select_backend

        config = self.config(folder) if folder is not None else self.primary_config()
        if config.backend is not None:
            return config.backend  # settings are replaced, never changed, when they change
        settings = config.settings
        kind, reason = select_backend(settings, self.env)
        identity = backend_identity(kind, backend_config(settings), settings)
        backend = self._backends.get(identity)
        if backend is None:
            log.info("backend: %s (%s)", kind, reason)
            backend = self._backends[identity] = make_backend(
                kind, backend_config(settings), settings, self.env
            )
            preload = getattr(backend, "preload", None)
            if preload is not None:
                preload()  # the local model starts loading now, on its own thread
        # with none configured, ask again next time: the local extra may be installed meanwhile
        config.backend = backend if kind != "none" else None
        return backend

    def _drop_unused_backends(self) -> None:
        """Backends no configuration uses any more have their HTTP clients closed."""
        from ctx_lsp.backends.select import backend_identity, select_backend

        wanted = set()
        for config in [self._base, *self._configs.values()]:
            kind, _ = select_backend(config.settings, self.env)
            wanted.add(backend_identity(kind, backend_config(config.settings), config.settings))
        for identity in [i for i in self._backends if i not in wanted]:
            close_later(self._backends.pop(identity))

    def close(self) -> None:
        for backend in self._backends.values():
            close_later(backend)
        self._backends.clear()

    def index(self, folder: Folder) -> WorkspaceIndex:
        """The folder's code index (empty until built), persisted in its `.ctx/index/`."""
        index = self.indexes.get(folder.root)
        if index is None:
            excluder = folder.excluder
            index = self.indexes[folder.root] = WorkspaceIndex(
                folder.root, lambda rel: excluder.reason(rel) is None, CtxStore(folder.root)
            )
        return index

    async def aclose(self) -> None:
        """Close every backend's HTTP client now (at shutdown: calls in flight are cut)."""
        backends = [*self._backends.values(), *_closing.values()]
        self._backends.clear()
        for task in list(_closing):
            task.cancel()
        for backend in backends:
            try:
                await backend.aclose()
            except Exception as exc:  # one failure must not keep the others open
                log.warning("closing the backend failed: %r", exc)

    def assistant(self, folder: Folder) -> Assistant:
        config = self.config(folder)
        return Assistant(
            folder,
            config.settings,
            self.backend_for(folder),
            config.templates,
            folder.cache,
            self.env,
            self.index(folder),
        )

    def _readable_masked(self, folder: Folder, open_docs: list[OpenDoc]) -> list[OpenDoc]:
        """The open documents that may be read into prompts, masked.

        Masked before ranking: heads and snippets are cut from these texts, and a cut secret
        would no longer match its pattern. Every completion asks again with the same documents,
        so the answer is kept as long as exclusion answers are (`ANSWER_TTL_S`), for documents
        equal to these (a text compares by identity first)."""
        now = time.monotonic()
        memo = self._readable.get(folder.root)
        if self._fresh(memo, now, open_docs):
            return list(memo[3])
        docs = [
            d if (masked := redact(d.text)) is d.text else replace(d, text=masked)
            for d in open_docs
            if folder.excluder.reason(d.path) is None and len(d.text) <= MAX_RELATED_CHARS
        ]
        self._readable[folder.root] = (now, registered_count(), list(open_docs), docs)
        return list(docs)

    def _fresh(self, memo: Any, now: float, open_docs: list[OpenDoc]) -> bool:
        return (
            memo is not None
            and now - memo[0] < ANSWER_TTL_S
            and memo[1] == registered_count()
            and memo[2] == open_docs
        )

    def quick_view(self, folder: Folder, open_docs: list[OpenDoc]) -> bool:
        """True when `view` would read no file, mask no text and call no plugin: the open
        documents are as last masked, and nothing is pinned or plugged in."""
        memo = self._readable.get(folder.root)
        return (
            not folder.pinned
            and not self.plugins.active()
            and self._fresh(memo, time.monotonic(), open_docs)
        )

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
        settings = self.config(folder).settings
        branch = folder.git.branch()
        # the summary names the open files and their languages, not their sizes or times: the
        # same for every completion until a file is opened or closed
        key = (
            branch.label(),
            tuple((rel, d.language_id) for rel, d, _ in documents),
            tuple(folder.pinned),
            tuple(settings.env_allowlist),
        )
        memo = self._summaries.get(folder.root)
        if memo is not None and memo[0] == key:
            summary = memo[1]
        else:
            summary = prompt_summary(snapshot(folder, documents, settings, self.env))
            self._summaries[folder.root] = (key, summary)
        request = ContextRequest(folder.root, branch.branch, file, kind)
        return View(docs, "\n\n".join([summary, *self.plugins.context(request)]))
