"""Item 5, hostile or broken LSP input, over raw stdio.

One server takes, in order: garbage `initializationOptions`; a 50 MB `didOpen` and requests on
it (once); a document holding lone UTF-16 surrogates; then a hypothesis campaign of messages:
malformed JSON, invalid UTF-8, bad ids, wrong types in params, unknown methods, positions and
ranges negative or past the end, URIs outside the workspace or never opened, a second
`initialize`, `didChange` with bad ranges, inline completion, completion, code action and
resolve with garbage data, `executeCommand` with garbage arguments for every `ctx.*` command,
configuration and folder changes, cancels. After every example a barrier request must be
answered (the server is up and responsive); at the end `ctx.showContext` must work.

Three tests read the campaign's record: the server survives (no crash, no hang), every request
with an id gets a result or an error, every unparseable message gets a JSON-RPC parse error.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fake_openai import FakeOpenAI, Hang

from ._rpc import RawServer, frame, isolated_env, rng_json

EXAMPLES = 600
BIG_MB = 50
CTX_COMMANDS = [
    "ctx.explain",
    "ctx.fixError",
    "ctx.generateTests",
    "ctx.commitMessage",
    "ctx.summarizeHistory",
    "ctx.showContext",
    "ctx.showPrompt",
    "ctx.addFile",
    "ctx.removeFile",
    "ctx.clearHistory",
    "ctx.clearSession",
]
SETTING_KEYS = ["model", "maxTokens", "contextTokens", "envAllowlist", "cache", "x", "temperature"]
GARBAGE_INIT = {
    "model": 5,
    "baseUrl": ["x"],
    "maxTokens": -3,
    "temperature": "hot",
    "timeoutS": 1e308,
    "debounceMs": None,
    "contextTokens": {"a": 1},
    "historyMessages": -1,
    "cache": "yes",
    "user": "../../etc",
    "envAllowlist": "PATH",
    "unknownKey": [1, 2],
    "ctx": 7,
}


@dataclass
class Sent:
    method: str
    body: bytes
    t0: float
    t1: float | None = None
    reply: dict[str, Any] | None = None


@dataclass
class Campaign:
    frames: int = 0
    requests: dict[Any, Sent] = field(default_factory=dict)  # id -> request that must answer
    unparseable: int = 0  # bodies that are not UTF-8 JSON: each owes a parse error (id null)
    malformed: int = 0  # JSON but not a valid message (no jsonrpc, bad id, batch...)
    examples: int = 0
    crashed: str | None = None  # what was sent last before the process died or hung
    big: dict[str, float] = field(default_factory=dict)
    init_said: list[str] = field(default_factory=list)
    final_context: str = ""
    methods: Counter = field(default_factory=Counter)
    parse_errors: int = 0  # JSON-RPC parse errors (-32700) received, each with "id": null
    last: list[bytes] = field(default_factory=list)
    campaign_t0: float = 0.0  # when the hypothesis messages started


# -- strategies ---------------------------------------------------------------------------------

LONE = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d", "x\ud800\ud800y"])
TEXTS = st.one_of(st.text(max_size=40), LONE, st.sampled_from(["", " ", "\x00", "é" * 3, "😀"]))
INTS = st.one_of(
    st.integers(-3, 40),
    st.sampled_from([-1, -(2**31), 2**31 - 1, 2**31, 2**32, 2**53, -(2**63), 10**30]),
)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=True), TEXTS)
GARBAGE = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXTS, inner, max_size=3)),
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Usually `strategy`, sometimes anything at all."""
    return st.one_of(strategy, strategy, strategy, GARBAGE)


@st.composite
def position(draw) -> Any:
    return draw(maybe(st.fixed_dictionaries({"line": INTS, "character": INTS})))


@st.composite
def range_(draw) -> Any:
    return draw(maybe(st.fixed_dictionaries({"start": position(), "end": position()})))


