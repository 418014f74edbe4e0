"""The package's layers, lowest first, and a check that imports only point down.

`python -m ctx_lsp.layers` prints the layers and every import that points the wrong way
(exit 1 when there is one); `tests/test_layers.py` runs the same check.

A module may import its own layer and the layers below it. Imports inside `if TYPE_CHECKING:`
count too: a type annotation that points up is still a wrong-way dependency.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

#: (layer, what it owns), lowest first. A layer is a subpackage or a top-level module.
LAYERS: tuple[tuple[str, str], ...] = (
    ("text", "documents, the shared document view, languages, tokens, masking, messages"),
    ("commands", "the command names and argument shapes (the protocol contract)"),
    ("config", "settings, their layers, config files, workspace trust"),
    ("store", "the .ctx/ folder: atomic files, history, session, response cache"),
    ("workspace", "a folder: root, git, exclusion, pins, tree, context snapshot, merge"),
    ("prompting", "templates, relevance ranking, regions, the prompt builder"),
    ("backends", "the OpenAI-compatible backend, selection, the embedded model"),
    ("plugins", "third-party plugins and their hooks"),
    ("assist", "the assistant and its jobs: completion, explain, fix, tests, commit, chat"),
    ("runtime", "what the server and the CLI share: settings, templates, backend, views"),
    ("server", "the language server (the only importer of pygls)"),
    ("cli", "ctx-lsp <command> on a shell"),
    ("__main__", "the entry point"),
    ("layers", "this check"),
)
_RANK = {name: i for i, (name, _) in enumerate(LAYERS)}
# Layers that may sit side by side at one rank (neither imports the other).
_PEERS = {("cli", "server"): "the CLI starts the server process, never imports its modules"}
# The LSP libraries: the server, and the demo (an LSP client of the server).
_LSP_LIBRARIES = ("pygls", "lsprotocol")
_LSP_IMPORTERS = ("ctx_lsp.server", "ctx_lsp.cli.demo")


@dataclass(frozen=True)
class WrongWay:
    module: str
    line: int
    imported: str

    def __str__(self) -> str:
        why = "outside the server" if layer_of(self.imported) is None else "a higher layer"
        return f"{self.module}:{self.line} imports {self.imported} ({why})"


def layer_of(module: str) -> str | None:
    """`ctx_lsp.prompting.relevance` → "prompting"; None outside the package or for its root."""
    parts = module.split(".")
    if parts[0] != "ctx_lsp" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in _RANK else None


def _module_name(path: Path, package: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if layer_of(target) is None and target == "ctx_lsp":
                # `from ctx_lsp import tasks`: each name is a module of its own.
                out.extend((node.lineno, f"ctx_lsp.{a.name}") for a in node.names)
            else:
                out.append((node.lineno, target))
    return out


def wrong_way_imports(package: Path = PACKAGE) -> list[WrongWay]:
    found: list[WrongWay] = []
    for path in sorted(package.rglob("*.py")):
        module = _module_name(path, package)
        own = layer_of(module)
        if own is None:
            continue
        for line, target in _imports(path, module):
            if target.split(".")[0] in _LSP_LIBRARIES and not module.startswith(_LSP_IMPORTERS):
                found.append(WrongWay(module, line, target))
                continue
            other = layer_of(target)
            if other is None or other == own:
                continue
            if _RANK[other] > _RANK[own] or (own, other) in _PEERS or (other, own) in _PEERS:
                found.append(WrongWay(module, line, target))
    return found


def main() -> int:
    out = [f"{i:2}  {name:<10} {owns}" for i, (name, owns) in enumerate(LAYERS)]
    bad = wrong_way_imports()
    out += [f"wrong way: {b}" for b in bad]
    out.append(f"{len(bad)} wrong-way import(s)")
    sys.stdout.write("\n".join(out) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
