"""Relevance ranking: identifiers near the cursor, definition blocks, imports, recency."""

from __future__ import annotations

import pytest

from ctx_lsp.prompting import relevance
from ctx_lsp.prompting.relevance import (
    MAX_BLOCK_CHARS,
    definitions,
    identifiers_near,
    rank,
)
from ctx_lsp.text.opendoc import OpenDoc


def doc(path: str, text: str, language: str = "", modified: float = 0.0) -> OpenDoc:
    return OpenDoc(f"file:///proj/{path}", path, language, text, modified)


def at(text: str, marker: str) -> int:
    """Offset just after the first ``marker`` in ``text``."""
    return text.index(marker) + len(marker)


# ----------------------------------------------------------------------------- identifiers


def test_identifiers_nearest_first() -> None:
    text = (
        "import os\n"
        "far_away = 1\n"
        "above_name = other_thing\n"
        "result = compute_total(items, rate)\n"
        "below_name = None\n"
    )
    names = identifiers_near(text, at(text, "compute_to"))
    assert names[0] == "compute_total"
    assert names.index("items") < names.index("above_name")
    assert names.index("above_name") < names.index("below_name")
    assert names.index("below_name") < names.index("far_away")
    assert "import" not in names and "None" not in names and "os" in names


def test_identifiers_window_and_keywords() -> None:
    lines = [f"name_{i} = value_{i}" for i in range(100)]
    text = "\n".join(lines)
    names = identifiers_near(text, text.index("name_50"), window_lines=3)
    assert names[:2] == ["name_50", "value_50"]
    assert "name_47" in names and "name_53" in names
    assert "name_46" not in names and "name_54" not in names
    assert identifiers_near("if x: return self.y", 3) == []


@pytest.mark.parametrize(
    "line_chars", [8, 300, 5000], ids=["short-lines", "long-lines", "lines-over-a-span"]
)
def test_identifiers_window_is_whole_lines_whatever_their_length(line_chars: int) -> None:
    """The lines around the cursor are read in one span of text when they fit in it, one by
    one when they do not: the same names either way, at the start, middle and end."""
    pad = "_" * max(0, line_chars - 12)
    lines = [f"n{i:03d}{pad} = v{i:03d}" for i in range(80)]
    text = "\n".join(lines) + "\n"
    for line in (0, 1, 40, 78, 79, 80):
        offset = sum(len(x) + 1 for x in lines[:line])
        names = identifiers_near(text, offset, window_lines=30)
        near = [i for i in range(line - 30, line + 31) if 0 <= i < 80]
        expected = {f"n{i:03d}{pad}" for i in near} | {f"v{i:03d}" for i in near}
        assert set(names) == expected, line
        if 0 < line < 79:  # the line above comes before the line below
            assert names.index(f"v{line - 1:03d}") < names.index(f"n{line + 1:03d}{pad}")


# ----------------------------------------------------------------------------- definitions

PY = '''"""Utilities."""
import os

MAX_SIZE = 10
TABLE = {
    "a": 1,
}


@cache
@other(x=1)
def parse_config(
    path: str,
) -> dict:
    """Parse."""
    with open(path) as f:
        data = f.read()
# a comment at column 0 inside the body
    return {"a": data}


class Loader:
    def load(self, x):
        return x

    async def save(self, y):
        return y
# trailing comment
def other():
    if True: x = 1
    pass
'''

TS = """import { helper } from "./lib/helpers";
export interface Options {
  verbose: boolean;
}
export const DEFAULTS: Options = { verbose: false };
export function computeTotal(items: number[], opts: Options = DEFAULTS): number {
  let s = 0;
  if (opts.verbose) { console.log("} not a brace {"); }
  return s;
}
export class Cart {
  private items: number[] = [];
  add(item: number): void {
    this.items.push(item);
  }
  async total(): Promise<number> {
    return computeTotal(this.items);
  }
}
type Id = string | number;
export const double = (a: number) => {
  return a * 2;
};
describe("cart", () => {
  it("adds", () => {});
});
"""

GO = """package main

import (
\t"fmt"
\t"example.com/proj/pkg/util"
)

type Server struct {
\tName string
}

func (s *Server) Start(port int) (int, error) {
\tif port == 0 {
\t\treturn 0, fmt.Errorf("no port {")
\t}
\tr := '{'
\treturn port, nil
}

const Version = "1.0"
"""

