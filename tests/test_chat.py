"""The pure parts of a chat turn: the question taken apart, code blocks, the masked stream,
the restored turns."""

from __future__ import annotations

import random

import pytest

from ctx_lsp.assist.chat import code_blocks, is_code_answer, parse, past_turns, transcript
from ctx_lsp.text.maskstream import MaskedStream
from ctx_lsp.text.messages import ChatMessage
from ctx_lsp.text.redact import redact


@pytest.mark.parametrize(
    ("question", "command", "text", "mentions"),
    [
        pytest.param("Why?", None, "Why?", (), id="plain"),
        pytest.param("/fix NameError here", "fix", "NameError here", (), id="fix"),
        pytest.param("/EXPLAIN", "explain", "", (), id="case"),
        pytest.param("/tests for @src/a.py", "tests", "for @src/a.py", ("src/a.py",), id="tests"),
        pytest.param("/usr/bin is what?", None, "/usr/bin is what?", (), id="a-path-not-command"),
        pytest.param("Compare @a.py, @b.py.", None, "Compare @a.py, @b.py.", ("a.py", "b.py"),
                     id="punctuation"),
        pytest.param("What does @property do?", None, "What does @property do?", (),
                     id="decorator"),
        pytest.param("mail me@example.com", None, "mail me@example.com", (), id="email"),
        pytest.param("@a.py and @a.py", None, "@a.py and @a.py", ("a.py",), id="once"),
    ],
)  # fmt: skip
def test_parse(question: str, command: str | None, text: str, mentions: tuple[str, ...]):
    q = parse(question)
    assert (q.command, q.text, q.mentions) == (command, text, mentions)


@pytest.mark.parametrize(
    ("answer", "blocks"),
    [
        pytest.param("no code here", [], id="none"),
        pytest.param("a\n```py\nx = 1\n```\nb\n~~~\ny\n~~~\n", ["x = 1\n", "y\n"], id="two"),
        pytest.param("````md\n```\ninner\n```\n````", ["```\ninner\n```\n"], id="nested"),
        pytest.param("```python\ncut off", ["cut off\n"], id="unclosed"),
        pytest.param("  ```js\nlet a\n  ```", ["let a\n"], id="indented"),
    ],
)
def test_code_blocks(answer: str, blocks: list[str]):
    assert code_blocks(answer) == blocks


def test_an_unfenced_fix_answer_is_one_block():
    assert code_blocks("    return x\n", whole_if_none=True) == ["    return x\n"]
    assert is_code_answer("/fix it") and is_code_answer("/tests") and not is_code_answer("/explain")


KEY = "sk-proj-" + "Zq9" * 10
SECRET_TEXTS = [
    f'Set it:\nOPENAI = "{KEY}"\nthen run it.\n',
    f"The key {KEY} is yours.",
    'password = "correct horse battery staple" and more',
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1\nabcdEFGH12\n"
    "-----END RSA PRIVATE KEY-----\nok",
    "token: ghp_" + "a1" * 18 + " ok\nline two",
]


@pytest.mark.parametrize("text", SECRET_TEXTS)
def test_the_masked_stream_adds_up_and_never_shows_a_secret(text: str):
    rng = random.Random(7)
    for _ in range(30):
        stream = MaskedStream()
        pieces, i = [], 0
        while i < len(text):
            j = i + rng.randint(1, 7)
            pieces.append(stream.push(text[i:j]))
            i = j
        pieces.append(stream.finish())
        shown = "".join(pieces)
        assert shown == redact(text)
        for secret in (KEY[8:20], "horse", "MIIE", "abcdEFGH", "a1a1a1a1"):
            assert all(secret not in p for p in pieces), (secret, pieces)


def test_the_stream_shows_plain_text_as_it_comes():
    stream = MaskedStream()
    assert stream.push("Hello ") == "Hello "
    assert stream.push("wor") == ""  # a word may still become a key
    assert stream.push("ld, friend") == "world, "
    assert stream.finish() == "friend"


def test_past_turns_are_the_chat_exchanges():
    msgs = [
        ChatMessage("user", "Explain x", kind="explain"),
        ChatMessage("assistant", "x is…", kind="explain"),
        ChatMessage("user", "Why?", kind="chat", time=5.0),
        ChatMessage("assistant", "Because", kind="chat", cut=True, files=("a.py",)),
    ]
    (turn,) = past_turns(msgs)
    assert (turn.question, turn.answer, turn.cut, turn.time) == ("Why?", "Because", True, 5.0)
    assert turn.to_json()["historyId"] == msgs[3].id
    assert transcript([turn]) == "## You\n\nWhy?\n\n## ctx\n\nBecause\n\n*(answer cut short)*"
    assert past_turns(msgs, limit=0) == []


def test_files_and_cut_survive_the_history_format():
    m = ChatMessage("assistant", "a", files=("a.py", "b.py"), cut=True)
    assert ChatMessage.from_json(m.to_json()) == m
    plain = ChatMessage("assistant", "a")
    assert "files" not in plain.to_json() and "cut" not in plain.to_json()
