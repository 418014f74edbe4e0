"""Masking, kind by kind: what must be masked (and as which kind), what must stay as it is
so completions are not ruined, and the forms secrets take in logs and cut windows.

Secret values are generated (tests/secrets_corpus.py), never written here as literals, so this
file does not itself look like a leaked key to a secret scanner.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re

import pytest

from ctx_lsp.text import redact as redact_module
from ctx_lsp.text.redact import RedactingFilter, find_secrets, redact
from tests.secrets_corpus import ALNUM, B64URL, UPPER_ALNUM, Corpus

C = Corpus(seed=4242)
V = {
    "akia": "AKIA" + C.chars(UPPER_ALNUM, 16),
    "asia": "ASIA" + C.chars(UPPER_ALNUM, 16),
    "aws_secret": C.chars(ALNUM + "/+", 40),
    "sk_proj": "sk-proj-" + C.chars(B64URL, 48),
    "sk_legacy": "sk-" + C.chars(ALNUM, 48),
    "sk_svc": "sk-svcacct-" + C.chars(B64URL, 40),
    "sk_ant": "sk-ant-api03-" + C.chars(B64URL, 93) + "AA",
    "ghp": "ghp_" + C.chars(ALNUM, 36),
    "gho": "gho_" + C.chars(ALNUM, 36),
    "ghs": "ghs_" + C.chars(ALNUM, 36),
    "gh_pat": "github_pat_" + C.chars(ALNUM, 22) + "_" + C.chars(ALNUM, 59),
    "glpat": "glpat-" + C.chars(B64URL, 20),
    "xoxb": f"xoxb-{C.digits(12)}-{C.digits(13)}-{C.chars(ALNUM, 24)}",
    "xoxp": f"xoxp-{C.digits(12)}-{C.digits(12)}-{C.digits(13)}-{C.chars(ALNUM, 32)}",
    "hook": "https://hooks.slack.com/services/T"
    + C.chars(UPPER_ALNUM, 8)
    + "/B"
    + C.chars(UPPER_ALNUM, 10)
    + "/"
    + C.chars(ALNUM, 24),
    "sk_live": "sk_live_" + C.chars(ALNUM, 24),
    "rk_live": "rk_live_" + C.chars(ALNUM, 99),
    "sk_test": "sk_test_" + C.chars(ALNUM, 24),
    "aiza": "AIza" + C.chars(B64URL, 35),
    "ya29": "ya29." + C.chars(B64URL, 100),
    "jwt": C.jwt().value,
    "npm": "npm_" + C.chars(ALNUM, 36),
    "pypi": "pypi-AgEIcHlwaS5vcmc" + C.chars(B64URL, 60),
    "hf": "hf_" + C.chars(ALNUM, 34),
    "pw": C.password(18),
    "pw_bare": C.chars(ALNUM, 10) + "7",
}


def _pem(label: str, n: int = 1624) -> tuple[str, str]:
    """(block, its body) for a PEM private key with the given label."""
    body = C.chars(ALNUM + "+/", n)
    lines = [body[i : i + 64] for i in range(0, n, 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----", body


PEMS = {
    label: _pem(label)
    for label in (
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    )
}


def p(text: str, kind: str, secret: str, id: str):
    return pytest.param(text.format(**V), kind, secret.format(**V), id=id)


# (text with the secret in context, expected kind, the secret that must be gone)
POSITIVE = [
    p('boto3.client("s3", aws_access_key_id="{akia}")', "aws-key", "{akia}", "aws-key-akia"),
    p("temporary credentials: {asia}", "aws-key", "{asia}", "aws-key-asia-prose"),
    p("aws_secret_access_key = {aws_secret}", "aws-secret", "{aws_secret}", "aws-secret-ini"),
    p('AWS_SECRET_ACCESS_KEY="{aws_secret}"', "aws-secret", "{aws_secret}", "aws-secret-env"),
    p('client = OpenAI(api_key="{sk_proj}")', "openai-key", "{sk_proj}", "openai-project"),
    p("export OPENAI_API_KEY={sk_legacy}", "openai-key", "{sk_legacy}", "openai-legacy"),
    p("key: {sk_svc}", "openai-key", "{sk_svc}", "openai-service-account"),
    p("ANTHROPIC_API_KEY={sk_ant}", "anthropic-key", "{sk_ant}", "anthropic"),
    p('headers["Authorization"] = "token {ghp}"', "github-token", "{ghp}", "github-classic"),
    p("oauth: {gho}", "github-token", "{gho}", "github-oauth"),
    p("git clone https://{ghs}@github.com/o/r", "github-token", "{ghs}", "github-app"),
    p("GH_TOKEN={gh_pat}", "github-token", "{gh_pat}", "github-fine-grained"),
    p('Gitlab(url, private_token="{glpat}")', "gitlab-token", "{glpat}", "gitlab"),
    p('WebClient("{xoxb}")', "slack-token", "{xoxb}", "slack-bot"),
    p("user token {xoxp}", "slack-token", "{xoxp}", "slack-user"),
    p('requests.post("{hook}", json=m)', "slack-webhook", "{hook}", "slack-webhook"),
    p('stripe.api_key = "{sk_live}"', "stripe-key", "{sk_live}", "stripe-live"),
    p("restricted: {rk_live}", "stripe-key", "{rk_live}", "stripe-restricted"),
    p("STRIPE={sk_test}", "stripe-key", "{sk_test}", "stripe-test"),
    p('src="https://maps.googleapis.com/maps/api/js?key={aiza}"', "google-key", "{aiza}", "google"),
    p('Credentials("{ya29}")', "google-oauth", "{ya29}", "google-oauth"),
    p("Authorization: Bearer {jwt}", "jwt", "{jwt}", "jwt-header"),
    p('document.cookie = "session={jwt}; path=/"', "jwt", "{jwt}", "jwt-cookie"),
    p("//registry.npmjs.org/:_authToken={npm}", "npm-token", "{npm}", "npm"),
    p("password = {pypi}", "pypi-token", "{pypi}", "pypi"),
    p('login("{hf}")', "huggingface-token", "{hf}", "huggingface"),
    # URLs with a password: only the password goes
    p('create_engine("postgres://app:{pw}@db:5432/x")', "url-password", "{pw}", "url-postgres"),
    p("mysql://root:{pw}@mysql.svc:3306/shop", "url-password", "{pw}", "url-mysql"),
    p("mongodb+srv://admin:{pw}@c0.mongodb.net/app", "url-password", "{pw}", "url-mongodb-srv"),
    p("amqp://worker:{pw}@rabbit:5672/%2F", "url-password", "{pw}", "url-amqp"),
    p("https://deploy:{pw}@artifacts.example.com/simple/", "url-password", "{pw}", "url-https"),
    # Redis URLs usually have no user: redis://:password@host
    p("REDIS_URL=redis://:{pw}@cache:6379/0", "url-password", "{pw}", "url-redis-no-user"),
    # password|secret|token|api_key = "<value>" in every common syntax
    p('password = "{pw}"', "assignment", "{pw}", "assign-python"),
    p("db_password = '{pw}'", "assignment", "{pw}", "assign-single-quotes"),
    p('SECRET_KEY: str = "{pw}"', "assignment", "{pw}", "assign-annotated"),
    p('{{"client_secret": "{pw}"}}', "assignment", "{pw}", "assign-json"),
    p('  "access_token": "{pw}",', "assignment", "{pw}", "assign-json-member"),
    p('apiKey: "{pw}",', "assignment", "{pw}", "assign-js-object"),
    p('token := "{pw}"', "assignment", "{pw}", "assign-go"),
    p("'password' => '{pw}',", "assignment", "{pw}", "assign-php"),
    p("db_password: {pw_bare}", "assignment", "{pw_bare}", "assign-yaml-bare"),
    p("API_KEY={pw_bare}", "assignment", "{pw_bare}", "assign-dotenv"),
    p("export AUTH_TOKEN={pw_bare}", "assignment", "{pw_bare}", "assign-shell-export"),
    p("mysql --password={pw_bare} shop", "assignment", "{pw_bare}", "assign-cli-flag"),
    p('x-api-key: "{pw}"', "assignment", "{pw}", "assign-header-name"),
    p('[pypi]\npassword = "{pw}"', "assignment", "{pw}", "assign-toml"),
    # the forms text takes in log records: JSON-escaped (pygls logs every message as JSON)
    p('{{"text": "password = \\"{pw}\\"\\n"}}', "assignment", "{pw}", "assign-json-escaped"),
    p('{{"text": "{{\\"api_key\\": \\"{pw}\\"}}"}}', "assignment", "{pw}", "assign-json-in-json"),
]
POSITIVE += [
    pytest.param(block, "private-key", body[70:110], id=f"pem-{label.lower().replace(' ', '-')}")
    for label, (block, body) in PEMS.items()
]
_rsa, _rsa_body = PEMS["RSA PRIVATE KEY"]
POSITIVE += [
    pytest.param(
        "signing_key: |\n" + "\n".join("  " + ln for ln in _rsa.splitlines()),
        "private-key",
        _rsa_body[70:110],
        id="pem-indented-yaml",
    ),
    # cut by a window, a head of N lines or a truncated history entry: the secret is still one
    pytest.param(
        'KEY = """\n' + _rsa[: len(_rsa) // 2],
        "private-key",
        _rsa_body[70:110],
        id="pem-cut-no-end",
    ),
    pytest.param(
        _rsa[len(_rsa) // 2 :] + '\n"""\n\ndef sign(data):\n    ...',
        "private-key",
        _rsa.splitlines()[-3][10:50],
        id="pem-cut-no-begin",
    ),
]


