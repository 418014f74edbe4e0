"""ctx_lsp.workspace.git against real git repositories in temporary folders (no mocks of git)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import ctx_lsp.workspace.git as gitmod
from ctx_lsp.workspace.git import BranchInfo, FileStat, GitError, GitRepo, find_git_dir, read_branch

posix_only = pytest.mark.skipif(os.name != "posix", reason="needs sh and /proc-like pids")


@pytest.fixture(autouse=True)
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate git from the machine's config and identity."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Ada Tester")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "ada@example.com")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR"):
        monkeypatch.delenv(var, raising=False)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path, branch: str = "main", commit: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    if commit:
        (path / "README.md").write_text("hello\n")
        git(path, "add", "README.md")
        git(path, "commit", "-q", "-m", "initial")
    return path


def commit_file(repo: Path, name: str, content: str, message: str) -> None:
    (repo / name).write_text(content)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)


def truth(workspace: Path) -> BranchInfo:
    """What git itself says about the branch, as a BranchInfo."""
    branch = subprocess.run(
        ["git", "symbolic-ref", "-q", "--short", "HEAD"],
        cwd=workspace,
        capture_output=True,
        text=True,
    ).stdout.strip()
    head = subprocess.run(
        ["git", "rev-parse", "-q", "--verify", "HEAD"],
        cwd=workspace,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return BranchInfo(
        branch=branch or None, head=head[:7] or None, detached=not branch, has_repo=True
    )


# -- odd repositories: each builder returns the workspace folder ---------------------------------


def _plain(tmp: Path) -> Path:
    return make_repo(tmp / "repo")


def _unborn(tmp: Path) -> Path:
    return make_repo(tmp / "repo", branch="trunk", commit=False)


def _detached(tmp: Path) -> Path:
    repo = make_repo(tmp / "repo")
    git(repo, "checkout", "-q", "--detach")
    return repo


def _slash(tmp: Path) -> Path:
    repo = make_repo(tmp / "repo")
    git(repo, "checkout", "-q", "-b", "feature/x")
    return repo


def _packed(tmp: Path) -> Path:
    repo = make_repo(tmp / "repo")
    git(repo, "checkout", "-q", "-b", "feature/packed")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git/refs/heads/feature/packed").exists()
    return repo


def _worktree(tmp: Path) -> Path:
    repo = make_repo(tmp / "repo")
    git(repo, "worktree", "add", "-q", "-b", "feature/wt", str(tmp / "wt"))
    return tmp / "wt"


def _worktree_packed(tmp: Path) -> Path:
    wt = _worktree(tmp)
    commit_file(wt, "wt.txt", "in worktree\n", "worktree commit")
    git(wt, "pack-refs", "--all")
    return wt


def _worktree_detached(tmp: Path) -> Path:
    repo = make_repo(tmp / "repo")
    git(repo, "worktree", "add", "-q", "--detach", str(tmp / "wt"))
    return tmp / "wt"


def _submodule(tmp: Path) -> Path:
    lib = make_repo(tmp / "lib")
    commit_file(lib, "lib.py", "x = 1\n", "lib")
    app = make_repo(tmp / "app")
    git(app, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "vendor/lib")
    assert (app / "vendor/lib/.git").is_file()
    return app / "vendor/lib"


def _separate_git_dir(tmp: Path) -> Path:
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", "--separate-git-dir", str(tmp / "store.git"))
    commit_file(repo, "a.txt", "a\n", "first")
    return repo


def _subfolder(tmp: Path) -> Path:
    repo = make_repo(tmp / "repo")
    (repo / "src/deep").mkdir(parents=True)
    return repo / "src/deep"


ODD_REPOS = [
    pytest.param(_plain, "main", id="plain"),
    pytest.param(_unborn, "trunk (no commits yet)", id="unborn"),
    pytest.param(_detached, "detached at ", id="detached"),
    pytest.param(_slash, "feature/x", id="slash-branch"),
    pytest.param(_packed, "feature/packed", id="packed-refs"),
    pytest.param(_worktree, "feature/wt", id="worktree"),
    pytest.param(_worktree_packed, "feature/wt", id="worktree-packed"),
    pytest.param(_worktree_detached, "detached at ", id="worktree-detached"),
    pytest.param(_submodule, "main", id="submodule"),
    pytest.param(_separate_git_dir, "main", id="separate-git-dir"),
    pytest.param(_subfolder, "main", id="subfolder"),
]


@pytest.mark.parametrize(("build", "label"), ODD_REPOS)
def test_branch_matches_git(tmp_path: Path, build: Callable[[Path], Path], label: str) -> None:
    workspace = build(tmp_path)
    repo = GitRepo(workspace)
    info = repo.branch()
    assert info == truth(workspace)
    assert info.label().startswith(label)
    if info.detached:
        assert info.label() == f"detached at {info.head}"
    assert repo.git_dir is not None
    assert repo.head_paths() == [repo.git_dir / "HEAD"]
    assert read_branch(repo.git_dir) == info


@pytest.mark.parametrize(("build", "label"), ODD_REPOS)
async def test_staged_diff_in_odd_repos(
    tmp_path: Path, build: Callable[[Path], Path], label: str
) -> None:
    workspace = build(tmp_path)
    (workspace / "new.txt").write_text("one\ntwo\n")
    git(workspace, "add", "new.txt")
    diff = await GitRepo(workspace).diff(staged=True)
    assert [f.path for f in diff.files if f.path.endswith("new.txt")]
    assert "+two" in diff.text
    assert diff.staged
    assert not diff.truncated


def test_find_git_dir_follows_gitdir_files(tmp_path: Path) -> None:
    sub = _submodule(tmp_path)
    assert find_git_dir(sub) == (tmp_path / "app/.git/modules/vendor/lib").resolve()
    assert find_git_dir(sub / "lib.py") == find_git_dir(sub)  # a file path works too
    wt = _worktree(tmp_path / "w")
    assert find_git_dir(wt) == (tmp_path / "w/repo/.git/worktrees/wt").resolve()


@pytest.mark.parametrize(
    "dot_git",
    [
        pytest.param("gitdir: does/not/exist\n", id="dangling"),
        pytest.param("garbage\n", id="garbage"),
        pytest.param("", id="empty"),
    ],
)
def test_find_git_dir_broken_gitdir_file(tmp_path: Path, dot_git: str) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws/.git").write_text(dot_git)
    assert find_git_dir(tmp_path / "ws") is None
    assert GitRepo(tmp_path / "ws").branch().label() == "no git"


async def test_no_repository(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    repo = GitRepo(tmp_path / "plain")
    assert repo.git_dir is None
    assert repo.branch() == BranchInfo(None, None, False, False)
    assert repo.branch().label() == "no git"
    assert repo.head_paths() == []
    for call in (
        repo.diff(staged=True),
        repo.diff_auto(),
        repo.recent_commits(),
        repo.changes_summary(),
    ):
        with pytest.raises(GitError, match="no git repository at"):
            await call
    assert await repo.check_ignored(["a.log"]) == set()


def test_branch_sees_outside_switches(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "repo")
    repo = GitRepo(workspace)
    assert repo.branch().branch == "main"
    steps = [
        ("checkout", "-q", "-b", "feature/a"),
        ("commit", "-q", "--allow-empty", "-m", "moves the ref, not HEAD"),
        ("pack-refs", "--all"),
        ("commit", "-q", "--allow-empty", "-m", "loose ref again"),
        ("checkout", "-q", "main"),
        ("checkout", "-q", "--detach", "HEAD"),
        ("checkout", "-q", "-b", "aaaa"),
        ("checkout", "-q", "-b", "bbbb"),  # same HEAD size, maybe same mtime tick and inode
    ]
    for step in steps:
        git(workspace, *step)
        assert repo.branch() == truth(workspace), step
    shutil.rmtree(workspace / ".git")
    assert repo.branch().label() == "no git"
    git(workspace, "init", "-q", "-b", "again")
    assert repo.branch().label() == "again (no commits yet)"


def test_branch_rereads_only_when_stat_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = make_repo(tmp_path / "repo")
    git(workspace, "checkout", "-q", "-b", "dev")
    git(workspace, "pack-refs", "--all")
    git_dir = workspace / ".git"
    past = time.time() - 60  # old enough not to be "racy"
    for name in ("HEAD", "packed-refs"):
        os.utime(git_dir / name, (past, past))
    reads: list[Path] = []
    real = gitmod.read_branch
    monkeypatch.setattr(gitmod, "read_branch", lambda d: reads.append(d) or real(d))
    repo = GitRepo(workspace)
    for _ in range(3):
        assert repo.branch().branch == "dev"
    assert len(reads) == 1
    # Same size, same mtime, but a new inode (git writes HEAD via rename): still noticed.
    (git_dir / "HEAD.new").write_text("ref: refs/heads/xyz\n")
    os.utime(git_dir / "HEAD.new", (past, past))
    os.replace(git_dir / "HEAD.new", git_dir / "HEAD")
    assert repo.branch().label() == "xyz (no commits yet)"
    assert len(reads) == 2


def test_recently_written_head_is_never_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = make_repo(tmp_path / "repo")
    reads: list[Path] = []
    real = gitmod.read_branch
    monkeypatch.setattr(gitmod, "read_branch", lambda d: reads.append(d) or real(d))
    repo = GitRepo(workspace)
    repo.branch()
    repo.branch()
    assert len(reads) == 2  # HEAD was just written: a same-tick rewrite could hide


@pytest.mark.parametrize(
    ("stage", "expected_staged", "expected_files"),
    [
        pytest.param(True, True, ["b.py"], id="staged-wins"),
        pytest.param(False, False, ["a.py"], id="falls-back-to-working-tree"),
    ],
)
async def test_diff_auto(
    tmp_path: Path, stage: bool, expected_staged: bool, expected_files: list[str]
) -> None:
    workspace = make_repo(tmp_path / "repo")
    commit_file(workspace, "a.py", "x = 1\n", "a")
    (workspace / "a.py").write_text("x = 2\n")
    (workspace / "b.py").write_text("y = 1\n")
    if stage:
        git(workspace, "add", "b.py")
    diff = await GitRepo(workspace).diff_auto()
    assert diff.staged is expected_staged
    assert [f.path for f in diff.files] == expected_files
    assert not diff.empty


async def test_staged_vs_working(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "repo")
    commit_file(workspace, "a.py", "x = 1\n", "a")
    (workspace / "a.py").write_text("x = 2\n")
    (workspace / "b.py").write_text("y = 1\n")
    git(workspace, "add", "b.py")
    (workspace / "untracked.py").write_text("z\n")
    repo = GitRepo(workspace)
    staged = await repo.diff(staged=True)
    working = await repo.diff(staged=False)
    assert staged.files == [FileStat("b.py", 1, 0, False)]
    assert "+y = 1" in staged.text and "x = 2" not in staged.text
    assert working.files == [FileStat("a.py", 1, 1, False)]
    assert "-x = 1\n+x = 2" in working.text and "untracked" not in working.text
    git(workspace, "reset", "-q")
    git(workspace, "checkout", "-q", "--", "a.py")
    clean = await repo.diff_auto()
    assert clean.empty and not clean.staged


async def test_unborn_staged_diff(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "repo", commit=False)
    (workspace / "first.txt").write_text("1\n2\n3\n")
    git(workspace, "add", "first.txt")
    repo = GitRepo(workspace)
    diff = await repo.diff_auto()
    assert diff.staged
    assert diff.files == [FileStat("first.txt", 3, 0, False)]
    assert "new file mode" in diff.text
    assert await repo.recent_commits() == []


async def test_numstat_binary_and_rename(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "repo")
    commit_file(workspace, "b.txt", "".join(f"line {i}\n" for i in range(50)), "b")
    git(workspace, "mv", "b.txt", "c é.txt")
    (workspace / "bin.dat").write_bytes(b"\0\1\2\3")
    git(workspace, "add", "bin.dat")
    diff = await GitRepo(workspace).diff(staged=True)
    assert diff.files == [
        FileStat("bin.dat", 0, 0, True),
        FileStat("c é.txt", 0, 0, False, old_path="b.txt"),
    ]
    assert "rename to c é.txt" in diff.text  # raw UTF-8, not "\303\251" escapes
    assert "Binary files" in diff.text


async def test_diff_truncation(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "repo")
    (workspace / "big.txt").write_text("".join(f"line {i} é\n" for i in range(200_000)))
    git(workspace, "add", "big.txt")
    repo = GitRepo(workspace)
    diff = await repo.diff(staged=True, max_bytes=1000)
    assert diff.truncated
    assert len(diff.text.encode()) <= 1000
    assert diff.text.endswith("\n")
    assert diff.files == [FileStat("big.txt", 200_000, 0, False)]
    full = await repo.diff(staged=True, max_bytes=10_000_000)
    assert not full.truncated and full.text.startswith(diff.text)


@pytest.mark.parametrize(
    ("max_bytes", "expected"),
    [
        pytest.param(100, "é" * 50, id="cut-between-chars"),
        pytest.param(101, "é" * 50, id="cut-inside-a-char-drops-it"),
        pytest.param(None, "é" * 100_000, id="no-cap"),
    ],
)
async def test_run_max_bytes(tmp_path: Path, max_bytes: int | None, expected: str) -> None:
    workspace = make_repo(tmp_path / "repo")
    commit_file(workspace, "big.txt", "é" * 100_000, "big")  # 200 kB: more than pipe buffers
    out = await GitRepo(workspace).run("show", "HEAD:big.txt", max_bytes=max_bytes)
    assert out == expected


async def test_run_errors(tmp_path: Path) -> None:
    repo = GitRepo(make_repo(tmp_path / "repo"))
    with pytest.raises(GitError, match=r"^git show failed: ambiguous argument 'no-such-ref'"):
        await repo.run("show", "no-such-ref")
    with pytest.raises(GitError, match="does not exist"):
        await GitRepo(tmp_path / "missing").run("status")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


async def _wait_gone(pid: int) -> bool:
    for _ in range(50):
        if _gone(pid):
            return True
        await asyncio.sleep(0.05)
    return False


@posix_only
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
async def test_timeout_kills_git_and_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    repo = GitRepo(tmp_path, timeout_s=0.5)
    # the error, not the 30 s sleep ending, is the timeout at work
    with pytest.raises(GitError, match=r"git hang timed out after 0\.5s"):
        await repo.run("-c", f"alias.hang=!echo $$ > '{pidfile}'; exec sleep 30", "hang")
    assert await _wait_gone(int(pidfile.read_text()))


@posix_only
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
async def test_cancel_kills_git(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    repo = GitRepo(tmp_path, timeout_s=30)
    task = asyncio.ensure_future(
        repo.run("-c", f"alias.hang=!echo $$ > '{pidfile}'; exec sleep 30", "hang")
    )
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _wait_gone(int(pidfile.read_text()))


async def test_per_call_timeout(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path, timeout_s=30)
    with pytest.raises(GitError, match=r"timed out after 0\.3s"):  # not the repo's 30 s
        await repo.run("-c", "alias.hang=!sleep 30", "hang", timeout_s=0.3)


async def test_git_missing_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = make_repo(tmp_path / "repo")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    repo = GitRepo(workspace)
    assert repo.branch().label() == "main"  # file based: works without git
    for call in (repo.run("status"), repo.diff_auto(), repo.check_ignored(["x"])):
        with pytest.raises(GitError, match="git is not installed"):
            await call


async def test_stray_git_dir_env_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = make_repo(tmp_path / "repo")
    other = make_repo(tmp_path / "other", branch="other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))  # as when started from a git hook
    out = await GitRepo(workspace).run("symbolic-ref", "--short", "HEAD")
    assert out.strip() == "main"


async def test_check_ignored(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "repo")
    commit_file(workspace, ".gitignore", "*.log\nbuild/\n", "ignore")
    (workspace / "build").mkdir()
    (workspace / "tracked.log").write_text("x")
    git(workspace, "add", "-f", "tracked.log")
    repo = GitRepo(workspace)
    paths = ["a.log", "src/x.py", "build", "build/out.o", "tracked.log", "dir with space/b.log"]
    assert await repo.check_ignored(paths) == {
        "a.log",
        "build",
        "build/out.o",
        "dir with space/b.log",
    }
    assert await repo.check_ignored(["src/x.py"]) == set()  # exit code 1 is not an error
    assert await repo.check_ignored([]) == set()


async def test_recent_commits(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "repo")
    before = int(time.time()) - 5
    for i in range(3):
        commit_file(workspace, f"f{i}.txt", f"{i}\n", f"commit {i}: with\ttab and ünïcode")
    repo = GitRepo(workspace)
    commits = await repo.recent_commits(n=2)
    assert [c.subject for c in commits] == [
        "commit 2: with\ttab and ünïcode",
        "commit 1: with\ttab and ünïcode",
    ]
    assert commits[0].hash == git(workspace, "rev-parse", "HEAD")
    assert commits[0].author == "Ada Tester"
    assert commits[0].time >= before
    assert len(await repo.recent_commits()) == 4


async def test_changes_summary(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "repo")
    repo = GitRepo(workspace)
    assert await repo.changes_summary() == "working tree clean"
    commit_file(workspace, "a.py", "a\n", "a")
    commit_file(workspace, "old.py", "o\n", "o")
    (workspace / "a.py").write_text("changed\n")
    (workspace / "new.txt").write_text("n\n")
    (workspace / "staged.py").write_text("s\n")
    git(workspace, "add", "staged.py")
    git(workspace, "mv", "old.py", "renamed.py")
    assert sorted((await repo.changes_summary()).splitlines()) == [
        "?? new.txt",
        "A staged.py",
        "M a.py",
        "R old.py -> renamed.py",
    ]


async def test_changes_summary_is_capped(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "repo")
    for i in range(60):
        (workspace / f"u{i:02}.txt").write_text("x")
    lines = (await GitRepo(workspace).changes_summary()).splitlines()
    assert len(lines) == 51
    assert lines[-1] == "… and 10 more"


@posix_only
async def test_runs_do_not_block_each_other(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path, timeout_s=5)
    slow = asyncio.ensure_future(repo.run("-c", "alias.nap=!sleep 5", "nap"))
    assert (await repo.run("--version")).startswith("git version")
    assert not slow.done(), "answered while the slow run still runs"
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
