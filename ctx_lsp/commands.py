"""Command names (the protocol contract in DESIGN.md) and their argument shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXPLAIN = "ctx.explain"
FIX_ERROR = "ctx.fixError"
GENERATE_TESTS = "ctx.generateTests"
COMMIT_MESSAGE = "ctx.commitMessage"
SUMMARIZE_HISTORY = "ctx.summarizeHistory"
SHOW_CONTEXT = "ctx.showContext"
SHOW_PROMPT = "ctx.showPrompt"
ADD_FILE = "ctx.addFile"
REMOVE_FILE = "ctx.removeFile"
CLEAR_HISTORY = "ctx.clearHistory"
CLEAR_SESSION = "ctx.clearSession"
TRUST_WORKSPACE = "ctx.trustWorkspace"
CHAT = "ctx.chat"
APPLY_CODE = "ctx.applyCode"
CHAT_HISTORY = "ctx.chatHistory"


class ArgumentError(ValueError):
    """A command called with arguments of the wrong shape."""


def one_object(args: Any) -> dict[str, Any]:
    """Commands take one JSON object; clients send it as the sole list element."""
    if args is None:
        return {}
    if isinstance(args, list):
        if not args:
            return {}
        if len(args) == 1 and isinstance(args[0], dict):
            return args[0]
    if isinstance(args, dict):
        return args
    raise ArgumentError("expected one JSON object as the command's argument")


def string_arg(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ArgumentError(f"'{key}' must be a non-empty string")
    return value


def _optional(obj: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise ArgumentError(f"'{key}' must be {what}")
    return value


@dataclass(frozen=True)
class ChatArgs:
    """`ctx.chat`: a question, optionally about a document and a range of it, with files."""

    question: str
    uri: str | None = None
    range: dict[str, Any] | None = None  # an LSP Range, checked by the handler
    files: tuple[str, ...] = ()
    session: str | None = None  # accepted for clients that name their chat; one conversation

    @classmethod
    def parse(cls, args: Any) -> ChatArgs:
        obj = one_object(args)
        question = obj.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ArgumentError("'question' must be a non-empty string")
        files = obj.get("files") or []
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise ArgumentError("'files' must be a list of workspace paths")
        uri = _optional(obj, "uri", str, "a document URI")
        rng = _optional(obj, "range", dict, "an LSP range")
        if rng is not None and uri is None:
            raise ArgumentError("'range' needs 'uri': the document it is in")
        session = _optional(obj, "session", str, "a string")
        return cls(question, uri, rng, tuple(files), session)


@dataclass(frozen=True)
class ApplyCodeArgs:
    """`ctx.applyCode`: code block `block` (0-based) of answer `historyId` into `uri`."""

    history_id: str
    block: int
    uri: str
    range: dict[str, Any] | None = None  # None: the whole document
    #: ask the client to show the edit for confirmation before it lands (where it can)
    confirm: bool = False

    @classmethod
    def parse(cls, args: Any) -> ApplyCodeArgs:
        obj = one_object(args)
        block = obj.get("block", 0)
        if not isinstance(block, int) or isinstance(block, bool) or block < 0:
            raise ArgumentError("'block' must be the 0-based index of a code block")
        rng = _optional(obj, "range", dict, "an LSP range")
        confirm = _optional(obj, "confirm", bool, "true or false") or False
        return cls(string_arg(obj, "historyId"), block, string_arg(obj, "uri"), rng, confirm)


@dataclass(frozen=True)
class ChatHistoryArgs:
    limit: int = 50

    @classmethod
    def parse(cls, args: Any) -> ChatHistoryArgs:
        obj = one_object(args)
        limit = obj.get("limit", 50)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ArgumentError("'limit' must be a number of turns (0 or more)")
        return cls(limit)
