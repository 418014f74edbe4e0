"""Secrets never leave and never persist: the proof, end to end.

A seeded corpus of realistic-looking fake secrets (tests/secrets_corpus.py) is placed everywhere
a secret can be: open buffers (didOpen and incremental didChange), pinned files, files that must
never be read (.env, id_rsa, .npmrc, a .gitignored file, a .ctxignore'd file…), environment
variables named in `envAllowlist`, the API key itself, a staged diff, a diagnostic's message, and
the model's own replies (a model that "hallucinates" new keys). Then every AI feature is driven
through the protocol against a server started with `--log-file … -vv` (pygls logs every message),
and the backend's request log (bodies and headers, minus the Authorization header that
legitimately carries the key), every file under `.ctx/` (the sqlite cache's bytes included),
everything the server wrote under HOME, and the server log are searched for every secret and for
distinctive 12-character pieces of it. The expected count is 0 everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.conftest import _fix_code_action_union, command, git, open_doc, server_env
from tests.fake_openai import FakeOpenAI
from tests.secrets_corpus import NEEDLE, Corpus, Secret, file_text

SEED = 20250917
MODEL = "test-model"


# --- placement bookkeeping -----------------------------------------------------------------------


@dataclass
class Ledger:
    """Which secret was placed where; the search reports per placement."""

    placed: dict[str, list[Secret]] = field(default_factory=dict)

    def add(self, placement: str, *secrets: Secret) -> list[Secret]:
        self.placed.setdefault(placement, []).extend(secrets)
        return list(secrets)

    def all(self) -> list[tuple[str, Secret]]:
        return [(p, s) for p, ss in self.placed.items() for s in ss]


def search(ledger: Ledger, haystacks: dict[str, str]) -> list[tuple[str, Secret, str, list[str]]]:
    """(placement, secret, where, needles found) for every hit."""
    hits = []
    for placement, secret in ledger.all():
        for where, text in haystacks.items():
            if found := secret.found_in(text):
                hits.append((placement, secret, where, found))
    return hits


def report(ledger: Ledger, hits: list[tuple[str, Secret, str, list[str]]], title: str) -> str:
    rows = [f"{title}", f"{'placement':<26}{'tried':>7}{'found':>7}  where"]
    for placement, secrets in ledger.placed.items():
        mine = [h for h in hits if h[0] == placement]
        leaked = {id(h[1]) for h in mine}
        where = sorted({h[2] for h in mine})
        rows.append(f"{placement:<26}{len(secrets):>7}{len(leaked):>7}  {', '.join(where)}")
    total = sum(len(s) for s in ledger.placed.values())
    rows.append(f"{'TOTAL':<26}{total:>7}{len({id(h[1]) for h in hits}):>7}")
    for placement, secret, where, found in hits:
        rows.append(f"  LEAK {placement} {secret.kind} in {where}: {found[0][:60]!r}")
    return "\n".join(rows)


def backend_haystack(log_path: Path, key: str) -> str:
    """Every recorded request, bodies and headers, minus the Authorization header (which
    must carry the key: that is asserted, then dropped)."""
    out = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        headers = rec.get("headers") or {}
        assert headers.pop("authorization", None) == f"Bearer {key}", "the key goes in the header"
        out.append(json.dumps(rec, ensure_ascii=False))
        for m in (rec.get("body") or {}).get("messages") or []:
            out.append(str(m.get("content") or ""))
    return "\n".join(out)


def files_haystacks(base: Path, label: str, skip: set[Path] = frozenset()) -> dict[str, str]:
    """Every file under `base`, bytes decoded one to one (latin-1), so sqlite pages count."""
    out = {}
    if not base.exists():
        return out
    for path in sorted(base.rglob("*")):
        if path.is_file() and not any(path.is_relative_to(s) for s in skip):
            out[f"{label}/{path.relative_to(base)}"] = path.read_bytes().decode("latin-1")
    return out


# --- client ---------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def logged_lsp(home: Path) -> AsyncIterator[Any]:
    """Like conftest's `lsp`, but the server runs with `--log-file LOG -vv`."""
    clients: list[LanguageClient] = []

    async def start(root: Path, log: Path, env: dict[str, str], init: dict[str, Any]):
        argv = [sys.executable, "-m", "ctx_lsp", "--log-file", str(log), "-vv"]
        client = await ClientServerConfig(argv, server_env=server_env(env)).start()
        _fix_code_action_union(client.protocol._converter)
        client.applied_edits = []  # type: ignore[attr-defined]

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(ls: LanguageClient, params: types.ApplyWorkspaceEditParams):
            ls.applied_edits.append(params)  # type: ignore[attr-defined]
            return types.ApplyWorkspaceEditResult(applied=True)

        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual_studio_code"),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
                initialization_options=init,
            )
        )
        clients.append(client)
        return client

    yield start
    for client in clients:
        with contextlib.suppress(Exception):
            await client.shutdown_session()
        await client.stop()