def build_strategies(uris: list[str], root: Path) -> st.SearchStrategy:
    uri = maybe(st.sampled_from(uris))
    doc_id = maybe(st.fixed_dictionaries({"uri": uri}))
    versioned = maybe(st.fixed_dictionaries({"uri": uri, "version": INTS}))
    diagnostic = maybe(
        st.fixed_dictionaries(
            {"range": range_(), "message": TEXTS},
            optional={"severity": INTS, "source": TEXTS, "code": SCALARS},
        )
    )
    change = maybe(
        st.one_of(
            st.fixed_dictionaries({"range": range_(), "text": TEXTS}),
            st.fixed_dictionaries({"text": TEXTS}),
        )
    )
    command_args = st.fixed_dictionaries(
        {},
        optional={
            "uri": uri,
            "range": range_(),
            "position": position(),
            "diagnostic": diagnostic,
            "path": maybe(
                st.sampled_from(["app.py", "../x", "/etc/passwd", "~", "", "a\x00b", "."])
            ),
            "staged": SCALARS,
            "apply": SCALARS,
            "workDoneToken": SCALARS,
        },
    )
    execute = st.fixed_dictionaries(
        {"command": maybe(st.sampled_from([*CTX_COMMANDS, "ctx.nope", ""]))},
        optional={
            "arguments": st.one_of(
                st.lists(maybe(command_args), max_size=2), GARBAGE, st.just([{}])
            )
        },
    )
    code_action = st.fixed_dictionaries(
        {
            "textDocument": doc_id,
            "range": range_(),
            "context": maybe(
                st.fixed_dictionaries(
                    {"diagnostics": maybe(st.lists(diagnostic, max_size=3))},
                    optional={"only": GARBAGE},
                )
            ),
        }
    )
    resolve = st.fixed_dictionaries(
        {"title": maybe(TEXTS)},
        optional={
            "kind": TEXTS,
            "data": maybe(
                st.fixed_dictionaries(
                    {"action": maybe(st.sampled_from(["fix", "tests", "x"]))},
                    optional={"uri": uri, "diagnostic": diagnostic, "range": range_()},
                )
            ),
            "diagnostics": GARBAGE,
        },
    )
    folders = maybe(
        st.fixed_dictionaries(
            {
                "event": maybe(
                    st.fixed_dictionaries(
                        {
                            "added": maybe(
                                st.lists(
                                    st.fixed_dictionaries(
                                        {
                                            "uri": st.sampled_from(
                                                [(root / "nope").as_uri(), "file:///nonexistent"]
                                            ),
                                            "name": TEXTS,
                                        }
                                    ),
                                    max_size=1,
                                )
                            ),
                            "removed": st.just([]),
                        }
                    )
                )
            }
        )
    )
    config = maybe(
        st.fixed_dictionaries(
            {
                "settings": maybe(
                    st.fixed_dictionaries(
                        {
                            "ctx": maybe(
                                st.dictionaries(
                                    st.sampled_from(SETTING_KEYS),
                                    GARBAGE,
                                    max_size=3,
                                )
                            )
                        }
                    )
                )
            }
        )
    )
    inline_ctx = maybe(st.fixed_dictionaries({"triggerKind": maybe(st.sampled_from([1, 2]))}))
    requests = {
        "textDocument/inlineCompletion": st.fixed_dictionaries(
            {"textDocument": doc_id, "position": position(), "context": inline_ctx}
        ),
        "textDocument/completion": st.fixed_dictionaries(
            {"textDocument": doc_id, "position": position()}
        ),
        "textDocument/codeAction": code_action,
        "codeAction/resolve": resolve,
        "workspace/executeCommand": execute,
        "initialize": maybe(
            st.fixed_dictionaries(
                {"capabilities": GARBAGE},
                optional={"rootUri": uri, "initializationOptions": GARBAGE, "processId": SCALARS},
            )
        ),
        "textDocument/hover": st.fixed_dictionaries(
            {"textDocument": doc_id, "position": position()}
        ),
        "workspace/symbol": st.fixed_dictionaries({"query": TEXTS}),
        "ctx/unknown": GARBAGE,
    }
    notifications = {
        "textDocument/didOpen": st.fixed_dictionaries(
            {
                "textDocument": maybe(
                    st.fixed_dictionaries(
                        {"uri": uri, "languageId": TEXTS, "version": INTS, "text": TEXTS}
                    )
                )
            }
        ),
        "textDocument/didChange": st.fixed_dictionaries(
            {"textDocument": versioned, "contentChanges": maybe(st.lists(change, max_size=3))}
        ),
        "textDocument/didSave": st.fixed_dictionaries(
            {"textDocument": doc_id}, optional={"text": TEXTS}
        ),
        "textDocument/didClose": st.fixed_dictionaries({"textDocument": doc_id}),
        "workspace/didChangeConfiguration": config,
        "workspace/didChangeWorkspaceFolders": folders,
        "$/cancelRequest": st.fixed_dictionaries({"id": SCALARS}),
        "$/setTrace": st.fixed_dictionaries({"value": SCALARS}),
        "$/unknownNotification": GARBAGE,
    }
    request = st.sampled_from(sorted(requests)).flatmap(
        lambda m: st.tuples(st.just(m), st.just(True), requests[m], st.booleans())
    )
    notification = st.sampled_from(sorted(notifications)).flatmap(
        lambda m: st.tuples(st.just(m), st.just(False), notifications[m], st.booleans())
    )
    raw = st.one_of(
        st.tuples(st.just("<invalid json>"), st.just(None), st.binary(max_size=60), st.just(0)),
        st.tuples(
            st.just("<batch/odd message>"),
            st.just(None),
            st.sampled_from(
                [
                    b"[]",
                    b'[{"jsonrpc":"2.0","id":1,"method":"ctx/x","params":{}}]',
                    b'{"id":1,"method":"textDocument/completion","params":{}}',
                    b'{"jsonrpc":"1.0","method":"x"}',
                    b'{"jsonrpc":"2.0","id":{"a":1},"method":"ctx/x","params":{}}',
                    b'{"jsonrpc":"2.0","id":null,"method":"ctx/x","params":{}}',
                    b'{"jsonrpc":"2.0","id":1.5,"method":"ctx/x","params":{}}',
                    b'{"jsonrpc":"2.0","result":1,"id":999999}',
                    b'{"jsonrpc":"2.0","error":{"code":1,"message":"x"},"id":"nope"}',
                    b"null",
                    b"123",
                    b'"text"',
                ]
            ),
            st.just(1),
        ),
    )
    return st.lists(st.one_of(request, request, notification, raw), min_size=1, max_size=4)


