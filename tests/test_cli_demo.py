"""`ctx-lsp demo`: the README's main job, through the real executable and protocol."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fake_openai import FakeOpenAI


def test_demo_shows_completion_explain_commit_message_and_the_restored_conversation(
    home: Path, fake_openai: FakeOpenAI
):
    fake_openai.reply = "return n if n < 2 else fib(n - 1) + fib(n - 2)"
    env = {**os.environ, **fake_openai.env()}
    out = subprocess.run(
        [sys.executable, "-m", "ctx_lsp", "demo", "--model", "test-model"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "== inline completion" in out.stdout
    assert "return n if n < 2 else fib(n - 1) + fib(n - 2)" in out.stdout
    assert "== ctx.commitMessage" in out.stdout and "== ctx.explain" in out.stdout
    # the backend and the model that answered
    assert f"== answered by\ntest-model at {fake_openai.base_url}" in out.stdout
    # the conversation, as a new process reads it back from .ctx/
    restored = out.stdout.split("restored from .ctx/", 1)[1]
    assert "(explain, fib.py" in restored and "(commit, " in restored
    assert len(fake_openai.chat_requests()) == 3


def test_demo_without_backend_says_how_to_configure(home: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["CTX_LSP_CONFIG"] = str(home / "cfg.toml")
    (home / "cfg.toml").write_text('backend = "openai"\n')
    out = subprocess.run(
        [sys.executable, "-m", "ctx_lsp", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "OPENAI_API_KEY" in out.stdout