def _pos(line: int, char: int) -> types.Position:
    return types.Position(line=line, character=char)


def _range(l1: int, c1: int, l2: int, c2: int) -> types.Range:
    return types.Range(start=_pos(l1, c1), end=_pos(l2, c2))


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n")


def _insert(client: LanguageClient, uri: str, version: int, line: int, char: int, text: str):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=_range(line, char, line, char), text=text
                )
            ],
        )
    )


def _unstructure(client: LanguageClient, obj: Any) -> Any:
    return client.protocol._converter.unstructure(obj)


# --- the workspace --------------------------------------------------------------------------------

APP_HEAD = "import os\n\nimport boto3\nfrom openai import OpenAI\n\n\ndef load_config():\n"
APP_TAIL = (
    "    backup_key = \n"
    "    return {}\n"
    "\n"
    "\n"
    "def mean(event):\n"
    "    total = sum(event['values'])\n"
    "    return total / len(valuez)\n"
)


def _indent(text: str) -> str:
    return "".join(("    " + ln if ln.strip() else ln) for ln in text.splitlines(keepends=True))


def build_workspace(repo: Path, corpus: Corpus, ledger: Ledger, api_key: str) -> dict[str, Any]:
    """Files on disk, staged changes and the texts of the buffers to open; returns what the
    test drives (buffer texts, paths to pin, paths that must be refused)."""
    # rules: .gitignore (root and nested), .ctxignore, .git/info/exclude
    (repo / ".gitignore").write_text("local_settings.py\n*.log\n")
    (repo / ".ctxignore").write_text("# private notes\nnotes/\n*.secret.py\n")
    (repo / "services" / "api").mkdir(parents=True)
    (repo / "services" / "api" / ".gitignore").write_text("dev_overrides.py\n")
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("scratch/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "chore: ignore rules")

    # files that are never read, pinned or not
    refused: dict[str, str] = {}  # rel → expected words in the refusal

    def never(rel: str, secrets: list[Secret], style: str, why: str, text: str | None = None):
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text is not None else file_text(secrets, style))
        ledger.add("ignored-file", *secrets)
        refused[rel] = why

    never(".env", corpus.some(6, "env"), "env", "built-in")
    never(".env.local", corpus.some(3, "env"), "env", "built-in")
    key = corpus.private_key("env")
    never("id_rsa", [key], "env", "built-in")
    never("deploy/tls/server.key", [corpus.private_key("env")], "env", "built-in")
    npm = corpus.npm_token()
    never(".npmrc", [npm], "env", "built-in", f"//registry.npmjs.org/:_authToken={npm.value}\n")
    gh = corpus.github_token()
    never(".netrc", [gh], "env", "built-in", f"machine github.com login ci password {gh.value}\n")
    pypi = corpus.pypi_token()
    never(
        ".pypirc",
        [pypi],
        "env",
        "built-in",
        f"[pypi]\nusername = __token__\npassword = {pypi.value}\n",
    )
    never("local_settings.py", corpus.some(4), "py", "git ignores it")
    never("services/api/dev_overrides.py", corpus.some(3), "py", "services/api/.gitignore")
    never("notes/oncall.md", corpus.some(4, "md"), "md", ".ctxignore")
    never("billing.secret.py", corpus.some(2), "py", ".ctxignore")
    never("scratch/try.py", corpus.some(2), "py", ".git/info/exclude")

    # allowed files on disk, pinned (not open)
    pinned: list[str] = []

    def pin(rel: str, secrets: list[Secret], style: str, header: str = ""):
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file_text(secrets, style, header))
        ledger.add("pinned-file", *secrets)
        pinned.append(rel)

    pin("config/deploy.yaml", corpus.some(6, "yaml"), "yaml", "production:")
    pin("docs/ops.md", corpus.some(4, "md"), "md", "# Operations")
    pin("scripts/seed_db.py", corpus.some(5), "py", "import os")

    # a staged diff: an allowed file with secrets, and a `.env.production` force-added
    staged = ledger.add("staged-diff", *corpus.some(5))
    (repo / "deploy").mkdir(exist_ok=True)
    (repo / "deploy" / "settings_prod.py").write_text(file_text(staged, "py", "DEBUG = False"))
    git(repo, "add", "deploy/settings_prod.py")
    staged_env = ledger.add("staged-excluded-file", *corpus.some(3, "env"))
    (repo / "deploy" / ".env.production").write_text(file_text(staged_env, "env"))
    git(repo, "add", "-f", "deploy/.env.production")

    # open buffers: app.py's text exists only in the editor (didOpen), more typed (didChange)
    opened = ledger.add("buffer-didOpen", *corpus.some(10))
    api_line = f'client = OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "{api_key}"))'
    app = APP_HEAD + _indent(file_text(opened, "py")) + f"    {api_line}\n" + APP_TAIL
    service_secrets = ledger.add("buffer-didOpen", *corpus.some(4))
    service = "def handler(event, context):\n" + _indent(file_text(service_secrets, "py"))
    service += "    return {'ok': True}\n"
    (repo / "service.py").write_text("def handler(event, context):\n    return {}\n")
    typed = ledger.add("buffer-didChange", *corpus.some(8))
    return {
        "app": app,
        "service": service,
        "typed": typed,
        "pinned": pinned,
        "refused": refused,
    }


