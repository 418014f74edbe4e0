"""What a document imports, as module paths (``pkg/util``) and names (``pkg/util::name``),
and which files implement a module path."""

from __future__ import annotations

import functools
import posixpath
import re
from dataclasses import dataclass, field

from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.textkey import HashedKey

_PY_FROM = re.compile(
    r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(?:\(([^)]*)\)|([^\n#]*))", re.M
)
_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w. ,]+)", re.M)
_JS_IMPORT = re.compile(r"""(?:from|import|require\(|import\()[ \t]*['"]([^'"\n]+)['"]""")
_GO_IMPORT_BLOCK = re.compile(r"^import[ \t]*\(([^)]*)\)", re.M)
_GO_IMPORT_ONE = re.compile(r"^import[ \t]+(?:\w+[ \t]+)?\"([^\"]+)\"", re.M)
_RUST_USE = re.compile(r"^[ \t]*(?:pub[ \t]+)?use[ \t]+(?:crate|self|super)::([\w:]+)", re.M)
_RUST_MOD = re.compile(r"^[ \t]*(?:pub[ \t]+)?mod[ \t]+(\w+)[ \t]*;", re.M)


def _js_import_specs(text: str) -> list[str]:
    """Module specifiers of ``import ... from "x"``, ``import "x"``, ``require("x")``."""
    out: list[str] = []
    for word in ("from", "import", "require"):
        pos = text.find(word)
        while pos >= 0:
            if pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] in "_$."):
                m = _JS_IMPORT.match(text, pos)
                if m is not None:
                    out.append(m.group(1))
            pos = text.find(word, pos + len(word))
    return out


def imports(doc: OpenDoc, fam: str) -> list[str]:
    """Module paths imported by ``doc``, as path suffixes without extension (``pkg/util``);
    names imported from them are appended as ``pkg/util::name``."""
    text = doc.text
    out: list[str] = []
    here = posixpath.dirname(doc.path.replace("\\", "/"))
    if fam == "python":
        for m in _PY_FROM.finditer(text):
            dots, mod, names = m.group(1), m.group(2), m.group(3) or m.group(4) or ""
            if dots:
                base = here
                for _ in range(len(dots) - 1):
                    base = posixpath.dirname(base)
                mod_path = posixpath.join(base, mod.replace(".", "/")) if mod else base
            else:
                mod_path = mod.replace(".", "/")
            if not mod_path:
                continue
            out.append(mod_path)
            for part in names.replace("\\", " ").split(","):
                name = part.split("#")[0].strip().split(" ")[0]
                if name and name != "*" and name.isidentifier():
                    out.append(f"{mod_path}::{name}")
                    if dots and not mod:  # `from . import util` imports a module
                        out.append(posixpath.join(mod_path, name))
        for m in _PY_IMPORT.finditer(text):
            for part in m.group(1).split(","):
                mod = part.strip().split(" ")[0]
                if mod:
                    out.append(mod.replace(".", "/"))
    elif fam == "js":
        for spec in _js_import_specs(text):
            if spec.startswith("."):
                out.append(posixpath.normpath(posixpath.join(here, spec)))
            else:
                out.append(spec.lstrip("@~/"))
    elif fam == "go":
        specs = [m.group(1) for m in _GO_IMPORT_ONE.finditer(text)]
        for m in _GO_IMPORT_BLOCK.finditer(text):
            specs.extend(re.findall(r"\"([^\"]+)\"", m.group(1)))
        out.extend(specs)
    elif fam == "rust":
        for m in _RUST_USE.finditer(text):
            parts = m.group(1).split("::")
            # `use crate::a::b::Thing` may name a module `a/b` or an item in `a`.
            for n in range(len(parts), 0, -1):
                out.append("/".join(parts[:n]))
        out.extend(m.group(1) for m in _RUST_MOD.finditer(text))
    return out


_MODULE_SUFFIXES = (
    ".py",
    "/__init__.py",
    ".pyi",
    ".ts",
    ".tsx",
    ".js",
    ".jsx",
    ".mjs",
    ".d.ts",
    "/index.ts",
    "/index.tsx",
    "/index.js",
    ".rs",
    "/mod.rs",
    ".h",
    ".hpp",
    ".hh",
    ".java",
    ".kt",
)


@functools.lru_cache(maxsize=4096)
def module_names(path: str) -> tuple[frozenset[str], str]:
    """Every module ``path`` implements (path suffixes without extension, see
    :data:`_MODULE_SUFFIXES`), and its folder when it is a Go file (else "").

    Computed once per path, so matching a document against a file's imports is a set lookup.
    """
    path = path.replace("\\", "/")
    names: set[str] = set()
    for suffix in _MODULE_SUFFIXES:
        if not path.endswith(suffix) or len(path) == len(suffix):
            continue
        base = path[: -len(suffix)]
        if suffix.startswith("/") and not base:
            continue
        names.add(base)
        at = base.find("/")
        while at >= 0:  # every tail that starts at a folder boundary
            names.add(base[at + 1 :])
            at = base.find("/", at + 1)
    names.discard("")
    go_folder = posixpath.dirname(path) if path.endswith(".go") else ""
    return frozenset(names), go_folder