@pytest.mark.parametrize(("text", "kind", "secret"), POSITIVE)
def test_each_kind_is_masked_as_its_kind(text: str, kind: str, secret: str):
    masked = redact(text)
    assert secret not in masked
    assert f"<redacted:{kind}>" in masked, masked
    assert kind in find_secrets(text)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # a service account file: the escaped key is masked, as a key or as the whole value
        pytest.param(
            json.dumps({"type": "service_account", "private_key": _rsa + "\n"}),
            _rsa_body[70:110],
            id="pem-json-escaped",
        ),
        pytest.param(
            json.dumps({"messages": [{"content": f'password = "{V["pw"]}"'}]}),
            V["pw"],
            id="json-escaped-assignment",
        ),
        pytest.param(
            repr(f"it's \"ok\": api_key = '{V['pw']}'"), V["pw"], id="repr-escaped-quotes"
        ),
    ],
)
def test_escaped_forms_are_masked(text: str, secret: str):
    masked = redact(text)
    assert secret not in masked and "<redacted:" in masked, masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('password = "{pw}"', 'password = "<redacted:assignment>"', id="assignment"),
        pytest.param(
            "postgres://app:{pw}@db:5432/orders",
            "postgres://app:<redacted:url-password>@db:5432/orders",
            id="url-keeps-user-and-host",
        ),
        pytest.param(
            'boto3.client("s3", aws_access_key_id="{akia}")',
            'boto3.client("s3", aws_access_key_id="<redacted:aws-key>")',
            id="key-inside-call",
        ),
        pytest.param(
            "AWS_ACCESS_KEY_ID={akia}\nregion = eu-west-1\n",
            "AWS_ACCESS_KEY_ID=<redacted:aws-key>\nregion = eu-west-1\n",
            id="kind-wins-over-assignment",
        ),
        pytest.param(
            'KEY = """\n{pem}\n"""\n\ndef sign(data):\n    return hmac(KEY, data)\n',
            'KEY = """\n<redacted:private-key>\n"""\n\n'
            "def sign(data):\n    return hmac(KEY, data)\n",
            id="pem-block-and-code-after-it",
        ),
    ],
)
def test_masks_keep_the_text_readable(text: str, expected: str):
    values = {**V, "pem": _rsa}
    assert redact(text.format(**values)) == expected.format(**values)


