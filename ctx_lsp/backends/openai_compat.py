"""The model backend: one OpenAI-compatible endpoint (OpenAI, Ollama, llama.cpp, vLLM, and
the embedded model, which is llama.cpp's server in this process).

We do retries ourselves (the client's are off) so that the total wait is bounded for an
editor user, and we turn every failure into a `BackendError` (errors.py) whose message says
what to do and never contains the API key. `openai` is imported on first use: it costs
~0.4 s and the server must start fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ctx_lsp.backends.errors import BackendError, ErrorMapper, retry_after
from ctx_lsp.text.messages import ChatMessage

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from ctx_lsp.backends.loopback import Poster

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Sent to local servers when no key is set: they ignore it, but the client insists on one.
LOCAL_PLACEHOLDER_KEY = "not-needed"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Most seconds spent asking a server what it offers (model list, context size).
PROBE_TIMEOUT_S = 10.0
_T = TypeVar("_T")

__all__ = ["Backend", "BackendConfig", "BackendError", "Completion", "Usage", "require_text"]


@dataclass(frozen=True)
class BackendConfig:
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 30.0
    max_retries: int = 2
    max_tokens: int = 256
    temperature: float = 0.2
    max_retry_wait_s: float = 10.0  # bound on the total time spent waiting between retries
    #: False when ctx.model was left at its default: then a server that does not offer that
    #: model answers with the one it offers (a llama.cpp server serves exactly one)
    model_chosen: bool = True


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: prompt tokens the server did not evaluate again (llama.cpp's prompt cache)
    cached_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    model: str
    finish_reason: str | None = None


def require_text(completion: Completion) -> str:
    """The completion's text, or BackendError("empty") for callers that need an answer."""
    if not completion.text.strip():
        raise BackendError(
            "empty", f"{completion.model} returned an empty answer: try again or rephrase"
        )
    return completion.text


def is_local_url(url: str) -> bool:
    return is_local_host(urlsplit(url).hostname or "")


def is_local_host(host: str) -> bool:
    """A name or address of this machine's loopback interface."""
    host = host.lower()
    return host in _LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