def module_matches(path: str, module: str) -> bool:
    """Does file ``path`` implement ``module`` (a path suffix without extension)?"""
    module = module.strip("/")
    if not module:
        return False
    names, go_folder = module_names(path)
    if module in names:
        return True
    # Go: a package is a folder, and the import path ends with the folder's path in the
    # project (`example.com/proj/pkg/util` for pkg/util/*.go).
    return bool(go_folder) and (module == go_folder or module.endswith("/" + go_folder))


# --------------------------------------------------------------------------------------------
# Bindings: which local names an import brings in, and from where


@dataclass(frozen=True)
class Bindings:
    """What the imports of one document bind. Module paths as in :func:`imports`."""

    #: local name → (module path, name there): ``from .util import parse_bool as pb``
    names: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: local name → module path: ``from . import util``, ``import * as u from "./util"``
    modules: dict[str, str] = field(default_factory=dict)
    #: modules whose every name is in scope: ``from x import *``, ``#include "x.h"``
    wildcards: tuple[str, ...] = ()
    #: ``class Name(Base, ...)`` / ``extends Base`` / ``implements I`` of the file: name → bases
    bases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @functools.cached_property
    def key(self) -> HashedKey:
        """All of it as one memo key (asked once the bindings are complete): equal for two
        versions of a file whose imports are the same."""
        return HashedKey(
            (
                tuple(self.names.items()),
                tuple(self.modules.items()),
                self.wildcards,
                tuple(self.bases.items()),
            )
        )


_ALIAS = re.compile(r"([\w$]+)(?:\s+as\s+([\w$]+))?")
_DOTTED_ALIAS = re.compile(r"([\w.]+)\s+as\s+(\w+)")
_JS_BINDING = re.compile(
    r"""^[ \t]*(?:import|export)[ \t]+(?:type[ \t]+)?([^'";]*?)[ \t]*from[ \t]*['"]([^'"\n]+)['"]"""
    r"""|^[ \t]*(?:const|let|var)[ \t]+([^=;\n]+?)[ \t]*=[ \t]*require\(\s*['"]([^'"\n]+)['"]""",
    re.M,
)
_GO_SPEC = re.compile(r"^[ \t]*(?:import[ \t]+)?([\w.]+[ \t]+)?\"([^\"]+)\"", re.M)
_RUST_USE_TREE = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?use[ \t]+([^;]+);", re.M)
_JAVA_IMPORT = re.compile(r"^[ \t]*import[ \t]+(?:static[ \t]+)?([\w.]+?)(\.\*)?[ \t]*;", re.M)
_INCLUDE = re.compile(r"^[ \t]*#[ \t]*include[ \t]*\"([^\"\n]+)\"", re.M)
_PY_CLASS = re.compile(r"^[ \t]*class[ \t]+(\w+)[ \t]*\(([^)]*)\)", re.M)
_BRACE_CLASS = re.compile(
    r"\b(?:class|interface|struct)[ \t]+([\w$]+)(?:<[^>{]*>)?[ \t]*"
    r"((?:extends|implements|:)[^{;]*)\{"
)


def _js_module(here: str, spec: str) -> str:
    if spec.startswith("."):
        return posixpath.normpath(posixpath.join(here, spec))
    return spec.lstrip("@~/")


def _js_names(clause: str, mod: str, out: Bindings) -> None:
    clause = clause.strip()
    if clause.startswith("*"):
        m = re.match(r"\*\s*as\s+([\w$]+)", clause)
        if m:
            out.modules[m.group(1)] = mod
        return
    braces = re.search(r"\{([^}]*)\}", clause)
    default = clause[: braces.start()] if braces else clause
    default = default.strip().rstrip(",").strip()
    if default and re.fullmatch(r"[\w$]+", default):
        out.names[default] = (mod, "default")
        out.modules.setdefault(default, mod)  # `import util from "./util"; util.x()`
    if braces:
        for part in braces.group(1).split(","):
            part = re.sub(r"^\s*type\s+", "", part.strip())
            m = re.fullmatch(r"([\w$]+)(?:\s+as\s+([\w$]+))?", part)
            if m:
                out.names[m.group(2) or m.group(1)] = (mod, m.group(1))


def _python_bindings(text: str, here: str, out: Bindings, wild: list[str]) -> None:
    for m in _PY_FROM.finditer(text):
        dots, mod, names = m.group(1), m.group(2), m.group(3) or m.group(4) or ""
        base = here
        for _ in range(len(dots) - 1):
            base = posixpath.dirname(base)
        mod_path = (
            (posixpath.join(base, mod.replace(".", "/")) if mod else base)
            if dots
            else mod.replace(".", "/")
        )
        for part in names.replace("\\", " ").split(","):
            part = part.split("#")[0].strip()
            if part == "*":
                wild.append(mod_path)
                continue
            a = _ALIAS.fullmatch(part)
            if a is None:
                continue
            name, local = a.group(1), a.group(2) or a.group(1)
            out.names[local] = (mod_path, name)
            # `from . import util` / `from pkg import module`: maybe a module
            out.modules.setdefault(local, posixpath.join(mod_path, name) if mod_path else name)
    for m in _PY_IMPORT.finditer(text):
        for part in m.group(1).split(","):
            a = _DOTTED_ALIAS.fullmatch(part.strip()) if " as " in part else None
            mod = part.strip().split(" ")[0]
            if mod:
                out.modules[a.group(2) if a else mod] = mod.replace(".", "/")
    for m in _PY_CLASS.finditer(text):
        bases = tuple(b.strip().split("[")[0] for b in m.group(2).split(",") if b.strip())
        out.bases[m.group(1)] = tuple(b for b in bases if "=" not in b)


