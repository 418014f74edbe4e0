"""Files that never enter the context: the built-in secrets list (which nothing can negate),
git's ignore rules at every level (checked against `git check-ignore` itself), `.ctxignore`,
and ctx-lsp's and git's own data."""

from __future__ import annotations

import subprocess
import types
from pathlib import Path

import pytest

from ctx_lsp.config.settings import Settings
from ctx_lsp.workspace import exclusion
from ctx_lsp.workspace.exclusion import Excluder
from ctx_lsp.workspace.folder import Folder
from ctx_lsp.workspace.pins import read_pinned
from tests.conftest import GIT_ENV, git

RULES = {
    ".gitignore": (
        "build/\n!build/keep.py\n/local.py\n*.log\n!keep.log\ndocs/*.draft\n"
        # negations cannot reach the built-in list
        "!keep.env\n!.env.example\n!id_rsa\n"
    ),
    "sub/.gitignore": "gen_*.py\n!gen_keep.py\n",
    "loose/.gitignore": "!*.log\n",
    ".ctxignore": "# private notes and fixtures\nprivate/\n*.secret.*\n/vendor\n",
    "pkg/.ctxignore": "fixtures/\n",
}

PATHS = [
    "app.py",
    "README.md",
    "build/x.py",
    "build/keep.py",
    "src/build/x.py",
    "local.py",
    "sub/local.py",
    "a.log",
    "keep.log",
    "loose/a.log",
    "docs/a.draft",
    "docs/sub/a.draft",
    "sub/gen_x.py",
    "sub/gen_keep.py",
    "sub/deeper/gen_y.py",
    "gen_x.py",
    "scratch.py",
    "sub/scratch.py",
    "notes.mine",
    "private/n.md",
    "a/private/n.md",
    "b.secret.txt",
    "vendor/lib.py",
    "src/vendor/lib.py",
    "pkg/fixtures/data.json",
    "fixtures/data.json",
]


@pytest.fixture
def tree(tmp_path: Path, home: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for rel, text in RULES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("scratch.py\n")
    # the user's global excludes file (git's default core.excludesFile location)
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "ignore").write_text("*.mine\n")
    for rel in PATHS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x = 1\n")
    return root


def git_ignores(root: Path, rel: str) -> bool:
    import os

    result = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", rel],
        cwd=root,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


# -- built-in: secrets and key files, excluded wherever they are, whatever the rules say ----------

BUILTIN_EXCLUDED = [
    ".env",
    "config/.env",
    ".env.local",
    ".env.production",
    ".env.example",  # negated in .gitignore: built-ins cannot be negated
    "keep.env",  # negated in .gitignore
    "prod.env",
    "id_rsa",  # negated in .gitignore
    "id_rsa.pub",
    "home/.ssh/id_ed25519",
    "id_ecdsa",
    "deploy/tls/server.key",
    "tls.pem",
    "client.p12",
    "store.pfx",
    "release.jks",
    "android.keystore",
    ".npmrc",
    ".netrc",
    "_netrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    "credentials",
    "credentials.json",
    "passwords.kdbx",
    ".aws/credentials",
    ".aws/config",
    ".ssh/config",
    ".gnupg/secring.gpg",
    ".docker/config.json",
    "secrets.yaml",
    "k8s/secrets.yml",
    "terraform.tfstate",
]
# named by the issue (".env*", "key and certificate files") or as common, but not matched yet
BUILTIN_MISSING = [
    pytest.param(".envrc", id=".envrc"),
    pytest.param(".env_local", id=".env_local"),
    pytest.param("certs/server.crt", id="crt-certificate"),
    pytest.param("certs/server.cer", id="cer-certificate"),
    pytest.param("putty.ppk", id="putty-key"),
    pytest.param(".pgpass", id="pgpass"),
    pytest.param(".kube/config", id="kubeconfig"),
    pytest.param("SERVER.KEY", id="upper-case-key"),
    pytest.param("Certs/Prod.PEM", id="upper-case-pem"),
]


@pytest.mark.parametrize("rel", [*BUILTIN_EXCLUDED, *BUILTIN_MISSING])
def test_builtin_secret_files_are_always_excluded(tree: Path, rel: str):
    reason = Excluder(tree).reason(rel)
    assert reason is not None and "built-in" in reason, reason


@pytest.mark.parametrize(
    "rel",
    [
        "src/credentials.py",
        "keys.py",
        "tokens.py",
        "secrets.py",
        "environment.py",
        "envoy.yaml",
        "docs/env.md",
        "passwords_test.py",
        "src/ssh_client.py",
        "keyboard.json",
    ],
)
def test_ordinary_files_with_secret_sounding_names_are_read(tree: Path, rel: str):
    assert Excluder(tree).reason(rel) is None


# -- git's rules at every level, and .ctxignore -------------------------------------------------

