"""The embedded model as a backend: llama.cpp's server in this process (engine.py), reached
through the same OpenAI-compatible `Backend` as every other server.

What is local-only here, and why (the prompts themselves are in base_model.py):
- Completions on a base model are not chat: a small model continues code far better than
  it follows a completion prompt. `complete_raw(prefix, suffix)` sends the code before the
  cursor as a plain prompt (`/v1/completions`), or prefix and suffix to llama.cpp's
  `/infill` for a model with fill-in-the-middle tokens, and closes the stream at the end of
  the current block (`BlockEnd`), which also stops the generation. The prefix window starts
  on a stable line, so typing at one place reuses the engine's cached prompt.
- Chat tasks on a model without a chat template (the bundled Gemma 3 270M is a base
  model) continue a plain transcript: given a chat format it has never seen, it repeats
  the prompt back.
Until the assistant calls `complete_raw` directly, `chat()` recognises a completion request
(its last message has kind "completion" and holds the completion template's
`<file>\\n{prefix}<CURSOR>{suffix}\\n</file>`) and routes it there.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ctx_lsp.backends.base_model import (
    COMMENT_LINE,
    COMPLETION_MAX_TOKENS,
    PLAIN_STOPS,
    SUFFIX_CHARS,
    BlockEnd,
    base_prompt,
    chat_messages,
    parse_completion_prompt,
    repetition_cut,
    window_prefix,
)
from ctx_lsp.backends.engine import Engine, LoadState, Served, get_engine
from ctx_lsp.backends.local_model import ModelError, ProgressFn, describe_model, extra_installed
from ctx_lsp.backends.openai_compat import Backend, BackendConfig, BackendError, Completion
from ctx_lsp.text.messages import ChatMessage

log = logging.getLogger(__name__)

#: Sampling for chat answers: a small model loops without a repetition penalty and the DRY
#: sampler (llama.cpp's; it penalises repeating a sequence seen earlier in the text).
CHAT_SAMPLING = {"repeat_penalty": 1.1, "dry_multiplier": 0.8, "cache_prompt": True}
COMPLETION_SAMPLING = {"repeat_penalty": 1.0, "cache_prompt": True}
#: For few-shot transcripts: the DRY sampler looks at the whole prompt, so that an answer
#: does not copy an example's (more than 3 tokens of a sequence already seen are penalised)
SHOT_SAMPLING = {"dry_penalty_last_n": 32768, "dry_allowed_length": 3}


# --- the backend --------------------------------------------------------------------------------


class LocalBackend(Backend):
    """The embedded model. All instances for one model file share one `Engine`."""

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
        engine: Engine | None = None,
    ) -> None:
        # the engine's address and key are known once it runs (`_ready`)
        name = describe_model(model_setting)
        super().__init__(replace(config, base_url="http://127.0.0.1", model=name), env)
        self.model_setting = model_setting
        self.engine = engine or get_engine(model_setting, n_ctx, n_threads)
        self._bound: Served | None = None

    def describe(self) -> str:
        return f"{self.model} (embedded llama.cpp, on this machine)"

    # -- loading -----------------------------------------------------------------------------
    @property
    def load_state(self) -> LoadState:
        return self.engine.state

    def preload(self) -> None:
        """Start loading the model in the background now (returns at once)."""
        if extra_installed():
            self.engine.submit_load()

    async def ensure_loaded(self, on_progress: ProgressFn | None = None) -> LoadState:
        """Wait for the model (loading it if needed); `on_progress(message, fraction)` is
        called on the event loop while it loads. Raises BackendError if it cannot load."""
        await self._ready(on_progress)
        return self.engine.state

    async def _ready(self, on_progress: ProgressFn | None = None) -> Served:
        try:
            served = await self.engine.ready(on_progress)
        except ModelError as exc:
            raise BackendError(exc.kind, exc.message) from None
        if self._bound is not served:
            await self.aclose()  # its client spoke to an engine that is gone
            self._bound = served
            self.base_url, self._key = served.base_url, self.engine.api_key
            self._served_model, self.context_window = served.model, served.n_ctx
            self._prepared = True
        return served

    async def prepare(self) -> None:
        with contextlib.suppress(BackendError):  # the request itself reports it
            await self._ready()

    async def list_models(self) -> list[str]:
        await self._ready()
        return await super().list_models()

    # -- the Backend interface ---------------------------------------------------------------
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
        window = parse_completion_prompt(messages)
        if window is not None:
            return await self.complete_raw(
                *window, max_tokens=max_tokens, temperature=temperature, stop=stop
            )
        served = await self._ready()
        started = time.monotonic()
        sampling = {**CHAT_SAMPLING, **(extra or {})}
        if served.chat_template:
            turns = [ChatMessage(m["role"], m["content"]) for m in chat_messages(messages)]
            # always streamed: a closed connection is what stops the engine's generation
            out = await super().chat(
                turns,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop,
                stream=True,
                on_delta=on_delta,
                extra=sampling,
            )
        else:
            prompt, stops = base_prompt(messages)
            if stops != PLAIN_STOPS:  # a few-shot transcript: not a copy of its examples
                sampling |= SHOT_SAMPLING
            out = await self.complete_text(
                prompt,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=[*(stop or []), *stops],
                on_delta=on_delta,
                # a plain transcript's answer ends where it starts over (a 270M model would
                # loop for its whole token limit, ~20 s of a chat turn)
                until=repetition_cut if stops == PLAIN_STOPS else None,
                extra=sampling,
            )
            if stops != PLAIN_STOPS:  # the entry's answer: its first paragraph
                out = replace(out, text=out.text.strip().split("\n\n", 1)[0])
        _log_timing("chat", out, started)
        return out

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
        served = await self._ready()
        started = time.monotonic()
        limit = min(max_tokens or COMPLETION_MAX_TOKENS, COMPLETION_MAX_TOKENS)
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

        def until(raw: str) -> int | None:
            shown = visible(raw)
            end = ender.cut(shown)
            return None if end is None else len(raw) - len(shown) + end

        if served.fim and suffix.strip():
            out = await self._infill(stripped, suffix[:SUFFIX_CHARS], limit, temperature)
            end = until(out.text)
            if end is not None:
                out = replace(out, text=out.text[:end], finish_reason="stop")
        else:
            out = await self.complete_text(
                stripped,
                max_tokens=limit,
                temperature=temperature,
                until=until,
                extra=COMPLETION_SAMPLING,
            )
        text = visible(out.text)
        line = prefix[prefix.rfind("\n") + 1 :]
        if not line.strip():  # on a fresh line: the code after the comments, at the cursor
            while (m := COMMENT_LINE.match(text)) and text[m.end() :].strip():
                rest = text[m.end() :]
                lead = len(rest) - len(rest.lstrip(" \t"))
                text = rest[min(lead, len(line)) :]
        if out.finish_reason == "length" and "\n" in text.strip("\n"):
            # out of tokens mid-line: ghost text ending in "fibonacci(" is worse than
            # one line less
            text = text[: text.rstrip("\n").rfind("\n")]
        out = replace(out, text=text)
        _log_timing("completion", out, started)
        if on_delta is not None and text:
            on_delta(text)
        return out

    async def _infill(
        self, prefix: str, suffix: str, limit: int, temperature: float | None
    ) -> Completion:
        """llama.cpp's `/infill` (beside /v1, not under it): the model's own FIM format."""
        import json

        from ctx_lsp.backends.openai_compat import Usage

        body = {
            **COMPLETION_SAMPLING,
            "input_prefix": prefix,
            "input_suffix": suffix,
            "n_predict": limit,
            "temperature": temperature if temperature is not None else self.config.temperature,
        }
        url = self.base_url.removesuffix("/v1") + "/infill"
        raw = await self._retrying(lambda c: c.post(url, body=body, cast_to=bytes))
        try:
            resp = json.loads(raw)
            text = str(resp["content"])
        except (ValueError, KeyError, TypeError):
            raise self._errors().bad_response("the infill answer has no content") from None
        finish = "length" if resp.get("stop_type") == "limit" else "stop"
        usage = Usage(int(resp.get("tokens_evaluated", 0)), int(resp.get("tokens_predicted", 0)))
        return Completion(text, usage, self.model, finish)


def _log_timing(what: str, out: Completion, started: float) -> None:
    log.info(
        "local %s: %d prompt tokens (%d cached) + %d answer tokens in %.2f s",
        what,
        out.usage.prompt_tokens,
        out.usage.cached_tokens,
        out.usage.completion_tokens,
        time.monotonic() - started,
    )


__all__ = ["LocalBackend"]