# -- the campaign -------------------------------------------------------------------------------


class Driver:
    def __init__(self, server: RawServer, camp: Campaign) -> None:
        self.server = server
        self.camp = camp
        self.ids = itertools.count(1_000_000)

    def send(self, body: bytes) -> None:
        self.camp.frames += 1
        self.camp.last = [*self.camp.last[-9:], body[:300]]
        self.server.send_bytes(frame(body))

    def request(self, method: str, params: Any, invalid_utf8: bool = False) -> Sent:
        id_: Any = next(self.ids)
        if id_ % 3 == 0:
            id_ = f"s-{id_}"
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            msg["params"] = params
        body = json.dumps(msg).encode()
        if invalid_utf8:
            body = body.replace(b'"jsonrpc"', b'"\xff\xfe":1,"jsonrpc"', 1)
            self.camp.unparseable += 1
        sent = Sent(method, body, time.monotonic())
        if not invalid_utf8:
            self.camp.requests[id_] = sent
            with self.server._cond:
                self.server._pending.add(id_)
        self.camp.methods[method] += 1
        self.send(body)
        return sent

    def notify(self, method: str, params: Any, invalid_utf8: bool = False) -> None:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode()
        if invalid_utf8:
            body = body.replace(b'"jsonrpc"', b'"\xff":0,"jsonrpc"', 1)
            self.camp.unparseable += 1
        self.camp.methods[method] += 1
        self.send(body)

    def raw(self, kind: str, body: bytes) -> None:
        try:
            json.loads(body.decode("utf-8"))
            self.camp.malformed += 1
        except ValueError:
            self.camp.unparseable += 1
        self.camp.methods[kind] += 1
        self.send(body)

    def barrier(self, timeout: float = 60.0) -> bool:
        """A cheap request; its answer shows everything before it was read and handled."""
        sent = self.request("workspace/executeCommand", {"command": "ctx.showContext"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.collect(sent) or not self.server.alive():
                break
            time.sleep(0.002)
        return sent.reply is not None

    def collect(self, only: Sent | None = None) -> bool:
        with self.server._cond:
            for id_, reply in list(self.server._responses.items()):
                sent = self.camp.requests.get(id_)
                if sent is not None and sent.reply is None:
                    sent.reply, sent.t1 = reply, time.monotonic()
                    self.server._responses.pop(id_)
        return only is not None and only.reply is not None


def _run_campaign(tmp: Path) -> Campaign:
    camp = Campaign()
    home, root = tmp / "home", tmp / "ws"
    home.mkdir()
    root.mkdir()
    (root / "app.py").write_text("def add(a, b):\n    return a + b\n\n\nclass K:\n    pass\n")
    (root / "b.py").write_text("import app\n\nprint(app.add(1, 2))\n")
    outside = tmp / "outside.py"
    outside.write_text("SECRET = 1\n")
    with (
        FakeOpenAI(reply="x = 1", models=None) as fake,
        RawServer(isolated_env(home, fake.env()), cwd=root, stderr=tmp / "server.log") as server,
    ):
        d = Driver(server, camp)
        init = dict(GARBAGE_INIT, debounceMs=0)
        server.initialize(root, init)
        camp.frames += 2
        app_uri, b_uri = server.open(root / "app.py"), server.open(root / "b.py")
        camp.frames += 2
        assert d.barrier(), "no answer after initialize"
        camp.init_said = server.messages()

        # the first model call pays for the tokenizer and the HTTP client: not the big file's
        warm = d.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": b_uri},
                "position": {"line": 2, "character": 5},
                "context": {"triggerKind": 1},
            },
        )
        deadline = time.monotonic() + 60
        while not d.collect(warm) and time.monotonic() < deadline:
            time.sleep(0.01)

        # a huge document, once
        big_uri = (root / "big.py").as_uri()
        text = "value = compute(1, 2)  # padding\n" * (BIG_MB * 1024 * 1024 // 33)
        t0 = time.monotonic()
        d.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": big_uri, "languageId": "python", "version": 1, "text": text}},
        )
        del text
        assert d.barrier(300), "no answer after the 50 MB didOpen"
        camp.big["didOpen"] = time.monotonic() - t0
        last = BIG_MB * 1024 * 1024 // 33
        pos = {"line": last - 1, "character": 5}
        big_requests = {
            "inlineCompletion": (
                "textDocument/inlineCompletion",
                {"textDocument": {"uri": big_uri}, "position": pos, "context": {"triggerKind": 1}},
            ),
            "completion": (
                "textDocument/completion",
                {"textDocument": {"uri": big_uri}, "position": pos},
            ),
            "codeAction(all)": (
                "textDocument/codeAction",
                {
                    "textDocument": {"uri": big_uri},
                    "range": rng_json(0, 0, last + 5, 0),
                    "context": {"diagnostics": []},
                },
            ),
            "explain(2 lines)": (
                "workspace/executeCommand",
                {
                    "command": "ctx.explain",
                    "arguments": [
                        {"uri": big_uri, "range": rng_json(last // 2, 0, last // 2 + 2, 0)}
                    ],
                },
            ),
            "completion(b.py, big open)": (
                "textDocument/completion",
                {"textDocument": {"uri": b_uri}, "position": {"line": 2, "character": 5}},
            ),
        }
        for name, (method, params) in big_requests.items():
            sent = d.request(method, params)
            deadline = time.monotonic() + 300
            while not d.collect(sent) and server.alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            camp.big[name] = (sent.t1 or time.monotonic()) - sent.t0
        d.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": big_uri, "version": 2},
                "contentChanges": [{"range": rng_json(last, 0, last, 0), "text": "tail = 1\n"}],
            },
        )
        t0 = time.monotonic()
        d.notify("textDocument/didClose", {"textDocument": {"uri": big_uri}})
        assert d.barrier(300), "no answer after closing the 50 MB document"
        camp.big["didChange+didClose"] = time.monotonic() - t0

        # lone surrogates in a document and in arguments
        sur_uri = (root / "sur.py").as_uri()
        d.send(
            b'{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"'
            + sur_uri.encode()
            + b'","languageId":"python","version":1,"text":"def f():\\n    s = \\"\\ud800\\"\\n"}}}'
        )
        for method, params in (
            (
                "workspace/executeCommand",
                {"command": "ctx.showContext", "arguments": [{"uri": sur_uri}]},
            ),
            (
                "workspace/executeCommand",
                {
                    "command": "ctx.explain",
                    "arguments": [{"uri": sur_uri, "range": rng_json(0, 0, 2, 0)}],
                },
            ),
            (
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": sur_uri},
                    "position": {"line": 1, "character": 9},
                    "context": {"triggerKind": 1},
                },
            ),
            (
                "workspace/executeCommand",
                {"command": "ctx.addFile", "arguments": [{"path": "\ud800.py"}]},
            ),
        ):
            d.request(method, params)
        d.notify("textDocument/didClose", {"textDocument": {"uri": sur_uri}})
        assert d.barrier(), "no answer after the surrogates"

        uris = [
            app_uri,
            b_uri,
            (root / "never_opened.py").as_uri(),
            outside.as_uri(),
            f"{root.as_uri()}/../outside.py",
            "untitled:Untitled-1",
            "file:///",
            "file://host/share/x.py",
            "https://example.invalid/x.py",
            "",
            "file:///%00",
            "file:///" + "a" * 3000,
            "\ud800",
        ]

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(build_strategies(uris, root), st.integers(0, 19))
        def example(messages: list[tuple], flip: int) -> None:
            if camp.crashed:
                return
            camp.examples += 1
            for i, (method, is_request, params, _) in enumerate(messages):
                bad_utf8 = flip == i  # about one example in five carries invalid UTF-8
                if is_request is None:
                    d.raw(method, params)
                elif is_request:
                    d.request(method, params, bad_utf8)
                else:
                    d.notify(method, params, bad_utf8)
            if not d.barrier():
                camp.crashed = "died" if not server.alive() else "hung (no answer in 60 s)"

        camp.campaign_t0 = time.monotonic()
        example()
        if not camp.crashed:
            final = d.request("workspace/executeCommand", {"command": "ctx.showContext"})
            deadline = time.monotonic() + 60
            while not d.collect(final) and time.monotonic() < deadline:
                time.sleep(0.01)
            camp.final_context = (final.reply or {}).get("result", {}).get("text", "")
            # stragglers: async handlers still running
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                d.collect()
                if all(s.reply is not None for s in camp.requests.values()):
                    break
                time.sleep(0.05)
            if not server.alive():
                camp.crashed = "died at the end"
        with server._cond:
            camp.parse_errors = sum(
                1
                for m in server.unmatched
                if "id" in m and m["id"] is None and m.get("error", {}).get("code") == -32700
            )
        server.kill()
    return camp


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    t0 = time.monotonic()
    camp = _run_campaign(tmp_path_factory.mktemp("fuzz"))
    answered = [s for s in camp.requests.values() if s.reply is not None]
    fuzzed = [s for s in answered if s.t0 >= camp.campaign_t0]
    slowest = max(fuzzed, key=lambda s: (s.t1 or 0) - s.t0)
    big = ", ".join(f"{k} {v:.1f} s" for k, v in camp.big.items())
    print(
        f"\n[fuzz] {time.monotonic() - t0:.0f} s: examples={camp.examples} messages sent="
        f"{camp.frames} requests={len(camp.requests)} answered={len(answered)} "
        f"unanswered={len(camp.requests) - len(answered)} unparseable={camp.unparseable} "
        f"(parse errors back: {camp.parse_errors}) odd messages={camp.malformed} "
        f"crashes={1 if camp.crashed else 0} ({camp.crashed or 'none'}) slowest fuzzed answer="
        f"{(slowest.t1 or 0) - slowest.t0:.2f} s ({slowest.method} {slowest.body[:120]!r})\n"
        f"[fuzz] 50 MB document: {big}\n[fuzz] said at start: {camp.init_said}"
    )
    return camp