# Ordinary code: masking any of it would ruin completions (and explanations) for nothing.
NEGATIVE = [
    pytest.param("token = get_token()", id="call"),
    pytest.param("password_field = form.password", id="attribute"),
    pytest.param("self.api_key = api_key", id="self-assignment"),
    pytest.param('key = "user_id"', id="key-name-string"),
    pytest.param("password=password, token=token", id="keyword-passthrough"),
    pytest.param('password = os.environ["DB_PASSWORD"]', id="environ-lookup"),
    pytest.param('api_key = os.environ.get("OPENAI_API_KEY", "")', id="environ-get"),
    pytest.param('access_key = os.getenv("AWS_ACCESS_KEY_ID")', id="getenv"),
    pytest.param("password = None", id="none"),
    pytest.param('token: str = ""', id="empty-string"),
    pytest.param('if token == "Bearer":', id="comparison"),
    pytest.param('headers = {"Authorization": f"Bearer {token}"}', id="f-string"),
    pytest.param("secret = settings.SECRET_KEY", id="settings-reference"),
    pytest.param('password = getpass.getpass("Password: ")', id="getpass"),
    pytest.param("def check_password(password: str) -> bool:", id="signature"),
    pytest.param('parser.add_argument("--token", help="API token")', id="argparse"),
    pytest.param("PASSWORD_MIN_LENGTH = 12", id="small-number"),
    pytest.param("max_tokens = 256", id="max-tokens"),
    pytest.param("tokens = tokenizer.encode(text)", id="tokenizer-call"),
    pytest.param("auth = HTTPBasicAuth(user, password)", id="auth-object"),
    pytest.param("token = tokens[0]", id="subscript"),
    pytest.param('token = response.json()["access_token"]', id="json-lookup"),
    pytest.param('sort_key = "created_at"', id="sort-key"),
    pytest.param('primary_key = "id"', id="primary-key"),
    pytest.param('keystore_path = "/etc/ssl/keystore.jks"', id="keystore-path"),
    pytest.param('api_version = "2024-02-15-preview"', id="api-version"),
    pytest.param("token: ${{ secrets.GITHUB_TOKEN }}", id="github-actions-secret-ref"),
    pytest.param("POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-postgres}", id="compose-env-ref"),
    pytest.param("pwd = os.getcwd()", id="pwd"),
    pytest.param('uid = "550e8400-e29b-41d4-a716-446655440000"', id="uuid"),
    pytest.param('commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"', id="git-sha"),
    pytest.param("Fixed in 9fceb02 and a1b2c3d.", id="short-shas"),
    pytest.param(
        'digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"', id="sha256"
    ),
    pytest.param(
        'img = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk'
        'YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="',
        id="base64-image",
    ),
    pytest.param('"integrity": "sha512-Zq8xv2LmP9abcdefghijklmnop+/Q=="', id="lockfile-integrity"),
    pytest.param('url = "https://example.com:8080/path"', id="url-with-port"),
    pytest.param('dsn = "postgres://localhost:5432/db"', id="url-without-password"),
    pytest.param("git@github.com:org/repo.git", id="ssh-remote"),
    pytest.param('deps = ["sk-learn", "task-runner"]', id="sk-prefix-words"),
    pytest.param('aws_region = "eu-west-1"', id="aws-region"),
    pytest.param("version: 1.2.3-rc.1", id="version"),
    pytest.param("<redacted:aws-key> and <redacted:assignment>", id="already-masked"),
    # false positives found while writing these tests: they hide ordinary configuration
    pytest.param('__author__ = "Jane Doe"', id="fp-author"),
    pytest.param('"author": "Ada Lovelace",', id="fp-author-json"),
    pytest.param('authority = "https://login.microsoftonline.com/common"', id="fp-authority"),
    pytest.param('"tokenizer": "cl100k_base",', id="fp-tokenizer"),
    pytest.param('"tokenizer_class": "GPT2Tokenizer",', id="fp-tokenizer-class"),
    pytest.param('TOKEN_URL = "https://oauth2.googleapis.com/token"', id="fp-token-url"),
    pytest.param('auth_url = "https://login.example.com/oauth2/authorize"', id="fp-auth-url"),
    pytest.param("token_endpoint: https://auth.example.com/oauth2/token", id="fp-token-endpoint"),
    pytest.param('token_type = "bearer"', id="fp-token-type"),
    pytest.param('api_key_header = "X-API-Key"', id="fp-api-key-header"),
    pytest.param('secret_name = "prod/db/credentials"', id="fp-secret-name"),
    pytest.param('PASSWORD_RESET_TEMPLATE = "emails/password_reset.html"', id="fp-template"),
    pytest.param('AUTH_USER_MODEL = "accounts.User"', id="fp-auth-user-model"),
    pytest.param("max_tokens = 1_000_000", id="fp-big-number"),
    pytest.param('"max_tokens": 100000000,', id="fp-big-number-json"),
    pytest.param("token = self.tokens_v2[0]", id="fp-dotted-reference"),
    pytest.param("secret = config.v2.secret", id="fp-dotted-reference-2"),
    pytest.param('password: "${DB_PASSWORD}"', id="fp-quoted-env-ref"),
]


