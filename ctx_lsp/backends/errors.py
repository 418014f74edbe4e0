"""Failures of a model call, as `BackendError`s whose messages say what to do.

One mapping for every backend (the embedded engine speaks the same wire format), and no
message ever holds the API key.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openai import APIStatusError

#: How servers say that a prompt is too long, with the context size: OpenAI and vLLM
#: ("maximum context length is 2048 tokens"), llama.cpp ("available context size (2048
#: tokens)", and `n_ctx` in its error body).
_CONTEXT_SAID = re.compile(
    r"(?:maximum context length is|available context size \(|context length of|context window of)"
    r" ?(\d+)",
    re.IGNORECASE,
)


class BackendError(Exception):
    """A failure to get an answer, with a user-facing message that never holds the key.

    kind: "no_key", "unreachable", "unauthorized", "forbidden", "rate_limited", "bad_model",
    "context_length" (the prompt does not fit the model's context), "bad_request" (other
    4xx), "timeout", "server", "bad_response",
    "empty" (only raised by `require_text`; `Backend.chat` returns empty text as is).
    """

    def __init__(
        self, kind: str, message: str, *, status: int | None = None, n_ctx: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        #: for "context_length": the model's context window in tokens, when the server said
        self.n_ctx = n_ctx

    def __repr__(self) -> str:
        return f"BackendError({self.kind!r}, {self.message!r})"


def context_window_of(error: Any, said: str) -> int | None:
    """The context size a 400 reports, if it is a prompt-too-long error."""
    if isinstance(error, dict) and isinstance(error.get("n_ctx"), int):
        return error["n_ctx"]
    m = _CONTEXT_SAID.search(said)
    return int(m.group(1)) if m else None


def retry_after(headers: Mapping[str, str]) -> float | None:
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


@dataclass(frozen=True)
class ErrorMapper:
    """Turns the `openai` client's exceptions into BackendErrors for one endpoint."""

    url: str
    model: str
    key: str | None
    key_env: str
    timeout_s: float

    def bad_response(self, why: str) -> BackendError:
        return BackendError(
            "bad_response",
            f"Malformed answer from {self.url}: {why}. "
            "Is ctx.baseUrl an OpenAI-compatible endpoint?",
        )

    def scrub(self, text: str) -> str:
        """Remove the key (some servers echo it) and bound the length of server text."""
        if self.key and len(self.key) >= 4:
            text = text.replace(self.key, "***")
        return text if len(text) <= 300 else text[:300] + "…"

    def map(self, exc: Exception, *, attempts: int, mid_stream: bool = False) -> BackendError:
        import openai

        url = self.url
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if isinstance(exc, openai.APITimeoutError):
            return BackendError(
                "timeout",
                f"No answer from {url} within {self.timeout_s:g} s: the server is slow "
                "or stuck; try again or raise ctx.timeoutS",
            )
        if isinstance(exc, openai.APIConnectionError):
            # By name: the transport is httpx or httpx2 depending on the openai version.
            if mid_stream or type(exc.__cause__).__name__ == "RemoteProtocolError":
                return self.bad_response(f"the connection was closed mid-answer{tries}")
            return BackendError(
                "unreachable",
                f"Cannot reach {url}{tries}: is the server running, and is ctx.baseUrl right?",
            )
        if isinstance(exc, openai.APIStatusError):
            return self._status(exc, tries)
        if isinstance(exc, openai.APIError):  # an error event inside a stream
            return BackendError("server", self.scrub(f"{url} reported an error: {exc.message}"))
        return self.bad_response(f"{type(exc).__name__}: {self.scrub(str(exc))}")

    def _status(self, exc: APIStatusError, tries: str) -> BackendError:
        url, model, code = self.url, self.model, exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        said = error.get("message") if isinstance(error, dict) else None
        said = f" (server said: {self.scrub(said)})" if isinstance(said, str) and said else ""
        env = self.key_env
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
        if code == 400 and (n_ctx := context_window_of(error, said)) is not None:
            msg = f"The prompt does not fit {model}'s context of {n_ctx} tokens at {url} (400)"
            return BackendError("context_length", msg + said, status=code, n_ctx=n_ctx)
        msg = f"{url} rejected the request ({code}) for model {model}"
        return BackendError("bad_request", msg + said, status=code)