# --- the proof ------------------------------------------------------------------------------------


async def test_no_secret_leaves_the_machine_or_persists(
    logged_lsp, repo: Path, home: Path, tmp_path: Path
):
    corpus = Corpus(SEED)
    ledger = Ledger()
    api_key = corpus.chars("0123456789abcdef", 32)  # an Azure-style key: no pattern knows it
    ledger.add("api-key", Secret("api-key", api_key, api_key))
    ws = build_workspace(repo, corpus, ledger, api_key)

    # environment: secret-looking names (hidden by name) and innocuous names whose value is
    # a secret (masked by value)
    token = corpus.github_token()
    deploy = corpus.url_password()
    deploy_url = f"postgres://deploy:{deploy.value}@db.prod.internal:5432/app"
    redis = corpus.url_password()
    redis_url = f"redis://:{redis.value}@cache.internal:6379/0"
    clone = corpus.github_token()
    clone_url = f"https://x-access-token:{clone.value}@github.com/acme/app.git"
    hook = corpus.slack_webhook()
    sentry = corpus.url_password()
    sentry_dsn = f"https://ingest:{sentry.value}@o1234.ingest.sentry.io/567"
    ledger.add("env-var", token, deploy, redis, clone, hook, sentry)
    env_vars = {
        "SERVICE_TOKEN": token.value,
        "DEPLOY_URL": deploy_url,
        "REDIS_URL": redis_url,
        "CLONE_URL": clone_url,
        "ALERTS_WEBHOOK": hook.value,
        "SENTRY_DSN": sentry_dsn,
        "APP_ENV": "production",
    }

    log = tmp_path / "server.log"
    backend_log = tmp_path / "backend.jsonl"
    fake = FakeOpenAI(log_path=str(backend_log), api_key=api_key, models=[MODEL])
    fake.start()
    try:
        client = await logged_lsp(
            repo,
            log,
            {**fake.env(), **env_vars},
            {
                "model": MODEL,
                "debounceMs": 0,
                "envAllowlist": [*env_vars, "OPENAI_API_KEY"],
            },
        )
        results: dict[str, Any] = {}

        async def run(name: str, reply: Secret | None, reply_text: str, call):
            """One feature call; the fake model answers `reply_text` (holding `reply`)."""
            if reply is not None:
                ledger.add("model-reply", reply)
            fake.reply = reply_text
            results[name] = await call()
            return results[name]

        # -- buffers: didOpen, then typing (incremental didChange, some secrets in two pieces)
        app_uri = open_doc(client, repo / "app.py", ws["app"])
        open_doc(client, repo / "service.py", ws["service"])
        env_uri = open_doc(client, repo / ".env", (repo / ".env").read_text(), "dotenv")
        line = _line_of(ws["app"], "    backup_key = ")
        version = 1
        for i, s in enumerate(ws["typed"]):
            version += 1
            block = _indent(s.text + "\n")
            if i % 2:  # typed in two pieces: the secret is whole only after the second
                half = len(block) // 2
                _insert(client, app_uri, version, line, 0, block[half:])
                version += 1
                _insert(client, app_uri, version, line, 0, block[:half])
            else:
                _insert(client, app_uri, version, line, 0, block)
            line += block.count("\n")
        state = await command(client, "ctx.showContext", {"uri": app_uri})
        app_text = state["documentText"]
        assert all(s.value in app_text for s in ws["typed"]), "the edits were applied"
        cursor = _pos(line, len("    backup_key = "))
        assert app_text.splitlines()[line] == "    backup_key = "

        # -- pins: allowed files are pinned, the others refused with the reason
        for rel in ws["pinned"]:
            assert (await command(client, "ctx.addFile", {"path": rel}))["text"] == f"Pinned {rel}"
        for rel, why in ws["refused"].items():
            with pytest.raises(Exception, match="refused to pin") as refused:
                await command(client, "ctx.addFile", {"path": rel})
            assert why in str(refused.value), (rel, str(refused.value))

        # -- the dry run first: it must equal what the completion then sends
        dry = await command(
            client, "ctx.showPrompt", {"uri": app_uri, "position": _unstructure(client, cursor)}
        )
        results["showPrompt"] = dry
        assert fake.requests == [], "a dry run sends nothing"

        # -- inline completion and completion item
        aws = corpus.aws_key()
        inline = await run(
            "inline",
            aws,
            f'"{aws.value}"',
            lambda: client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=app_uri),
                    position=cursor,
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Invoked
                    ),
                )
            ),
        )
        assert inline.items, "the completion came back"
        (sent,) = fake.chat_requests()
        assert sent.body["messages"] == dry["messages"], "the dry run shows exactly what is sent"

        mean_line = _line_of(app_text, "    return total / len(valuez)")
        gh = corpus.github_token()
        await run(
            "completion",
            gh,
            f'os.environ.get("BACKUP", "{gh.value}")',
            lambda: client.text_document_completion_async(
                types.CompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=app_uri),
                    position=_pos(mean_line, len("    return total / len(")),
                )
            ),
        )

        # -- code actions: listed without the model, every one resolved or executed
        leaky_diag = corpus.aws_key()
        ledger.add("diagnostic", leaky_diag)
        diags = [
            types.Diagnostic(
                range=_range(mean_line, 4, mean_line, 30),
                message="undefined name 'valuez'",
                severity=types.DiagnosticSeverity.Error,
                source="pyflakes",
            ),
            types.Diagnostic(
                range=_range(2, 0, 2, 12),
                message=f"hardcoded credential found: {leaky_diag.value}",
                severity=types.DiagnosticSeverity.Warning,
                source="secret-scanner",
            ),
        ]
        actions = await client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=app_uri),
                range=_range(mean_line, 4, mean_line, 4),
                context=types.CodeActionContext(diagnostics=diags),
            )
        )
        assert len(fake.chat_requests()) == 2, "listing actions never calls the model"
        assert len(actions) == 4
        for i, action in enumerate(actions):
            reply = corpus.some(1)[0]
            if action.data:
                # a model that writes a secret (with its context, as code would have it)
                text = f"```python\n    return total / len(values)\n    {reply.text}\n```"
                if "tests" in str(action.kind):
                    text = f"```python\ndef test_mean():\n    {reply.text}\n```"
                await run(
                    f"resolve-{i}",
                    reply,
                    text,
                    lambda a=action: client.code_action_resolve_async(a),
                )
            else:
                cmd = action.command
                await run(
                    f"action-{i}",
                    reply,
                    f"This loads the config. Never hardcode `{reply.text}` like this.",
                    lambda c=cmd: client.workspace_execute_command_async(
                        types.ExecuteCommandParams(command=c.command, arguments=c.arguments)
                    ),
                )

        # -- commands
        whole = _unstructure(client, _range(0, 0, mean_line + 1, 0))
        oa = corpus.openai_key()
        await run(
            "explain",
            oa,
            f"`load_config` builds the clients. A safer key would be {oa.value} from a vault. "
            "It then returns an empty dict, and `mean` divides the sum by the count.",
            lambda: command(client, "ctx.explain", {"uri": app_uri, "range": whole}),
        )
        st = corpus.stripe_key()
        await run(
            "fixError",
            st,
            f"    return total / len(values)  # {st.value}",
            lambda: command(
                client,
                "ctx.fixError",
                {"uri": app_uri, "diagnostic": _unstructure(client, diags[0])},
            ),
        )
        gk = corpus.google_key()
        await run(
            "generateTests",
            gk,
            f"```python\nfrom app import mean\n\n\ndef test_mean():\n    KEY = '{gk.value}'\n"
            "    assert mean({'values': [1, 2]}) == 1.5\n```",
            lambda: command(
                client,
                "ctx.generateTests",
                {"uri": app_uri, "range": _unstructure(client, _range(mean_line, 0, mean_line, 0))},
            ),
        )
        gl = corpus.gitlab_token()
        await run(
            "commitMessage",
            gl,
            f"feat(deploy): add production settings\n\nUses the CI token {gl.value}.",
            lambda: command(client, "ctx.commitMessage", {"staged": True}),
        )
        pw = corpus.url_password()
        await run(
            "summarizeHistory",
            pw,
            f"SUMMARY: the user configures clients; the database is postgres://app:{pw.value}@db/x",
            lambda: command(client, "ctx.summarizeHistory", {}),
        )
        results["showContext"] = await command(client, "ctx.showContext", {})
        results["showContext-uri"] = await command(client, "ctx.showContext", {"uri": app_uri})
        results["showPrompt-after"] = await command(
            client, "ctx.showPrompt", {"uri": app_uri, "position": _unstructure(client, cursor)}
        )
        # an excluded buffer gives no AI feature anything
        with pytest.raises(Exception, match="excluded"):
            await command(
                client,
                "ctx.showPrompt",
                {"uri": env_uri, "position": _unstructure(client, _pos(0, 0))},
            )
        applied = [_unstructure(client, e) for e in client.applied_edits]
        await client.shutdown_session()
        await asyncio.sleep(0.2)
    finally:
        fake.stop()

    n_requests = len(fake.chat_requests())
    assert n_requests >= 10, n_requests

    # -- search ------------------------------------------------------------------------------
    haystacks = {"backend-requests": backend_haystack(backend_log, api_key)}
    haystacks |= files_haystacks(repo / ".ctx", ".ctx")
    haystacks |= files_haystacks(home, "HOME", skip={home / ".gitconfig"})
    haystacks["server-log"] = log.read_text(encoding="utf-8", errors="replace")
    assert any(k.endswith("responses.sqlite") for k in haystacks), sorted(haystacks)
    assert any(k.endswith("history.jsonl") for k in haystacks), sorted(haystacks)
    assert "Sending data" in haystacks["server-log"], "-vv logs every message"

    hits = search(ledger, haystacks)

    # what the client got back (informational, except the dry run which must be masked):
    # the user's own buffer text in showContext's documentText is not a leak
    for r in ("showContext-uri",):
        results[r] = {k: v for k, v in results[r].items() if k != "documentText"}
    client_side = {
        "client-results": json.dumps(
            [_unstructure(client, v) if not isinstance(v, dict) else v for v in results.values()]
        ),
        "client-applied-edits": json.dumps(applied),
    }
    seen_by_client = search(ledger, client_side)
    dry_hits = search(
        ledger, {"showPrompt": json.dumps([results["showPrompt"], results["showPrompt-after"]])}
    )

    text = report(ledger, hits, f"secrets corpus (seed {SEED}): backend, .ctx/, HOME, server log")
    text += "\n" + report(ledger, seen_by_client, "returned to the client (masking optional)")
    print("\n" + text)
    assert sum(len(s) for s in ledger.placed.values()) >= 50
    assert not dry_hits, report(ledger, dry_hits, "showPrompt")
    assert not hits, text