@pytest.mark.parametrize("text", NEGATIVE)
def test_ordinary_code_is_not_masked(text: str):
    assert redact(text) == text
    assert find_secrets(text) == []


# Secrets outside the required list, seen in real code: HTTP credentials, Azure
# connection strings and passphrases (no digit) in environment files.
@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        p(
            "curl -H 'Authorization: Bearer {pw_bare}{pw_bare}' https://api.example.com",
            "bearer-token",
            "{pw_bare}{pw_bare}",
            id="bearer-opaque-token",
        ),
        p(
            'headers = {{"Authorization": "Bearer {pw_bare}{pw_bare}"}}',
            "bearer-token",
            "{pw_bare}{pw_bare}",
            id="bearer-in-code",
        ),
        pytest.param(
            "Authorization: bearer " + C.chars(ALNUM.replace("0123456789", ""), 40),
            "bearer-token",
            "",
            id="bearer-mixed-case-no-digit",
        ),
        p(
            "Authorization: Basic dXNlcjpacThYdjJMbVA5cGFzcw==",
            "basic-auth",
            "dXNlcjpacThYdjJMbVA5cGFzcw==",
            id="basic-auth-header",
        ),
        p(
            'xhr.setRequestHeader("Authorization", "Basic dXNlcjpwYXNz")',
            "basic-auth",
            "dXNlcjpwYXNz",
            id="basic-auth-in-code",
        ),
        p(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={aws_secret}{aws_secret}==;",
            "azure-key",
            "{aws_secret}{aws_secret}",
            id="azure-storage-account-key",
        ),
        p(
            "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;"
            "SharedAccessKey={aws_secret}=",
            "azure-key",
            "{aws_secret}",
            id="azure-service-bus-key",
        ),
        p(
            "SESSION_SECRET=correcthorsebatterystaple",
            "assignment",
            "correcthorsebatterystaple",
            id="no-digit",
        ),
        p(
            "export DB_PASSWORD=correct-horse-battery\n",
            "assignment",
            "correct-horse-battery",
            id="no-digit-shell-export",
        ),
        p(
            "SECRET_KEY_BASE=correcthorsebatterystaple node app.js",
            "assignment",
            "correcthorsebatterystaple",
            id="no-digit-inline-env",
        ),
        p(
            '{{"text": "SESSION_SECRET=correcthorsebatterystaple\\n"}}',
            "assignment",
            "correcthorsebatterystaple",
            id="no-digit-json-escaped",
        ),
    ],
)
def test_http_credentials_azure_keys_and_passphrases(text: str, kind: str, secret: str):
    masked = redact(text)
    if not secret:  # the whole token after the scheme
        secret = text.split()[-1]
    assert secret not in masked
    assert f"<redacted:{kind}>" in masked, masked
    assert kind in find_secrets(text)
    assert redact(masked) == masked


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('headers = {"Authorization": "Bearer " + self.token}', id="bearer-concat"),
        pytest.param("Authorization: Bearer $GITHUB_TOKEN", id="bearer-shell-var"),
        pytest.param("Authorization: Bearer ${TOKEN}", id="bearer-env-ref"),
        pytest.param("Authorization: Bearer YOUR_ACCESS_TOKEN_HERE", id="bearer-placeholder"),
        pytest.param("Authorization: Bearer <token>", id="bearer-angle-placeholder"),
        pytest.param("Authorization: Bearer self.access_token_v2", id="bearer-dotted-name"),
        pytest.param('WWW-Authenticate: Bearer realm="api", error="invalid_token"', id="www-auth"),
        pytest.param("Bearer tokens (RFC 6750) travel in the Authorization header.", id="prose"),
        pytest.param("Authorization: Basic credentials", id="basic-prose"),
        pytest.param("Authorization: Basic username:password", id="basic-doc-placeholder"),
        pytest.param("Authorization: Basic base64(user:pass)", id="basic-call"),
        pytest.param('header = "Basic " + b64encode(f"{user}:{pw}".encode())', id="basic-built"),
        pytest.param('conn = f"AccountName={name};AccountKey={key}"', id="azure-f-string"),
        pytest.param("AccountKey=<your-storage-key>", id="azure-placeholder"),
        pytest.param("app.config.update(SECRET_KEY=secret_key)", id="env-name-kwarg"),
        pytest.param("connect(USER=user, PASSWORD=password)", id="env-name-kwargs"),
        pytest.param("dict(API_TOKEN=apitokenvalue, DEBUG=True)", id="env-name-kwarg-word"),
        pytest.param("SECRET_KEY=${SECRET_KEY}", id="env-self-ref"),
        pytest.param("API_KEY=$(API_KEY)", id="make-var-ref"),
        pytest.param("SECRET_KEY=your_secret_key_here", id="env-placeholder-identifier"),
        pytest.param("SECRET_KEY=os.environ", id="env-dotted"),
        pytest.param("TOKEN_URL=https://auth.example.com/token", id="env-token-url"),
        pytest.param("SECRET_NAME=prodsecrets", id="env-secret-name"),
        pytest.param("PASSWORD_HASHERS=argonhasher", id="env-config-name"),
        pytest.param("PWD=homedirectory", id="env-pwd"),
        pytest.param("session_secret=readfromvault", id="env-lowercase-name-left"),
    ],
)
def test_http_credentials_and_passphrases_leave_code_alone(text: str):
    assert redact(text) == text
    assert find_secrets(text) == []


