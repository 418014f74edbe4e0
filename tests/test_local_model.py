"""The embedded local backend: backend selection, completion prompts and block ends (no
model), then the real Gemma 3 270M model on llama.cpp's server engine (xllamacpp), in this
process and through the protocol (no stub).

The real-model tests need the `local` extra. Without it they are skipped, unless
CTX_LSP_REQUIRE_LOCAL=1 (CI sets it), when their absence is a failure.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from lsprotocol import types

from ctx_lsp.backends.base_model import (
    BlockEnd,
    base_prompt,
    chat_messages,
    parse_completion_prompt,
    plain_prompt,
    repetition_cut,
    window_prefix,
)
from ctx_lsp.backends.local import LocalBackend
from ctx_lsp.backends.local_model import extra_installed
from ctx_lsp.backends.openai_compat import BackendConfig, BackendError
from ctx_lsp.backends.select import UnconfiguredBackend, make_backend, select_backend
from ctx_lsp.config.settings import Settings
from ctx_lsp.prompting.templates import TemplateLibrary
from ctx_lsp.text.messages import ChatMessage
from tests.conftest import command, open_doc

FIB_PREFIX = 'def fibonacci(n):\n    """Return the n-th Fibonacci number, recursively."""\n'
MEAN_PREFIX = 'def mean(values):\n    """The arithmetic mean of a list of numbers."""\n'

#: How long a call may take before it counts as hung (measured on 2 cores: completion ~1-3 s,
#: load ~0.5 s; the figures are in bench/bench_local.py).
COMPLETION_BOUND_S = 20.0
FIRST_COMPLETION_BOUND_S = 60.0  # a server start, model assembly and load included
COMMAND_BOUND_S = 60.0


# --- selection (no model) --------------------------------------------------------------------


def _settings(**kw) -> Settings:
    return Settings(**kw)


@pytest.fixture
def local_present(monkeypatch: pytest.MonkeyPatch):
    """Pretend the extra and the model package are installed (or not)."""

    def set_(extra: bool, model: bool = True) -> None:
        monkeypatch.setattr("ctx_lsp.backends.select.extra_installed", lambda: extra)
        monkeypatch.setattr("ctx_lsp.backends.select.default_model_installed", lambda: model)

    return set_


def test_explicit_setting_wins(local_present):
    local_present(True)
    env = {"OPENAI_API_KEY": "sk-x"}
    assert select_backend(_settings(backend="local"), env)[0] == "local"
    assert select_backend(_settings(backend="openai"), {})[0] == "openai"
    _, reason = select_backend(_settings(backend="openai"), {})
    assert "ctx.backend" in reason and "'openai'" in reason


def test_key_or_base_url_selects_openai(local_present):
    local_present(True)
    kind, reason = select_backend(_settings(), {"OPENAI_API_KEY": "sk-secret-value"})
    assert kind == "openai" and "OPENAI_API_KEY is set" in reason
    assert "sk-secret-value" not in reason
    kind, reason = select_backend(_settings(api_key_env="MY_KEY"), {"MY_KEY": "k"})
    assert kind == "openai" and "MY_KEY" in reason
    kind, reason = select_backend(_settings(base_url="http://localhost:11434/v1"), {})
    assert kind == "openai" and "ctx.baseUrl" in reason and "11434" in reason
    kind, reason = select_backend(_settings(), {"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"})
    assert kind == "openai" and "OPENAI_BASE_URL" in reason


def test_local_when_installed_else_a_clear_message(local_present):
    local_present(True)
    kind, reason = select_backend(_settings(), {})
    assert kind == "local" and "gemma-3-270m" in reason and "no API key" in reason
    kind, reason = select_backend(_settings(local_model="/models/qwen-coder.gguf"), {})
    assert kind == "local" and "qwen-coder.gguf" in reason

    local_present(False)
    kind, reason = select_backend(_settings(), {})
    assert kind == "none"
    for needle in ("OPENAI_API_KEY", "ctx.baseUrl", "pip install 'ctx-lsp[local]'"):
        assert needle in reason
    local_present(True, model=False)
    kind, reason = select_backend(_settings(), {})
    assert kind == "none" and "ctx.localModel" in reason

    local_present(False)
    kind, reason = select_backend(_settings(backend="local"), {})
    assert kind == "local" and "not installed" in reason  # explicit still wins, and says why


async def test_unconfigured_backend_fails_with_the_message(local_present):
    local_present(False)
    settings = _settings()
    kind, _ = select_backend(settings, {})
    backend = make_backend(kind, BackendConfig(), settings, {})
    assert isinstance(backend, UnconfiguredBackend)
    with pytest.raises(BackendError) as info:
        await backend.chat([ChatMessage("user", "hi")])
    assert info.value.kind == "no_key" and "OPENAI_API_KEY" in info.value.message


# --- completion prompts and block ends (no model) ---------------------------------------------


def test_completion_prompt_is_parsed_from_the_builtin_template():
    prefix, suffix = "def f(x):\n    return ", "\n\nprint(f(2))\n"
    rendered = TemplateLibrary.builtin().render(
        "completion",
        {"prefix": prefix, "suffix": suffix, "language": "python", "file": "a.py", "branch": ""},
    )
    messages = [
        ChatMessage("system", rendered.system),
        ChatMessage("user", rendered.user, kind="completion"),
    ]
    assert parse_completion_prompt(messages) == (prefix, suffix)
    # the same text in a chat task is not a completion
    assert parse_completion_prompt([ChatMessage("user", rendered.user, kind="explain")]) is None


def test_block_end_stops_at_the_end_of_the_block():
    end = BlockEnd("def f(n):\n", "")
    body = "    if n < 2:\n        return n\n    return f(n - 1)\n"
    assert end.cut(body + "\nprint(f(3))") == len(body) - 1  # blank line
    assert end.cut(body + "print(f(3))") == len(body) - 1  # back to the def's level
    assert end.cut("    if n < 2:\n        return") is None  # still inside

    mid_line = BlockEnd("def f(a, b):\n    return a", "\n\nx = 1\n")
    assert mid_line.cut(" + b\ndef g():") == len(" + b")  # dedent below the cursor's line
    assert mid_line.cut(" + b\n    ") is None  # indentation not known yet

    follows = BlockEnd("    total = 0\n", "\n    return total\n")
    text = "    for v in values:\n        total += v\n    return total\n"
    assert follows.cut(text) == text.index("\n    return total")  # what already follows

    fresh_line = BlockEnd(FIB_PREFIX, "")  # below the docstring: the body's block
    body = "    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n"
    assert fresh_line.cut(body + "print(fibonacci(10))") == len(body) - 1

    braces = BlockEnd("function f(a) {\n", "")
    assert braces.cut("  return a;\n}\nf(1);") == len("  return a;\n}")  # the closer stays
    assert BlockEnd("x = ", "", stop=[";"]).cut("1; y = 2") == 1


def test_prefix_window_start_is_stable_while_typing():
    lines = [f"line_{i} = {i}" for i in range(2000)]
    text = "\n".join(lines) + "\n"
    short = window_prefix(text, 4000, 1024)
    assert len(short) <= 4000 and short.startswith("line_")  # starts on a line boundary
    typed = window_prefix(text + "abc", 4000, 1024)
    assert typed.startswith(short[:200])  # same start: llama.cpp reuses the cached prefix
    assert window_prefix("tiny") == "tiny"


def test_chat_messages_alternate_for_strict_templates():
    msgs = [
        ChatMessage("system", "You explain code."),
        ChatMessage("system", "Summary: earlier talk."),
        ChatMessage("assistant", "Earlier answer."),
        ChatMessage("user", "Related code"),
        ChatMessage("user", "Explain this."),
    ]
    out = chat_messages(msgs)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert "Summary" in out[0]["content"] and out[-1]["content"].endswith("Explain this.")
    plain = plain_prompt(msgs)  # for base models, which have no chat template
    assert plain.startswith("You explain code.\n\nSummary: earlier talk.\n\n")
    assert "Assistant: Earlier answer." in plain and "User: Related code" not in plain
    assert plain.endswith("Related code\n\nExplain this.\n\nAnswer:\n")


def test_a_base_model_gets_a_few_shot_transcript_for_commit_messages():
    diff = "diff --git a/app.py b/app.py\n+def add(a, b):\n+    return a + b"
    rendered = TemplateLibrary.builtin().render(
        "commit",
        {"diff": diff, "branch": "main", "recent_commits": "", "commit_convention": "plain"},
    )
    task = [
        ChatMessage("system", rendered.system),
        ChatMessage("user", rendered.user, kind="commit"),
    ]
    prompt, stops = base_prompt(task)
    assert prompt.endswith(diff + "\nFiles: app.py\nCommit message:") and stops == ["\n"]
    assert prompt.count("Commit message:") >= 3  # the finished examples come first
    assert "Write the commit message" not in prompt  # instructions a base model cannot follow
    # a kind without a transcript (a chat) stays the plain transcript
    chat = [ChatMessage("user", "What does add do?", kind="chat")]
    assert base_prompt(chat)[0] == plain_prompt(chat)


# --- the real model ---------------------------------------------------------------------------

needs_model = pytest.mark.skipif(
    not extra_installed() and os.environ.get("CTX_LSP_REQUIRE_LOCAL") != "1",
    reason="the 'local' extra is not installed (pip install -e '.[local]')",
)


@pytest.fixture(scope="session")
def model_path() -> str:
    """The default model, assembled once into the real user cache (before `home` isolates
    the environment), so most tests skip the 240 MB join."""
    from ctx_lsp.backends.local_model import resolve_model_path

    return str(resolve_model_path(""))


@pytest.fixture
def backend(model_path: str) -> LocalBackend:
    """A backend per test (its HTTP client belongs to the test's event loop); the engine,
    and so the loaded model, is shared by all of them."""
    return LocalBackend(BackendConfig(temperature=0.0, timeout_s=60), model_setting=model_path)


def _slots_busy(backend: LocalBackend) -> bool:
    """Whether the engine is still generating for anyone (llama.cpp's /slots)."""
    import json
    import urllib.request

    url = backend.base_url.removesuffix("/v1") + "/slots"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {backend.engine.api_key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return any(slot.get("is_processing") for slot in json.loads(resp.read()))


@needs_model
async def test_real_completion_continues_code(backend: LocalBackend):
    await backend.ensure_loaded()
    out = await asyncio.wait_for(
        backend.complete_raw(MEAN_PREFIX, "\n\nprint(mean([1, 2]))\n", max_tokens=40),
        COMPLETION_BOUND_S,
    )
    # real code for the body (the model writes `return sum(values) / len(values)`)
    assert out.text.startswith("    ") and "return" in out.text, out.text
    assert any(word in out.text for word in ("sum(", "len(", "for ")), out.text
    # it stopped at the end of the function: neither the next function it would invent
    # nor the code that already follows
    assert "def " not in out.text and "print(" not in out.text, out.text
    assert out.finish_reason == "stop" and 0 < out.usage.completion_tokens < 40
    assert out.model == "gemma-3-270m-q4_k_m.gguf"


@needs_model
async def test_typing_on_reuses_the_evaluated_prefix(backend: LocalBackend):
    code = Path(__file__).with_name("fake_openai.py").read_text()[:2000]
    first = await backend.complete_raw(code, "", max_tokens=4)
    typed = await backend.complete_raw(code + "x", "", max_tokens=4)
    assert first.usage.prompt_tokens > 300
    # only the typed character and what follows it were evaluated again
    assert typed.usage.cached_tokens >= first.usage.prompt_tokens - 8, typed.usage


@needs_model
async def test_real_chat_on_a_base_model_continues_a_transcript_and_streams(
    backend: LocalBackend,
):
    deltas: list[str] = []
    out = await backend.chat(
        [
            ChatMessage("system", "You are a helpful assistant."),
            ChatMessage("user", "Say hello in one short sentence."),
        ],
        max_tokens=24,
        stream=True,
        on_delta=deltas.append,
    )
    assert out.text.strip() and "".join(deltas) == out.text
    assert "<start_of_turn>" not in out.text and "<|im_start|>" not in out.text
    assert "\nUser:" not in out.text  # the transcript's next turn is a stop


@needs_model
async def test_real_chat_on_a_base_model_ends_where_it_would_start_over(backend: LocalBackend):
    """At temperature 0 the 270M model answers this by repeating its first paragraph until
    its token limit (20 s on 2 cores); the answer ends at the first repeated line instead."""
    deltas: list[str] = []
    out = await asyncio.wait_for(
        backend.chat(
            [
                ChatMessage("system", "You are a helpful coding assistant."),
                ChatMessage("user", "Explain recursion briefly.", kind="chat"),
            ],
            max_tokens=1024,
            stream=True,
            on_delta=deltas.append,
        ),
        COMMAND_BOUND_S,
    )
    assert out.finish_reason == "stop" and out.text.strip(), out
    assert repetition_cut(out.text + "\n") is None, out.text
    assert "".join(deltas) == out.text


@needs_model
async def test_cancel_mid_generation_frees_the_engine(backend: LocalBackend):
    await backend.ensure_loaded()
    first_delta = asyncio.Event()
    long = asyncio.ensure_future(
        backend.chat(
            [ChatMessage("user", "Write a long story about a robot, in many paragraphs.")],
            max_tokens=400,
            stream=True,
            on_delta=lambda _t: first_delta.set(),
        )
    )
    await asyncio.wait_for(first_delta.wait(), 60)
    assert _slots_busy(backend)
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
    # closing the connection stopped the generation: the engine is idle long before it
    # could have written 400 tokens, and it answers the next request
    for _ in range(100):
        if not _slots_busy(backend):
            break
        await asyncio.sleep(0.1)
    assert not _slots_busy(backend), "the cancelled answer is still being generated"
    out = await backend.complete_raw("x = 1\ny = ", "", max_tokens=8)
    assert out.text.strip()


@needs_model
async def test_two_concurrent_requests_both_get_their_answer(backend: LocalBackend):
    await backend.ensure_loaded()
    mean, fib = await asyncio.gather(
        backend.complete_raw(MEAN_PREFIX, "", max_tokens=40),
        backend.complete_raw(FIB_PREFIX, "", max_tokens=40),
    )
    assert "return" in mean.text and "fibonacci" not in mean.text, mean.text
    assert "return" in fib.text or "if n" in fib.text, fib.text
    assert "values" not in fib.text, fib.text  # no answer got the other's prompt


@needs_model
async def test_time_limit_stops_a_long_prompt_eval(backend: LocalBackend, model_path: str):
    await backend.ensure_loaded()
    quick = LocalBackend(BackendConfig(timeout_s=1.0), model_setting=model_path)
    assert quick.engine is backend.engine  # same model, loaded once
    code = Path(__file__).with_name("conftest.py").read_text()[:9000]  # ~2500 tokens
    with pytest.raises(BackendError) as info:
        await quick.chat([ChatMessage("user", "Summarize:\n" + code)], max_tokens=16)
    assert info.value.kind == "timeout" and "ctx.timeoutS" in info.value.message
    out = await backend.complete_raw("x = 1\ny = ", "", max_tokens=8)  # the model still works
    assert out.text.strip()


@needs_model
async def test_missing_or_damaged_model_file_is_a_clear_error(tmp_path: Path, model_path: str):
    missing = LocalBackend(BackendConfig(), model_setting=str(tmp_path / "nope.gguf"))
    with pytest.raises(BackendError) as info:
        await missing.complete_raw("x = ", "")
    assert info.value.kind == "bad_model" and "nope.gguf" in info.value.message
    assert "not a file" in info.value.message and "ctx.localModel" in info.value.message

    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("these are notes, not a model\n")
    with pytest.raises(BackendError) as info:
        await LocalBackend(BackendConfig(), model_setting=str(not_gguf)).complete_raw("x = ", "")
    assert "is not a GGUF file" in info.value.message

    cut = tmp_path / "cut.gguf"  # a download that stopped half-way: the header is whole
    with open(model_path, "rb") as src:
        cut.write_bytes(src.read(20_000_000))
    with pytest.raises(BackendError) as info:
        await LocalBackend(BackendConfig(), model_setting=str(cut)).complete_raw("x = ", "")
    assert info.value.kind == "bad_model" and "cut.gguf" in info.value.message
    assert "corrupted or incomplete" in info.value.message, info.value.message  # llama.cpp's


_RSS_SCRIPT = """
import asyncio, gc, sys
from ctx_lsp.backends.local import LocalBackend
from ctx_lsp.backends.openai_compat import BackendConfig

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

async def main():
    before = rss_mb()
    backend = LocalBackend(BackendConfig(temperature=0.0), model_setting=sys.argv[1])
    await backend.complete_raw("def add(a, b):\\n", "", max_tokens=8)
    loaded = rss_mb()
    await backend.aclose()
    await asyncio.wrap_future(backend.engine.unload())
    del backend
    gc.collect()
    print(before, loaded, rss_mb())

asyncio.run(main())
"""


@needs_model
def test_memory_is_returned_when_the_model_is_unloaded(model_path: str):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, model_path],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    before, loaded, after = (float(x) for x in out.split())
    assert loaded - before > 150, (before, loaded, after)  # the model's weights and caches
    assert after - before < (loaded - before) * 0.25, (before, loaded, after)


# --- the real model through the protocol ------------------------------------------------------


@pytest.fixture
def fib_project(repo: Path) -> Path:
    (repo / "fib.py").write_text(FIB_PREFIX + "\n\nprint(fibonacci(10))\n")
    return repo


async def _inline(client, uri: str, line: int, char: int) -> types.InlineCompletionList:
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=char),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )


