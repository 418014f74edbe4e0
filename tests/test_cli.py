"""The `ctx-lsp` command line, run as the real executable in a temporary git repository:
help, usage errors and exit codes, workspace discovery, templates, tree, doctor.

Helpers here are shared by the other `test_cli_*` modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ctx_lsp.config.settings import Settings
from tests.conftest import git, trust
from tests.fake_openai import FakeOpenAI, Hang

CTX_LSP = [sys.executable, "-m", "ctx_lsp"]


def run_cli(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`ctx-lsp ARGS` in `cwd` with the test's (isolated) environment plus `env`."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*CTX_LSP, *args],
        cwd=cwd,
        env=full_env,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_json(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    r = run_cli(cwd, *args, "--json", env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def scope_dir(root: Path) -> Path:
    return root / ".ctx" / "users" / Settings().effective_user()


def make_ws(repo: Path) -> Path:
    """The repository with model "test-model" in its `.ctx/config.toml`."""
    (repo / ".ctx").mkdir()
    # no retries: failures are tested once, not after backoff (retries: tests/test_backend.py)
    (repo / ".ctx" / "config.toml").write_text('model = "test-model"\nmaxRetries = 0\n')
    return repo


@pytest.fixture
def ws(repo: Path) -> Path:
    return make_ws(repo)


# -- help, version, usage ---------------------------------------------------------------------


def test_help_documents_commands_and_exit_codes(home: Path, tmp_path: Path) -> None:
    r = run_cli(tmp_path, "--help")
    assert r.returncode == 0
    for word in ("chat", "commit", "explain", "prompt", "session", "history", "templates"):
        assert word in r.stdout
    for line in ("0    success", "2    usage error", "3    model backend error", "130"):
        assert line in r.stdout
    r = run_cli(tmp_path, "session", "merge", "--help")
    assert "a .ctx folder" in r.stdout and "session.json" in r.stdout


def test_version(home: Path, tmp_path: Path) -> None:
    r = run_cli(tmp_path, "--version")
    assert r.returncode == 0 and r.stdout.startswith("ctx-lsp ")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["history"], id="missing-action"),
        pytest.param(["history", "show", "--last", "0"], id="last-zero"),
        pytest.param(["tree", "--depth", "x"], id="depth-not-a-number"),
        pytest.param(["commit", "--staged", "--working-tree"], id="exclusive-flags"),
        pytest.param(["history", "export", "--format", "xml"], id="bad-format"),
    ],
)
def test_usage_errors_exit_2(home: Path, tmp_path: Path, args: list[str]) -> None:
    r = run_cli(tmp_path, *args)
    assert r.returncode == 2
    assert "error:" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_bad_root_is_a_usage_error(home: Path, tmp_path: Path) -> None:
    r = run_cli(tmp_path, "--root", str(tmp_path / "nope"), "history", "show")
    assert r.returncode == 2
    assert "not a folder" in r.stderr


def test_serve_subcommand_still_parses_server_options(home: Path, tmp_path: Path) -> None:
    r = run_cli(tmp_path, "serve", "--help")
    assert r.returncode == 0 and "--tcp" in r.stdout and "--log-file" in r.stdout


def test_workspace_root_is_nearest_ancestor_with_ctx_or_git(ws: Path, fake_openai) -> None:
    sub = ws / "pkg" / "deep"
    sub.mkdir(parents=True)
    (ws / "pkg" / "mod.py").write_text("X = 1\n")
    # file arguments are relative to the current directory, state goes to the root's .ctx
    r = run_cli(sub, "chat", "about mod?", "--file", "../mod.py", env=fake_openai.env())
    assert r.returncode == 0, r.stderr
    assert (scope_dir(ws) / "history.jsonl").is_file()
    assert not (sub / ".ctx").exists()
    # --root works from anywhere, before or after the command
    for args in (["--root", str(ws), "history", "show"], ["history", "show", "--root", str(ws)]):
        r = run_cli(ws.parent, *args, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["total"] == 2


# -- templates --------------------------------------------------------------------------------


def test_templates_list_show_and_check(ws: Path) -> None:
    listed = run_json(ws, "templates", "list")["templates"]
    names = {t["name"] for t in listed}
    assert {"chat", "commit", "completion", "explain", "fix", "summary", "tests"} <= names
    chat = next(t for t in listed if t["name"] == "chat")
    assert chat["source"].startswith("builtin:") and "question" in chat["placeholders"]

    r = run_cli(ws, "templates", "list")
    assert r.returncode == 0 and r.stdout.startswith("NAME")

    r = run_cli(ws, "templates", "show", "explain")
    assert r.returncode == 0
    assert r.stdout.startswith("---\nname: explain\n") and "## user" in r.stdout
    shown = run_json(ws, "templates", "show", "commit", "--branch", "release/1.0")
    assert shown["branches"] and "release" in shown["branches"]

    r = run_cli(ws, "templates", "check")
    assert (r.returncode, r.stdout.startswith("OK:")) == (0, True)
    assert run_json(ws, "templates", "check") == {"ok": True, "templates": 8, "problems": []}


def test_templates_show_unknown_is_usage_error(ws: Path) -> None:
    r = run_cli(ws, "templates", "show", "nope")
    assert r.returncode == 2
    assert "unknown template 'nope'" in r.stderr and "chat" in r.stderr


@pytest.mark.parametrize(
    ("files", "config", "expected"),
    [
        pytest.param(
            {"odd.md": "## user\nHello $nobody\n"}, "", ["unknown placeholder(s) $nobody"],
            id="unknown-placeholder",
        ),
        pytest.param(
            {"blank.md": "## system\n\n## user\n\n"}, "", ["both empty"], id="empty-template"
        ),
        pytest.param(
            {"broken.md": "no heading here\n"}, "", ["text before the first"], id="unparsable"
        ),
        pytest.param({}, "colour = 3\n", ["unknown setting 'colour'"], id="config-problem"),
    ],
)  # fmt: skip
def test_templates_check_reports_problems_with_exit_4(
    ws: Path, files: dict[str, str], config: str, expected: list[str]
) -> None:
    (ws / ".ctx" / "templates").mkdir()
    for name, text in files.items():
        (ws / ".ctx" / "templates" / name).write_text(text)
    with (ws / ".ctx" / "config.toml").open("a") as fh:
        fh.write(config)
    trust(ws)
    r = run_cli(ws, "templates", "check")
    assert r.returncode == 4
    for text in expected:
        assert text in r.stdout
    r = run_cli(ws, "templates", "check", "--json")
    assert r.returncode == 4
    report = json.loads(r.stdout)
    assert report["ok"] is False and len(report["problems"]) == len(expected)


# -- tree -------------------------------------------------------------------------------------


def test_tree_respects_gitignore_and_exclusions(ws: Path) -> None:
    (ws / ".gitignore").write_text("build/\n*.log\n")
    (ws / "build").mkdir()
    (ws / "build" / "out.js").write_text("x")
    (ws / "debug.log").write_text("x")
    (ws / ".env").write_text("SECRET=1\n")
    (ws / "src" / "pkg").mkdir(parents=True)
    (ws / "src" / "pkg" / "core.py").write_text("A = 1\n" * 100)
    (ws / "src" / "new.py").write_text("untracked\n")
    git(ws, "add", ".gitignore", "src/pkg/core.py")
    r = run_cli(ws, "tree")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.splitlines()[0].startswith(f"{ws.name}/  (")
    for present in ("src/", "pkg/", "core.py  (600 B)", "new.py", "app.py", ".gitignore"):
        assert present in out
    for absent in ("build", "debug.log", ".env", ".ctx", "config.toml"):
        assert absent not in out
    data = run_json(ws, "tree", "--depth", "1")
    assert data["source"] == "git"
    assert {"src/pkg/core.py", "src/new.py", "app.py"} <= {f["path"] for f in data["files"]}
    assert "core.py" not in data["text"] and "src/  (2 files" in data["text"]


def test_tree_outside_git_walks_with_ignore_files(home: Path, tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("# a\n")
    (root / "docs" / ".gitignore").write_text("draft*\n")
    (root / "docs" / "draft1.md").write_text("x")
    (root / ".ctxignore").write_text("private/\n")
    (root / "private").mkdir()
    (root / "private" / "p.txt").write_text("x")
    data = run_json(root, "tree")
    assert data["source"] == "walk"
    assert sorted(f["path"] for f in data["files"]) == [
        ".ctxignore",
        "docs/.gitignore",
        "docs/a.md",
    ]


# -- doctor -----------------------------------------------------------------------------------


def test_doctor_all_ok(ws: Path, fake_openai: FakeOpenAI) -> None:
    r = run_cli(ws, "doctor", env=fake_openai.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout
    assert "model            test-model" in r.stdout and ".ctx/config.toml" in r.stdout
    report = run_json(ws, "doctor", env=fake_openai.env())
    assert report["ok"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {
        "config",
        "templates",
        "backend",
        "model",
        "git",
        ".ctx",
        "state",
        "trust",
    }
    assert checks["trust"]["detail"].startswith("not needed")
    assert report["settings"]["model"] == {
        "value": "test-model",
        "origin": str(ws / ".ctx" / "config.toml"),
    }
    assert report["settings"]["maxTokens"]["origin"] == "default"


@pytest.mark.parametrize(
    ("setup", "env", "failing"),
    [
        pytest.param("unknown-model", {}, {"model"}, id="model-not-listed"),
        pytest.param("", {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, {"backend", "model"},
                     id="unreachable"),
        pytest.param("", {"OPENAI_BASE_URL": "https://api.example.invalid/v1",
                          "OPENAI_API_KEY": ""}, {"backend", "model"}, id="no-key"),
        pytest.param("bad-config", {}, {"config"}, id="config-problem"),
        pytest.param("hang", {}, {"backend", "model"}, id="backend-hangs"),
    ],
)  # fmt: skip
def test_doctor_fails_with_reason(
    ws: Path, fake_openai: FakeOpenAI, setup: str, env: dict[str, str], failing: set[str]
) -> None:
    if setup == "unknown-model":
        (ws / ".ctx" / "config.toml").write_text('model = "no-such-model"\n')
    elif setup == "bad-config":
        (ws / ".ctx" / "config.toml").write_text('model = "test-model"\nmaxTokens = -4\n')
    elif setup == "hang":
        fake_openai.fail_all(Hang(30))
        (ws / ".ctx" / "config.toml").write_text('model = "test-model"\ntimeoutS = 1\n')
    r = run_cli(ws, "doctor", "--json", env={**fake_openai.env(), **env})
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is False
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert failed == failing
    assert all(c["detail"] for c in report["checks"])
    if setup != "hang":  # one wait is enough
        text = run_cli(ws, "doctor", env={**fake_openai.env(), **env}).stdout
        for name in failing:
            assert f"FAIL  {name}:" in text