def test_the_api_key_is_masked_by_value_whatever_its_shape():
    key = C.chars("0123456789abcdef", 32)  # Azure-style: no pattern knows it
    text = f'client = AzureOpenAI(api_key=os.environ.get("K", "{key}"))\nprint("{key}")'
    masked = redact(text, [key])
    assert key not in masked and masked.count("<redacted:api-key>") == 2
    assert redact("abc", ["abc"]) == "abc", "values too short to be keys are left alone"
    assert redact("", [key]) == ""


@pytest.mark.parametrize("style", ["py", "env", "yaml", "md"])
def test_the_whole_corpus_is_masked_in_every_file_style(style: str):
    corpus = Corpus(seed=99)
    for _ in range(8):
        for secret in corpus.one_of_each(style):
            masked = redact(secret.text)
            assert not secret.found_in(masked), (secret.kind, masked)
            assert "<redacted:" in masked


def test_masking_is_idempotent():
    corpus = Corpus(seed=7)
    text = "\n".join(s.text for s in corpus.one_of_each("py") + corpus.one_of_each("yaml"))
    once = redact(text)
    assert redact(once) == once


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("pygls.protocol", logging.INFO, __file__, 1, msg, args, None)


def test_log_records_are_masked_as_pygls_writes_them():
    """pygls logs `Sending data: <json>` and `Sending notification: … <repr>`."""
    secret = V["pw"]
    body = json.dumps({"result": {"text": f'password = "{secret}"\nkey = "{V["akia"]}"'}})
    record = _record("Sending data: %s", body)
    assert RedactingFilter().filter(record) is True
    message = record.getMessage()
    assert V["akia"] not in message and secret not in message, message

    params = {"value": {"message": f"db is postgres://app:{secret}@db/x"}}
    record = _record("Sending notification: '%s' %s", "$/progress", params)
    RedactingFilter().filter(record)
    assert secret not in record.getMessage()


