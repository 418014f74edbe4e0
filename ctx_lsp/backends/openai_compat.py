"""The model backend: one OpenAI-compatible chat endpoint (OpenAI, Ollama, llama.cpp, ...).

We do retries ourselves (the client's are off) so that the total wait is bounded for an
editor user, and we turn every failure into a `BackendError` whose message says what to do
and never contains the API key. `openai` is imported on first use: it costs ~0.4 s and the
server must start fast.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ctx_lsp.text.messages import ChatMessage

if TYPE_CHECKING:
    from openai import APIStatusError, AsyncOpenAI

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Sent to local servers when no key is set: they ignore it, but the client insists on one.
LOCAL_PLACEHOLDER_KEY = "not-needed"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_T = TypeVar("_T")


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


class BackendError(Exception):
    """A failure to get an answer, with a user-facing message that never holds the key.

    kind: "no_key", "unreachable", "unauthorized", "forbidden", "rate_limited", "bad_model",
    "bad_request" (other 4xx, e.g. prompt too long), "timeout", "server", "bad_response",
    "empty" (only raised by `require_text`; `Backend.chat` returns empty text as is).
    """

    def __init__(self, kind: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"BackendError({self.kind!r}, {self.message!r})"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


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
    host = urlsplit(url).hostname or ""
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after` secs or date)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    return None


class Backend:
    """Chat completions against one configured endpoint. Create a new one on config change."""

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
        self._calls = 0  # in flight: closing when idle waits for them
        self._idle: asyncio.Event | None = None

    def describe(self) -> str:
        return f"{self.config.model} at {self.base_url}"

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
        """One answer. Empty content comes back as text "" (see `require_text`).

        Cancelling the awaiting task closes the HTTP connection and re-raises CancelledError.
        """
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": [m.as_api() for m in messages],
            "max_tokens": max_tokens if max_tokens is not None else self.config.max_tokens,
            "temperature": temperature if temperature is not None else self.config.temperature,
        }
        if stop:
            kwargs["stop"] = stop
        prompt_chars = sum(len(m.content) for m in messages)
        if stream:
            return await self._retrying(lambda c: self._stream(c, kwargs, on_delta, prompt_chars))
        return await self._retrying(lambda c: self._plain(c, kwargs, prompt_chars))

    async def list_models(self) -> list[str]:
        async def call(client: AsyncOpenAI) -> list[str]:
            page = await client.models.list()
            data = getattr(page, "data", None)
            if not isinstance(data, list):
                raise self._bad_response("the model list is malformed")
            return [str(m.id) for m in data]

        return await self._retrying(call)

    async def aclose(self, *, when_idle: bool = False) -> None:
        """Close the HTTP client and its connections; `when_idle`: once the calls in flight
        (of a backend just replaced by another) have ended, so none of them is cut."""
        while when_idle and self._calls:
            self._idle = asyncio.Event()
            await self._idle.wait()
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    # --- internals ---------------------------------------------------------------------------

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

            self._client = openai.AsyncOpenAI(
                api_key=self._key,
                base_url=self.base_url,
                timeout=self.config.timeout_s,
                max_retries=0,
            )
        return self._client

    async def _retrying(self, call: Callable[[AsyncOpenAI], Awaitable[_T]]) -> _T:
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
                    raise self._map(exc, attempts=attempt + 1) from None
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
            after = _retry_after(exc.response.headers)
            return backoff if after is None else after
        return None

    async def _plain(self, client: AsyncOpenAI, kwargs: dict[str, Any], chars: int) -> Completion:
        body = await _post_chat(client, kwargs)
        try:
            resp = json.loads(body)
        except ValueError:  # not JSON, or not UTF-8
            raise self._bad_response("the answer is not JSON") from None
        choices = resp.get("choices") if isinstance(resp, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._bad_response("no choices in the answer")
        message = choices[0].get("message")
        text = (message.get("content") if isinstance(message, dict) else None) or ""
        if not isinstance(text, str):
            raise self._bad_response("the answer's content is not text")
        usage = self._usage(resp.get("usage"), chars, text)
        model = resp.get("model") or self.config.model
        return Completion(text, usage, str(model), choices[0].get("finish_reason"))

    async def _stream(
        self,
        client: AsyncOpenAI,
        kwargs: dict[str, Any],
        on_delta: Callable[[str], None] | None,
        chars: int,
    ) -> Completion:
        import openai

        body = {**kwargs, "stream": True, "stream_options": {"include_usage": True}}
        stream = await _post_chat(client, body, stream=True)
        parts: list[str] = []
        finish: str | None = None
        usage: Any = None
        model = self.config.model
        # `async with` closes the response, hence the socket, on every exit incl. cancellation.
        async with stream:
            chunks = stream.__aiter__()
            while True:
                # Failures after the request succeeded are never retried: deltas went out.
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except (openai.OpenAIError, json.JSONDecodeError) as exc:
                    raise self._map(exc, attempts=1, mid_stream=True) from None
                model = getattr(chunk, "model", None) or model
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    finish = getattr(choice, "finish_reason", None) or finish
                    text = getattr(getattr(choice, "delta", None), "content", None)
                    if isinstance(text, str) and text:
                        parts.append(text)
                        if on_delta is not None:
                            on_delta(text)
        if finish is None and usage is None:
            raise self._bad_response("the stream ended before the answer was finished")
        text = "".join(parts)
        return Completion(text, self._usage(usage, chars, text), str(model), finish)

    @staticmethod
    def _usage(usage: Any, prompt_chars: int, text: str) -> Usage:
        """From the answer's usage (a JSON object, or a stream chunk's model), else estimated."""
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        else:
            prompt = getattr(usage, "prompt_tokens", None)
            completion = getattr(usage, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            return Usage(prompt, completion)
        return Usage(prompt_chars // 4, len(text) // 4)  # the usual ~4 chars per token

    def _bad_response(self, why: str) -> BackendError:
        return BackendError(
            "bad_response",
            f"Malformed answer from {self.base_url}: {why}. "
            "Is ctx.baseUrl an OpenAI-compatible endpoint?",
        )

    def _scrub(self, text: str) -> str:
        """Remove the key (some servers echo it) and bound the length of server text."""
        if self._key and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return text if len(text) <= 300 else text[:300] + "…"

    def _map(self, exc: Exception, *, attempts: int, mid_stream: bool = False) -> BackendError:
        import openai

        url = self.base_url
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if isinstance(exc, openai.APITimeoutError):
            return BackendError(
                "timeout",
                f"No answer from {url} within {self.config.timeout_s:g} s: the server is slow "
                "or stuck; try again or raise the timeout",
            )
        if isinstance(exc, openai.APIConnectionError):
            # By name: the transport is httpx or httpx2 depending on the openai version.
            if mid_stream or type(exc.__cause__).__name__ == "RemoteProtocolError":
                return self._bad_response(f"the connection was closed mid-answer{tries}")
            return BackendError(
                "unreachable",
                f"Cannot reach {url}{tries}: is the server running, and is ctx.baseUrl right?",
            )
        if isinstance(exc, openai.APIStatusError):
            return self._map_status(exc, tries)
        if isinstance(exc, openai.APIError):  # an error event inside a stream
            return BackendError("server", self._scrub(f"{url} reported an error: {exc.message}"))
        return self._bad_response(f"{type(exc).__name__}: {self._scrub(str(exc))}")

    def _map_status(self, exc: APIStatusError, tries: str) -> BackendError:
        url, model, code = self.base_url, self.config.model, exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        said = error.get("message") if isinstance(error, dict) else None
        said = f" (server said: {self._scrub(said)})" if isinstance(said, str) and said else ""
        env = self.config.api_key_env
        if code == 401:
            msg = f"{url} rejected the API key in {env} (401): check the key or ctx.apiKeyEnv"
            return BackendError("unauthorized", msg + said, status=code)
        if code == 403:
            msg = f"{url} refused access to model {model} (403): check the key's permissions"
            return BackendError("forbidden", msg + said, status=code)
        if code == 404:
            msg = (
                f"Model {model} was not found at {url} (404): set ctx.model to a model the "
                "server offers, and check ctx.baseUrl (it usually ends in /v1)"
            )
            return BackendError("bad_model", msg + said, status=code)
        if code == 429:
            if exc.code == "insufficient_quota":
                msg = f"Quota exhausted at {url} (429): check your plan and billing"
            else:
                msg = f"Rate limited by {url} (429){tries}: wait a moment and try again"
            return BackendError("rate_limited", msg + said, status=code)
        if code >= 500:
            msg = f"{url} failed with {code}{tries}: the server has trouble; try again later"
            return BackendError("server", msg + said, status=code)
        msg = f"{url} rejected the request ({code}) for model {model}"
        return BackendError("bad_request", msg + said, status=code)


async def _post_chat(client: AsyncOpenAI, body: dict[str, Any], stream: bool = False) -> Any:
    """POST /chat/completions through the client: its auth, timeout and errors, exactly as
    `chat.completions.create` sends it. Not `create` itself: it first walks every message
    through its typed-dict transform, then builds a model of the answer (0.6 ms together for a
    17 KB completion prompt, a sixth of the server's work per completion). Our bodies are plain
    JSON already, and a plain answer comes back as its bytes, for `_plain` to read."""
    if stream:
        from openai import AsyncStream
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        return await client.post(
            "/chat/completions",
            body=body,
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
    return await client.post("/chat/completions", body=body, cast_to=bytes)