# --- focused: secrets cut by a window, a head, a short form or a streamed tail ------------------
#
# Masking runs on finished messages; anything cut before that (the cursor window, the head of a
# related file, the history's short form of a request, the tail of a streamed answer shown in
# progress) can leave part of a secret that no pattern recognizes any more.


def _filler(n_lines: int, tag: str = "v") -> str:
    return "".join(f"    {tag}_{i} = compute_{tag}({i}, scale=2)\n" for i in range(n_lines))


def _pem_needles(secret: Secret) -> list[str]:
    """12-character pieces of every body line: any surviving piece of the key is a leak."""
    lines = [ln.strip() for ln in secret.value.splitlines()[1:-1]]
    return [ln[i : i + NEEDLE] for ln in lines for i in (0, 26, len(ln) - NEEDLE) if len(ln) > 30]


async def test_a_related_file_whose_head_cuts_a_private_key(lsp, repo: Path, fake_openai):
    """Related files contribute their head (40 lines, at most 1500 characters): a key block
    that starts near the top is cut before its END line."""
    key = Corpus(SEED + 1).private_key("py")
    keys_py = "import hmac\n\n" + key.text + "\n\n\ndef sign(data):\n    return hmac.new(data)\n"
    main = "from keys import sign\n\n\ndef handler(event):\n    return sign(\n"
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": MODEL, "debounceMs": 0})
    open_doc(client, repo / "keys.py", keys_py)
    uri = open_doc(client, repo / "main.py", main)
    prompt = await command(
        client, "ctx.showPrompt", {"uri": uri, "position": {"line": 4, "character": 16}}
    )
    assert "keys.py" in prompt["text"], "the related file is in the prompt"
    leaked = [n for n in _pem_needles(key) if n in prompt["text"]]
    assert not leaked, f"{len(leaked)} pieces of the key body in the prompt, e.g. {leaked[:2]}"


