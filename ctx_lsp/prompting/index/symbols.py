"""Definitions of one file: name, kind, signature line, first docstring line, line range.

Parsed with tree-sitter for Python, JavaScript/TypeScript, Go, Rust, Java and C/C++ (one
grammar package per language, bundled as wheels: nothing is fetched at run time); any other
file, or a grammar that is not installed, goes through the regular-expression indexer of
:mod:`ctx_lsp.prompting.blocks`. Only top-level definitions and the members of classes (impl
blocks, namespaces) are kept: locals of a function are nobody else's business.
"""

from __future__ import annotations

import bisect
import functools
import importlib
import logging
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctx_lsp.prompting import blocks
from ctx_lsp.prompting.families import family
from ctx_lsp.text.textkey import LruMemo

log = logging.getLogger(__name__)

#: Longest signature and docstring line kept.
MAX_SIGNATURE = 240
MAX_DOC = 160


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    kind: str  # function, class, method, type, variable, macro
    signature: str  # the header on one line: `def parse(text: str) -> Node:`
    doc: str  # the first line of its docstring or doc comment, "" when none
    line: int  # 0-based first line (decorators excluded), inclusive
    end_line: int  # 0-based last line, inclusive
    parent: str = ""  # enclosing class / impl / namespace, "" at top level


# language id → (grammar module, function giving the language pointer)
_GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "javascriptreact": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "typescriptreact": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

# node type → kind, per grammar family (JS and TS share one table)
_DEFS: dict[str, dict[str, str]] = {
    "python": {"function_definition": "function", "class_definition": "class"},
    "js": {
        "function_declaration": "function",
        "generator_function_declaration": "function",
        "class_declaration": "class",
        "abstract_class_declaration": "class",
        "interface_declaration": "interface",
        "type_alias_declaration": "type",
        "enum_declaration": "enum",
        "method_definition": "method",
        "abstract_method_signature": "method",
        "method_signature": "method",
        "function_signature": "function",
        "module": "namespace",
        "internal_module": "namespace",
    },
    "go": {
        "function_declaration": "function",
        "method_declaration": "method",
        "type_spec": "type",
    },
    "rust": {
        "function_item": "function",
        "function_signature_item": "function",
        "struct_item": "struct",
        "enum_item": "enum",
        "trait_item": "trait",
        "type_item": "type",
        "const_item": "const",
        "static_item": "static",
        "macro_definition": "macro",
        "union_item": "union",
    },
    "java": {
        "class_declaration": "class",
        "interface_declaration": "interface",
        "enum_declaration": "enum",
        "record_declaration": "record",
        "method_declaration": "method",
        "constructor_declaration": "constructor",
        "annotation_type_declaration": "annotation",
    },
    "c": {
        "function_definition": "function",
        "struct_specifier": "struct",
        "class_specifier": "class",
        "union_specifier": "union",
        "enum_specifier": "enum",
        "type_definition": "type",
        "preproc_def": "macro",
        "preproc_function_def": "macro",
        "declaration": "function",  # a prototype, when it declares a function
        "field_declaration": "method",  # a method prototype in a class, ditto
    },
}
# nodes walked through without being definitions themselves
_TRANSPARENT = {
    "python": {"decorated_definition"},
    "js": {"export_statement", "ambient_declaration", "statement_block"},
    "go": {"type_declaration"},
    "rust": {"declaration_list", "mod_item"},
    "java": {"program"},
    "c": {
        "namespace_definition",
        "declaration_list",
        "linkage_specification",
        "template_declaration",
        "preproc_ifdef",
        "preproc_if",
        "preproc_else",
        "field_declaration_list",
        "access_specifier",
    },
}
_CLASSLIKE = {"class", "interface", "struct", "trait", "enum", "record", "namespace"}
_BODY_TYPES = {
    "block",
    "class_body",
    "interface_body",
    "object_type",
    "enum_body",
    "declaration_list",
    "field_declaration_list",
    "statement_block",
    "compound_statement",
    "enum_variant_list",
    "constructor_body",
}
_GRAMMAR_FAMILY = {"javascript": "js", "typescript": "js", "c": "c", "cpp": "c", "java": "java"}
_COMMENT_PREFIX = re.compile(r"^\s*(?:/\*\*?|\*/|\*|///?|//!|#)\s?")


