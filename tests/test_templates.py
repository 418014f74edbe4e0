"""Prompt templates: builtin data files, rendering, branch variants, layers, parse errors."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from ctx_lsp.prompting.templates import (
    KNOWN_PLACEHOLDERS,
    Template,
    TemplateError,
    TemplateLibrary,
    parse_template,
)

BUILTIN_NAMES = ["chat", "commit", "completion", "explain", "fix", "summary", "tests"]
ALL_VALUES = {name: f"<{name}-value>" for name in KNOWN_PLACEHOLDERS}


@pytest.fixture
def lib() -> TemplateLibrary:
    return TemplateLibrary.builtin()


def test_builtins_load(lib: TemplateLibrary) -> None:
    assert lib.names() == BUILTIN_NAMES
    assert lib.check() == []
    for t in lib.all():
        assert t.description, t.name
        assert t.source.startswith("builtin:")
        assert t.user.strip()


def test_builtin_files_are_package_data() -> None:
    folder = resources.files("ctx_lsp.prompting").joinpath("builtin_templates")
    names = sorted(e.name for e in folder.iterdir() if e.name.endswith(".md"))
    assert {n.split(".")[0] for n in names} == set(BUILTIN_NAMES)
    assert "commit.release.md" in names


@pytest.mark.parametrize(
    ("name", "branch"),
    [pytest.param(n, None, id=n) for n in BUILTIN_NAMES]
    + [pytest.param("commit", "release/1.2", id="commit@release")],
)
def test_every_builtin_renders_completely(lib: TemplateLibrary, name: str, branch) -> None:
    r = lib.render(name, ALL_VALUES, branch)
    assert r.missing == frozenset()
    text = r.system + "\n" + r.user
    for placeholder in KNOWN_PLACEHOLDERS:
        assert not re.search(r"\$\{?" + placeholder + r"\b", text), placeholder
    for used in r.template.placeholders():
        assert ALL_VALUES[used] in text


@pytest.mark.parametrize(
    ("name", "required", "phrases"),
    [
        pytest.param(
            "completion",
            {"prefix", "suffix", "language", "file", "branch"},
            ["ONLY the code to insert", "fences", "Do not repeat"],
            id="completion",
        ),
        pytest.param(
            "commit",
            {"branch", "diff", "recent_commits", "history_summary", "commit_convention"},
            ["72 characters", "blank line", "no preamble", "code fences"],
            id="commit",
        ),
        pytest.param(
            "fix",
            {"error_message", "code", "context"},
            ["ONLY the replacement", "fences"],
            id="fix",
        ),
        pytest.param(
            "tests",
            {"code", "test_framework", "test_path"},
            ["ONLY the test", "complete test file"],
            id="tests",
        ),
        pytest.param("explain", {"code", "language"}, ["Markdown"], id="explain"),
        pytest.param(
            "summary",
            {"history", "history_summary"},
            ["decisions", "files", "open"],
            id="summary",
        ),
        pytest.param("chat", {"question"}, ["Markdown"], id="chat"),
    ],
)
def test_builtin_content(
    lib: TemplateLibrary, name: str, required: set[str], phrases: list[str]
) -> None:
    t = lib.get(name)
    assert required <= t.placeholders()
    text = t.system + t.user
    for phrase in phrases:
        assert phrase in text, phrase


def test_completion_window_is_exact(lib: TemplateLibrary) -> None:
    r = lib.render(
        "completion",
        {"prefix": "def f(", "suffix": "):\n", "language": "python", "file": "a.py", "branch": "m"},
    )
    assert "def f(<CURSOR>):\n" in r.user


def test_missing_placeholder_reported_and_left(lib: TemplateLibrary) -> None:
    r = lib.render("explain", {"code": "x = 1", "language": "python"})
    assert r.missing == {"file", "branch"}
    assert "$file" in r.user and "$branch" in r.user
    assert "x = 1" in r.user


def test_values_are_not_substituted_twice() -> None:
    t = Template(name="t", system="", user="A ${code} B $$ C")
    lib = TemplateLibrary()
    lib.add(t)
    r = lib.render("t", {"code": "echo $file ${language}"})
    assert r.user == "A echo $file ${language} B $ C"
    assert r.missing == frozenset()


@pytest.mark.parametrize(
    ("branch", "expected_source"),
    [
        pytest.param("release/1.2", "builtin:commit.release.md", id="release"),
        pytest.param("hotfix/urgent", "builtin:commit.release.md", id="hotfix"),
        pytest.param("main", "builtin:commit.md", id="main"),
        pytest.param("feature/release/x", "builtin:commit.md", id="not-a-prefix"),
        pytest.param(None, "builtin:commit.md", id="no-branch"),
    ],
)
def test_branch_variant(lib: TemplateLibrary, branch, expected_source: str) -> None:
    assert lib.get("commit", branch).source == expected_source


def test_most_specific_variant_wins(lib: TemplateLibrary) -> None:
    lib.add(Template(name="commit", system="s", user="u", branches="release/1.*", source="ws"))
    assert lib.get("commit", "release/1.2").source == "ws"
    assert lib.get("commit", "release/2.0").source == "builtin:commit.release.md"
    assert lib.get("commit", "main").source == "builtin:commit.md"


def test_add_overrides_same_name_and_branches(lib: TemplateLibrary) -> None:
    mine = Template(name="commit", system="mine", user="$diff", source="user")
    lib.add(mine)
    assert lib.get("commit", "main") is mine
    # The release variant is another key and stays.
    assert lib.get("commit", "release/1.0").source == "builtin:commit.release.md"
    # Same globs, written in another order, are the same key.
    variant = Template(name="commit", system="r", user="u", branches="hotfix/*,release/*")
    lib.add(variant)
    assert lib.get("commit", "release/1.0") is variant
    assert len([t for t in lib.all() if t.name == "commit"]) == 2


def test_copy_is_independent(lib: TemplateLibrary) -> None:
    other = lib.copy()
    other.add(Template(name="extra", system="", user="hi"))
    assert "extra" in other.names()
    assert "extra" not in lib.names()


@pytest.mark.parametrize(
    ("lib_setup", "name", "branch", "message"),
    [
        pytest.param(None, "nope", None, "unknown template 'nope'", id="unknown"),
        pytest.param(
            Template(name="only", system="", user="u", branches="release/*"),
            "only",
            "main",
            "only branch variants",
            id="only-variants",
        ),
    ],
)
def test_get_errors(lib: TemplateLibrary, lib_setup, name: str, branch, message: str) -> None:
    if lib_setup is not None:
        lib.add(lib_setup)
    with pytest.raises(KeyError, match=message):
        lib.get(name, branch)


GOOD = """---
description: A test template
branches: release/*
max_tokens: 99
---
## system
You are $language helper.
## user
Question: $question

## Notes
This heading is content.
"""


def test_parse_good() -> None:
    t = parse_template(GOOD, "mine.release", "test")
    assert t == Template(
        name="mine",
        system="You are $language helper.",
        user="Question: $question\n\n## Notes\nThis heading is content.",
        description="A test template",
        branches="release/*",
        max_tokens=99,
        source="test",
    )
    assert t.placeholders() == {"language", "question"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("## user\nhi\n", ("x", "", "hi"), id="no-front-matter"),
        pytest.param("\r\n## system\r\nsys\r\n## user\r\nhi\r\n", ("x", "sys", "hi"), id="crlf"),
        pytest.param("---\nname: other\n---\n## USER\nhi", ("other", "", "hi"), id="name-key"),
        pytest.param("---\n# a comment\n---\n## user\n\nhi\n\n", ("x", "", "hi"), id="comment"),
    ],
)
def test_parse_variants(text: str, expected: tuple[str, str, str]) -> None:
    t = parse_template(text, "x", "test")
    assert (t.name, t.system, t.user) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("---\ndescription: x\n## user\nhi", "never closed", id="unclosed"),
        pytest.param("---\njust words\n---\n## user\nhi", "key: value", id="no-colon"),
        pytest.param("---\ncolour: red\n---\n## user\nhi", "unknown front matter key", id="key"),
        pytest.param("---\nmax_tokens: lots\n---\n## user\nhi", "positive integer", id="max"),
        pytest.param("---\nmax_tokens: 0\n---\n## user\nhi", "positive integer", id="max-0"),
        pytest.param("---\nname: a\nname: b\n---\n## user\nhi", "duplicate key", id="dup-key"),
        pytest.param("## user\na\n## user\nb", "second '## user'", id="dup-section"),
        pytest.param("## system\nonly system", "no '## user' section", id="no-user"),
        pytest.param("hello\n## user\nhi", "text before the first", id="stray-text"),
        pytest.param("---\nname: bad name\n---\n## user\nhi", "invalid template name", id="name"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)) as info:
        parse_template(text, "x", "my/source.md")
    assert "my/source.md" in str(info.value)


def test_check_reports_problems(lib: TemplateLibrary) -> None:
    lib.add(Template(name="odd", system="", user="Hi $nme and ${other}", source="user:odd.md"))
    lib.add(Template(name="empty", system=" ", user="\n", source="user:empty.md"))
    problems = lib.check()
    assert any("odd" in p and "$nme" in p and "$other" in p for p in problems)
    assert any("empty" in p and "empty" in p for p in problems)
    assert len(problems) == 2


def test_load_directory(lib: TemplateLibrary, tmp_path) -> None:
    (tmp_path / "commit.md").write_text("## system\nmine\n## user\n$diff\n", encoding="utf-8")
    (tmp_path / "broken.md").write_text("no sections", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    problems = lib.load_directory(tmp_path, "workspace")
    assert len(problems) == 1 and "broken.md" in problems[0]
    assert lib.get("commit", "main").system == "mine"
    assert lib.get("commit", "main").source.startswith("workspace:")
    assert lib.load_directory(tmp_path / "missing", "user") == []