async def test_the_cursor_window_cutting_a_long_line_with_a_key(lsp, repo: Path, fake_openai):
    """A service-account key pasted on one line (JSON-escaped newlines), far enough above the
    cursor that the window starts inside it."""
    key = Corpus(SEED + 2).private_key("env")
    escaped = json.dumps({"type": "service_account", "private_key": key.value + "\n"})
    text = f"SERVICE_ACCOUNT = {escaped}\n\n\ndef load():\n" + _filler(10) + "    return "
    client = await lsp(
        repo,
        env=fake_openai.env(),
        init_options={"model": MODEL, "debounceMs": 0, "contextTokens": 1024, "maxTokens": 64},
    )
    uri = open_doc(client, repo / "sa.py", text)
    last = text.count("\n")
    pos = {"line": last, "character": len("    return ")}
    prompt = await command(client, "ctx.showPrompt", {"uri": uri, "position": pos})
    assert "def load():" in prompt["text"]
    body = "".join(key.value.splitlines()[1:-1])
    leaked = [body[i : i + NEEDLE] for i in range(0, len(body) - NEEDLE, 6)]
    leaked = [n for n in leaked if n in prompt["text"]]
    assert not leaked, f"{len(leaked)} pieces of the key body in the prompt, e.g. {leaked[:2]}"