def _js_bindings(text: str, here: str, out: Bindings, wild: list[str]) -> None:
    for m in _JS_BINDING.finditer(text):
        if m.group(2) is not None:
            _js_names(m.group(1), _js_module(here, m.group(2)), out)
        else:
            mod, target = _js_module(here, m.group(4)), m.group(3).strip()
            if target.startswith("{"):
                _js_names(target, mod, out)
            elif re.fullmatch(r"[\w$]+", target):
                out.modules[target] = mod


def _go_bindings(text: str, here: str, out: Bindings, wild: list[str]) -> None:
    specs: list[tuple[str, str]] = []
    for m in _GO_IMPORT_BLOCK.finditer(text):
        specs += [((s.group(1) or "").strip(), s.group(2)) for s in _GO_SPEC.finditer(m.group(1))]
    for m in _GO_IMPORT_ONE.finditer(text):
        line = text[m.start() : text.find("\n", m.start()) % (len(text) + 1)]
        s = _GO_SPEC.match(line)
        if s:
            specs.append(((s.group(1) or "").strip(), s.group(2)))
    for alias, path in specs:
        if alias == ".":
            wild.append(path)
        elif alias != "_":
            out.modules[alias or path.rsplit("/", 1)[-1]] = path


def _rust_bindings(text: str, here: str, out: Bindings, wild: list[str]) -> None:
    for m in _RUST_USE_TREE.finditer(text):
        tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", m.group(1)))
        _rust_use(tree, out, wild)


def _clike_bindings(text: str, here: str, out: Bindings, wild: list[str]) -> None:
    for m in _JAVA_IMPORT.finditer(text):
        path = m.group(1).replace(".", "/")
        if m.group(2):
            wild.append(path)
        else:
            out.names[path.rsplit("/", 1)[-1]] = (path, path.rsplit("/", 1)[-1])
    for m in _INCLUDE.finditer(text):
        inc = posixpath.normpath(posixpath.join(here, m.group(1)))
        wild.append(posixpath.splitext(inc)[0])


_NOT_BASES = ("extends", "implements", "public", "private", "protected", "virtual")


def _brace_class_bases(text: str, out: Bindings) -> None:
    for m in _BRACE_CLASS.finditer(text):
        bases = re.findall(r"[A-Za-z_$][\w$.]*", m.group(2))
        out.bases[m.group(1)] = tuple(b.rsplit(".", 1)[-1] for b in bases if b not in _NOT_BASES)


#: family → what its import statements bind
_BINDERS = {
    "python": _python_bindings,
    "js": _js_bindings,
    "go": _go_bindings,
    "rust": _rust_bindings,
    "clike": _clike_bindings,
}


def bindings(doc: OpenDoc, fam: str) -> Bindings:
    """The names ``doc``'s imports bind, for Python, JS/TS, Go, Rust, Java and C/C++."""
    text = doc.text
    here = posixpath.dirname(doc.path.replace("\\", "/"))
    out = Bindings()
    wild: list[str] = []
    if (binder := _BINDERS.get(fam)) is not None:
        binder(text, here, out, wild)
    if fam in ("js", "clike", "rust", "generic"):
        _brace_class_bases(text, out)
    if wild:
        return Bindings(out.names, out.modules, tuple(wild), out.bases)
    return out


def _rust_use(tree: str, out: Bindings, wild: list[str], prefix: str = "") -> None:
    """``a::b::{C, d::E as F, *}`` → bindings; ``crate``/``self``/``super`` are dropped."""
    brace = tree.find("{")
    if brace >= 0 and tree.endswith("}"):
        head = prefix + tree[:brace]
        depth, part, parts = 0, "", []
        for c in tree[brace + 1 : -1]:
            if c == "," and depth == 0:
                parts.append(part)
                part = ""
                continue
            depth += c == "{"
            depth -= c == "}"
            part += c
        parts.append(part)
        for p in parts:
            if p:
                _rust_use(p, out, wild, head)
        return
    path = prefix + tree
    path, _, local = path.partition("@")  # `a::B as C` came as `a::B@C`
    segs = [s for s in path.split("::") if s and s not in ("crate", "self", "super")]
    if not segs:
        return
    if segs[-1] == "*":
        wild.append("/".join(segs[:-1]))
        return
    name = segs[-1]
    mod = "/".join(segs[:-1])
    out.names[local or name] = (mod, name)
    out.modules.setdefault(local or name, "/".join(segs))
