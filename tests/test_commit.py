"""commit.py: convention detection, diff packing under a token budget, reply cleaning."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctx_lsp.assist.commit import clean_message, convention_hint, detect_convention, pack_diff
from ctx_lsp.text.tokens import count_tokens
from ctx_lsp.workspace.git import Commit, Diff, FileStat


def log(*subjects: str) -> list[Commit]:
    return [Commit(f"{i:040x}", s, "Dev", 1_700_000_000 - i) for i, s in enumerate(subjects)]


# --------------------------------------------------------------------------------------------
# Conventions


@pytest.mark.parametrize(
    ("subjects", "expected"),
    [
        pytest.param(("feat(api): add login", "fix: typo", "chore!: drop py3.8"), "conventional",
                     id="all-conventional"),
        pytest.param(("feat: a", "Update README", "fix(ui): b", "Tweak"), "conventional",
                     id="exactly-half"),
        pytest.param(("feat: a", "Update README", "Tweak", "More"), "plain", id="minority"),
        pytest.param(("feat: only one",), "plain", id="single-match-not-enough"),
        pytest.param(("Add login page", "Fix crash on start"), "plain", id="plain"),
        pytest.param((), "plain", id="no-commits"),
        pytest.param(("feature: x", "fixes: y", "feat:no space"), "plain", id="near-misses"),
        pytest.param(("Merge branch 'main' into dev", "Merge pull request #4 from a/b",
                      "feat: x", "fix: y"), "conventional", id="merges-ignored"),
        pytest.param(("Feat(Core): X", "FIX: y"), "conventional", id="case-insensitive-type"),
        pytest.param(("revert: undo", "perf(db)!: faster", "build: pin", "ci: cache",
                      "docs: x", "style: y", "refactor: z", "test: w"), "conventional",
                     id="all-types"),
    ],
)  # fmt: skip
def test_detect_convention(subjects: tuple[str, ...], expected: str) -> None:
    assert detect_convention(log(*subjects)) == expected


@pytest.mark.parametrize(
    ("convention", "subjects", "expected"),
    [
        pytest.param("conventional", ("feat(api): add login", "Update", "fix: crash"),
                     "Conventional Commits (type(scope): subject), as in: feat(api): add login; "
                     "fix: crash", id="conventional-examples"),
        pytest.param("plain", ("Add login page",),
                     "plain imperative subjects, as in: Add login page", id="plain-example"),
        pytest.param("plain", (), "plain imperative subjects, as in: Add login page",
                     id="plain-default"),
        pytest.param("conventional", (),
                     "Conventional Commits (type(scope): subject), as in: feat(api): add login",
                     id="conventional-default"),
        pytest.param("plain", ("Merge branch 'x'", "A", "B", "C", "D"),
                     "plain imperative subjects, as in: A; B; C", id="three-no-merges"),
    ],
)  # fmt: skip
def test_convention_hint(convention: str, subjects: tuple[str, ...], expected: str) -> None:
    assert convention_hint(convention, log(*subjects)) == expected


def test_convention_hint_shortens_long_examples() -> None:
    hint = convention_hint("plain", log("Add " + "x" * 200))
    assert len(hint) < 120 and hint.endswith("…")


# --------------------------------------------------------------------------------------------
# pack_diff


def file_diff(path: str, lines: int, kind: str = "M", old: str | None = None) -> str:
    head = {
        "M": f"diff --git a/{path} b/{path}\nindex 1111111..2222222 100644\n",
        "A": f"diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..2222222\n",
        "D": f"diff --git a/{path} b/{path}\ndeleted file mode 100644\nindex 1111111..0000000\n",
        "R": f"diff --git a/{old} b/{path}\nsimilarity index 90%\nrename from {old}\n"
        f"rename to {path}\nindex 1111111..2222222 100644\n",
    }[kind]
    minus, plus = ("/dev/null", f"b/{path}") if kind == "A" else (f"a/{old or path}", f"b/{path}")
    if kind == "D":
        plus = "/dev/null"
    body = f"--- {minus}\n+++ {plus}\n"
    for h in range(0, lines, 10):  # hunks of 10 changed lines
        n = min(10, lines - h)
        body += f"@@ -{h + 1},{n} +{h + 1},{n} @@\n"
        body += "".join(f"+{path} line {h + i} = compute(value_{h + i})\n" for i in range(n))
    return head + body


def make_diff(*specs: tuple[str, int], extra: str = "", truncated: bool = False) -> Diff:
    text = "".join(file_diff(path, n) for path, n in specs) + extra
    files = [FileStat(path, n, 0, False) for path, n in specs]
    return Diff(text, files, staged=True, truncated=truncated)


SMALL_MED_BIG = make_diff(("big.py", 400), ("small.py", 3), ("medium.py", 30))


def test_pack_all_fits() -> None:
    out = pack_diff(SMALL_MED_BIG, 100_000)
    assert out.splitlines()[:4] == [
        "3 file(s) changed, +433 -0",
        "M big.py +400 -0",
        "M small.py +3 -0",
        "M medium.py +30 -0",
    ]
    # smallest first; every file shown whole; the "index" lines are dropped
    assert out.index("b/small.py") < out.index("b/medium.py") < out.index("b/big.py")
    assert "[…" not in out and "not shown" not in out and "\nindex " not in out
    assert out.count("\n+big.py line") == 400


@pytest.mark.parametrize(
    ("budget", "whole", "partial", "omitted"),
    [
        pytest.param(1500, ["small.py", "medium.py"], "big.py", [], id="big-cut"),
        pytest.param(400, ["small.py"], "medium.py", ["big.py"], id="medium-cut-big-omitted"),
        pytest.param(90, [], None, ["small.py", "medium.py", "big.py"], id="list-only"),
    ],
)
def test_pack_smaller_first_then_partial(
    budget: int, whole: list[str], partial: str | None, omitted: list[str]
) -> None:
    out = pack_diff(SMALL_MED_BIG, budget)
    assert count_tokens(out) <= budget
    assert out.startswith("3 file(s) changed")
    assert all(f"M {p} +" in out for p in ("big.py", "small.py", "medium.py"))  # file list
    for path in whole:
        n = {"small.py": 3, "medium.py": 30}[path]
        assert out.count(f"\n+{path} line") == n
    if partial:
        assert f"+++ b/{partial}" in out
        marker = next(line for line in out.splitlines() if line.startswith("[… "))
        assert marker.endswith(f"more lines of {partial}]")
        shown = out.count(f"\n+{partial} line")
        assert 0 < shown < {"medium.py": 30, "big.py": 400}[partial]
        assert out.index("+++ b/" + partial) > max(out.index("+++ b/" + p) for p in whole)
    else:
        assert "[… " not in out
    if omitted:
        notice = out.splitlines()[-1]
        assert notice.startswith(f"[diff not shown for {len(omitted)} file(s): ")
        assert all(p in notice for p in omitted)
    else:
        assert "not shown" not in out


def test_pack_partial_cut_at_hunk_boundary() -> None:
    out = pack_diff(make_diff(("big.py", 400)), 600)
    body = out.split("+++ b/big.py\n", 1)[1]
    kept = body.split("[… ", 1)[0]
    assert kept.count("@@ -") * 10 == kept.count("\n+big.py") + (kept.startswith("+") and 1)
    more = int(body.split("[… ", 1)[1].split()[0])
    assert more + kept.count("\n") + 3 == file_diff("big.py", 400).count("\n") - 1


def test_pack_lists_binary_renames_adds_deletes() -> None:
    text = (
        "diff --git a/logo.png b/logo.png\nindex 1..2 100644\n"
        "Binary files a/logo.png and b/logo.png differ\n"
        + file_diff("new.py", 2, "R", old="old.py")
        + "diff --git a/a.txt b/b.txt\nsimilarity index 100%\nrename from a.txt\nrename to b.txt\n"
        + file_diff("added.py", 2, "A")
        + file_diff("gone.py", 2, "D")
    )
    files = [
        FileStat("logo.png", 0, 0, True),
        FileStat("new.py", 2, 0, False, "old.py"),
        FileStat("b.txt", 0, 0, False, "a.txt"),
        FileStat("added.py", 2, 0, False),
        FileStat("gone.py", 0, 2, False),
    ]
    out = pack_diff(Diff(text, files, staged=False, truncated=False), 2000)
    assert out.splitlines()[1:6] == [
        "M logo.png (binary)",
        "R old.py -> new.py +2 -0",
        "R a.txt -> b.txt +0 -0",
        "A added.py +2 -0",
        "D gone.py +0 -2",
    ]
    assert "Binary files" not in out and "rename from a.txt" not in out  # nothing to show
    assert "+++ b/new.py" in out and "not shown" not in out


def test_pack_numstat_and_text_disagree() -> None:
    # the text was cut by git's size cap: a file is only in numstat, another only in the text
    diff = Diff(file_diff("a.py", 3), [FileStat("z.py", 9, 1, False)], staged=True, truncated=True)
    out = pack_diff(diff, 2000)
    assert out.splitlines()[:3] == [
        "2 file(s) changed, +9 -1 (diff truncated)",
        "M a.py +3 -0",
        "M z.py +9 -1",
    ]


def test_pack_many_files_list_capped() -> None:
    diff = make_diff(*((f"src/file_{i}.py", 5) for i in range(2000)))
    out = pack_diff(diff, 1000)
    assert count_tokens(out) <= 1000
    assert "… and " in out.split("\n\n", 1)[0]  # the file list, capped
    assert "[diff not shown for " in out


@pytest.mark.parametrize(
    "diff",
    [
        pytest.param(Diff("", [], True, False), id="empty"),
        pytest.param(SMALL_MED_BIG, id="budget-zero"),
    ],
)
def test_pack_nothing(diff: Diff) -> None:
    assert pack_diff(diff, 0 if diff.files else 100) == ""


def test_pack_not_git_format() -> None:
    out = pack_diff(Diff("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n", [], True, False), 500)
    assert "+y" in out


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=12),
    budget=st.integers(min_value=0, max_value=3000),
)
def test_pack_never_over_budget(sizes: list[int], budget: int) -> None:
    diff = make_diff(*((f"pkg/m{i}.py", n) for i, n in enumerate(sizes)))
    out = pack_diff(diff, budget)
    assert count_tokens(out) <= budget
    if budget >= 200:
        assert out.startswith(f"{len(sizes)} file(s) changed")
        shown = {p for p in (f"pkg/m{i}.py" for i in range(len(sizes))) if f"+++ b/{p}" in out}
        notice = out.splitlines()[-1] if "[diff not shown" in out else ""
        for i, n in enumerate(sizes):  # every file with changes is shown or named as left out
            path = f"pkg/m{i}.py"
            assert f"M {path} +{n} -0" in out or "… and" in out
            if n and path not in shown:
                assert path in notice or "… and" in notice


# --------------------------------------------------------------------------------------------
# clean_message

LONG = (
    "Refactor the configuration loader so that it reads environment variables before "
    "the user config file"
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            "Here is the commit message:\n\n```\nfeat(auth): add login endpoint\n\n"
            "Adds POST /login with rate limiting.\n```",
            "feat(auth): add login endpoint\n\nAdds POST /login with rate limiting.",
            id="preamble-and-fences",
        ),
        pytest.param(
            "Sure! Here's a commit message for your changes:\n\nfix: handle empty config\n\n"
            "Let me know if you'd like any changes!",
            "fix: handle empty config",
            id="sure-and-let-me-know",
        ),
        pytest.param(
            "**Subject:** feat: add dark mode\n\n**Body:**\nAdds a toggle in settings.\n"
            "Persists the choice in local storage.",
            "feat: add dark mode\n\nAdds a toggle in settings.\n"
            "Persists the choice in local storage.",
            id="bold-labels",
        ),
        pytest.param(
            "Subject: Update docs for the --dry-run flag\nBody: Explains what is skipped.",
            "Update docs for the --dry-run flag\n\nExplains what is skipped.",
            id="plain-labels",
        ),
        pytest.param(
            LONG + "\n\nBody stays.",
            "Refactor the configuration loader so that it reads environment variables\n\n"
            "Body stays.",
            id="long-subject-cut-at-word",
        ),
        pytest.param('"Fix typo in README."', "Fix typo in README", id="quotes-and-period"),
        pytest.param("“Fix typo in README”", "Fix typo in README", id="smart-quotes"),
        pytest.param("`docs: fix broken link`", "docs: fix broken link", id="backticks"),
        pytest.param(
            "feat: parse flags\r\n\r\nFirst line   \r\n  indented second line\r\n",
            "feat: parse flags\n\nFirst line\n  indented second line",
            id="windows-newlines",
        ),
        pytest.param(
            "Commit message: chore: bump dependencies", "chore: bump dependencies",
            id="inline-label",
        ),
        pytest.param(
            "Here is the commit message: fix: avoid double free", "fix: avoid double free",
            id="inline-preamble",
        ),
        pytest.param(
            "# feat: add search\n\n- index titles\n- index bodies\n",
            "feat: add search\n\n- index titles\n- index bodies",
            id="heading-and-bullets",
        ),
        pytest.param(
            "**feat: support __init__ files**\n\nThey were skipped.",
            "feat: support __init__ files\n\nThey were skipped.",
            id="bold-subject-keeps-underscores",
        ),
        pytest.param(
            "```text\nfix(parser): accept trailing commas\n```\n\n"
            "This message follows the Conventional Commits format.",
            "fix(parser): accept trailing commas",
            id="fence-then-explanation",
        ),
        pytest.param(
            "feat: a\n\n\n\nFirst paragraph.\n\n\n\nSecond paragraph.",
            "feat: a\n\nFirst paragraph.\n\nSecond paragraph.",
            id="blank-runs-collapsed",
        ),
        pytest.param("git commit -m \"fix: quote paths\"", "fix: quote paths", id="git-command"),
        pytest.param("<think>the diff adds…</think>\nfeat: x", "feat: x", id="think-block"),
        pytest.param(
            "Sure, here you go:\n\n\"feat: add CSV export\"\n\nI hope this helps!",
            "feat: add CSV export",
            id="quoted-subject-and-hope",
        ),
        pytest.param(
            "```\nfeat: unclosed fence\n\nbody text", "feat: unclosed fence\n\nbody text",
            id="unclosed-fence",
        ),
        pytest.param(
            "fix: retry uploads\n\nRetries three times.\n\n---\n\nNote: adjust as needed.",
            "fix: retry uploads\n\nRetries three times.",
            id="rule-and-note",
        ),
        pytest.param("Add caching layer", "Add caching layer", id="no-type-not-invented"),
        pytest.param("x" * 100, "x" * 72, id="no-space-hard-cut"),
        pytest.param("1. feat: add x", "feat: add x", id="numbered"),
    ],
)  # fmt: skip
def test_clean_message(reply: str, expected: str) -> None:
    assert clean_message(reply, "conventional") == expected


def test_clean_message_subject_limit() -> None:
    subject = clean_message(LONG, "plain").splitlines()[0]
    assert len(subject) <= 72 and LONG.startswith(subject) and LONG[len(subject)] == " "
    assert clean_message(LONG, "plain", max_subject=30) == "Refactor the configuration"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param("```\n```", id="only-fences"),
        pytest.param("", id="empty"),
        pytest.param("  \n\n ", id="blank"),
        pytest.param("Sure!", id="only-chatter"),
        pytest.param("**Subject:**\n\n**Body:**", id="only-labels"),
        pytest.param('""', id="empty-quotes"),
    ],
)
def test_clean_message_empty(reply: str) -> None:
    with pytest.raises(ValueError, match="empty commit message"):
        clean_message(reply, "plain")
