"""regions: the code an action is about (selection, definition, block, file, lines)."""

from __future__ import annotations

import pytest

from ctx_lsp.prompting.regions import Region, enclosing_region, line_span
from ctx_lsp.text.opendoc import OpenDoc

PY = '''import os
import sys

CONFIG = {
    "retries": 3,
}


class Greeter:
    """Says hello."""

    def __init__(self, name):
        self.name = name

    @property
    def greeting(self):
        def shout(s):
            return s.upper()

        return shout("hi " + self.name)


def main():
    g = Greeter(os.getcwd())
    print(g.greeting)


handler = lambda event: event.id
'''

TS = """import { x } from "./x";

export class Store<T> {
  private items: T[] = [];

  add(item: T): void {
    const check = (v: T) => {
      return v != null;
    };
    if (check(item)) {
      this.items.push(item);
    }
  }
}

export const double = (n: number) => n * 2;

export function total(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

interface Point { x: number; y: number }
type Id = string;
"""

GO = """package server

type Server struct {
\taddr string
}

func (s *Server) Handle(w http.ResponseWriter) {
\tw.Write(nil)
}
"""

JAVA = """package a;

public class Cart {
    private int total;

    @Override
    public int add(int a, int b) {
        return a + b;
    }
}
"""


def doc(text: str, language: str, path: str = "x") -> OpenDoc:
    return OpenDoc(f"file:///{path}", path, language, text, 0.0)


def at(text: str, needle: str) -> int:
    assert text.count(needle) == 1, needle
    return text.index(needle) + 1


@pytest.mark.parametrize(
    ("text", "language", "needle", "name", "kind", "starts"),
    [
        pytest.param(PY, "python", "s.upper", "shout", "function", "        def shout",
                     id="py-nested-function-innermost"),
        pytest.param(PY, "python", "return shout", "greeting", "function", "    @property",
                     id="py-method-with-decorator"),
        pytest.param(PY, "python", "self.name = name", "__init__", "function", "    def __init__",
                     id="py-method"),
        pytest.param(PY, "python", "Says hello", "Greeter", "class", "class Greeter",
                     id="py-class-body"),
        pytest.param(PY, "python", "print(g", "main", "function", "def main", id="py-function"),
        pytest.param(PY, "python", '"retries"', "CONFIG", "block", "CONFIG = {",
                     id="py-constant"),
        pytest.param(PY, "python", "event.id", "handler", "function", "handler =",
                     id="py-lambda"),
        pytest.param(TS, "typescript", "v != null", "add", "function", "  add(item",
                     id="ts-method-innermost"),
        pytest.param(TS, "typescript", "private items", "Store", "class", "export class Store",
                     id="ts-class"),
        pytest.param(TS, "typescript", "n * 2", "double", "function", "export const double",
                     id="ts-arrow-const"),
        pytest.param(TS, "typescript", "xs.reduce", "total", "function", "export function",
                     id="ts-function"),
        pytest.param(TS, "typescript", "y: number", "Point", "class", "interface Point",
                     id="ts-interface"),
        pytest.param(TS, "typescript", "Id = string", "Id", "class", "type Id", id="ts-type"),
        pytest.param(GO, "go", "addr string", "Server", "class", "type Server", id="go-struct"),
        pytest.param(GO, "go", "w.Write", "Handle", "function", "func (s", id="go-method"),
        pytest.param(JAVA, "java", "return a + b", "add", "function", "    @Override",
                     id="java-method"),
        pytest.param(JAVA, "java", "private int total", "Cart", "class", "public class",
                     id="java-class"),
    ],
)  # fmt: skip
def test_definition_regions(
    text: str, language: str, needle: str, name: str, kind: str, starts: str
) -> None:
    offset = at(text, needle)
    region = enclosing_region(doc(text, language), offset, offset)
    assert (region.name, region.kind) == (name, kind)
    assert text[region.start :].startswith(starts)
    assert region.start <= offset <= region.end
    assert text[region.end - 1] != "\n"  # ends before the newline of its last line


@pytest.mark.parametrize(
    ("text", "language", "needle", "expected"),
    [
        pytest.param(PY, "python", "import sys", "import os\nimport sys", id="py-imports"),
        pytest.param(TS, "typescript", "import {", 'import { x } from "./x";', id="ts-import"),
        pytest.param("a\nb\n\nc\nd\n", "plaintext", "c", "c\nd", id="paragraph"),
    ],
)
def test_block_outside_definitions(text: str, language: str, needle: str, expected: str) -> None:
    offset = at(text, needle)
    region = enclosing_region(doc(text, language), offset, offset)
    assert region.kind == "block" and region.name is None
    assert text[region.start : region.end] == expected


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(10, 30, id="forward"),
        pytest.param(30, 10, id="reversed"),
        pytest.param(0, 1, id="one-char"),
    ],
)
def test_selection_is_exact(start: int, end: int) -> None:
    region = enclosing_region(doc(PY, "python"), start, end)
    assert region == Region(min(start, end), max(start, end), None, "selection")


