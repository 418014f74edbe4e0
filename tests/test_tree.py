"""The project tree: rendering (pure) and listing files (git or a walk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctx_lsp.workspace.exclusion import Excluder
from ctx_lsp.workspace.git import GitRepo
from ctx_lsp.workspace.tree import build_tree, human_size, list_files, render_tree
from tests.conftest import git

FILES = [
    ("src/pkg/core.py", 2048),
    ("src/pkg/util.py", 100),
    ("src/main.py", 10),
    ("README.md", 7),
    ("Makefile", 1),
]


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KB"), (1536, "1.5 KB"),
     (5 * 1024 * 1024, "5.0 MB"), (3 * 1024**3, "3.0 GB")],
)  # fmt: skip
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text


def test_build_tree_totals() -> None:
    root = build_tree(FILES, "proj")
    assert (root.files, root.size) == (5, 2166)
    src = root.children["src"]
    assert (src.files, src.size, src.is_dir) == (3, 2158, True)
    assert root.children["README.md"].is_dir is False


def test_render_full_tree() -> None:
    assert render_tree(FILES, root_name="proj") == "\n".join(
        [
            "proj/  (5 files, 2.1 KB)",
            "├── src/  (3 files, 2.1 KB)",
            "│   ├── pkg/  (2 files, 2.1 KB)",
            "│   │   ├── core.py  (2.0 KB)",
            "│   │   └── util.py  (100 B)",
            "│   └── main.py  (10 B)",
            "├── Makefile  (1 B)",
            "└── README.md  (7 B)",
        ]
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"depth": 1}, ["proj/  (5 files, 2.1 KB)", "├── src/  (3 files, 2.1 KB)",
                                    "├── Makefile  (1 B)", "└── README.md  (7 B)"], id="depth-1"),
        pytest.param({"depth": 0}, ["proj/  (5 files, 2.1 KB)"], id="depth-0"),
        pytest.param({"depth": 1, "sizes": False},
                     ["proj/", "├── src/", "├── Makefile", "└── README.md"], id="no-sizes"),
        pytest.param({"max_lines": 3}, ["proj/  (5 files, 2.1 KB)", "├── src/  (3 files, 2.1 KB)",
                                        "… 6 more entries"], id="max-lines"),
    ],
)  # fmt: skip
def test_render_options(kwargs: dict, expected: list[str]) -> None:
    assert render_tree(FILES, root_name="proj", **kwargs).splitlines() == expected


@pytest.mark.parametrize(
    "files",
    [
        pytest.param([], id="empty"),
        pytest.param([("./a", 1), ("", 0)], id="odd-paths"),
    ],
)
def test_render_degenerate_input(files) -> None:
    text = render_tree(files, root_name="r")
    assert text.splitlines()[0].startswith("r/")


def test_one_file_says_file() -> None:
    assert render_tree([("d/x", 5)], root_name="r").splitlines()[1] == "└── d/  (1 file, 5 B)"


async def test_list_files_in_git_repo(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.log\nbuild/\n")
    (repo / "x.log").write_text("x")
    (repo / "build").mkdir()
    (repo / "build" / "a").write_text("x")
    (repo / "new.txt").write_text("new")  # untracked, not ignored
    (repo / ".env").write_text("K=1")
    (repo / ".ctx").mkdir()
    (repo / ".ctx" / "s").write_text("x")
    git(repo, "add", ".gitignore")
    excluder = Excluder(repo)
    files, source, cut = await list_files(
        repo, GitRepo(repo), lambda rel: excluder.reason(rel) is not None
    )
    assert source == "git" and not cut
    assert dict(files) == {".gitignore": 13, "README.md": 7, "app.py": 32, "new.txt": 3}


async def test_list_files_skips_deleted_tracked_files(repo: Path) -> None:
    (repo / "README.md").unlink()
    files, _, _ = await list_files(repo, GitRepo(repo))
    assert [p for p, _ in files] == ["app.py"]


async def test_list_files_walk_honours_nested_ignores(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / ".gitignore").write_text("*.tmp\nb/\n")
    (tmp_path / "a" / "keep.py").write_text("k")
    (tmp_path / "a" / "drop.tmp").write_text("d")
    (tmp_path / "a" / "b" / "hidden.py").write_text("h")
    (tmp_path / ".git").mkdir()  # skipped even without a repository behind it
    (tmp_path / ".git" / "HEAD").write_text("x")
    excluder = Excluder(tmp_path)
    files, source, _ = await list_files(
        tmp_path, None, lambda rel: excluder.reason(rel) is not None
    )
    assert source == "walk"
    assert sorted(p for p, _ in files) == ["a/.gitignore", "a/keep.py"]


async def test_list_files_is_cut_at_max_files(tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / f"f{i:02}.txt").write_text("x")
    files, _, cut = await list_files(tmp_path, None, max_files=5)
    assert cut and len(files) == 5