async def test_the_history_short_form_never_keeps_part_of_a_key(lsp, repo: Path, fake_openai):
    """The history keeps a request's first 1500 characters: the explained code's key block
    is cut there, after which the pattern no longer sees a whole block."""
    key = Corpus(SEED + 3).private_key("py")
    code = "def setup():\n" + _filler(20, "w") + _indent(key.text) + "\n    return True\n"
    fake_openai.reply = "It sets things up."
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": MODEL})
    uri = open_doc(client, repo / "setup.py", code)
    whole = {
        "start": {"line": 0, "character": 0},
        "end": {"line": code.count("\n"), "character": 0},
    }
    await command(client, "ctx.explain", {"uri": uri, "range": whole})
    fake_openai.reply = "Again."
    await command(client, "ctx.explain", {"uri": uri, "range": whole})
    history = (repo / ".ctx").rglob("history.jsonl")
    stored = "".join(p.read_text() for p in history)
    second = fake_openai.prompts()[-1]
    needles = _pem_needles(key)
    in_history = [n for n in needles if n in stored]
    in_prompt = [n for n in needles if n in second]
    assert not in_history, f"{len(in_history)} pieces of the key in history.jsonl"
    assert not in_prompt, f"{len(in_prompt)} pieces of the key in the next prompt (history)"


