"""Command names (the protocol contract in DESIGN.md) and their argument shapes."""

from __future__ import annotations

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
