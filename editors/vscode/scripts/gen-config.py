#!/usr/bin/env python3
"""Generate `contributes.configuration` of the VS Code extension from the server's settings.

The server's `Settings` dataclass is the single source: each field becomes `ctx.<camelKey>`
with its type, default, bounds, choices and the description from `metadata["doc"]`. The
extension's own settings (how to start the server) are defined below and come first.

    python editors/vscode/scripts/gen-config.py          # rewrite package.json
    python editors/vscode/scripts/gen-config.py --check  # exit 1 if package.json is stale

Run it with the Python that has ctx_lsp installed (the project's .venv).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING
from pathlib import Path
from typing import Any

PACKAGE_JSON = Path(__file__).resolve().parent.parent / "package.json"

# Settings that could send code or the API key somewhere else, or run a program, may only be
# set by the user (scope "machine"), never by a workspace's .vscode/settings.json.
MACHINE_SCOPED = {"baseUrl", "apiKeyEnv", "backend", "localModel"}

EXTENSION_SETTINGS: dict[str, dict[str, Any]] = {
    "ctx.server.path": {
        "type": "string",
        "default": "",
        "scope": "machine",
        "description": (
            "Path of the ctx-lsp executable. Empty: `ctx-lsp` on PATH, else "
            "`python -m ctx_lsp` with ctx.server.python or the Python extension's interpreter."
        ),
    },
    "ctx.server.python": {
        "type": "string",
        "default": "",
        "scope": "machine",
        "description": (
            "Python interpreter used to run `python -m ctx_lsp` when ctx.server.path is empty "
            "and `ctx-lsp` is not on PATH. Empty: python.defaultInterpreterPath, else python3."
        ),
    },
    "ctx.server.args": {
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "scope": "machine",
        "description": (
            "Extra command-line arguments for the server, "
            'e.g. ["--log-file", "/tmp/ctx.log", "-v"].'
        ),
    },
    "ctx.trace.server": {
        "type": "string",
        "enum": ["off", "messages", "verbose"],
        "default": "off",
        "scope": "window",
        "description": (
            "Trace the LSP messages between VS Code and the server in the output channel."
        ),
    },
}


def _json_type(default: Any) -> str:
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int):
        return "integer"
    if isinstance(default, float):
        return "number"
    if isinstance(default, str):
        return "string"
    if isinstance(default, (tuple, list)):
        return "array"
    raise TypeError(f"unsupported setting type {type(default).__name__}")


def server_properties() -> dict[str, dict[str, Any]]:
    from ctx_lsp.config.settings import FIELDS, Settings, to_wire

    defaults = to_wire(Settings())
    props: dict[str, dict[str, Any]] = {}
    for key, f in FIELDS.items():
        meta = f.metadata
        default = f.default if f.default is not MISSING else defaults[key]
        prop: dict[str, Any] = {"type": _json_type(default), "default": defaults[key]}
        if prop["type"] == "array":
            prop["items"] = {"type": "string"}
        if meta.get("choices"):
            prop["enum"] = list(meta["choices"])
        if meta.get("min") is not None:
            prop["minimum"] = meta["min"]
        if meta.get("max") is not None:
            prop["maximum"] = meta["max"]
        prop["scope"] = "machine" if key in MACHINE_SCOPED else "window"
        prop["description"] = meta["doc"]
        props[f"ctx.{key}"] = prop
    return props


def configuration() -> dict[str, Any]:
    return {
        "title": "ctx",
        "properties": {**EXTENSION_SETTINGS, **server_properties()},
    }


def render(package: dict[str, Any]) -> str:
    package = dict(package)
    contributes = dict(package.get("contributes") or {})
    contributes["configuration"] = configuration()
    package["contributes"] = contributes
    return json.dumps(package, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if package.json is stale")
    parser.add_argument("--package", type=Path, default=PACKAGE_JSON)
    args = parser.parse_args(argv)
    current = args.package.read_text(encoding="utf-8")
    wanted = render(json.loads(current))
    if args.check:
        if current != wanted:
            print(
                f"{args.package}: contributes.configuration differs from ctx_lsp.config.settings; "
                "run: python editors/vscode/scripts/gen-config.py",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != wanted:
        args.package.write_text(wanted, encoding="utf-8")
        print(f"updated {args.package}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
