"""`ctx-lsp chat | commit | explain | prompt` as the real executable against the local
OpenAI-compatible test server, and the CLI and a running server sharing one workspace."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from lsprotocol import types

from ctx_lsp.text.messages import ChatMessage
from tests.conftest import command, git, open_doc
from tests.fake_openai import FakeOpenAI, Reply, Status
from tests.test_cli import make_ws, run_cli, run_json, scope_dir


@pytest.fixture
def ws(repo: Path) -> Path:
    return make_ws(repo)


def history(root: Path) -> list[dict]:
    path = scope_dir(root) / "history.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r for r in map(json.loads, lines) if "role" in r]


# -- chat -------------------------------------------------------------------------------------


def test_chat_streams_records_and_uses_history(ws: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply("First answer, streamed.", chunk_delay_s=0.01))
    r = run_cli(ws, "chat", "What does add do?", "--file", "app.py", env=fake_openai.env())
    assert r.returncode == 0, r.stderr
    assert r.stdout == "First answer, streamed.\n"
    body = fake_openai.chat_requests()[-1].body
    assert body["stream"] is True and body["model"] == "test-model"
    prompt = fake_openai.prompts()[-1]
    assert "What does add do?" in prompt and "Current file: `app.py` (python)" in prompt
    recorded = history(ws)
    assert [(m["role"], m["kind"], m["file"]) for m in recorded] == [
        ("user", "chat", "app.py"),
        ("assistant", "chat", "app.py"),
    ]
    assert recorded[1]["content"] == "First answer, streamed."

    # the next chat carries the first exchange; --json prints the final answer only
    fake_openai.enqueue(Reply("Second."))
    out = run_json(ws, "chat", "And then?", env=fake_openai.env())
    assert out["text"] == "Second." and out["model"] == "test-model"
    assert out["cached"] is False and out["usage"]["completionTokens"] > 0
    prompt = fake_openai.prompts()[-1]
    assert "What does add do?" in prompt and "First answer, streamed." in prompt
    assert len(history(ws)) == 4


def test_chat_file_text_is_in_the_prompt(ws: Path, fake_openai: FakeOpenAI) -> None:
    (ws / "calc.py").write_text("def mean(xs):\n    return sum(xs) / len(xs)\n")
    r = run_cli(ws, "chat", "Is mean safe?", "--file", "calc.py", env=fake_openai.env())
    assert r.returncode == 0, r.stderr
    assert "return sum(xs) / len(xs)" in fake_openai.prompts()[-1]


def test_chat_reads_the_question_from_stdin(ws: Path, fake_openai: FakeOpenAI) -> None:
    r = run_cli(ws, "chat", env=fake_openai.env(), input="Question from a pipe\n")
    assert r.returncode == 0, r.stderr
    assert "Question from a pipe" in fake_openai.prompts()[-1]
    r = run_cli(ws, "chat", "   ", env=fake_openai.env())
    assert r.returncode == 2 and "empty" in r.stderr


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param({".env": "API_KEY=sk-live\n"}, "secrets or key file", id="env-file"),
        pytest.param({"id_rsa": "KEY\n"}, "secrets or key file", id="key-file"),
        pytest.param({".gitignore": "*.log\n", "x.log": "log\n"}, "git ignores it",
                     id="git-ignored"),
        pytest.param({".ctxignore": "private.txt\n", "private.txt": "p\n"}, ".ctxignore",
                     id="ctxignored"),
    ],
)  # fmt: skip
def test_chat_refuses_excluded_files(
    ws: Path, fake_openai: FakeOpenAI, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (ws / name).write_text(text)
    target = [n for n in files if not n.startswith((".gitignore", ".ctxignore"))][-1]
    r = run_cli(ws, "chat", "read it", "--file", target, env=fake_openai.env())
    assert r.returncode == 2
    assert f"refused {target}" in r.stderr and message in r.stderr
    assert fake_openai.chat_requests() == []  # nothing left the machine
    assert history(ws) == []


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        pytest.param("missing.py", "no such file", id="missing"),
        pytest.param("../outside.py", "outside the workspace", id="outside"),
    ],
)
def test_chat_bad_file_arguments(ws: Path, fake_openai, arg: str, message: str) -> None:
    (ws.parent / "outside.py").write_text("x = 1\n")
    r = run_cli(ws, "chat", "q", "--file", arg, env=fake_openai.env())
    assert r.returncode == 2 and message in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("env", "behaviour", "message"),
    [
        pytest.param({"OPENAI_BASE_URL": "https://api.example.invalid/v1", "OPENAI_API_KEY": ""},
                     None, "No API key", id="no-key"),
        pytest.param({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, None, "Cannot reach",
                     id="unreachable"),
        pytest.param({}, Status(401), "rejected the API key", id="unauthorized"),
        pytest.param({}, Status(404), "was not found", id="unknown-model"),
    ],
)  # fmt: skip
def test_backend_errors_exit_3(
    ws: Path, fake_openai: FakeOpenAI, env: dict[str, str], behaviour, message: str
) -> None:
    if behaviour is not None:
        fake_openai.fail_all(behaviour)
    r = run_cli(ws, "chat", "hello?", env={**fake_openai.env(), **env})
    assert r.returncode == 3, r.stderr
    assert message in r.stderr and r.stderr.startswith("ctx-lsp: error: ")
    assert "Traceback" not in r.stderr and "sk-test-fake" not in r.stderr
    assert history(ws) == []  # a failed exchange is not recorded


# -- explain ----------------------------------------------------------------------------------

CALC = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(10))


def test_explain_a_range_and_a_whole_small_file(ws: Path, fake_openai: FakeOpenAI) -> None:
    (ws / "calc.py").write_text(CALC)
    fake_openai.enqueue(Reply("It adds three."))
    r = run_cli(ws, "explain", "calc.py:13-14", env=fake_openai.env())
    assert (r.returncode, r.stdout) == (0, "It adds three.\n"), r.stderr
    prompt = fake_openai.prompts()[-1]
    assert "```python\ndef f3(x):\n    return x + 3\n```" in prompt
    out = run_json(ws, "explain", "app.py", env=fake_openai.env())
    assert out["file"] == "app.py" and out["lines"] == [1, 2]
    assert "def add(a, b):\n    return a + b\n```" in fake_openai.prompts()[-1]
    recorded = history(ws)
    assert [m["kind"] for m in recorded] == ["explain"] * 4
    assert recorded[0]["content"].startswith("Explain calc.py:13-14 (selection)")
    assert recorded[2]["content"].startswith("Explain app.py:1-2 (file)")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param("calc.py:50-60", "past its end", id="past-end"),
        pytest.param("calc.py:9-3", "START <= END", id="reversed"),
        pytest.param("calc.py:0-3", "1-based", id="zero"),
        pytest.param("big.py", "give a range, e.g. big.py:1-40", id="too-large"),
        pytest.param("nope.py:1-2", "no such file", id="missing"),
        pytest.param(".env", "secrets or key file", id="excluded"),
    ],
)
def test_explain_usage_errors(ws: Path, fake_openai, target: str, message: str) -> None:
    (ws / "calc.py").write_text(CALC)
    (ws / "big.py").write_text("".join(f"value_{i} = {i} * {i}\n" for i in range(2000)))
    (ws / ".env").write_text("X=1\n")
    r = run_cli(ws, "explain", target, env=fake_openai.env())
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert fake_openai.chat_requests() == []


# -- commit -----------------------------------------------------------------------------------


def test_commit_message_for_staged_then_working_tree(ws: Path, fake_openai: FakeOpenAI) -> None:
    (ws / "app.py").write_text("def add(a, b):\n    return a + b + 0\n")
    (ws / "README.md").write_text("# demo\n\nMore.\n")
    git(ws, "add", "app.py")
    fake_openai.enqueue(Reply("fix: keep add exact\n\nAdds zero."))
    out = run_json(ws, "commit", env=fake_openai.env())
    assert out["text"].startswith("fix: keep add exact") and out["staged"] is True
    prompt = fake_openai.prompts()[-1]
    assert "app.py" in prompt and "README.md" not in prompt.split("Recent commits")[0]
    assert git(ws, "log", "--oneline").count("\n") == 1  # never commits

    git(ws, "reset", "-q")
    fake_openai.enqueue(Reply("docs: say more"))
    r = run_cli(ws, "commit", "--write", "msg.txt", env=fake_openai.env())
    assert r.returncode == 0, r.stderr
    assert r.stdout == "docs: say more\n"
    assert (ws / "msg.txt").read_text() == "docs: say more\n"
    assert "git commit -F msg.txt" in r.stderr


def test_commit_edit_opens_the_editor(ws: Path, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys\np = sys.argv[1]\ntext = open(p).read()\n"
        "open(p, 'w').write(text.replace('feat', 'feat(core)'))\n"
    )
    (ws / "app.py").write_text("def add(a, b):\n    return b + a\n")
    fake_openai.enqueue(Reply("feat: swap operands"))
    env = {**fake_openai.env(), "EDITOR": f"{sys.executable} {editor}"}
    r = run_cli(ws, "commit", "--edit", env=env)
    assert (r.returncode, r.stdout) == (0, "feat(core): swap operands\n"), r.stderr

    (tmp_path / "empty.py").write_text("import sys\nopen(sys.argv[1], 'w').close()\n")
    env["EDITOR"] = f"{sys.executable} {tmp_path / 'empty.py'}"
    fake_openai.enqueue(Reply("feat: swap operands again"))
    r = run_cli(ws, "commit", "--edit", env=env)
    assert r.returncode == 1 and "aborted" in r.stderr and r.stdout == ""


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param("no-repo", "no git repository", id="no-repository"),
        pytest.param("clean", "nothing to commit", id="nothing-to-commit"),
    ],
)
def test_commit_task_failures_exit_1(
    home: Path, tmp_path: Path, repo: Path, fake_openai, setup: str, message: str
) -> None:
    root = repo
    if setup == "no-repo":
        root = tmp_path / "plain"
        (root / ".ctx").mkdir(parents=True)
    (root / ".ctx").mkdir(exist_ok=True)
    (root / ".ctx" / "config.toml").write_text('model = "test-model"\n')
    r = run_cli(root, "commit", env=fake_openai.env())
    assert r.returncode == 1 and message in r.stderr
    assert fake_openai.chat_requests() == []


# -- prompt (dry run) -------------------------------------------------------------------------


def test_prompt_dry_run_prints_masked_messages_without_sending(
    ws: Path, fake_openai: FakeOpenAI
) -> None:
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
    (ws / "conf.py").write_text(f'TOKEN = "{key}"\n\ndef total(xs):\n    return sum(\n')
    r = run_cli(ws, "prompt", "conf.py:4", env=fake_openai.env())
    assert r.returncode == 0, r.stderr
    assert "--- system ---" in r.stdout and "--- user ---" in r.stdout
    assert "    return sum(<CURSOR>" in r.stdout
    assert key not in r.stdout
    out = run_json(ws, "prompt", "conf.py:4:5", env=fake_openai.env())
    assert out["position"] == {"line": 4, "column": 5}
    assert out["messages"][0]["role"] == "system"
    assert "    <CURSOR>return sum(" in out["text"] and out["tokens"] > 0
    assert fake_openai.requests == []  # nothing was sent
    assert history(ws) == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param("app.py", "expected FILE:LINE", id="no-line"),
        pytest.param("app.py:9", "outside app.py", id="line-past-end"),
        pytest.param("app.py:1:99", "column 99 is outside", id="column-past-end"),
    ],
)
def test_prompt_usage_errors(ws: Path, target: str, message: str) -> None:
    r = run_cli(ws, "prompt", target)
    assert r.returncode == 2 and message in r.stderr


# -- the CLI and a running server share one workspace -----------------------------------------


async def test_cli_exchange_appears_in_the_servers_next_prompt(
    lsp, ws: Path, fake_openai: FakeOpenAI
) -> None:
    client = await lsp(ws, env=fake_openai.env(), init_options={"model": "test-model"})
    uri = open_doc(client, ws / "app.py")
    question = "Why does add not check its argument types?"
    fake_openai.enqueue(Reply("Because Python is duck-typed."))
    r = await asyncio.to_thread(run_cli, ws, "chat", question, env=fake_openai.env())
    assert r.returncode == 0, r.stderr
    rng = types.Range(start=types.Position(0, 4), end=types.Position(0, 4))
    result = await command(client, "ctx.explain", {"uri": uri, "range": rng})
    assert result["text"]
    prompt = fake_openai.prompts()[-1]
    assert "Explain this python code from `app.py`" in prompt
    assert question in prompt and "Because Python is duck-typed." in prompt
    # and the server's exchange is in the file the CLI reads next
    shown = run_json(ws, "history", "show")
    assert [m["kind"] for m in shown["messages"]] == ["chat", "chat", "explain", "explain"]
    assert ChatMessage.from_json(shown["messages"][0]).content == question
