"""Imports point one way through the layers (`ctx_lsp.layers`), and a wrong-way one is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ctx_lsp import layers


def test_the_package_has_no_wrong_way_import():
    assert [str(w) for w in layers.wrong_way_imports()] == []


def test_every_subpackage_is_a_layer_and_says_what_it_may_import():
    for sub in layers.PACKAGE.iterdir():
        if (sub / "__init__.py").exists():
            assert layers.layer_of(f"ctx_lsp.{sub.name}") == sub.name
            doc = (sub / "__init__.py").read_text()
            if sub.name not in ("server", "cli"):
                assert "May import" in doc, sub.name


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "ctx_lsp"
    shutil.copytree(layers.PACKAGE, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_an_upward_import_is_reported(tmp_path):
    pkg = _copy(tmp_path)
    target = pkg / "text" / "tokens.py"
    target.write_text(target.read_text() + "\nfrom ctx_lsp.runtime import Runtime  # noqa\n")
    bad = layers.wrong_way_imports(pkg)
    assert [(b.module, b.imported) for b in bad] == [("ctx_lsp.text.tokens", "ctx_lsp.runtime")]


def test_a_relative_upward_import_and_pygls_below_the_server_are_reported(tmp_path):
    pkg = _copy(tmp_path)
    (pkg / "store" / "history.py").write_text(
        (pkg / "store" / "history.py").read_text() + "\nfrom ..assist import tasks  # noqa\n"
    )
    (pkg / "prompting" / "prompt.py").write_text(
        (pkg / "prompting" / "prompt.py").read_text() + "\nimport pygls  # noqa\n"
    )
    bad = {(b.module, b.imported) for b in layers.wrong_way_imports(pkg)}
    assert bad == {
        ("ctx_lsp.store.history", "ctx_lsp.assist"),
        ("ctx_lsp.prompting.prompt", "pygls"),
    }


def test_the_command_prints_the_layers_and_exits_zero():
    out = subprocess.run(
        [sys.executable, "-m", "ctx_lsp.layers"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "prompting" in out.stdout and "0 wrong-way import(s)" in out.stdout
