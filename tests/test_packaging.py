"""What pyproject.toml declares: a per-test timeout for the suite, lower bounds the code and
the test settings need, and no runtime dependency the code never imports."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: Declared but not imported by name, and why they stay.
KEPT: dict[str, str] = {}


def _requirement(spec: str) -> tuple[str, str]:
    m = re.match(r"([A-Za-z0-9_.-]+)\s*(?:\[[^\]]*\])?\s*(.*)", spec)
    assert m, spec
    return m[1].lower().replace("_", "-"), m[2]


def _lower_bound(spec: str) -> tuple[int, ...]:
    m = re.search(r">=\s*([0-9.]+)", spec)
    assert m, f"no lower bound: {spec}"
    return tuple(int(p) for p in m[1].split("."))


def test_a_hung_test_times_out():
    test_extra = dict(_requirement(s) for s in PROJECT["project"]["optional-dependencies"]["test"])
    assert "pytest-timeout" in test_extra
    assert 0 < int(PROJECT["tool"]["pytest"]["ini_options"]["timeout"]) <= 600


def test_pytest_asyncio_is_new_enough_for_the_ini_keys():
    ini = PROJECT["tool"]["pytest"]["ini_options"]
    test_extra = dict(_requirement(s) for s in PROJECT["project"]["optional-dependencies"]["test"])
    if "asyncio_default_test_loop_scope" in ini:  # added in pytest-asyncio 0.26
        assert _lower_bound(test_extra["pytest-asyncio"]) >= (0, 26)


def test_every_runtime_dependency_is_used():
    modules: set[str] = set()
    text = ""
    for path in (ROOT / "ctx_lsp").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        text += source
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    provided = importlib.metadata.packages_distributions()
    used = {d.lower().replace("_", "-") for m in modules for d in provided.get(m, [])}
    # a module looked up by name (importlib.util.find_spec("tiktoken_ext.…"))
    used |= {
        d.lower().replace("_", "-")
        for m, dists in provided.items()
        if re.search(rf"[\"']{re.escape(m)}[.\"']", text)
        for d in dists
    }
    declared = [_requirement(s)[0] for s in PROJECT["project"]["dependencies"]]
    unused = [d for d in declared if d not in used and d not in KEPT]
    assert unused == []