@needs_model
async def test_protocol_inline_completion_with_no_key_uses_the_embedded_model(
    lsp, fib_project: Path
):
    """No key, no URL, no settings: the default model is assembled and loaded on first use."""
    client = await lsp(fib_project, init_options={"debounceMs": 0, "temperature": 0})
    uri = open_doc(client, fib_project / "fib.py")
    result = await asyncio.wait_for(_inline(client, uri, 2, 0), FIRST_COMPLETION_BOUND_S)
    (item,) = result.items
    assert item.insert_text.startswith("    if") or "return" in item.insert_text, item.insert_text
    assert "print(fibonacci(10))" not in item.insert_text
    assert client.messages == []  # no "no API key" warning: nothing was missing

    # typing on: the next completion comes from the loaded model
    edit = types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(2, 0), end=types.Position(2, 0)),
        text="    if n < 2:\n",
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[edit],
        )
    )
    result = await asyncio.wait_for(_inline(client, uri, 3, 0), COMPLETION_BOUND_S)
    (item,) = result.items
    assert "return" in item.insert_text, item.insert_text


@needs_model
async def test_protocol_command_answers_with_the_embedded_model(
    lsp, fib_project: Path, model_path: str
):
    client = await lsp(
        fib_project,
        init_options={"backend": "local", "localModel": model_path, "maxTokens": 48},
    )
    uri = open_doc(client, fib_project / "fib.py")
    whole = types.Range(start=types.Position(0, 0), end=types.Position(4, 0))
    args = {"uri": uri, "range": client.protocol._converter.unstructure(whole)}
    result = await asyncio.wait_for(command(client, "ctx.explain", args), COMMAND_BOUND_S)
    text = result["text"]
    assert len(text.strip()) >= 20, text
    assert "<end_of_turn>" not in text and "<CURSOR>" not in text
