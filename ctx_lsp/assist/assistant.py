"""The AI pipeline shared by the server and the CLI.

request → template (branch-aware) → prompt parts (cursor window, ranked related code,
history, project summary) → budgeted messages → masked → cache → backend → history.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ctx_lsp.assist import conversation
from ctx_lsp.backends.openai_compat import Backend, BackendConfig, BackendError, Usage, require_text
from ctx_lsp.config.settings import Settings
from ctx_lsp.prompting.index.workspace import WorkspaceIndex
from ctx_lsp.prompting.prompt import (
    BuiltPrompt,
    PromptParts,
    TaskRenderer,
    build_messages,
    kept_picks,
    task_renderer,
)
from ctx_lsp.prompting.related import prepare as prepare_related
from ctx_lsp.prompting.related import related as related_code
from ctx_lsp.prompting.relevance import rank
from ctx_lsp.prompting.templates import TemplateLibrary
from ctx_lsp.store.cache import ResponseCache, cache_key
from ctx_lsp.store.history import History
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.redact import redact, register_secret
from ctx_lsp.text.tokens import count_tokens
from ctx_lsp.workspace.folder import Folder
from ctx_lsp.workspace.git import BranchInfo, GitError

log = logging.getLogger(__name__)

#: The thread that builds prompts off the event loop, one at a time.
_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctx-prompt")
#: Most characters of a request kept as its short form in the history.
SHORT_FORM_CHARS = 1500
#: A completion prompt whose last build took less than this is built on the event loop:
#: the hop to the builder thread and back is two thread wake-ups, 0.2 ms on an idle machine
#: and 1 to 2 ms on a busy one (measured on 2 busy cores: 0.6 to 1.1 ms per completion
#: when builds of 3 to 5 ms crossed a 4 ms bound), and holding the loop that long delays
#: nobody. Slower builds (large budgets, a big document being typed in) and every other
#: task's go to the builder thread, so edits and newer requests are answered meanwhile.
INLINE_BUILD_S = 0.010
#: Share of the model's context window (when the server says it) that a prompt and its
#: answer may take: our token count can be below the model's own; after the model refused a
#: prompt as too long, the retry takes the smaller share.
CONTEXT_FIT = (0.75, 0.5)
_DEFAULT_MODEL = Settings().model
_T = TypeVar("_T")
#: The messages of an exchange, made when they are written.
MakeRecord = Callable[[], Sequence[ChatMessage]]


@dataclass
class Request:
    """One AI task. `values` fill the template; the rest steers context and recording."""

    kind: str  # completion, explain, fix, tests, commit, summary, chat
    template: str
    values: dict[str, str]
    #: short form of the request kept in the history ("Explain app.py:3-9 …")
    summary: str
    file: str | None = None
    #: other workspace files the task is about (a chat's @mentions, a commit's diff): which
    #: earlier exchanges its prompt takes depends on them (see `conversation`)
    files: tuple[str, ...] = ()
    #: the user's own words added after the rendered task (a chat's `/explain why …`)
    note: str = ""
    #: the document the cursor is in, and the cursor's offset in its text
    current: OpenDoc | None = None
    cursor: int | None = None
    #: the cursor window, trimmed by the prompt builder when space is short
    window: tuple[str, str] | None = None
    stream: bool = False
    record: bool = True
    #: a model answer that is empty is an error for chat tasks, fine for completions
    allow_empty: bool = False
    stop: list[str] | None = None
    #: new values for a smaller prompt budget (tokens), for a retry after the model said the
    #: prompt does not fit its context (the commit task packs its diff again)
    refit: Callable[[int], dict[str, str]] | None = None

    def about(self) -> tuple[str, ...]:
        return tuple(f for f in (self.file, *self.files) if f)


@dataclass(frozen=True)
class Answer:
    text: str
    cached: bool
    usage: Usage
    prompt: BuiltPrompt
    #: id of the answer's message in the history ("" when it was not recorded)
    history_id: str = ""


def backend_config(settings: Settings) -> BackendConfig:
    return BackendConfig(
        model=settings.model,
        model_chosen=settings.model != _DEFAULT_MODEL,
        base_url=settings.base_url or None,
        api_key_env=settings.api_key_env,
        timeout_s=settings.timeout_s,
        max_retries=settings.max_retries,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
    )


class Assistant:
    def __init__(
        self,
        folder: Folder,
        settings: Settings,
        backend: Backend,
        templates: TemplateLibrary,
        cache: ResponseCache | None,
        env: Mapping[str, str],
        index: WorkspaceIndex | None = None,
    ) -> None:
        self.folder = folder
        #: the folder's code index: definitions of files that are not open
        self.index = index
        self.settings = settings
        self.backend = backend
        self.templates = templates
        self.cache = cache if settings.cache else None
        # the key in use is masked wherever it might appear, whatever its shape
        key = env.get(settings.api_key_env, "")
        self._secrets = (key,) if key else ()
        # documents and the cursor window are masked before they get here, with the values
        # registered: the key must be one of them
        register_secret(key)
        #: takes completion exchanges (made when written) instead of the history: the server
        #: writes them in batches; None: each goes to the history on a worker thread
        self.record_later: Callable[[History, MakeRecord], None] | None = None
        self._refits = 0  # index into CONTEXT_FIT

    def build(
        self,
        req: Request,
        docs: Sequence[OpenDoc],
        project_summary: str,
        branch: BranchInfo | None = None,
    ) -> BuiltPrompt:
        """The exact messages that would be sent: budgeted and masked (also the dry run).

        Every piece is masked where it comes from, never as a cut, and the joined messages are
        not scanned again (that pass cost as much as all the rest of masking on each completion):
        `docs` come masked from the view, the cursor window from `cursor_window`; the values,
        the conversation and the rendered template text are masked here (memoized: they recur)."""
        branch = branch or self.folder.git.branch()
        values = {
            "branch": branch.label(),
            "file": req.file or "",
            "context": project_summary,
            **req.values,
        }
        values = {k: self._mask(v) for k, v in values.items()}
        # each task takes the part of the conversation that helps it (see `conversation`)
        keep = conversation.keeper(req.kind, req.about())
        history = self.folder.history.for_prompt(self.settings.history_messages, keep)
        summary = "\n".join(self._mask(m.content) for m in history if m.kind == "summary")
        if not conversation.takes_summary(req.kind):
            summary = ""
        turns = [
            ChatMessage(m.role, self._mask(m.content), time=m.time, kind=m.kind, id=m.id)
            for m in history
            if m.kind != "summary"
        ]
        values.setdefault("history_summary", summary)
        rendered = self.templates.render(req.template, values, branch.branch)
        if rendered.missing:
            log.info("template %s: no value for %s", req.template, sorted(rendered.missing))

        # a template's own text may hold anything: masked whole with what filled it
        task = self._mask(rendered.user + (f"\n\n{req.note}" if req.note else ""))
        render: TaskRenderer | None = None
        if req.window is not None:
            render = task_renderer(self.templates, req.template, values, branch.branch)
            if task is not rendered.user:  # the template's own text holds a secret
                render = _masked(render, self._mask)
        related = []
        others = [d for d in docs if req.current is None or d.uri != req.current.uri]
        if req.current is not None and req.cursor is not None:
            related = related_code(req.current, req.cursor, others, self.index, self._allowed)
        elif others:
            related = rank(others[0], 0, others[1:]) if req.kind == "chat" else []

        parts = PromptParts(
            system=self._mask(rendered.system),
            task=task,
            related=related,
            history=turns,
            history_summary=summary,
            project_summary=values["context"],
            kind=req.kind,
            render_task=render,
        )
        if req.window is not None:
            parts.cursor_prefix, parts.cursor_suffix = req.window
        max_tokens = self._max_tokens(req, branch)
        built = build_messages(parts, self.context_tokens, reserve_output=max_tokens)
        messages = [replace(m, content=_valid_text(m.content)) for m in built.messages]
        return BuiltPrompt(
            messages, built.tokens, built.dropped, kept_picks(related, built.dropped), max_tokens
        )

    def prepare(self, current: OpenDoc, docs: Sequence[OpenDoc]) -> None:
        """Ahead of the first completion in `current`: what its prompts compute once per
        version of the file (see `related.prepare`), and the counts of its pieces, of which
        the cursor windows are made (see `tokens.count_tokens`)."""
        others = [d for d in docs if d.uri != current.uri]
        prepare_related(current, others, self.index, self._allowed)
        count_tokens(current.text)

    def _allowed(self, rel: str) -> bool:
        """May an indexed file still enter the context (an ignore rule may be newer)?"""
        return self.folder.excluder.reason(rel) is None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values masked wherever they appear besides the known patterns (the API key)."""
        return self._secrets

    def _mask(self, text: str) -> str:
        return redact(text, self._secrets)

    async def _add_git_values(self, req: Request, branch: BranchInfo) -> None:
        """$recent_commits and $changes cost a git call: only for templates that use them."""
        try:
            wanted = self.templates.get(req.template, branch.branch).placeholders()
        except KeyError:
            return
        if not branch.has_repo:
            return
        try:
            if "recent_commits" in wanted and "recent_commits" not in req.values:
                commits = await self.folder.git.recent_commits(10)
                req.values["recent_commits"] = "\n".join(
                    f"{c.hash[:7]} {c.subject}" for c in commits
                )
            if "changes" in wanted and "changes" not in req.values:
                req.values["changes"] = await self.folder.git.changes_summary()
        except GitError as exc:
            log.info("git values for the prompt unavailable: %s", exc)

    def _max_tokens(self, req: Request, branch: BranchInfo | None = None) -> int:
        """The reply limit: the template's `max_tokens` (else the `maxTokens` setting), and
        `maxTokens` caps every task, whatever its template asks for."""
        branch = branch or self.folder.git.branch()
        try:
            own = self.templates.get(req.template, branch.branch).max_tokens
        except KeyError:
            own = None
        return min(own or self.settings.max_tokens, self.settings.max_tokens)

    @property
    def context_tokens(self) -> int:
        """The prompt budget (answer included): ctx.contextTokens, or less when the model's
        context window, as its server says it, is smaller."""
        budget = self.settings.context_tokens
        if window := self.backend.context_window:
            budget = min(budget, int(window * CONTEXT_FIT[self._refits]))
        return budget

    async def run(
        self,
        req: Request,
        docs: Sequence[OpenDoc],
        project_summary: str,
        on_delta: Callable[[str], None] | None = None,
    ) -> Answer:
        """The answer to `req`; once more with a prompt cut to fit when the model says the
        prompt is longer than its context (a server started with a small one)."""
        await self.backend.prepare()  # the served model and its context size, once
        try:
            return await self._run(req, docs, project_summary, on_delta)
        except BackendError as exc:
            if exc.kind != "context_length" or self._refits or not self.backend.context_window:
                raise
            self._refits = 1
            log.info("%s: %s; the prompt is cut to %d tokens", req.kind, exc, self.context_tokens)
            if req.refit is not None:
                req.values.update(req.refit(self.context_tokens))
            return await self._run(req, docs, project_summary, on_delta)

    async def _run(
        self,
        req: Request,
        docs: Sequence[OpenDoc],
        project_summary: str,
        on_delta: Callable[[str], None] | None,
    ) -> Answer:
        branch = self.folder.git.branch()  # read once for the request (three stats)
        await self._add_git_values(req, branch)
        # prompt assembly is CPU work (ranking, counting, masking): see `INLINE_BUILD_S`
        built = await _builds.run(
            lambda: self.build(req, docs, project_summary, branch),
            completion=req.window is not None,
        )
        params = {
            "max_tokens": built.max_tokens,
            "temperature": self.settings.temperature,
            "stop": req.stop,
        }
        # the backend (endpoint and model) is part of the key: switching never serves
        # another model's answers
        key = (
            cache_key(self.backend.describe(), params, built.messages)
            if self.cache is not None
            else ""
        )
        if self.cache is not None and (hit := await self.cache.lookup(key)) is not None:
            log.info("%s answered from the cache", req.kind)
            if on_delta is not None:
                on_delta(hit)
            recorded = ""
            if req.record and req.kind != "completion":
                # the append (a file lock and an fsync) on a worker thread
                recorded = await asyncio.to_thread(
                    self.record, req, hit, Usage(), self.settings.model
                )
            return Answer(hit, True, Usage(), built, recorded)
        if req.window is not None and getattr(self.backend, "supports_raw_completion", False):
            # a small local model continues code far better than it follows a chat prompt
            prefix, suffix = (_valid_text(redact(w, self._secrets)) for w in req.window)
            completion = await self.backend.complete_raw(
                prefix, suffix, max_tokens=params["max_tokens"], stop=req.stop
            )
        else:
            completion = await self.backend.chat(
                built.messages,
                max_tokens=params["max_tokens"],
                stop=req.stop,
                stream=req.stream,
                on_delta=on_delta,
            )
        text = completion.text if req.allow_empty else require_text(completion)
        text = _valid_text(redact(text, self._secrets))
        if self.cache is not None and text.strip():
            self.cache.store(key, text)
        if req.record and req.kind == "completion" and text.strip():
            # not part of the conversation in prompts: recorded off the request path, its two
            # messages made there too (masking the request's summary is not the user's wait)
            usage, model, at = completion.usage, completion.model, time.time()
            # what the record is made of, not the document and window it was asked in: a
            # batch of keystrokes' records would hold a version of a large file each
            asked = replace(req, values={}, current=None, window=None, refit=None)

            def exchange() -> tuple[ChatMessage, ChatMessage]:
                return self.exchange(asked, text, usage, model, branch=branch, at=at)

            if self.record_later is not None:
                self.record_later(self.folder.history, exchange)
            else:
                loop = asyncio.get_running_loop()
                loop.run_in_executor(None, lambda: self._append(exchange()))
        recorded = ""
        if req.record and req.kind != "completion" and text.strip():
            recorded = await asyncio.to_thread(
                self.record, req, text, completion.usage, completion.model
            )
        return Answer(text, False, completion.usage, built, recorded)

    def record(self, req: Request, answer: str, usage: Usage, model: str, cut: bool = False) -> str:
        """Both sides of an exchange go to the history, masked, with their token counts.
        Returns the answer's message id."""
        exchange = self.exchange(req, answer, usage, model, cut)
        self._append(exchange)
        return exchange[1].id

    def record_cut(self, req: Request, partial: str) -> str:
        """A question whose answer the user stopped: kept with what came, marked as cut."""
        masked = _valid_text(self._mask(partial))
        return self.record(req, masked, Usage(), self.settings.model, cut=True)

    def exchange(
        self,
        req: Request,
        answer: str,
        usage: Usage,
        model: str,
        cut: bool = False,
        branch: BranchInfo | None = None,
        at: float | None = None,
    ) -> tuple[ChatMessage, ChatMessage]:
        """The two messages of an exchange as the history keeps them (`answer` is masked),
        made at `at` (default: now)."""
        branch = branch or self.folder.git.branch()
        meta: dict[str, Any] = {
            "kind": req.kind,
            "file": req.file,
            "files": req.files,
            "branch": branch.branch,
            "model": model,
            "time": time.time() if at is None else at,
        }
        # masked before it is cut: a cut secret would no longer match its pattern
        short = redact(req.summary, self._secrets)
        if len(short) > SHORT_FORM_CHARS:
            short = short[:SHORT_FORM_CHARS] + " …"
        return (
            ChatMessage("user", short, prompt_tokens=usage.prompt_tokens, **meta),
            ChatMessage(
                "assistant", answer, completion_tokens=usage.completion_tokens, cut=cut, **meta
            ),
        )

    def _append(self, messages: tuple[ChatMessage, ...]) -> None:
        try:
            self.folder.history.append(*messages)
        except Exception as exc:  # the answer still reaches the user
            log.error("cannot record the exchange in the history: %s", exc)


