"""The code index's pure parts: definitions per language, what imports bind, the name being
typed, and the ranking by structure over an index of files that are not open."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from ctx_lsp.prompting import related as related_module
from ctx_lsp.prompting.identifiers import typed_at
from ctx_lsp.prompting.imports import bindings
from ctx_lsp.prompting.index.symbols import extract, has_grammar, regex_symbols
from ctx_lsp.prompting.index.workspace import WorkspaceIndex
from ctx_lsp.prompting.related import prepare, related
from ctx_lsp.text.opendoc import OpenDoc


def _sigs(text: str, language: str) -> list[tuple[str, str, str, str]]:
    return [(s.name, s.kind, s.signature, s.parent) for s in extract(text, language)]


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        pytest.param(
            "python",
            "import os\n\n\n@cache\ndef parse(\n    text: str,\n) -> int:\n"
            '    """Parse it.\n\n    More."""\n'
            "    return 1\n\n\nclass Node(Base):\n    def walk(self):\n        pass\n\nLIMIT = 3\n",
            [
                ("parse", "function", "def parse(text: str,) -> int:", ""),
                ("Node", "class", "class Node(Base):", ""),
                ("walk", "method", "def walk(self):", "Node"),
                ("LIMIT", "variable", "LIMIT = 3", ""),
            ],
            id="python",
        ),
        pytest.param(
            "typescript",
            "/** Maps. */\nexport function map<T>(fn: (x: T) => T): T[] {\n  return [];\n}\n"
            "export const isFn = (x: any): boolean => true;\n"
            "export class Sub<T> extends Base implements Obs<T> {\n  next(v: T): void {}\n}\n"
            "export interface Obs<T> { next: (v: T) => void }\ntype Fn = () => void;\n",
            [
                ("map", "function", "export function map<T>(fn: (x: T) => T): T[]", ""),
                ("isFn", "function", "export const isFn = (x: any): boolean => true", ""),
                ("Sub", "class", "export class Sub<T> extends Base implements Obs<T>", ""),
                ("next", "method", "next(v: T): void", "Sub"),
                ("Obs", "interface", "export interface Obs<T>", ""),
                ("Fn", "type", "type Fn = () => void;", ""),
            ],
            id="typescript",
        ),
        pytest.param(
            "go",
            "package p\n\n// Run runs.\nfunc (r *R) Run(n int) error { return nil }\n"
            "type T struct{}\nfunc New() *T { return nil }\n",
            [
                ("Run", "method", "func (r *R) Run(n int) error", ""),
                ("T", "type", "type T struct{}", ""),
                ("New", "function", "func New() *T", ""),
            ],
            id="go",
        ),
        pytest.param(
            "rust",
            "/// Adds.\npub fn add(a: u8) -> u8 { a }\nimpl Foo {\n    pub fn m(&self) {}\n}\n"
            "pub struct S;\n",
            [
                ("add", "function", "pub fn add(a: u8) -> u8", ""),
                ("m", "method", "pub fn m(&self)", "Foo"),
                ("S", "struct", "pub struct S;", ""),
            ],
            id="rust",
        ),
        pytest.param(
            "java",
            "package a;\n/** A thing. */\npublic class A extends B {\n"
            "  public int m(int x) { return x; }\n}\n",
            [
                ("A", "class", "public class A extends B", ""),
                ("m", "method", "public int m(int x)", "A"),
            ],
            id="java",
        ),
        pytest.param(
            "cpp",
            "int add(int a, int b);\nstatic int g(int a) { return a; }\nstruct S { int x; };\n"
            "#define TWICE(x) (2 * (x))\nnamespace n { class K : public B { void m(); }; }\n",
            [
                ("add", "function", "int add(int a, int b);", ""),
                ("g", "function", "static int g(int a)", ""),
                ("S", "struct", "struct S", ""),
                ("TWICE", "macro", "#define TWICE(x) (2 * (x))", ""),
                ("K", "class", "class K : public B", ""),
                ("m", "method", "void m();", "K"),
            ],
            id="cpp",
        ),
    ],
)
def test_definitions_per_language(language: str, text: str, expected: list) -> None:
    assert has_grammar(language)
    assert _sigs(text, language) == expected


@pytest.mark.parametrize(
    ("language", "source"),
    [
        ("python", Path(__file__).parent.parent / "ctx_lsp" / "prompting" / "related.py"),
        (
            "typescript",
            Path(__file__).parent.parent / "editors" / "vscode" / "src" / "extension.ts",
        ),
    ],
)
def test_a_file_changed_again_is_reparsed_incrementally_to_the_same_definitions(
    language: str, source: Path, tmp_path: Path
) -> None:
    """Each change of a file already indexed re-parses from its kept tree: after insertions,
    deletions and replacements (one or several lines, at the start, middle and end, with
    non-ASCII text), the definitions are those of a parse from scratch."""
    import random

    text = source.read_text()
    key = str(tmp_path / source.name)
    rng = random.Random(7)
    pieces = ["", "x", "\n", "def added_é(x):\n    return x\n", "class 日本:\n    pass\n", "}"]
    extract(text, language, key)
    for _ in range(40):
        at = rng.choice([0, len(text), rng.randrange(len(text) + 1)])
        cut = rng.choice([0, 1, rng.randrange(200)])
        text = text[:at] + rng.choice(pieces) + text[at + cut :]
        assert extract(text, language, key) == extract(text, language)

    py = extract('def f():\n    """First line.\n\n    Rest."""\n', "python")
    ts = extract("/**\n * Maps values.\n * @param x\n */\nexport function m() {}\n", "typescript")
    go = extract("package p\n\n// New makes one.\n// More.\nfunc New() {}\n", "go")
    assert [py[0].doc, ts[0].doc, go[0].doc] == ["First line.", "Maps values.", "New makes one."]


def test_a_language_without_grammar_falls_back_to_the_regex_blocks() -> None:
    symbols = regex_symbols("fun greet(name: String): String {\n  return name\n}\n", "kotlin")
    assert [(s.name, s.signature) for s in symbols] == [
        ("greet", "fun greet(name: String): String")
    ]
    assert extract("fun greet() {}\n", "kotlin")[0].name == "greet"


def _doc(path: str, text: str, language: str = "") -> OpenDoc:
    return OpenDoc(f"file:///w/{path}", path, language, text, 0.0)


@pytest.mark.parametrize(
    ("path", "text", "names", "modules"),
    [
        pytest.param(
            "pkg/app.py",
            "from .util import parse_bool as pb, Registry\nfrom . import nodes\n"
            "import os.path as osp\n",
            {"pb": ("pkg/util", "parse_bool"), "Registry": ("pkg/util", "Registry")},
            {"nodes": "pkg/nodes", "osp": "os/path"},
            id="python",
        ),
        pytest.param(
            "src/a/b.ts",
            "import def, { x, y as z } from '../util';\nimport * as ops from './ops';\n"
            "const { q } = require('./q');\n",
            {
                "def": ("src/util", "default"),
                "x": ("src/util", "x"),
                "z": ("src/util", "y"),
                "q": ("src/a/q", "q"),
            },
            {"def": "src/util", "ops": "src/a/ops"},
            id="typescript",
        ),
        pytest.param(
            "main.rs",
            "use crate::net::{Client, codec::Frame as F};\n",
            {"Client": ("net", "Client"), "F": ("net/codec", "Frame")},
            {"Client": "net/Client", "F": "net/codec/Frame"},
            id="rust",
        ),
    ],
)
def test_what_imports_bind(path: str, text: str, names: dict, modules: dict) -> None:
    from ctx_lsp.prompting.families import family, language

    d = _doc(path, text)
    b = bindings(d, family(language(d)))
    assert {k: v for k, v in b.names.items() if k in names} == names
    assert {k: v for k, v in b.modules.items() if k in modules} == modules


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        pytest.param("    x = parse_b", ("", "parse_b"), id="partial"),
        pytest.param("    util.Regis", ("util", "Regis"), id="qualified"),
        pytest.param("    util.", ("util", ""), id="after-dot"),
        pytest.param("    return get", ("", "get"), id="keyword-prefix"),
        pytest.param("    x = (", ("", ""), id="nothing"),
    ],
)
def test_the_name_being_typed(before: str, expected: tuple[str, str]) -> None:
    assert typed_at("a = 1\n" + before, len(before) + 6) == expected


def test_an_unopened_files_definition_ranks_first_for_the_name_typed(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "util.py").write_text(
        'def parse_bool(value: str) -> bool:\n    """Parse a boolean."""\n    return True\n'
    )
    (tmp_path / "pkg" / "other.py").write_text("def parse_bytes(b):\n    return b\n")
    index = WorkspaceIndex(tmp_path, lambda rel: True)
    index.build()
    text = "from .util import parse_bool\n\n\ndef main(v):\n    return parse_b"
    current = _doc("pkg/app.py", text, "python")
    snippets = related(current, len(text), [], index)
    assert snippets[0].path == "pkg/util.py"
    assert "def parse_bool(value: str) -> bool:" in snippets[0].text
    assert "typed parse_b, imported" in snippets[0].picks[0]

    # an open document's unsaved text wins over the index's copy of the file
    edited = _doc(
        "pkg/util.py", "def parse_bool(value: str, strict: bool) -> bool:\n    return 1\n"
    )
    snippets = related(current, len(text), [edited], index)
    assert "strict: bool" in snippets[0].text
    assert not any("(value: str) -> bool" in s.text for s in snippets)


def test_picks_made_ahead_of_a_completion_are_the_ones_it_makes_and_follow_edits(
    tmp_path: Path,
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "util.py").write_text(
        "def parse_bool(value: str) -> bool:\n    return True\n\n\n"
        "class Registry:\n    def add(self, item):\n        pass\n"
    )
    index = WorkspaceIndex(tmp_path, lambda rel: True)
    index.build()
    text = "from .util import parse_bool, Registry\n\n\ndef main(v):\n    r = Registry()\n    \n"
    cursor = len(text) - 1
    current = _doc("pkg/app.py", text, "python")
    cold = related(current, cursor, [], index)
    assert any("def parse_bool(value: str) -> bool:" in s.text for s in cold)
    for memo in (related_module._FILE_MEMO, related_module._AROUND_MEMO, related_module._FILES):
        memo.clear()
    prepare(current, [], index)
    assert related(current, cursor, [], index) == cold

    # the file it imports from is opened and edited: what was prepared does not hide it
    edited = _doc(
        "pkg/util.py", "def parse_bool(value: str, strict: bool) -> bool:\n    return 1\n"
    )
    prepare(current, [edited], index)
    snippets = related(current, cursor, [edited], index)
    assert any("strict: bool" in s.text for s in snippets)
    assert not any("(value: str) -> bool" in s.text for s in snippets)


def test_a_path_no_longer_allowed_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "util.py").write_text("def parse_bool(value):\n    return value\n")
    index = WorkspaceIndex(tmp_path, lambda rel: True)
    index.build()
    text = "from util import parse_bool\n\nx = parse_b"
    current = _doc("app.py", text, "python")
    assert related(current, len(text), [], index, allowed=lambda rel: True)
    assert not related(current, len(text), [], index, allowed=lambda rel: rel != "util.py")


def test_the_uses_of_bound_names_are_the_uses_the_full_pass_finds() -> None:
    """The pass that looks for the file's bound names only finds what the pass over every
    identifier finds of them, in real code; and a window's count is the same whether the file
    was scanned ahead or not."""
    from ctx_lsp.prompting.imports import Bindings
    from ctx_lsp.prompting.uses import USE_RE, FileUses, bound_uses

    rng = random.Random(7)
    sources = sorted((Path(__file__).parent.parent / "ctx_lsp").rglob("*.py"))
    for path in sources[:40]:
        text = path.read_text(encoding="utf-8") + "\né_x = os.path; x$y = re.sub; .re = 1\n"
        b = bindings(_doc(path.name, text, "python"), "python")
        b = Bindings(
            names={**b.names, "x$y": ("", "x$y")},
            modules={**b.modules, "re": "re", "os": "os"},
            wildcards=(),
            bases=b.bases,
        )
        bound = {*b.names, *b.modules}
        full = [m for m in USE_RE.finditer(text) if m[1] in bound]
        assert bound_uses(b).findall(text) == [m.groups("") for m in full], path
        cold, scanned = FileUses(b), FileUses(b)
        scanned.scan(text)
        for _ in range(20):
            lo = rng.randrange(len(text))
            hi = lo + rng.choice([1, 7, 600, 8000])
            expected = Counter(m.groups("") for m in full if lo <= m.start() < hi)
            assert cold.between(text, lo, hi) == expected, (path, lo, hi)
            assert scanned.between(text, lo, hi) == expected, (path, lo, hi)