GIT_CASES = [
    pytest.param("app.py", None, id="plain-file"),
    pytest.param("build/x.py", ".gitignore", id="dir-pattern"),
    pytest.param("src/build/x.py", ".gitignore", id="dir-pattern-any-depth"),
    # git cannot re-include a file whose parent directory is excluded
    pytest.param("build/keep.py", ".gitignore", id="negation-under-excluded-dir"),
    pytest.param("local.py", ".gitignore", id="anchored"),
    pytest.param("sub/local.py", None, id="anchored-not-below"),
    pytest.param("a.log", ".gitignore", id="glob"),
    pytest.param("keep.log", None, id="negation"),
    # a deeper .gitignore's negation wins over the root's pattern
    pytest.param("loose/a.log", None, id="nested-negation-wins"),
    pytest.param("docs/a.draft", ".gitignore", id="one-level-glob"),
    pytest.param("docs/sub/a.draft", None, id="one-level-glob-not-deeper"),
    pytest.param("sub/gen_x.py", "sub/.gitignore", id="nested-gitignore"),
    pytest.param("sub/deeper/gen_y.py", "sub/.gitignore", id="nested-gitignore-below"),
    pytest.param("sub/gen_keep.py", None, id="nested-negation"),
    pytest.param("gen_x.py", None, id="nested-gitignore-not-above"),
    pytest.param("scratch.py", ".git/info/exclude", id="info-exclude"),
    pytest.param("sub/scratch.py", ".git/info/exclude", id="info-exclude-any-depth"),
    pytest.param("notes.mine", "git", id="global-excludes-file"),
]


@pytest.mark.parametrize(("rel", "where"), GIT_CASES)
def test_files_git_ignores_are_excluded_exactly_as_git_does(tree: Path, rel: str, where):
    assert git_ignores(tree, rel) == (where is not None), "the table agrees with git"
    reason = Excluder(tree).reason(rel)
    if where is None:
        assert reason is None, reason
    else:
        assert reason is not None and "git" in reason and where in reason, reason


@pytest.mark.parametrize(
    ("rel", "excluded"),
    [
        pytest.param("private/n.md", True, id="dir"),
        pytest.param("a/private/n.md", True, id="dir-any-depth"),
        pytest.param("b.secret.txt", True, id="glob"),
        pytest.param("vendor/lib.py", True, id="anchored"),
        pytest.param("src/vendor/lib.py", False, id="anchored-not-below"),
        pytest.param("pkg/fixtures/data.json", True, id="nested-ctxignore"),
        pytest.param("fixtures/data.json", False, id="nested-ctxignore-not-above"),
    ],
)
def test_ctxignore_uses_gitignore_syntax(tree: Path, rel: str, excluded: bool):
    reason = Excluder(tree).reason(rel)
    if excluded:
        assert reason is not None and ".ctxignore" in reason, reason
    else:
        assert reason is None, reason


@pytest.mark.parametrize("rel", [".git/config", ".git/HEAD", ".ctx/users/u/history.jsonl"])
def test_own_data_is_never_read(tree: Path, rel: str):
    assert "own data" in (Excluder(tree).reason(rel) or "")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The excluder remembers answers for a moment (`ANSWER_TTL_S`): a controllable clock
    lets a test step past that memo instead of sleeping."""
    now = [1000.0]
    fake = types.SimpleNamespace(monotonic=lambda: now[0], time=lambda: now[0])
    monkeypatch.setattr(exclusion, "time", fake, raising=False)
    return now


def _after_the_memo(clock: list[float]) -> None:
    clock[0] += getattr(exclusion, "ANSWER_TTL_S", 0.0) + 0.1


def test_rules_changed_later_apply_without_a_restart(tree: Path, clock: list[float]):
    excluder = Excluder(tree)
    assert excluder.reason("app.py") is None
    (tree / ".ctxignore").write_text("app.py\n")
    _bump_mtime(tree / ".ctxignore")
    _after_the_memo(clock)
    assert ".ctxignore" in (excluder.reason("app.py") or "")
    (tree / "newdir").mkdir()
    (tree / "newdir" / ".gitignore").write_text("*.py\n")
    assert "newdir/.gitignore" in (excluder.reason("newdir/x.py") or "")


def test_a_pin_made_before_a_rule_is_no_longer_read(tree: Path, clock: list[float]):
    (tree / "notes.py").write_text("password = 'x'\n")
    folder = Folder(tree, Settings(user="u"))
    folder.pin("notes.py")
    assert [d.path for d in read_pinned(folder)] == ["notes.py"]
    (tree / ".ctxignore").write_text("notes.py\n")
    _bump_mtime(tree / ".ctxignore")
    _after_the_memo(clock)
    assert read_pinned(folder) == []


def _bump_mtime(path: Path) -> None:
    """Rules are cached by mtime: make sure a rewrite within the same tick is seen."""
    import os

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