RUST = """use crate::net::server::Server;
pub struct Config<'a> {
    name: &'a str,
}
impl<'a> Config<'a> {
    pub fn new(name: &'a str) -> Self {
        let c = '{';
        Config { name }
    }
}
pub(crate) fn helper(x: i32) -> i32
where
    i32: Copy,
{
    x + 1
}
const MAX: usize = 10;
"""

JAVA = """package x;

@Service
public class UserService extends Base {
    private final Repo repo;

    @Override
    public List<User> findAll(int limit) throws IOException
    {
        if (limit > 0) {
            return repo.all();
        }
        return null;
    }
}
"""

C = """#include <stdio.h>
#define MAX 10
static int add(int a, int b) {
    return a + b;
}
int main(void)
{
    printf("%d {", add(1, 2));
    return 0;
}
"""


@pytest.mark.parametrize(
    ("path", "text", "name", "starts", "ends"),
    [
        pytest.param("u.py", PY, "MAX_SIZE", "MAX_SIZE = 10", "= 10", id="py-const"),
        pytest.param("u.py", PY, "TABLE", "TABLE = {", '"a": 1,\n}', id="py-multiline-const"),
        pytest.param(
            "u.py",
            PY,
            "parse_config",
            "@cache\n@other",
            'return {"a": data}',
            id="py-decorated-def",
        ),
        pytest.param("u.py", PY, "Loader", "class Loader:", "return y", id="py-class"),
        pytest.param("u.py", PY, "load", "    def load", "return x", id="py-method"),
        pytest.param("u.py", PY, "save", "    async def save", "return y", id="py-async"),
        pytest.param("u.py", PY, "other", "def other", "pass", id="py-last"),
        pytest.param("a.ts", TS, "Options", "export interface", "boolean;\n}", id="ts-iface"),
        pytest.param("a.ts", TS, "DEFAULTS", "export const DEFAULTS", "false };", id="ts-const"),
        pytest.param("a.ts", TS, "computeTotal", "export function", "return s;\n}", id="ts-fn"),
        pytest.param(
            "a.ts", TS, "Cart", "export class Cart", "this.items);\n  }\n}", id="ts-class"
        ),
        pytest.param("a.ts", TS, "add", "  add(item", "push(item);\n  }", id="ts-method"),
        pytest.param("a.ts", TS, "total", "  async total()", "items);\n  }", id="ts-async"),
        pytest.param("a.ts", TS, "Id", "type Id", "number;", id="ts-type"),
        pytest.param("a.ts", TS, "double", "export const double", "};", id="ts-arrow"),
        pytest.param("s.go", GO, "Server", "type Server struct", "string\n}", id="go-struct"),
        pytest.param("s.go", GO, "Start", "func (s *Server) Start", "nil\n}", id="go-method"),
        pytest.param("s.go", GO, "Version", "const Version", '"1.0"', id="go-const"),
        pytest.param("c.rs", RUST, "Config", "pub struct Config", "str,\n}", id="rs-struct"),
        pytest.param("c.rs", RUST, "new", "    pub fn new", "name }\n    }", id="rs-fn"),
        pytest.param("c.rs", RUST, "helper", "pub(crate) fn helper", "x + 1\n}", id="rs-where"),
        pytest.param("c.rs", RUST, "MAX", "const MAX", "= 10;", id="rs-const"),
        pytest.param(
            "U.java",
            JAVA,
            "UserService",
            "@Service\npublic class",
            "null;\n    }\n}",
            id="java-class",
        ),
        pytest.param("U.java", JAVA, "findAll", "    @Override", "null;\n    }", id="java-allman"),
        pytest.param("m.c", C, "MAX", "#define MAX", "MAX 10", id="c-define"),
        pytest.param("m.c", C, "add", "static int add", "a + b;\n}", id="c-fn"),
        pytest.param("m.c", C, "main", "int main(void)\n{", "return 0;\n}", id="c-allman"),
    ],
)
def test_definition_blocks(path: str, text: str, name: str, starts: str, ends: str) -> None:
    defs = definitions(doc(path, text))
    assert name in defs, sorted(defs)
    start, end = defs[name]
    block = text[start:end]
    assert block.startswith(starts), block
    assert block.endswith(ends), block


