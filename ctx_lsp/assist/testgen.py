"""Where the tests for a source file go, and in which framework.

Looks at a few real files under the workspace root (config files, the tests folder, a couple
of existing tests): a handful of stats and small reads, never a walk of the tree.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

from ctx_lsp.text.languages import language_of

_READ_CAP = 65_536  # bytes read from any one file
_SAMPLE_TESTS = 3  # existing test files read to guess the framework

_JS = ("javascript", "typescript", "javascriptreact", "typescriptreact")


@dataclass(frozen=True)
class TestPlan:
    __test__ = False  # not a pytest test class, despite the name

    framework: str
    test_path: str  # relative to the workspace root, posix
    exists: bool  # the test file exists already (append to it) or not (create it)
    language: str


def _read(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(_READ_CAP)
    except OSError:
        return ""


def plan_tests(root: Path, rel_source: str, language_id: str) -> TestPlan:
    """The test file for `rel_source` (relative to `root`) and the framework to write it with."""
    root = Path(root)
    rel = posixpath.normpath(rel_source.replace("\\", "/")).lstrip("/")
    lang = language_of(rel, language_id) or "plaintext"
    folder, base = posixpath.split(rel)
    stem, ext = posixpath.splitext(base)
    if lang == "python":
        framework, path = _python(root, folder, stem)
    elif lang in _JS:
        framework, path = _javascript(root, folder, stem, ext)
    elif lang == "go":
        framework, path = "go testing", posixpath.join(folder, f"{stem}_test.go")
    elif lang == "rust":
        framework, path = "rust #[test]", _rust(root, folder, stem)
    elif lang == "java":
        framework, path = _java(root, folder, stem)
    else:
        framework, path = "unknown", f"tests/test_{stem}{ext}"
    return TestPlan(framework, path, (root / path).is_file(), lang)


# --------------------------------------------------------------------------------------------
# Python


def _python(root: Path, folder: str, stem: str) -> tuple[str, str]:
    if stem == "__init__":  # a package: name the tests after it
        folder, stem = posixpath.split(folder)
        stem = stem or "package"
    name = f"test_{stem}.py"
    tests_dir = next((d for d in ("tests", "test") if (root / d).is_dir()), None)
    if tests_dir is not None:
        # Mirror the source's folders if the tests do: src/pkg/sub/mod.py gives
        # tests/pkg/sub/test_mod.py when tests/pkg/sub exists, else tests/sub/..., else tests/.
        parts = [p for p in folder.split("/") if p and p != "."]
        if parts and parts[0] in ("src", "lib"):
            parts = parts[1:]
        mirrored = (parts[i:] for i in range(len(parts)))
        sub = next((p for p in mirrored if (root / tests_dir).joinpath(*p).is_dir()), [])
        test_folder = posixpath.join(tests_dir, *sub)
    elif folder and (root / folder / "tests").is_dir():
        test_folder = posixpath.join(folder, "tests")
    else:
        test_folder = folder
    return _python_framework(root, tests_dir, test_folder), posixpath.join(test_folder, name)


def _python_framework(root: Path, tests_dir: str | None, test_folder: str) -> str:
    for config in ("pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini"):
        text = _read(root / config)
        if "pytest" in text or (config == "pytest.ini" and (root / config).is_file()):
            return "pytest"
    if any((root / d / "conftest.py").is_file() for d in (".", tests_dir or "tests")):
        return "pytest"
    unittest = False
    folders = dict.fromkeys((test_folder or ".", tests_dir or test_folder or "."))
    samples = [p for f in folders for p in _sample_tests(root / f, ("test_*.py", "*_test.py"))]
    for path in samples[:_SAMPLE_TESTS]:
        text = _read(path)
        if "import pytest" in text or "from pytest" in text:
            return "pytest"
        unittest = unittest or "import unittest" in text or "from unittest" in text
    return "unittest" if unittest else "pytest"


def _sample_tests(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """A few existing test files in `folder` (one directory listing, no recursion)."""
    found: list[Path] = []
    for pattern in patterns:
        try:
            found += sorted(p for p in folder.glob(pattern) if p.is_file())
        except OSError:
            continue
    return found[:_SAMPLE_TESTS]


# --------------------------------------------------------------------------------------------
# JavaScript / TypeScript


def _package_json(root: Path, folder: str) -> dict[str, object]:
    """The nearest package.json from the source's folder up to the root."""
    parts = [p for p in folder.split("/") if p and p != "."]
    for i in range(len(parts), -1, -1):
        text = _read(root.joinpath(*parts[:i], "package.json"))
        if text:
            try:
                data = json.loads(text)
            except ValueError:
                continue
            return data if isinstance(data, dict) else {}
    return {}


def _javascript(root: Path, folder: str, stem: str, ext: str) -> tuple[str, str]:
    pkg = _package_json(root, folder)
    deps: set[str] = set()
    for key in ("devDependencies", "dependencies", "peerDependencies"):
        value = pkg.get(key)
        if isinstance(value, dict):
            deps.update(value)
    scripts = pkg.get("scripts")
    test_script = str(scripts.get("test", "")) if isinstance(scripts, dict) else ""
    framework = next(
        (f for f in ("vitest", "jest", "mocha") if f in deps or f in test_script), "jest"
    )
    ext = ext.lstrip(".") or "js"
    here = posixpath.join(folder, "__tests__") if (root / folder / "__tests__").is_dir() else folder
    candidates = [
        posixpath.join(d, f"{stem}.{kind}.{ext}")
        for d in dict.fromkeys((here, folder))
        for kind in ("test", "spec")
    ]
    existing = next((c for c in candidates if (root / c).is_file()), None)
    return framework, existing or candidates[0]


# --------------------------------------------------------------------------------------------
# Rust and Java


def _rust(root: Path, folder: str, stem: str) -> str:
    """tests/<name>.rs in the crate (the nearest folder with a Cargo.toml, else the root)."""
    parts = [p for p in folder.split("/") if p and p != "."]
    ups = (parts[:i] for i in range(len(parts), -1, -1))
    crate = next((p for p in ups if root.joinpath(*p, "Cargo.toml").is_file()), [])
    if stem in ("lib", "main", "mod"):  # name the tests after the module folder or the crate
        named = parts[-1] if stem == "mod" and parts else (crate[-1] if crate else root.name)
        stem = named.replace("-", "_") or "crate"
    return posixpath.join(*crate, "tests", f"{stem}.rs")


def _java(root: Path, folder: str, stem: str) -> tuple[str, str]:
    """src/main/java/a/B.java gives src/test/java/a/BTest.java; JUnit 4 if the build says so."""
    padded = f"/{folder}/"
    for main, test in (("/src/main/", "/src/test/"), ("/main/java/", "/test/java/")):
        if main in padded:
            padded = padded.replace(main, test, 1)
            break
    test_folder = padded.strip("/")
    build = "".join(_read(root / f) for f in ("pom.xml", "build.gradle", "build.gradle.kts"))
    junit4 = "junit-jupiter" not in build and (
        "<artifactId>junit</artifactId>" in build or "junit:junit" in build
    )
    return ("JUnit 4" if junit4 else "JUnit 5"), posixpath.join(test_folder, f"{stem}Test.java")