def test_server_survives_hostile_input(campaign: Campaign) -> None:
    assert campaign.crashed is None, f"{campaign.crashed}; last sent: {campaign.last}"
    assert campaign.examples == EXAMPLES
    assert "Workspace:" in campaign.final_context
    assert campaign.init_said, "garbage initializationOptions are reported"


def test_every_request_gets_an_answer(campaign: Campaign) -> None:
    missing = [s for s in campaign.requests.values() if s.reply is None]
    by_method = Counter(s.method for s in missing)
    print(f"\n[fuzz] unanswered by method: {dict(by_method)}")
    for s in missing[:5]:
        print(f"  e.g. {s.body[:200]!r}")
    assert not missing


def test_unparseable_messages_get_a_parse_error(campaign: Campaign) -> None:
    """Exactly one each: an empty body, invalid UTF-8 or invalid JSON (see `reader`)."""
    assert campaign.parse_errors == campaign.unparseable > 0


def test_lone_surrogates_do_not_break_ai_features(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "ws"
    home.mkdir()
    root.mkdir()
    (root / "app.py").write_text("def add(a, b):\n    return a + b\n")
    sur_uri = (root / "sur.py").as_uri()
    with (
        FakeOpenAI(reply="x = 1") as fake,
        RawServer(isolated_env(home, fake.env()), cwd=root) as server,
    ):
        server.initialize(root, {"model": "test-model", "debounceMs": 0})
        app_uri = server.open(root / "app.py")
        server.send_bytes(
            frame(
                b'{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":'
                b'{"uri":"' + sur_uri.encode() + b'","languageId":"python","version":1,'
                b'"text":"def f():\\n    return \\"\\ud800\\"\\n"}}}'
            )
        )
        outcomes = {}
        for name, method, params in (
            ("explain app.py", "workspace/executeCommand", {
                "command": "ctx.explain",
                "arguments": [{"uri": app_uri, "range": rng_json(0, 0, 2, 0)}],
            }),
            ("inline sur.py", "textDocument/inlineCompletion", {
                "textDocument": {"uri": sur_uri},
                "position": {"line": 1, "character": 4},
                "context": {"triggerKind": 1},
            }),
        ):  # fmt: skip
            reply = server.wait(server.start_request(method, params), 30)
            outcomes[name] = reply.get("error", {}).get("message") or "ok"
        server.close()
    print(f"\n[fuzz] lone surrogate open: {outcomes}")
    assert outcomes == {"explain app.py": "ok", "inline sur.py": "ok"}


@pytest.mark.parametrize(
    "options",
    [
        None,
        [],
        "model=gpt",
        5,
        {"ctx": {"model": 5, "debounceMs": "fast"}, "other": 1},
        {"model": "\ud800", "user": "../..", "envAllowlist": [1, None], "timeoutS": -1},
        {"contextTokens": 10**30, "maxTokens": 2**64, "temperature": float("inf")},
        {"a": {"b": {"c": {"d": [[[[[]]]]]}}}},
    ],
    ids=["null", "list", "string", "number", "nested", "hostile", "huge", "deep"],
)
def test_garbage_initialization_options(tmp_path: Path, options: Any) -> None:
    home, root = tmp_path / "home", tmp_path / "ws"
    home.mkdir()
    root.mkdir()
    (root / "app.py").write_text("def add(a, b):\n    return a + b\n")
    with RawServer(isolated_env(home), cwd=root) as server:
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "processId": None,
                    "rootUri": root.as_uri(),
                    "capabilities": {},
                    "initializationOptions": options,
                },
            }
        ).encode()
        server.start_raw_request(body, 1)
        reply = server.wait(1, 30)
        server.notify("initialized", {})
        text = server.command("ctx.showContext")["text"]
        said = server.messages()
        server.close()
    print(f"\n[fuzz] initializationOptions {str(options)[:60]!r}: {len(said)} message(s)")
    assert "result" in reply and "Workspace:" in text
    assert server.proc.returncode == 0