def test_selection_clamped() -> None:
    assert enclosing_region(doc("abc", "plaintext"), 1, 99) == Region(1, 3, None, "selection")


def test_blank_line_small_file_is_file() -> None:
    offset = PY.index("\n\n\nclass") + 1
    assert enclosing_region(doc(PY, "python"), offset, offset) == Region(0, len(PY), None, "file")


def test_empty_document() -> None:
    assert enclosing_region(doc("", "python"), 0, 0) == Region(0, 0, None, "file")


def test_blank_line_big_file_is_lines() -> None:
    text = "".join(f"# note {i}\n\n" for i in range(100))
    offset = text.index("# note 50\n") + len("# note 50\n")  # the blank line after it
    region = enclosing_region(doc(text, "python"), offset, offset)
    assert region.kind == "lines"
    lines = text[region.start : region.end].splitlines()
    assert len(lines) == 41 and lines[20] == ""  # 20 above, the cursor line, 20 below


def test_paragraph_capped_and_centred() -> None:
    text = "".join(f"row {i}\n" for i in range(300))
    offset = at(text, "row 150\n")
    region = enclosing_region(doc(text, "plaintext"), offset, offset)
    rows = text[region.start : region.end].splitlines()
    assert region.kind == "block" and len(rows) == 60
    assert rows[0] == "row 120" and rows[-1] == "row 179"  # 30 above, 29 below


def test_paragraph_at_file_edges() -> None:
    text = "".join(f"row {i}\n" for i in range(100))
    region = enclosing_region(doc(text, "plaintext"), 0, 0)
    assert text[region.start : region.end].splitlines()[0] == "row 0"
    assert text[region.start : region.end].count("\n") == 59
    end = len(text)
    region = enclosing_region(doc(text, "plaintext"), end - 1, end - 1)
    assert text[region.start : region.end].splitlines()[-1] == "row 99"


ABC = "a\nbb\nccc"


@pytest.mark.parametrize(
    ("text", "first", "last", "expected"),
    [
        pytest.param(ABC, 0, 0, "a\n", id="first-line"),
        pytest.param(ABC, 1, 1, "bb\n", id="middle-line"),
        pytest.param(ABC, 2, 2, "ccc", id="last-line-no-newline"),
        pytest.param(ABC, 0, 2, ABC, id="all"),
        pytest.param(ABC, 1, 10, "bb\nccc", id="clamped-end"),
        pytest.param(ABC, -3, 0, "a\n", id="clamped-start"),
        pytest.param(ABC, 2, 1, "bb\nccc", id="reversed"),
        pytest.param(ABC, 5, 6, "", id="past-the-end"),
        pytest.param("a\nb\n", 2, 2, "", id="empty-last-line"),
        pytest.param("a\r\nb", 0, 0, "a\r\n", id="crlf"),
        pytest.param("", 0, 0, "", id="empty-text"),
    ],
)
def test_line_span(text: str, first: int, last: int, expected: str) -> None:
    start, end = line_span(text, first, last)
    assert text[start:end] == expected
    assert start == len(text) or start == 0 or text[start - 1] == "\n"


def test_line_span_past_the_end_offsets() -> None:
    assert line_span(ABC, 5, 6) == (len(ABC), len(ABC))


@pytest.mark.parametrize(
    ("text", "language", "needle", "name", "kind"),
    [
        pytest.param('@app.route(\n    "/x",\n)\ndef view():\n    return 1\n', "python",
                     "return 1", "view", "function", id="py-multiline-decorator"),
        pytest.param("@dataclass\nclass P:\n    x: int\n", "python", "x: int", "P", "class",
                     id="py-decorated-class"),
        pytest.param("async def fetch():\n    await go()\n", "python", "await", "fetch",
                     "function", id="py-async"),
        pytest.param("pub fn parse(s: &str) -> u32 {\n    s.len() as u32\n}\n", "rust",
                     "s.len", "parse", "function", id="rust-fn"),
        pytest.param("pub struct P {\n    x: u32,\n}\n", "rust", "x: u32", "P", "class",
                     id="rust-struct"),
        pytest.param("static int add(int a, int b)\n{\n    return a + b;\n}\n", "c", "return",
                     "add", "function", id="c-allman"),
        pytest.param("type Handler = (req: Req) => void;\n", "typescript", "void", "Handler",
                     "class", id="ts-function-type-is-a-type"),
        pytest.param("export const Btn = styled.button`\n  color: red;\n`;\n", "typescript",
                     "color", "Btn", "block", id="ts-value-const"),
        pytest.param("export default function App() {\n  return null;\n}\n", "typescriptreact",
                     "return null", "App", "function", id="tsx-default-function"),
    ],
)  # fmt: skip
def test_definition_kinds(text: str, language: str, needle: str, name: str, kind: str) -> None:
    offset = at(text, needle)
    region = enclosing_region(doc(text, language), offset, offset)
    assert (region.name, region.kind) == (name, kind)
