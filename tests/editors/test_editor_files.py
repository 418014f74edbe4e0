"""The editor integrations agree with the server: settings, commands, documentation.

These need neither an editor nor Node; the editors themselves are exercised by
test_neovim.py (headless Neovim) and .ci/vscode-e2e.sh (code-server + Playwright).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from ctx_lsp import commands

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from ctx_lsp.config.settings import FIELDS, Settings, to_wire

ROOT = Path(__file__).resolve().parents[2]
VSCODE = ROOT / "editors" / "vscode"
NVIM = ROOT / "editors" / "nvim"


def _package() -> dict:
    return json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))


def test_vscode_configuration_is_generated_from_the_server_settings():
    proc = subprocess.run(
        [sys.executable, str(VSCODE / "scripts" / "gen-config.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    props = _package()["contributes"]["configuration"]["properties"]
    defaults = to_wire(Settings())
    for key, f in FIELDS.items():
        prop = props[f"ctx.{key}"]
        assert prop["default"] == defaults[key]
        assert prop["description"] == f.metadata["doc"]
        assert prop["scope"] in {"window", "machine"}
    server_keys = {k.removeprefix("ctx.") for k in props} - {
        "server.path",
        "server.python",
        "server.args",
        "trace.server",
    }
    assert server_keys == set(FIELDS)


def test_vscode_palette_commands_are_registered_and_distinct_from_server_commands():
    package = _package()
    source = "\n".join(p.read_text(encoding="utf-8") for p in (VSCODE / "src").glob("*.ts"))
    server_commands = {v for k, v in vars(commands).items() if k.isupper() and isinstance(v, str)}
    titles = set()
    for cmd in package["contributes"]["commands"]:
        assert f"registerCommand('{cmd['command']}'" in source, cmd
        # vscode-languageclient registers the server's commands under their own names
        assert cmd["command"] not in server_commands
        # a category prefixes the title in the palette; a title may carry its own
        titles.add(f"{cmd['category']}: {cmd['title']}" if "category" in cmd else cmd["title"])
    assert {
        "ctx: Generate Commit Message",
        "ctx: Explain Selection",
        "ctx: Show Context",
        "ctx: Summarize History",
        "ctx: Clear History",
        "ctx: Restart Server",
    } <= titles
    # every server command the extension sends exists
    for name in re.findall(r"execute\('(ctx\.[A-Za-z]+)'", source):
        assert name in server_commands, name


def test_vscode_lockfile_matches_package_json():
    lock = json.loads((VSCODE / "package-lock.json").read_text(encoding="utf-8"))
    package = _package()
    root = lock["packages"][""]
    assert root["dependencies"] == package["dependencies"]
    assert root["devDependencies"] == package["devDependencies"]


def test_nvim_plugin_uses_only_server_commands_and_documents_every_setting():
    lua = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((NVIM / "lua" / "ctx_lsp").glob("*.lua"))
    )
    server_commands = {v for k, v in vars(commands).items() if k.isupper() and isinstance(v, str)}
    used = set(re.findall(r"'(ctx\.[A-Za-z]+)'", lua))
    assert used and used <= server_commands, used - server_commands
    help_text = (NVIM / "doc" / "ctx-lsp.txt").read_text(encoding="utf-8")
    assert help_text.startswith("*ctx-lsp.txt*")
    assert re.search(r"^ vim:.*ft=help", help_text, re.M)
    for key in FIELDS:
        assert f"`{key}`" in help_text, f"{key} missing from :help ctx-lsp-settings"
    config = (NVIM / "lsp" / "ctx_lsp.lua").read_text(encoding="utf-8")
    assert "cmd = { 'ctx-lsp' }" in config and "'.ctx', '.git'" in config


def test_readme_snippets_for_helix_and_emacs_parse():
    readme = (ROOT / "editors" / "README.md").read_text(encoding="utf-8")
    (toml_block,) = re.findall(r"```toml\n(.*?)```", readme, re.S)
    config = tomllib.loads(toml_block)
    server = config["language-server"]["ctx-lsp"]
    assert server["command"] == "ctx-lsp"
    assert set(server["config"]["ctx"]) <= set(FIELDS)
    python = next(lang for lang in config["language"] if lang["name"] == "python")
    assert "ctx-lsp" in [s if isinstance(s, str) else s["name"] for s in python["language-servers"]]
    elisp = re.findall(r"```elisp\n(.*?)```", readme, re.S)
    assert any("eglot-server-programs" in block and '"ctx-lsp"' in block for block in elisp)
    # balanced parentheses in every Emacs Lisp snippet
    for block in elisp:
        code = re.sub(r'"(\\.|[^"\\])*"|;.*', "", block)
        assert code.count("(") == code.count(")"), block