class Backend:
    """Completions against one configured endpoint. Create a new one on config change."""

    kind = "openai"
    #: a server on this machine is reached through `loopback.LoopbackTransport` (False: through
    #: httpx's own transport, as any other)
    loopback = True

    def __init__(self, config: BackendConfig, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self._env = os.environ if env is None else env
        # Resolve the URL ourselves (not the client) so an injected env is the only source.
        self.base_url = (
            config.base_url or self._env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        self._key = self._env.get(config.api_key_env) or None
        if self._key is None and is_local_url(self.base_url):
            self._key = LOCAL_PLACEHOLDER_KEY
        self._client: AsyncOpenAI | None = None
        self._poster: Poster | None = None  # plain POSTs to a server on this machine
        #: the served model when ctx.model was left at its default (see `prepare`)
        self._served_model: str | None = None
        #: the model's context window in tokens, when the server says it (`prepare`, or a
        #: prompt-too-long error)
        self.context_window: int | None = None
        self._prepared = False
        self._calls = 0  # in flight: closing when idle waits for them
        self._idle: asyncio.Event | None = None

    @property
    def model(self) -> str:
        return self._served_model or self.config.model

    def describe(self) -> str:
        return f"{self.model} at {self.base_url}"

    async def prepare(self) -> None:
        """Once, before the first prompt is built, when ctx.model was left unset: ask the
        server which model it serves and how large its context is (`/v1/models` meta, else
        llama.cpp's `/props`). Never fails: a server that does not say keeps the settings."""
        if self._prepared:
            return
        self._prepared = True
        if self.config.model_chosen or self.base_url == DEFAULT_BASE_URL or self._key is None:
            # a chosen model needs no look-up (its context size is learned from the first
            # prompt-too-long answer, if any); OpenAI offers the default model and says
            # nothing of context sizes
            return
        try:
            models = await asyncio.wait_for(self._models_json(), PROBE_TIMEOUT_S)
        except TimeoutError:  # a busy machine or server: asked again before the next request
            self._prepared = False
            return
        except BackendError:  # it does not say: the settings stand
            return
        ids = [str(m.get("id")) for m in models if isinstance(m, dict) and m.get("id")]
        if ids and not self.config.model_chosen and self.config.model not in ids:
            self._served_model = ids[0]
            log.info("ctx.model is not set: using %s, which %s serves", ids[0], self.base_url)
        mine = next((m for m in models if m.get("id") == self.model), None) or {}
        meta = mine.get("meta") if isinstance(mine.get("meta"), dict) else {}
        n_ctx = meta.get("n_ctx") or mine.get("context_length") or mine.get("max_model_len")
        if not isinstance(n_ctx, int):
            n_ctx = await self._props_n_ctx()
        if isinstance(n_ctx, int) and n_ctx > 0:
            self.context_window = n_ctx
            log.info("%s: the context window of %s is %d tokens", self.base_url, self.model, n_ctx)

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
        stream: bool = False,
        on_delta: Callable[[str], None] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """One answer. Empty content comes back as text "" (see `require_text`). `extra` adds
        fields to the request body (server-specific sampling options).

        Cancelling the awaiting task closes the HTTP connection and re-raises CancelledError.
        """
        body = self._body(max_tokens, temperature, stop, extra)
        body["messages"] = [m.as_api() for m in messages]
        prompt_chars = sum(len(m.content) for m in messages)
        if stream:
            return await self._retrying(
                lambda c: self._stream(c, "/chat/completions", body, on_delta, prompt_chars)
            )
        return await self._retrying(lambda c: self._plain(c, body, prompt_chars))

    async def complete_text(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
        on_delta: Callable[[str], None] | None = None,
        until: Callable[[str], int | None] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Plain continuation of `prompt` (`/v1/completions`, streamed), for base models.

        `until(text_so_far)` may return where the text should end: the stream is closed
        there, which stops the server's generation too. It may cut the line being written,
        never one before it: with `until`, `on_delta` gets whole lines."""
        body = self._body(max_tokens, temperature, stop, extra)
        body["prompt"] = prompt
        return await self._retrying(
            lambda c: self._stream(c, "/completions", body, on_delta, len(prompt), until)
        )

    async def list_models(self) -> list[str]:
        models = await self._models_json()
        return [str(m["id"]) for m in models if isinstance(m, dict) and "id" in m]

    async def aclose(self, *, when_idle: bool = False) -> None:
        """Close the HTTP client and its connections; `when_idle`: once the calls in flight
        (of a backend just replaced by another) have ended, so none of them is cut."""
        while when_idle and self._calls:
            self._idle = asyncio.Event()
            await self._idle.wait()
        if self._client is not None:
            client, self._client, self._poster = self._client, None, None
            await client.close()

    # --- internals ---------------------------------------------------------------------------

    def _body(
        self,
        max_tokens: int | None,
        temperature: float | None,
        stop: list[str] | None,
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            **(extra or {}),
            "model": self.model,
            "max_tokens": max_tokens if max_tokens is not None else self.config.max_tokens,
            "temperature": temperature if temperature is not None else self.config.temperature,
        }
        if stop:
            body["stop"] = stop
        return body

    async def _models_json(self) -> list[Any]:
        async def call(client: AsyncOpenAI) -> list[Any]:
            raw = await client.get("/models", cast_to=bytes)
            try:
                data = json.loads(raw).get("data")
            except (ValueError, AttributeError):
                data = None
            if not isinstance(data, list):
                raise self._errors().bad_response("the model list is malformed")
            return data

        return await self._retrying(call)

    async def _props_n_ctx(self) -> int | None:
        """llama.cpp's server says its context size at /props (beside /v1, not under it)."""
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        try:
            client = self._get_client()
            raw = await asyncio.wait_for(
                client.get(root + "/props", cast_to=bytes), PROBE_TIMEOUT_S
            )
            n_ctx = json.loads(raw).get("default_generation_settings", {}).get("n_ctx")
        except Exception:  # not llama.cpp, or it does not say: the settings stand
            return None
        return n_ctx if isinstance(n_ctx, int) else None

    def _errors(self) -> ErrorMapper:
        return ErrorMapper(
            self.base_url, self.model, self._key, self.config.api_key_env, self.config.timeout_s
        )

    def _get_client(self) -> AsyncOpenAI:
        if self._key is None:
            env = self.config.api_key_env
            raise BackendError(
                "no_key",
                f"No API key: set {env} (or the variable named by ctx.apiKeyEnv) "
                "or ctx.baseUrl for a local server",
            )
        if self._client is None:
            import openai

            http_client = None
            if self.loopback and is_local_url(self.base_url):
                from ctx_lsp.backends import loopback

                http_client, transport = loopback.http_client(self.config.timeout_s)
                self._poster = loopback.Poster(transport, self.base_url)
            self._client = openai.AsyncOpenAI(
                api_key=self._key,
                base_url=self.base_url,
                timeout=self.config.timeout_s,
                max_retries=0,
                http_client=http_client,
            )
        return self._client

    async def _retrying(self, call: Callable[[AsyncOpenAI], Awaitable[_T]]) -> _T:
        if self._client is None:  # the first call imports openai (~0.4 s): not on the loop
            await asyncio.to_thread(self._get_client)
        client = self._get_client()
        self._calls += 1
        try:
            return await self._attempts(client, call)
        finally:
            self._calls -= 1
            if not self._calls and self._idle is not None:
                self._idle.set()

    async def _attempts(
        self, client: AsyncOpenAI, call: Callable[[AsyncOpenAI], Awaitable[_T]]
    ) -> _T:
        import openai

        waited = 0.0
        attempt = 0
        while True:
            try:
                return await call(client)
            # JSONDecodeError: a 200 whose JSON body does not parse (the client lets it through).
            except (openai.OpenAIError, json.JSONDecodeError) as exc:
                wait = self._retry_delay(exc, attempt)
                if (
                    wait is None
                    or attempt >= self.config.max_retries
                    or waited + wait > self.config.max_retry_wait_s
                ):
                    error = self._errors().map(exc, attempts=attempt + 1)
                    if error.n_ctx:  # the next prompt is built to fit
                        self.context_window = error.n_ctx
                    raise error from None
            await asyncio.sleep(wait)
            waited += wait
            attempt += 1

    def _retry_delay(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying `exc`, or None if retrying cannot help."""
        import openai

        backoff = 0.5 * 2**attempt
        if isinstance(exc, openai.APITimeoutError):
            return None  # the user already waited timeout_s; don't multiply it
        if isinstance(exc, openai.APIConnectionError):
            return backoff
        if isinstance(exc, openai.APIStatusError) and exc.status_code in _RETRY_STATUSES:
            if exc.code == "insufficient_quota":
                return None  # a 429 that no amount of waiting fixes
            after = retry_after(exc.response.headers)
            return backoff if after is None else after
        return None

    async def post(self, client: AsyncOpenAI, path: str, body: dict[str, Any]) -> bytes:
        """A plain POST's answer: through the `Poster` when the server is on this machine and
        the client has posted there, else through the client (`_post`)."""
        if self._poster is not None:
            raw = await self._poster.post(client, path, body)
            if raw is not None:
                return raw
        return await _post(client, path, body)

    async def _plain(self, client: AsyncOpenAI, body: dict[str, Any], chars: int) -> Completion:
        raw = await self.post(client, "/chat/completions", body)
        errors = self._errors()
        try:
            resp = json.loads(raw)
        except ValueError:  # not JSON, or not UTF-8
            raise errors.bad_response("the answer is not JSON") from None
        choices = resp.get("choices") if isinstance(resp, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise errors.bad_response("no choices in the answer")
        message = choices[0].get("message")
        text = (message.get("content") if isinstance(message, dict) else None) or ""
        if not isinstance(text, str):
            raise errors.bad_response("the answer's content is not text")
        usage = self._usage(resp.get("usage"), chars, text)
        model = resp.get("model") or self.model
        return Completion(text, usage, str(model), choices[0].get("finish_reason"))

    async def _stream(
        self,
        client: AsyncOpenAI,
        path: str,
        body: dict[str, Any],
        on_delta: Callable[[str], None] | None,
        chars: int,
        until: Callable[[str], int | None] | None = None,
    ) -> Completion:
        import openai

        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        stream = await _post(client, path, body, stream=True)
        parts: list[str] = []
        finish: str | None = None
        usage: Any = None
        model = self.model
        cut: int | None = None
        sent = 0  # characters given to `on_delta` (with `until`: whole lines)
        # `async with` closes the response, hence the socket, on every exit incl. cancellation
        # and `until`: a server stops generating for a closed connection.
        async with stream:
            chunks = stream.__aiter__()
            while cut is None:
                # Failures after the request succeeded are never retried: deltas went out.
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except (openai.OpenAIError, json.JSONDecodeError) as exc:
                    raise self._errors().map(exc, attempts=1, mid_stream=True) from None
                model = getattr(chunk, "model", None) or model
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    finish = getattr(choice, "finish_reason", None) or finish
                    text = getattr(choice, "text", None)  # /completions
                    if text is None:  # /chat/completions
                        text = getattr(getattr(choice, "delta", None), "content", None)
                    if not isinstance(text, str) or not text:
                        continue
                    parts.append(text)
                    if until is None:
                        if on_delta is not None:
                            on_delta(text)
                        continue
                    so_far = "".join(parts)
                    cut = until(so_far)
                    if on_delta is not None and cut is None:
                        # whole lines, once `until` has seen them: it cuts at a line's start
                        # at the latest, so nothing sent is ever taken back
                        lines = so_far.rfind("\n") + 1
                        if lines > sent:
                            on_delta(so_far[sent:lines])
                            sent = lines
        text = "".join(parts)
        if cut is not None:
            text, finish = text[:cut], "stop"
        elif finish is None and usage is None:
            raise self._errors().bad_response("the stream ended before the answer was finished")
        if until is not None and on_delta is not None and len(text) > sent:
            on_delta(text[sent:])
        return Completion(text, self._usage(usage, chars, text), str(model), finish)

    @staticmethod
    def _usage(usage: Any, prompt_chars: int, text: str) -> Usage:
        """From the answer's usage (a JSON object, or a stream chunk's model), else estimated."""
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            details = usage.get("prompt_tokens_details")
        else:
            prompt = getattr(usage, "prompt_tokens", None)
            completion = getattr(usage, "completion_tokens", None)
            details = getattr(usage, "prompt_tokens_details", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            cached = (
                details.get("cached_tokens")
                if isinstance(details, dict)
                else getattr(details, "cached_tokens", None)
            )
            return Usage(prompt, completion, cached if isinstance(cached, int) else 0)
        return Usage(prompt_chars // 4, len(text) // 4)  # the usual ~4 chars per token


async def _post(client: AsyncOpenAI, path: str, body: dict[str, Any], stream: bool = False) -> Any:
    """POST through the client: its auth, timeout and errors, exactly as `create` sends it.
    Not `create` itself: it first walks every message through its typed-dict transform, then
    builds a model of the answer (0.6 ms together for a 17 KB completion prompt, a sixth of
    the server's work per completion). Our bodies are plain JSON already, and a plain answer
    comes back as its bytes, for `_plain` to read."""
    if stream:
        from openai import AsyncStream
        from openai.types import Completion as TextChunk
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        chunk = ChatCompletionChunk if path == "/chat/completions" else TextChunk
        return await client.post(
            path, body=body, cast_to=ChatCompletion, stream=True, stream_cls=AsyncStream[chunk]
        )
    return await client.post(path, body=body, cast_to=bytes)


def warm_up() -> None:
    """Imports openai (~0.4 s, ~23 MB) and loads the tokenizer (~40 MB): when the first
    document is opened, not at start, so that a server with nothing open stays small.
    Reading a first answer and a first stream chunk builds the client's validators (~12 ms
    each), which would otherwise happen on the event loop with the first real answer. The
    client's streams use anyio, whose asyncio half (~30 ms to import) would also load then;
    and the loopback transport (`loopback`) is imported with its h11."""
    import contextlib
    import importlib

    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from ctx_lsp.backends import loopback  # noqa: F401
    from ctx_lsp.text.tokens import count_tokens

    # another anyio layout: then it loads with the first stream, as before
    with contextlib.suppress(ImportError):
        importlib.import_module("anyio._backends._asyncio")
    count_tokens("warm up")
    head = {"id": "warm-up", "created": 0, "model": "warm-up"}
    ChatCompletion.construct(
        **head,
        object="chat.completion",
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}}],
        usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    )
    ChatCompletionChunk.construct(
        **head,
        object="chat.completion.chunk",
        choices=[{"index": 0, "finish_reason": None, "delta": {"content": ""}}],
    )