class _Builds:
    """Where prompts are built: see `INLINE_BUILD_S`. Never on the loop while the builder
    thread is busy: two builds would only slow each other down."""

    def __init__(self) -> None:
        self.last_s = float("inf")  # the first build (indexing every document) is slow
        self._running = 0
        self._lock = threading.Lock()

    def inline(self) -> bool:
        return self._running == 0 and self.last_s < INLINE_BUILD_S

    def _timed(self, build: Callable[[], _T]) -> _T:
        start = time.perf_counter()
        try:
            return build()
        finally:
            self.last_s = time.perf_counter() - start

    def _done(self, _: object) -> None:
        with self._lock:
            self._running -= 1

    async def run(self, build: Callable[[], _T], completion: bool) -> _T:
        if completion and self.inline():
            built = self._timed(build)
            # a turn of the loop: an edit that came meanwhile supersedes us before the call
            await asyncio.sleep(0)
            return built
        with self._lock:
            self._running += 1
        future = _BUILDER.submit(self._timed, build) if completion else _BUILDER.submit(build)
        # done when the thread finishes, or when it is cancelled before it starts: a cancelled
        # request does not stop a build that is running
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)


_builds = _Builds()


async def ahead(work: Callable[[], None]) -> None:
    """Work done ahead for later prompts, on the builder thread as a build of another task
    is (a prompt asked for meanwhile waits for this one piece, never for a queue of them)."""
    await _builds.run(work, completion=False)


def _masked(render: TaskRenderer, mask: Callable[[str], str]) -> TaskRenderer:
    return lambda prefix, suffix: mask(render(prefix, suffix))


def _valid_text(text: str) -> str:
    """Lone UTF-16 surrogates (valid JSON, invalid Unicode) become U+FFFD: one in an editor
    buffer must not break every prompt, cache key and HTTP body of the folder."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


__all__ = ["Answer", "Assistant", "BackendError", "Request", "ahead", "backend_config"]