def test_a_broken_log_record_is_passed_through():
    record = _record("%d items", "not a number")
    assert RedactingFilter().filter(record) is True


# Inputs that made a pattern backtrack once, each as a function of a repeat count.
_ADVERSARIAL = [
    pytest.param(
        lambda n: (
            'blob = "' + base64.urlsafe_b64encode(random.Random(1).randbytes(6 * n)).decode() + '"'
        ),
        10_000,
        id="long-base64url-line",
    ),
    pytest.param(lambda n: "token" * n, 12_000, id="long-word-of-keywords"),
    pytest.param(lambda n: "Authorization: Bearer " * n, 20_000, id="many-bearer-headers"),
    pytest.param(
        lambda n: "Authorization: Basic " + "QUJD" * n + "A", 100_000, id="long-basic-run"
    ),
    pytest.param(lambda n: " SECRET_KEY_KEY_KEY" * n, 20_000, id="many-env-names"),
    pytest.param(
        lambda n: "\n".join(
            f"password_{i} = get_password({i}); token_{i} = tok[{i}]" for i in range(n)
        ),
        3_000,
        id="many-keyword-lines",
    ),
]


class _CountingPattern:
    """A compiled pattern that counts the characters it is asked to look at (one per `match`
    attempt, the whole text for a `sub` or `search`) and stops a run past `budget` of them."""

    def __init__(self, pattern: re.Pattern[str], work: list[int]) -> None:
        self._pattern, self._work, self.groups = pattern, work, pattern.groups

    def _spend(self, n: int) -> None:
        self._work[0] += n
        if self._work[0] > self._work[1]:
            raise AssertionError(f"over {self._work[1]} pattern attempts")

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        self._spend(1)
        return self._pattern.match(text, pos)

    def sub(self, repl, text: str) -> str:
        self._spend(len(text))
        return self._pattern.sub(repl, text)

    def search(self, text: str) -> re.Match[str] | None:
        self._spend(len(text))
        return self._pattern.search(text)


@pytest.mark.parametrize(("make", "n"), _ADVERSARIAL)
def test_masking_stays_linear_on_large_input(monkeypatch: pytest.MonkeyPatch, make, n: int):
    """Prompts can be large (contextTokens up to 1M) and every log record is masked: no input
    may make masking do work that grows faster than the text. Counted, not timed (the time
    is in bench/bench_masking.py): the pattern attempts on twice the text are at most about
    twice as many, and a few per character at most."""
    work = [0, 0]  # spent, budget
    counting = [(kind, _CountingPattern(p, work)) for kind, p in redact_module._COMPILED]
    monkeypatch.setattr(redact_module, "_COMPILED", counting)
    costs = []
    for size in (n // 2, n):
        text = make(size)
        work[:] = [0, 40 * len(text)]  # every pattern over the whole text is 23 per character
        masked = redact(text, remember=False)
        costs.append(work[0] / len(text))
        work[1] = 10**12
        assert masked == redact_module._mask_everywhere(text), "the same result as a full scan"
    half, full = costs
    assert full <= half * 1.1 + 0.01, f"attempts per character grew: {half:.3f} -> {full:.3f}"