@pytest.mark.parametrize(
    ("path", "text", "absent"),
    [
        pytest.param("a.ts", TS, {"describe", "it", "if", "helper", "s"}, id="ts-calls-locals"),
        pytest.param("u.py", PY, {"data", "f", "x", "if", "True"}, id="py-locals"),
        pytest.param("m.c", C, {"printf", "if", "return"}, id="c-calls"),
    ],
)
def test_not_definitions(path: str, text: str, absent: set[str]) -> None:
    assert not absent & set(definitions(doc(path, text)))


def test_language_from_id_or_extension() -> None:
    by_ext = definitions(doc("pkg/u.py", PY))
    by_id = definitions(doc("untitled-1", PY, language="python"))
    assert by_ext == by_id and "parse_config" in by_id


@pytest.mark.parametrize(
    ("path", "text"),
    [
        pytest.param("big.py", "def big():\n" + "    x = 1\n" * 2000, id="python"),
        pytest.param("big.ts", "function big() {\n" + "  x = 1;\n" * 2000 + "}\n", id="braces"),
        pytest.param("open.ts", "function open() {\n" + "  x = 1;\n" * 20, id="unclosed"),
    ],
)
def test_blocks_are_capped(path: str, text: str) -> None:
    (name,) = definitions(doc(path, text))
    start, end = definitions(doc(path, text))[name]
    assert start == 0 and 0 < end - start <= MAX_BLOCK_CHARS


def test_index_is_cached() -> None:
    d = doc("u.py", PY)
    first = definitions(d)
    assert definitions(OpenDoc(d.uri, d.path, "", PY, 5.0)) is first
    assert definitions(OpenDoc(d.uri, d.path, "", PY + "\nZ = 1\n", 5.0)) is not first


# ----------------------------------------------------------------------------- ranking

PY_CURRENT = """from pkg.util import helper
import pkg.config


def run(items):
    total = 0
    for item in items:
        total += helper(item)
    return compute_total(items, total)
"""

PY_DEFINES = {
    "pkg/util.py": "def helper(x):\n    return x + 1\n",
    "other/util.py": "def helper(x):\n    return x - 1\n",
    "pkg/config.py": "SETTINGS = {}\nDEBUG = False\n",
    "lib/totals.py": "import math\n\n\ndef compute_total(items, start):\n    return sum(items)\n",
    "lib/noise.py": "def unrelated():\n    pass\n",
}


def py_others(times: dict[str, float] | None = None) -> list[OpenDoc]:
    times = times or {}
    return [doc(p, t, "python", times.get(p, 0.0)) for p, t in PY_DEFINES.items()]


def test_python_definition_at_cursor_ranks_first() -> None:
    current = doc("app/main.py", PY_CURRENT, "python", 10.0)
    snippets = rank(current, at(PY_CURRENT, "return compute_to"), py_others(), now=100.0)
    assert snippets[0].path == "lib/totals.py"
    assert snippets[0].reason == "defines compute_total"
    assert snippets[0].text.startswith("def compute_total(")
    assert snippets[0].text.endswith("return sum(items)")


def test_python_import_mapping() -> None:
    current = doc("app/main.py", PY_CURRENT, "python", 10.0)
    snippets = rank(current, at(PY_CURRENT, "helper(it"), py_others(), now=100.0)
    assert snippets[0].path == "pkg/util.py"
    assert snippets[0].reason == "defines helper (imported)"
    paths = [s.path for s in snippets]
    # The same name in a module that is not imported ranks below the imported one.
    assert paths.index("other/util.py") > paths.index("pkg/util.py")
    # `import pkg.config` brings in the head of pkg/config.py.
    config = next(s for s in snippets if s.path == "pkg/config.py")
    assert config.reason == "imported as pkg/config"
    assert config.text.startswith("SETTINGS")


TS_CURRENT = """import { formatPrice } from "./lib/format";
import { Cart } from "../shared/cart";

export function checkout(cart: Cart): string {
  const total = cart.total();
  return formatPrice(total, "EUR");
}
"""


