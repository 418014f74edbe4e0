"""testgen.plan_tests on small real trees: framework signals and test file locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctx_lsp.assist.testgen import TestPlan, plan_tests

PYPROJECT_PYTEST = '[project]\nname = "x"\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
UNITTEST = "import unittest\n\nclass T(unittest.TestCase):\n    pass\n"
PYTEST = "import pytest\n\ndef test_x():\n    assert True\n"


def make_tree(root: Path, files: dict[str, str]) -> None:
    """Paths ending with "/" are folders, others files with the given content."""
    for rel, content in files.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)


CASES = [
    # ---- Python: framework
    pytest.param({"pyproject.toml": PYPROJECT_PYTEST, "tests/": ""}, "app/mod.py", "python",
                 TestPlan("pytest", "tests/test_mod.py", False, "python"), id="py-pyproject"),
    pytest.param({"setup.cfg": "[tool:pytest]\naddopts = -q\n", "tests/test_a.py": UNITTEST},
                 "mod.py", "python", TestPlan("pytest", "tests/test_mod.py", False, "python"),
                 id="py-setup-cfg-beats-unittest-files"),
    pytest.param({"tox.ini": "[testenv]\ncommands = pytest\n"}, "mod.py", "python",
                 TestPlan("pytest", "test_mod.py", False, "python"), id="py-tox"),
    pytest.param({"pytest.ini": ""}, "mod.py", "python",
                 TestPlan("pytest", "test_mod.py", False, "python"), id="py-empty-pytest-ini"),
    pytest.param({"tests/conftest.py": "", "tests/test_a.py": UNITTEST}, "mod.py", "python",
                 TestPlan("pytest", "tests/test_mod.py", False, "python"), id="py-conftest"),
    pytest.param({"tests/test_a.py": UNITTEST}, "pkg/mod.py", "python",
                 TestPlan("unittest", "tests/test_mod.py", False, "python"), id="py-unittest"),
    pytest.param({"test/test_a.py": UNITTEST, "test/test_b.py": PYTEST}, "mod.py", "python",
                 TestPlan("pytest", "test/test_mod.py", False, "python"),
                 id="py-test-folder-pytest-import"),
    pytest.param({"pyproject.toml": '[project]\nname = "x"\n'}, "mod.py", "python",
                 TestPlan("pytest", "test_mod.py", False, "python"), id="py-default"),
    pytest.param({"pkg/test_other.py": UNITTEST}, "pkg/mod.py", "python",
                 TestPlan("unittest", "pkg/test_mod.py", False, "python"),
                 id="py-next-to-source-unittest"),
    # ---- Python: paths
    pytest.param({"tests/pkg/sub/": ""}, "src/pkg/sub/mod.py", "python",
                 TestPlan("pytest", "tests/pkg/sub/test_mod.py", False, "python"),
                 id="py-mirror-full"),
    pytest.param({"tests/sub/": ""}, "src/pkg/sub/mod.py", "python",
                 TestPlan("pytest", "tests/sub/test_mod.py", False, "python"),
                 id="py-mirror-tail"),
    pytest.param({"tests/test_mod.py": PYTEST}, "pkg/mod.py", "python",
                 TestPlan("pytest", "tests/test_mod.py", True, "python"), id="py-exists"),
    pytest.param({"tests/": ""}, "pkg/__init__.py", "python",
                 TestPlan("pytest", "tests/test_pkg.py", False, "python"), id="py-init"),
    pytest.param({"pkg/tests/": ""}, "pkg/mod.py", "python",
                 TestPlan("pytest", "pkg/tests/test_mod.py", False, "python"),
                 id="py-package-tests-folder"),
    pytest.param({}, "pkg\\mod.py", "", TestPlan("pytest", "pkg/test_mod.py", False, "python"),
                 id="py-backslashes-language-from-extension"),
    # ---- JavaScript / TypeScript
    pytest.param({"package.json": '{"devDependencies": {"jest": "^29", "vitest": "^1"}}'},
                 "src/util.ts", "typescript",
                 TestPlan("vitest", "src/util.test.ts", False, "typescript"), id="ts-vitest"),
    pytest.param({"package.json": '{"devDependencies": {"jest": "^29"}}'}, "src/App.jsx",
                 "javascriptreact",
                 TestPlan("jest", "src/App.test.jsx", False, "javascriptreact"), id="jsx-jest"),
    pytest.param({"package.json": '{"dependencies": {"mocha": "^10"}}'}, "lib/a.js",
                 "javascript", TestPlan("mocha", "lib/a.test.js", False, "javascript"),
                 id="js-mocha"),
    pytest.param({"package.json": '{"scripts": {"test": "vitest run"}}'}, "a.mjs",
                 "javascript", TestPlan("vitest", "a.test.mjs", False, "javascript"),
                 id="js-test-script"),
    pytest.param({"package.json": "{not json"}, "src/a.ts", "typescript",
                 TestPlan("jest", "src/a.test.ts", False, "typescript"), id="ts-bad-json"),
    pytest.param({}, "src/a.ts", "typescript",
                 TestPlan("jest", "src/a.test.ts", False, "typescript"), id="ts-no-package"),
    pytest.param({"package.json": '{"devDependencies": {"jest": "1"}}',
                  "packages/app/package.json": '{"devDependencies": {"vitest": "1"}}'},
                 "packages/app/src/x.tsx", "typescriptreact",
                 TestPlan("vitest", "packages/app/src/x.test.tsx", False, "typescriptreact"),
                 id="tsx-nearest-package"),
    pytest.param({"src/__tests__/": ""}, "src/util.ts", "typescript",
                 TestPlan("jest", "src/__tests__/util.test.ts", False, "typescript"),
                 id="ts-tests-folder"),
    pytest.param({"src/util.spec.ts": "", "src/__tests__/": ""}, "src/util.ts", "typescript",
                 TestPlan("jest", "src/util.spec.ts", True, "typescript"), id="ts-existing-spec"),
    # ---- Go, Rust, Java, others
    pytest.param({}, "internal/server/server.go", "go",
                 TestPlan("go testing", "internal/server/server_test.go", False, "go"), id="go"),
    pytest.param({"crates/parse-kit/Cargo.toml": ""}, "crates/parse-kit/src/lexer.rs", "rust",
                 TestPlan("rust #[test]", "crates/parse-kit/tests/lexer.rs", False, "rust"),
                 id="rust-crate"),
    pytest.param({"crates/parse-kit/Cargo.toml": ""}, "crates/parse-kit/src/lib.rs", "rust",
                 TestPlan("rust #[test]", "crates/parse-kit/tests/parse_kit.rs", False, "rust"),
                 id="rust-lib"),
    pytest.param({"Cargo.toml": ""}, "src/net/mod.rs", "rust",
                 TestPlan("rust #[test]", "tests/net.rs", False, "rust"), id="rust-mod"),
    pytest.param({"pom.xml": "<dependency><artifactId>junit-jupiter</artifactId></dependency>"},
                 "src/main/java/com/acme/Cart.java", "java",
                 TestPlan("JUnit 5", "src/test/java/com/acme/CartTest.java", False, "java"),
                 id="java-junit5"),
    pytest.param({"pom.xml": "<dependency><artifactId>junit</artifactId></dependency>"},
                 "app/src/main/java/Cart.java", "java",
                 TestPlan("JUnit 4", "app/src/test/java/CartTest.java", False, "java"),
                 id="java-junit4-module"),
    pytest.param({}, "lib/thing.rb", "ruby",
                 TestPlan("unknown", "tests/test_thing.rb", False, "ruby"), id="ruby"),
    pytest.param({}, "Makefile", "makefile",
                 TestPlan("unknown", "tests/test_Makefile", False, "makefile"), id="no-ext"),
]  # fmt: skip


@pytest.mark.parametrize(("files", "source", "language", "expected"), CASES)
def test_plan_tests(
    tmp_path: Path, files: dict[str, str], source: str, language: str, expected: TestPlan
) -> None:
    make_tree(tmp_path, files)
    assert plan_tests(tmp_path, source, language) == expected


def test_plan_tests_missing_root(tmp_path: Path) -> None:
    plan = plan_tests(tmp_path / "gone", "a/b.py", "python")
    assert plan == TestPlan("pytest", "a/test_b.py", False, "python")
