"""One typed, fully defaulted settings tree, merged from layers.

Layers, lowest first: defaults, user config file, workspace `.ctx/config.toml`,
`initializationOptions`, `workspace/configuration` (section `ctx`). Keys are
camelCase on the wire and in files, snake_case here. A bad value never stops the
server: it falls back to the value below it and is reported as a problem.

Values are checked key by key (`_coerce`), not structured whole with cattrs: each bad key
must fall back on its own, to the layer below, with its file and line in the message, which a
whole-object structuring pass does not give. (cattrs stays in the environment as lsprotocol's
dependency; ctx-lsp does not declare it.)
"""

from __future__ import annotations

import functools
import getpass
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a user can set. The `doc` metadata is also the VS Code description."""

    model: str = field(
        default="gpt-4o-mini",
        metadata=_doc("Model name sent to the OpenAI-compatible endpoint."),
    )
    base_url: str = field(
        default="",
        metadata=_doc(
            "Base URL of an OpenAI-compatible endpoint (e.g. http://localhost:11434/v1 "
            "for Ollama). Empty: OPENAI_BASE_URL, else the OpenAI default."
        ),
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata=_doc(
            "Name of the environment variable holding the API key. "
            "The key itself is never stored in settings."
        ),
    )
    backend: str = field(
        default="auto",
        metadata=_doc(
            "Which backend answers: 'openai' (any OpenAI-compatible endpoint), 'local' "
            "(embedded model, needs the 'local' extra) or 'auto' (an API key or base URL "
            "selects 'openai', else 'local' when installed).",
            choices=("auto", "openai", "local"),
        ),
    )
    local_model: str = field(
        default="",
        metadata=_doc("Path of a GGUF model file for the local backend. Empty: the bundled one."),
    )
    max_tokens: int = field(
        default=2048,
        metadata=_doc(
            "Most tokens the model may write in any answer: it caps every task; each task asks "
            "for its template's max_tokens under it (completion 256, commit 400, explain "
            "1024, tests 2048).",
            min=1,
            max=32768,
        ),
    )
    temperature: float = field(
        default=0.2, metadata=_doc("Sampling temperature (0 = deterministic).", min=0.0, max=2.0)
    )
    timeout_s: float = field(
        default=30.0,
        metadata=_doc("Seconds to wait for the model before giving up.", min=1.0, max=600.0),
    )
    max_retries: int = field(
        default=2,
        metadata=_doc("Retries on rate limits and server errors (with backoff).", min=0, max=10),
    )
    debounce_ms: int = field(
        default=120,
        metadata=_doc(
            "Milliseconds to wait after the last keystroke before asking for an inline "
            "completion; newer requests cancel older ones.",
            min=0,
            max=5000,
        ),
    )
    context_tokens: int = field(
        default=4096,
        metadata=_doc(
            "Token budget of a prompt: cursor window, related code, history and project "
            "summary are trimmed to fit, in that order of importance.",
            min=256,
            max=1_000_000,
        ),
    )
    history_messages: int = field(
        default=10,
        metadata=_doc("How many recent chat-history messages go into each prompt.", min=0),
    )
    cache: bool = field(
        default=True,
        metadata=_doc("Answer identical prompts from a cache (in memory and in .ctx/, per user)."),
    )
    user: str = field(
        default="",
        metadata=_doc(
            "Name under which this user's session and history are kept in .ctx/. "
            "Empty: the operating-system user."
        ),
    )
    branch_sessions: bool = field(
        default=False,
        metadata=_doc("Keep a separate session and history per git branch."),
    )
    env_allowlist: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Environment variable names that may appear in the context. Values of "
            "secret-looking names (KEY, TOKEN, SECRET, PASSWORD…) never do."
        ),
    )

    def effective_user(self) -> str:
        """The user's name (as given: the store makes it a folder name)."""
        return self.user or _os_user()


@functools.cache
def _os_user() -> str:
    """The login name (asked once: every request's session scope needs it)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): one shared default
        return "default"


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


FIELDS = {camel(f.name): f for f in fields(Settings)}


@dataclass(frozen=True)
class Layer:
    """One source of settings: where it came from and its camelCase values."""

    source: str
    values: Mapping[str, Any]
    #: key → line number in the source file, for messages
    lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    settings: Settings
    problems: list[str]
    #: camelCase key → the layer that set it ("default" when none did)
    origins: dict[str, str]


def _coerce(f: Any, value: Any) -> Any:
    """Return a value of the field's type or raise ValueError with a reason."""
    kind = type(f.default)
    meta = f.metadata
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("expected a number")
        if kind is int and float(value) != int(value):
            raise ValueError("expected a whole number")
        value = kind(value)
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"expected a number between {lo} and {hi if hi is not None else '∞'}")
        return value
    if kind is str:
        if value is None:
            return f.default
        if not isinstance(value, str):
            raise ValueError("expected a string")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return value
    if kind is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        return tuple(value)
    raise ValueError("unsupported setting")


def resolve(layers: Iterable[Layer]) -> Resolved:
    """Merge layers (lowest first) into Settings; bad keys and values become problems."""
    values: dict[str, Any] = {}
    origins = {key: "default" for key in FIELDS}
    problems: list[str] = []
    for layer in layers:
        if not isinstance(layer.values, Mapping):
            problems.append(f"{layer.source}: settings must be an object, ignored")
            continue
        for key, raw in layer.values.items():
            where = layer.source
            if key in layer.lines:
                where += f":{layer.lines[key]}"
            f = FIELDS.get(key)
            if f is None:
                problems.append(f"{where}: unknown setting '{key}', ignored")
                continue
            try:
                values[f.name] = _coerce(f, raw)
                origins[key] = layer.source
            except ValueError as exc:
                problems.append(
                    f"{where}: invalid value {raw!r} for '{key}' ({exc}), using default"
                )
    return Resolved(replace(Settings(), **values), problems, origins)


def to_wire(settings: Settings) -> dict[str, Any]:
    """camelCase form, e.g. for `ctx-lsp doctor` or the VS Code manifest."""
    out: dict[str, Any] = {}
    for key, f in FIELDS.items():
        value = getattr(settings, f.name)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out