def test_typescript_definition_at_cursor_ranks_first() -> None:
    others = [
        doc(
            "src/lib/format.ts",
            "export function formatPrice(n: number, c: string) {\n  return `${n} ${c}`;\n}\n",
        ),
        doc("shared/cart.ts", TS),
        doc("src/zzz.ts", "export const unrelated = 1;\n", modified=50.0),
    ]
    current = doc("src/checkout.ts", TS_CURRENT, "typescript", 10.0)
    snippets = rank(current, at(TS_CURRENT, "return formatPri"), others, now=100.0)
    assert snippets[0].path == "src/lib/format.ts"
    assert snippets[0].reason == "defines formatPrice (imported)"
    assert snippets[0].text.startswith("export function formatPrice(")
    # `cart.total()` is used in the window; the module is imported from ../shared/cart.
    cart = next(s for s in snippets if s.path == "shared/cart.ts")
    assert cart.reason == "defines total (imported)"
    assert cart.text.startswith("  async total(): Promise<number> {")


def test_nearer_identifier_scores_higher() -> None:
    text = "a = first_fn()\n" + "\n" * 5 + "b = second_fn()\n"
    others = [
        doc("one.py", "def first_fn():\n    return 1\n"),
        doc("two.py", "def second_fn():\n    return 2\n"),
    ]
    snippets = rank(doc("cur.py", text), at(text, "second_f"), others, now=0.0)
    assert [s.reason for s in snippets[:2]] == ["defines second_fn", "defines first_fn"]
    assert snippets[0].score > snippets[1].score


def test_local_definition_is_not_preferred() -> None:
    text = "def helper_x():\n    pass\n\nhelper_x()\n"
    others = [doc("elsewhere.py", "def helper_x():\n    return 1\n", modified=1.0)]
    other_text = "use_y()\n"
    others.append(doc("y.py", "def use_y():\n    pass\n"))
    local = rank(doc("cur.py", text), at(text, "helper_x("), others, now=2.0)
    remote = rank(doc("cur2.py", other_text), at(other_text, "use_y"), others, now=2.0)
    by_path = {s.path: s.score for s in local}
    assert by_path["elsewhere.py"] < remote[0].score


def test_recency_order_and_same_language() -> None:
    others = [
        doc("old.py", "OLD = 1\n", "python", 100.0),
        doc("newest.py", "NEWEST = 1\n", "python", 300.0),
        doc("middle.py", "MIDDLE = 1\n", "python", 200.0),
    ]
    others += [doc(f"f{i}.py", f"F{i} = 1\n", "python", 0.0) for i in range(5)]
    others.append(doc("style.css", "body {}\n", "css", 0.0))
    current = doc("cur.py", "x = 1\n", "python", 400.0)
    snippets = rank(current, 0, others, now=400.0)
    assert [s.path for s in snippets[:3]] == ["newest.py", "middle.py", "old.py"]
    assert {s.reason for s in snippets[:3]} == {"recently edited"}
    rest = snippets[3:]
    assert rest and all(s.reason in ("recently edited", "same language") for s in rest)
    assert "same language" in {s.reason for s in rest}
    assert "style.css" not in {s.path for s in snippets}


def test_current_document_and_empty_docs_excluded() -> None:
    current = doc("cur.py", "def foo():\n    pass\nfoo()\n", "python", 1.0)
    others = [current, doc("empty.py", "", "python", 5.0)]
    assert rank(current, 30, others, now=10.0) == []


def test_snippets_of_a_document_do_not_overlap() -> None:
    text = "x = Loader().load(1)\n"
    snippets = rank(doc("cur.py", text), at(text, "loa"), [doc("u.py", PY, modified=5.0)], now=6.0)
    spans = []
    for s in snippets:
        start = PY.index(s.text)
        spans.append((start, start + len(s.text)))
    for i, (a, b) in enumerate(spans):
        for c, d in spans[i + 1 :]:
            assert b <= c or d <= a


def test_head_of_file_is_limited() -> None:
    big = "".join(f"line_{i} = {i}\n" for i in range(5000))
    snippets = rank(doc("cur.py", "x\n"), 0, [doc("big.py", big, modified=1.0)], now=1.0)
    assert snippets[0].reason == "recently edited"
    assert len(snippets[0].text) <= relevance.HEAD_CHARS


