"""The Emacs (eglot) snippets of editors/README.md in a real batch Emacs against the server.

Needs Emacs with eglot (Debian: `apt-get install emacs-nox elpa-eglot`; eglot is built into
Emacs 29+). Skipped, with that reason, when Emacs is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "emacs" / "driver.el"


def test_eglot_snippets_complete_list_actions_and_run_commands(tmp_path, repo, fake_openai):
    emacs = shutil.which("emacs")
    if emacs is None:
        pytest.skip("emacs not installed (apt-get install emacs-nox elpa-eglot)")
    readme = (ROOT / "editors" / "README.md").read_text(encoding="utf-8")
    elisp = "\n".join(re.findall(r"```elisp\n(.*?)```", readme, re.S))
    snippets = tmp_path / "snippets.el"
    snippets.write_text(elisp.replace("gpt-4o-mini", "test-model"), encoding="utf-8")
    (repo / "calc.py").write_text("def sub(a, b):\n    return a - b\n")
    git(repo, "add", "calc.py")
    fake_openai.reply = "return a * b"
    out = tmp_path / "emacs.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(
        fake_openai.env(),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        CTX_TEST_SNIPPETS=str(snippets),
        CTX_TEST_FILE=str(repo / "app.py"),
        CTX_TEST_OUT=str(out),
    )
    proc = subprocess.run(
        [emacs, "--batch", "-l", str(DRIVER)],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    obs = json.loads(out.read_text()) if out.exists() else {}
    why = f"{json.dumps(obs, indent=1)}\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
    if "eglot" in obs.get("error", "") and "Cannot open load file" in obs.get("error", ""):
        pytest.skip("eglot not installed (apt-get install elpa-eglot, or Emacs 29+)")
    assert proc.returncode == 0 and "error" not in obs, why
    assert obs["server"] == "ctx-lsp", why
    assert any("a * b" in c for c in obs["completions"]), why
    assert any(t.startswith("ctx: Explain") for t in obs["actions"]), why
    assert "app.py" in obs["context"], why
    assert obs["commit"].strip() == "return a * b", why  # the fake model's one reply
    assert all(r.body["model"] == "test-model" for r in fake_openai.chat_requests()), why
    prompts = fake_openai.prompts()
    assert any("calc.py" in p for p in prompts), why
    # chat: the streamed answer in *ctx chat*, the region went with the question
    assert obs["chat"] == "## You\n\nWhat does add do?\n\n## ctx\n\nreturn a * b\n\n", why
    assert obs["chat_inserts"] >= 3, why  # the heading, streamed text, the final answer
    assert "What does add do?" in prompts[-1] and "return a + b" in prompts[-1], why
    assert obs["chat_history"].startswith("## You\n\nWhat does add do?\n\n## ctx"), why
