"""Typed chat messages shared by history, prompt building and backends."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
#: What an exchange was for; stored with every history entry.
Kind = Literal["chat", "completion", "explain", "fix", "tests", "commit", "summary"]


#: Fields left out of a stored record while they hold their default.
_OPTIONAL = ("files", "cut")


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation, as sent to a model and as kept in history."""

    role: Role
    content: str
    time: float = field(default_factory=time.time)
    kind: str = "chat"
    file: str | None = None
    branch: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: workspace files the exchange was about besides `file` (a chat's @mentions, a diff's files)
    files: tuple[str, ...] = ()
    #: an answer stopped before the model finished (the user cancelled it)
    cut: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # written only when set: older readers and most lines never see them
        for key in _OPTIONAL:
            if not data[key]:
                del data[key]
        if "files" in data:
            data["files"] = list(data["files"])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChatMessage:
        """Build from a stored record; raises ValueError on a record of the wrong shape."""
        if not isinstance(data, dict):
            raise ValueError("history record is not an object")
        role, content = data.get("role"), data.get("content")
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise ValueError("history record lacks a valid role or content")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        t = known.get("time")
        if not isinstance(t, (int, float)):
            known["time"] = 0.0
        files = known.get("files", ())
        listed = files if isinstance(files, list) else []
        known["files"] = tuple(f for f in listed if isinstance(f, str))
        known["cut"] = known.get("cut") is True
        return cls(**known)

    def as_api(self) -> dict[str, str]:
        """The wire form for chat completion requests."""
        return {"role": self.role, "content": self.content}