def test_a_huge_open_document_does_not_stall_other_files(tmp_path: Path) -> None:
    """With a 10 MB file open, a completion in another file builds its prompt without it, and
    the server answers other requests while that completion waits on its backend."""
    home, root = tmp_path / "home", tmp_path / "ws"
    home.mkdir()
    root.mkdir()
    (root / "b.py").write_text("import app\n\nprint(app.add(1, 2))\n")
    with (
        FakeOpenAI(reply="x = 1") as fake,
        RawServer(isolated_env(home, fake.env()), cwd=root) as server,
    ):
        server.initialize(root, {"model": "test-model", "debounceMs": 0})
        b_uri = server.open(root / "b.py")

        def inline(char: int) -> int:
            return server.start_request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": b_uri},
                    "position": {"line": 2, "character": char},
                    "context": {"triggerKind": 1},
                },
            )

        server.wait(inline(1), 60)  # warm up
        lines = 10 * 1024 * 1024 // 33
        server.open(root / "big.log", "value = compute(1, 2)  # padding\n" * lines, "plaintext")
        server.command("ctx.showContext", timeout=120)
        fake.enqueue(Hang(60))
        pending = inline(2)
        fake.wait_for_requests(2, timeout=120)  # its prompt is built, and the backend hangs
        shown = server.command("ctx.showContext", timeout=120)
        assert pending not in server.answered()  # answered while the completion still waits
        assert any(f["path"] == "big.log" for f in shown["files"])
        server.notify("$/cancelRequest", {"id": pending})
        server.wait(pending, 120)
        prompt = fake.prompts()[-1]
        server.close()
    assert "pr<CURSOR>int(app.add(1, 2))" in prompt  # the current file
    assert "value = compute" not in prompt