def _big_doc(i: int) -> OpenDoc:
    if i % 2:
        parts = [f"from pkg.mod{(i + 1) % 50} import func_{(i + 1) % 50}_3\n"]
        n = 0
        while sum(map(len, parts)) < 100_000:
            parts.append(
                f"\n\ndef func_{i}_{n}(a, b):\n    x = a + b\n    if x > 10:\n"
                f"        return helper_{n % 7}(x)\n    return x\n\n"
                f"class Klass_{i}_{n}:\n    def method(self):\n        return func_{i}_{n}(1, 2)\n"
            )
            n += 1
        return doc(f"pkg/mod{i}.py", "".join(parts), "python", float(i))
    parts = [f'import {{ f{i + 1}_1 }} from "./m{i + 1}";\n']
    n = 0
    while sum(map(len, parts)) < 100_000:
        parts.append(
            f"\nexport function f{i}_{n}(a: number, b: string): number {{\n"
            f"  const x = a + b.length;\n  if (x > 10) {{ return g(x); }}\n  return x;\n}}\n"
            f"export class C{i}_{n} {{\n  run(): void {{\n    f{i}_{n}(1, 'a');\n  }}\n}}\n"
        )
        n += 1
    return doc(f"m{i}.ts", "".join(parts), "typescript", float(i))


def test_ranking_fifty_big_documents_parses_each_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranking runs for every keystroke: the definition index of an unchanged document is
    built once, later ranks only look it up (counted, not timed)."""
    parsed: list[str] = []

    def counting(real):
        def parse(text, *args):
            parsed.append(text[:40])
            return real(text, *args)

        return parse

    for name in ("python_defs", "brace_defs"):
        monkeypatch.setattr(relevance, name, counting(getattr(relevance, name)))
    relevance.clear_cache()
    docs = [_big_doc(i) for i in range(50)]
    current = docs[1]
    cursor = len(current.text) // 2
    first = rank(current, cursor, docs, now=100.0)
    assert first and len(parsed) == 50, "each document parsed once (the current one too)"
    for _ in range(5):
        assert rank(current, cursor, docs, now=100.0) == first
    assert len(parsed) == 50, "no document parsed again"
    same_length = docs[7].text.replace("(1, 2)", "(3, 4)", 1)  # len alone cannot tell
    edited = doc(docs[7].path, same_length, docs[7].language_id, 7.0)
    rank(current, cursor, [*docs[:7], edited, *docs[8:]], now=100.0)
    assert len(parsed) == 51, "only the edited document parsed again"


@pytest.mark.parametrize(
    ("current_path", "current_text", "other_path", "other_text", "reason"),
    [
        pytest.param(
            "app/main.py",
            "from pkg.util import (\n    alpha,\n    beta,  # the one\n)\n\nbeta()\n",
            "pkg/util.py",
            "def alpha():\n    pass\n\n\ndef beta():\n    pass\n",
            "defines beta (imported)",
            id="python-parenthesized",
        ),
        pytest.param(
            "pkg/sub/mod.py",
            "from ..tools import gamma\n\ngamma()\n",
            "pkg/tools/__init__.py",
            "def gamma():\n    pass\n",
            "defines gamma (imported)",
            id="python-relative-package",
        ),
        pytest.param(
            "cmd/main.go",
            'package main\n\nimport (\n\t"example.com/proj/pkg/util"\n)\n\nfunc main() {\n'
            "\tutil.Run()\n}\n",
            "pkg/util/run.go",
            "package util\n\nfunc Run() {\n}\n",
            "defines Run (imported)",
            id="go",
        ),
        pytest.param(
            "src/main.rs",
            "use crate::net::server::Server;\n\nfn main() {\n    Server::start();\n}\n",
            "src/net/server.rs",
            "pub struct Server {}\nimpl Server {\n    pub fn start() {}\n}\n",
            "defines start (imported)",
            id="rust",
        ),
        pytest.param(
            "web/app.js",
            'const { load } = require("./lib/loader");\n\nload();\n',
            "web/lib/loader/index.js",
            "function load() {\n  return 1;\n}\n",
            "defines load (imported)",
            id="js-require-index",
        ),
    ],
)
def test_import_mapping(
    current_path: str, current_text: str, other_path: str, other_text: str, reason: str
) -> None:
    others = [doc(other_path, other_text), doc("zz/unrelated.txt", "nothing here\n")]
    current = doc(current_path, current_text)
    name = reason.split()[1]
    cursor = current_text.rindex(name) + len(name)  # just after the last use
    snippets = rank(current, cursor, others, now=0.0)
    assert (snippets[0].path, snippets[0].reason) == (other_path, reason)