@functools.cache
def _parser_factory(language: str) -> Any:
    """The tree-sitter Language for ``language``, or None when its grammar is missing."""
    spec = _GRAMMARS.get(language)
    if spec is None:
        return None
    try:
        import tree_sitter

        module = importlib.import_module(spec[0])
        return tree_sitter.Language(getattr(module, spec[1])())
    except Exception as exc:  # an old or broken grammar wheel: the regex indexer stands in
        log.info("no tree-sitter grammar for %s (%s): regex indexing", language, exc)
        return None


_local = threading.local()


def _parser(language: str) -> Any:
    """One parser per thread and language (a tree-sitter parser is not thread-safe)."""
    lang = _parser_factory(language)
    if lang is None:
        return None
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(language)
    if parser is None:
        import tree_sitter

        parser = parsers[language] = tree_sitter.Parser(lang)
    return parser


def grammar_family(language: str) -> str:
    if language in ("javascript", "javascriptreact", "typescript", "typescriptreact"):
        return "js"
    if language in ("c", "cpp"):
        return "c"
    return language


def has_grammar(language: str) -> bool:
    return _parser_factory(language) is not None


# --------------------------------------------------------------------------------------------


#: Trees of files re-parsed lately, by path: the next change to one re-parses only what
#: changed (a file being worked on is saved again and again). A few hundred KB each.
_TREES: LruMemo[tuple[str, bytes, Any]] = LruMemo(16)


def extract(text: str, language: str, path: str | None = None) -> list[Symbol]:
    """The definitions of ``text`` in ``language`` (an LSP language id), file order. With
    ``path`` (absolute), its tree is kept and the next call for it re-parses incrementally."""
    parser = _parser(language) if language in _GRAMMARS else None
    if parser is None:
        return regex_symbols(text, language)
    data = text.encode("utf-8", "surrogatepass")
    kept = _TREES.get(path) if path is not None else None
    if kept is not None and kept[0] == language:
        old_data, tree = kept[1], kept[2]
        tree.edit(**_edit(old_data, data))
        tree = parser.parse(data, tree)
    else:
        tree = parser.parse(data)
    if path is not None:
        _TREES.put(path, (language, data, tree))
    out: list[Symbol] = []
    _Walker(data, grammar_family(language), out).walk(tree.root_node, "", 0)
    return out


def _edit(old: bytes, new: bytes) -> dict[str, Any]:
    """The one edit turning ``old`` into ``new`` (their common start and end kept), as
    tree-sitter's `Tree.edit` takes it."""
    most = min(len(old), len(new))
    start = _common(old, new, most, lambda d, n: d[:n])
    end = _common(old, new, most - start, lambda d, n: d[len(d) - n :])
    return {
        "start_byte": start,
        "old_end_byte": len(old) - end,
        "new_end_byte": len(new) - end,
        "start_point": _point(old, start),
        "old_end_point": _point(old, len(old) - end),
        "new_end_point": _point(new, len(new) - end),
    }


