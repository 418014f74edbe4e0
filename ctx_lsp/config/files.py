"""Settings files: the user's (platformdirs' config dir) and the workspace's `.ctx/config.toml`.

Top-level keys are settings (camelCase, as in the LSP settings); the `[templates]`
table holds user templates. Problems carry the file and line.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from ctx_lsp.config.settings import Layer

CONFIG_NAME = "config.toml"
#: Tables that are not settings.
SECTIONS = frozenset({"templates"})


def user_config_path() -> Path:
    env = os.environ  # asked before every request: found again only when these change
    return _user_config_path(env.get("CTX_LSP_CONFIG"), env.get("XDG_CONFIG_HOME"), env.get("HOME"))


@functools.lru_cache(maxsize=8)
def _user_config_path(override: str | None, _xdg: str | None, _home: str | None) -> Path:
    if override:
        return Path(override)
    from platformdirs import user_config_dir

    return Path(user_config_dir("ctx-lsp")) / CONFIG_NAME


def workspace_config_path(root: Path) -> Path:
    return root / ".ctx" / CONFIG_NAME


def _key_lines(text: str) -> dict[str, int]:
    """Line of each top-level key, so messages can point at it."""
    lines: dict[str, int] = {}
    in_table = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_table = True
            continue
        match = re.match(r'^\s*"?([A-Za-z0-9_.-]+)"?\s*=', line)
        if match and not in_table:
            lines.setdefault(match.group(1), number)
    return lines


def read_config(path: Path, source: str) -> tuple[Layer, dict[str, Any], list[str]]:
    """Settings layer, the non-settings tables, and problems. Missing file: empty layer."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Layer(source, {}), {}, []
    except (OSError, UnicodeDecodeError) as exc:
        return Layer(source, {}), {}, [f"{path}: cannot read ({exc.__class__.__name__}), ignored"]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Layer(source, {}), {}, [f"{path}: invalid TOML ({exc}), ignored"]
    settings = {k: v for k, v in data.items() if k not in SECTIONS}
    tables = {k: v for k, v in data.items() if k in SECTIONS}
    return Layer(str(path), settings, _key_lines(text)), tables, []