async def test_streamed_progress_never_logs_part_of_a_secret(
    logged_lsp, repo: Path, tmp_path: Path, fake_openai
):
    """Progress shows the streamed answer's last 120 characters, unmasked: a key the model
    writes is cut there, and pygls logs the report (-vv)."""
    token = Corpus(SEED + 4).github_token()
    # the last 120 characters hold only the token's end: its `ghp_` prefix is cut off
    tail = (
        " is the token you would use here; never commit it to the repository, keep it in a vault."
    )
    fake_openai.reply = "You could call it with " + token.value + tail
    log = tmp_path / "progress.log"
    client = await logged_lsp(repo, log, fake_openai.env(), {"model": MODEL})
    uri = open_doc(client, repo / "app.py")
    rng = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
    result = await command(client, "ctx.explain", {"uri": uri, "range": rng})
    assert token.value not in result["text"]
    await client.shutdown_session()
    logged = log.read_text()
    found = token.found_in(logged)
    assert not found, f"pieces of the model's token in the server log: {found}"


async def test_a_staged_secrets_file_never_reaches_the_commit_prompt(lsp, repo: Path, fake_openai):
    """A `.env` file is never read into the context, also when it is (wrongly) staged: its
    lines must not reach the commit-message prompt, masked or not."""
    corpus = Corpus(SEED + 5)
    db_pass = corpus.password(16)
    (repo / "deploy").mkdir()
    (repo / "deploy" / ".env.production").write_text(
        f"DB_HOST=db.internal\nDB_PASS={db_pass}\nSMTP_USER=mailer\n"
    )
    (repo / "deploy" / "run.sh").write_text("#!/bin/sh\nexec app --env production\n")
    git(repo, "add", "-f", "deploy/.env.production", "deploy/run.sh")
    fake_openai.reply = "chore(deploy): add production run script"
    client = await lsp(repo, env=fake_openai.env(), init_options={"model": MODEL})
    await command(client, "ctx.commitMessage", {"staged": True})
    (prompt,) = fake_openai.prompts()
    assert "exec app --env production" in prompt, "the allowed file's diff is there"
    assert db_pass not in prompt, "a staged .env file's values reach the prompt"
    assert "SMTP_USER=mailer" not in prompt, "a staged .env file's lines reach the prompt"


async def test_allowlisted_environment_is_masked_wherever_it_is_shown(lsp, repo: Path, fake_openai):
    """`envAllowlist` names whose value is a secret: hidden by name (SERVICE_TOKEN) or masked
    by value (DEPLOY_URL) in the prompt, the dry run and the context summary alike."""
    corpus = Corpus(SEED + 6)
    token, deploy = corpus.github_token(), corpus.url_password()
    env = {
        "SERVICE_TOKEN": token.value,
        "DEPLOY_URL": f"postgres://deploy:{deploy.value}@db.prod:5432/app",
        "APP_ENV": "staging",
    }
    client = await lsp(
        repo,
        env={**fake_openai.env(), **env},
        init_options={"model": MODEL, "envAllowlist": list(env)},
    )
    uri = open_doc(client, repo / "app.py")
    shown = {
        "showContext": (await command(client, "ctx.showContext"))["text"],
        "showPrompt": (
            await command(
                client, "ctx.showPrompt", {"uri": uri, "position": {"line": 1, "character": 4}}
            )
        )["text"],
    }
    for where, text in shown.items():
        assert "APP_ENV=staging" in text, where
        assert "DEPLOY_URL=postgres://deploy:<redacted:url-password>@db.prod" in text, where
        assert not token.found_in(text) and not deploy.found_in(text), where