def _common(a: bytes, b: bytes, most: int, part: Callable[[memoryview, int], memoryview]) -> int:
    """The longest ``n <= most`` with equal ``part``s of ``a`` and ``b`` (compared in C)."""
    va, vb = memoryview(a), memoryview(b)
    lo, hi = 0, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if part(va, mid) == part(vb, mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _point(data: bytes, offset: int) -> tuple[int, int]:
    return data.count(b"\n", 0, offset), offset - (data.rfind(b"\n", 0, offset) + 1)


class _Walker:
    def __init__(self, data: bytes, fam: str, out: list[Symbol]) -> None:
        self.data = data
        self.fam = fam
        self.defs = _DEFS[fam]
        self.transparent = _TRANSPARENT[fam]
        self.out = out

    def text(self, node: Any) -> str:
        return self.data[node.start_byte : node.end_byte].decode("utf-8", "replace")

    def walk(self, node: Any, parent: str, depth: int) -> None:
        for child in node.named_children:
            t = child.type
            kind = self.defs.get(t)
            if kind is not None:
                self.definition(child, kind, parent, depth)
            elif t in self.transparent:
                self.walk(child, parent, depth)
            elif t == "impl_item":  # Rust: methods of `impl Type`
                body = child.child_by_field_name("body")
                typ = child.child_by_field_name("type")
                if body is not None and depth < 2:
                    self.walk(body, self.text(typ) if typ is not None else parent, depth + 1)
            elif depth == 0 and t in ("lexical_declaration", "variable_declaration"):
                self.js_values(child)
            elif depth == 0 and t in ("const_declaration", "var_declaration"):
                self.go_values(child)
            elif depth <= 1 and t == "expression_statement" and self.fam == "python":
                self.py_assignment(child, parent)

    def name_of(self, node: Any) -> str:
        name = node.child_by_field_name("name")
        if name is not None:
            return self.text(name)
        if self.fam == "c":
            decl = node.child_by_field_name("declarator")
            seen = 0
            while decl is not None and seen < 8:
                if decl.type in (
                    "identifier",
                    "field_identifier",
                    "type_identifier",
                    "qualified_identifier",
                    "destructor_name",
                    "operator_name",
                ):
                    return self.text(decl).rsplit("::", 1)[-1]
                decl = decl.child_by_field_name("declarator")
                seen += 1
        return ""

    def definition(self, node: Any, kind: str, parent: str, depth: int) -> None:
        if self.fam == "c" and _not_a_definition(node, kind):
            return
        name = self.name_of(node)
        if not name:
            return
        if parent and kind == "function":
            kind = "method"
        body = node.child_by_field_name("body")
        start = node
        wrapper = node.parent
        if wrapper is not None and (
            wrapper.type in ("export_statement", "template_declaration")
            or (wrapper.type == "type_declaration" and wrapper.named_child_count == 1)
        ):
            start = wrapper
        self.emit(start, node, body, kind, name, parent)
        if kind in _CLASSLIKE and body is not None and depth < 2:
            self.walk(body, name, depth + 1)

    def emit(self, start: Any, node: Any, body: Any, kind: str, name: str, parent: str) -> None:
        head_end = body.start_byte if body is not None and body.type in _BODY_TYPES else None
        if head_end is None or head_end - start.start_byte > 4 * MAX_SIGNATURE:
            head_end = min(node.end_byte, start.start_byte + 4 * MAX_SIGNATURE)
        head = self.data[start.start_byte : head_end].decode("utf-8", "replace")
        if body is None and kind in ("type", "macro", "const", "static", "variable"):
            head = head.split("\n", 1)[0]
        if self.fam == "python":  # comments between the header and its body
            head = "\n".join(ln for ln in head.split("\n") if not ln.lstrip().startswith("#"))
        signature = one_line(head)
        doc = self.doc_of(start, body)
        line, end = start.start_point[0], node.end_point[0]
        self.out.append(Symbol(sys.intern(name), kind, signature, doc, line, end, parent))

    def doc_of(self, start: Any, body: Any) -> str:
        if self.fam == "python" and body is not None and body.named_children:
            first = body.named_children[0]
            if first.type == "expression_statement" and first.named_children:
                s = first.named_children[0]
                if s.type == "string":
                    return first_doc_line(self.text(s).strip("rRbBuUfF").strip("\"'"))
            return ""
        prev = start.prev_named_sibling
        if (
            prev is not None
            and "comment" in prev.type
            and prev.end_point[0] >= start.start_point[0] - 1
        ):
            # a run of line comments: take the first of the run
            first = prev
            while (
                (p := first.prev_named_sibling) is not None
                and "comment" in p.type
                and p.end_point[0] == first.start_point[0] - 1
            ):
                first = p
            return first_doc_line(self.text(first))
        return ""

    def js_values(self, node: Any) -> None:
        start = (
            node.parent
            if node.parent is not None and node.parent.type == "export_statement"
            else node
        )
        for d in node.named_children:
            if d.type != "variable_declarator":
                continue
            name = d.child_by_field_name("name")
            if name is None or name.type != "identifier":
                continue
            value = d.child_by_field_name("value")
            fn = value is not None and value.type in (
                "arrow_function",
                "function_expression",
                "function",
            )
            body = value.child_by_field_name("body") if fn else None
            self.emit(start, d, body, "function" if fn else "variable", self.text(name), "")

    def go_values(self, node: Any) -> None:
        for spec in node.named_children:
            name = spec.child_by_field_name("name")
            if name is not None:
                self.emit(spec, spec, None, "const", self.text(name), "")

    def py_assignment(self, node: Any, parent: str) -> None:
        a = node.named_children[0] if node.named_children else None
        if a is None or a.type != "assignment":
            return
        left = a.child_by_field_name("left")
        if left is None or left.type != "identifier":
            return
        name = self.text(left)
        self.emit(node, node, None, "variable", name, parent)


def _not_a_definition(node: Any, kind: str) -> bool:
    """C/C++: a declaration that is no function prototype, or `struct S s;` (which uses a
    type, it does not define one)."""
    if node.type in ("declaration", "field_declaration"):
        return not _declares_function(node)
    return kind in ("struct", "class", "union", "enum") and node.child_by_field_name("body") is None


def _declares_function(node: Any) -> bool:
    decl = node.child_by_field_name("declarator")
    for _ in range(6):
        if decl is None:
            return False
        if decl.type == "function_declarator":
            return True
        decl = decl.child_by_field_name("declarator")
    return False


_WS = re.compile(r"[ \t]*\n[ \t]*")


def one_line(head: str) -> str:
    """A header on one line: lines stripped and joined (no space after an opening bracket or
    before a closing one), a trailing ``{`` dropped, capped at :data:`MAX_SIGNATURE`."""
    head = head.strip()
    if "\n" not in head:  # the common case
        out = head.removesuffix("{").rstrip()
        return out if len(out) <= MAX_SIGNATURE else out[: MAX_SIGNATURE - 1] + "…"
    parts = [p for p in _WS.split(head) if p]
    out = ""
    for p in parts:
        if out and not out.endswith(("(", "[", "<")) and not p.startswith((")", "]", ">")):
            out += " "
        out += p
    out = out.rstrip().removesuffix("{").rstrip()
    return out if len(out) <= MAX_SIGNATURE else out[: MAX_SIGNATURE - 1] + "…"


def first_doc_line(comment: str) -> str:
    for line in comment.split("\n"):
        line = _COMMENT_PREFIX.sub("", line).strip().rstrip("*/").strip()
        if line and not line.startswith("@") and line.strip("-=*#") != "":
            return line if len(line) <= MAX_DOC else line[: MAX_DOC - 1] + "…"
    return ""


def regex_symbols(
    text: str, language: str, found: dict[str, tuple[int, int]] | None = None
) -> list[Symbol]:
    """The fallback: :mod:`blocks`' definition blocks (``found``, when the caller has them),
    with their first line as signature; members (indented) get the parent "?"."""
    if found is None:
        fam = family(language)
        found = blocks.python_defs(text) if fam == "python" else blocks.brace_defs(text, fam)
    starts = [0, *(m.end() for m in re.finditer("\n", text))]
    out: list[Symbol] = []
    for name, (start, end) in found.items():
        first = bisect.bisect_right(starts, start) - 1
        last = bisect.bisect_right(starts, max(start, end - 1)) - 1
        line = first
        while line < last:  # decorators and annotations above the name
            row = text[starts[line] : starts[line + 1]]
            if name in row and not row.lstrip().startswith("@"):
                break
            line += 1
        row_end = starts[line + 1] - 1 if line + 1 < len(starts) else len(text)
        row = text[starts[line] : row_end]
        indent = len(row) - len(row.lstrip())
        sig = one_line(row)
        out.append(Symbol(name, "definition", sig, "", line, last, "" if indent == 0 else "?"))
    out.sort(key=lambda s: s.line)
    return out
