"""A corpus of realistic-looking but fake secrets, generated with a seeded RNG.

Every value has the right prefix, length and alphabet for its kind (`AKIA` + 16 upper-alnum,
`ghp_` + 36 alnum, PEM blocks of base64 lines…), so it looks like the real thing to a pattern
and to a person, but none of them was ever issued by anyone.

Each `Secret` knows:

- `kind`: the `<redacted:KIND>` expected where it is masked,
- `value`: the exact secret text,
- `text`: how it sits in a file (a line or a block of the given style),
- `needles()`: the strings to search for in anything that leaves the machine or reaches disk:
  the value itself and distinctive 12-character pieces of its random part, so a partial leak
  (a key cut in half by a window, a streamed tail) is caught too.

    corpus = Corpus(seed=1234)
    s = corpus.aws_key()                 # one fresh secret of a kind
    batch = corpus.one_of_each("py")     # one of every kind, as Python lines
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

UPPER_ALNUM = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
#: Password characters: no quotes, backslashes, `@`, `/` or `:` so values stay one token in any
#: file syntax and appear verbatim in JSON and in Python reprs.
PASSWORD = ALNUM + "!#$%^&*-_+=.~"

#: A needle this long is distinctive: random text of this length never occurs by chance.
NEEDLE = 12


@dataclass(frozen=True)
class Secret:
    kind: str
    value: str
    text: str
    #: the random part of the value (without a fixed prefix like `ghp_`), for partial needles
    core: str = ""
    #: extra needles given by the generator (PEM body lines)
    extra: tuple[str, ...] = ()
    label: str = field(default="", compare=False)

    def needles(self) -> list[str]:
        out = [self.value]
        core = self.core or self.value
        if len(core) >= NEEDLE + 4:
            mid = (len(core) - NEEDLE) // 2
            out += [core[:NEEDLE], core[mid : mid + NEEDLE], core[-NEEDLE:]]
        out += list(self.extra)
        seen: list[str] = []
        for n in out:
            if n not in seen:
                seen.append(n)
        return seen

    def found_in(self, haystack: str) -> list[str]:
        """The needles of this secret that occur in `haystack`."""
        return [n for n in self.needles() if n in haystack]


class Corpus:
    """Seeded generator: the same seed gives the same secrets, every call a new one."""

    def __init__(self, seed: int = 1234) -> None:
        self.rng = random.Random(seed)

    # -- primitives --------------------------------------------------------------------------

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def digits(self, n: int) -> str:
        return str(self.rng.randint(1, 9)) + self.chars(string.digits, n - 1)

    def password(self, n: int = 18) -> str:
        # always a digit, a letter of each case and a symbol, like a generated password
        base = [
            self.rng.choice(string.ascii_uppercase),
            self.rng.choice(string.ascii_lowercase),
            self.rng.choice(string.digits),
            self.rng.choice("!#$%^&*-_+=.~"),
        ] + [self.rng.choice(PASSWORD) for _ in range(n - 4)]
        self.rng.shuffle(base)
        return "".join(base)

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)

    # -- one generator per kind; `style` is the file syntax the line is written in ---------------

    def aws_key(self, style: str = "py") -> Secret:
        core = self.chars(UPPER_ALNUM, 16)
        value = self.pick("AKIA", "ASIA") + core
        text = {
            "py": f'boto3.client("s3", aws_access_key_id="{value}", region_name="eu-west-1")',
            "env": f"AWS_ACCESS_KEY_ID={value}",
            "yaml": f"  access_key_id: {value}",
            "md": f"Use the key id `{value}` for the staging bucket.",
        }[style]
        return Secret("aws-key", value, text, core)

    def aws_secret(self, style: str = "py") -> Secret:
        value = self.chars(ALNUM + "/+", 40)
        text = {
            "py": f'aws_secret_access_key = "{value}"',
            "env": f"AWS_SECRET_ACCESS_KEY={value}",
            "yaml": f"  aws_secret_access_key: {value}",
            "md": f"aws_secret_access_key = {value}",
        }[style]
        return Secret("aws-secret", value, text)

    def openai_key(self, style: str = "py") -> Secret:
        if self.rng.random() < 0.7:
            core = self.chars(B64URL, 48)
            value = "sk-proj-" + core
        else:
            core = self.chars(ALNUM, 48)
            value = "sk-" + core
        text = {
            "py": f'client = OpenAI(api_key="{value}")',
            "env": f"OPENAI_KEY={value}",
            "yaml": f"  openai: {value}",
            "md": f"The team key is {value} (do not share).",
        }[style]
        return Secret("openai-key", value, text, core)

    def anthropic_key(self, style: str = "py") -> Secret:
        core = self.chars(B64URL, 93)
        value = "sk-ant-api03-" + core + "AA"
        text = {
            "py": f'anthropic.Anthropic(api_key="{value}")',
            "env": f"CLAUDE={value}",
            "yaml": f"  claude: {value}",
            "md": f"Anthropic: {value}",
        }[style]
        return Secret("anthropic-key", value, text, core)

    def github_token(self, style: str = "py") -> Secret:
        kind = self.pick("ghp_", "gho_", "ghs_", "github_pat_")
        if kind == "github_pat_":
            core = self.chars(ALNUM, 22) + "_" + self.chars(ALNUM, 59)
        else:
            core = self.chars(ALNUM, 36)
        value = kind + core
        text = {
            "py": f'session.headers["Authorization"] = "Bearer {value}"',
            "env": f"GH_CLONE={value}",
            "yaml": f"  github: {value}",
            "md": f"git clone with {value} as the password",
        }[style]
        return Secret("github-token", value, text, core)

    def gitlab_token(self, style: str = "py") -> Secret:
        core = self.chars(B64URL, 20)
        value = "glpat-" + core
        text = {
            "py": f'gl = gitlab.Gitlab("https://gitlab.example.com", private_token="{value}")',
            "env": f"GITLAB={value}",
            "yaml": f"  gitlab: {value}",
            "md": f"GitLab PAT: {value}",
        }[style]
        return Secret("gitlab-token", value, text, core)

    def slack_token(self, style: str = "py") -> Secret:
        prefix = self.pick("xoxb-", "xoxp-")
        core = f"{self.digits(12)}-{self.digits(13)}-{self.chars(ALNUM, 24)}"
        value = prefix + core
        text = {
            "py": f'slack = WebClient("{value}")',
            "env": f"SLACK_BOT={value}",
            "yaml": f"  slack: {value}",
            "md": f"Slack bot: {value}",
        }[style]
        return Secret("slack-token", value, text, core)

    def slack_webhook(self, style: str = "py") -> Secret:
        core = (
            f"T{self.chars(UPPER_ALNUM, 8)}/B{self.chars(UPPER_ALNUM, 10)}/{self.chars(ALNUM, 24)}"
        )
        value = "https://hooks.slack.com/services/" + core
        text = {
            "py": f'requests.post("{value}", json={{"text": msg}})',
            "env": f"ALERTS_HOOK={value}",
            "yaml": f"  alerts_hook: {value}",
            "md": f"Alerts go to {value}",
        }[style]
        return Secret("slack-webhook", value, text, core)

    def stripe_key(self, style: str = "py") -> Secret:
        prefix = self.pick("sk_live_", "rk_live_", "sk_test_")
        core = self.chars(ALNUM, 24 + self.rng.randint(0, 75))
        value = prefix + core
        text = {
            "py": f'stripe.api_key = "{value}"',
            "env": f"STRIPE={value}",
            "yaml": f"  stripe: {value}",
            "md": f"Stripe: {value}",
        }[style]
        return Secret("stripe-key", value, text, core)

    def google_key(self, style: str = "py") -> Secret:
        core = self.chars(B64URL, 35)
        value = "AIza" + core
        text = {
            "py": f'MAPS_URL = "https://maps.googleapis.com/maps/api/js?key={value}"',
            "env": f"MAPS={value}",
            "yaml": f"  maps: {value}",
            "md": f"Maps browser key {value}",
        }[style]
        return Secret("google-key", value, text, core)

    def google_oauth(self, style: str = "py") -> Secret:
        core = self.chars(B64URL, 120)
        value = "ya29." + core
        text = {
            "py": f'creds = Credentials("{value}")',
            "env": f"GCLOUD_BEARER={value}",
            "yaml": f"  bearer: {value}",
            "md": f"curl -H 'Authorization: Bearer {value}'",
        }[style]
        return Secret("google-oauth", value, text, core)

    def jwt(self, style: str = "py") -> Secret:
        def b64(obj: dict) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        header = b64({"alg": "HS256", "typ": "JWT"})
        payload = b64(
            {
                "sub": self.digits(10),
                "name": self.pick("Ada Lovelace", "Alan Turing", "Grace Hopper"),
                "iat": self.rng.randint(1_600_000_000, 1_700_000_000),
                "jti": self.chars(HEX, 16),
            }
        )
        signature = self.chars(B64URL, 43)
        value = f"{header}.{payload}.{signature}"
        core = f"{payload}.{signature}"  # the header is the same in every JWT: not distinctive
        text = {
            "py": f'claims = jwt.decode("{value}", SECRET, algorithms=["HS256"])',
            "env": f"SESSION_JWT={value}",
            "yaml": f"  session: {value}",
            "md": f"Example session: {value}",
        }[style]
        return Secret("jwt", value, text, core, extra=(signature[:NEEDLE], payload[-NEEDLE:]))

    def private_key(self, style: str = "py", bits: int = 2048) -> Secret:
        label = self.pick("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY")
        n_chars = {2048: 1624, 4096: 3168}.get(bits, bits)
        if label == "EC PRIVATE KEY":
            n_chars = 220
        body = self.chars(B64, n_chars)
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        block = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"
        text = {
            "py": f'SIGNING_KEY = """\n{block}\n"""',
            "env": block,
            "yaml": "  signing_key: |\n" + "\n".join("    " + ln for ln in block.splitlines()),
            "md": f"```\n{block}\n```",
        }[style]
        # a needle from the first, a middle and the last body line: a cut block shows one
        picks = {lines[0][20 : 20 + NEEDLE], lines[len(lines) // 2][30 : 30 + NEEDLE]}
        picks.add(lines[-2][10 : 10 + NEEDLE] if len(lines) > 2 else lines[-1][:NEEDLE])
        return Secret("private-key", block, text, body[:64], extra=tuple(sorted(picks)))

    def npm_token(self, style: str = "py") -> Secret:
        core = self.chars(ALNUM, 36)
        value = "npm_" + core
        text = {
            "py": f'NPM_PUBLISH = "{value}"',
            "env": f"NPM_PUBLISH={value}",
            "yaml": f"  npm: {value}",
            "md": f"npm: {value}",
        }[style]
        return Secret("npm-token", value, text, core)

    def pypi_token(self, style: str = "py") -> Secret:
        core = "AgEIcHlwaS5vcmc" + self.chars(B64URL, 70)
        value = "pypi-" + core
        text = {
            "py": f'twine_password = "{value}"',
            "env": f"TWINE_UPLOAD={value}",
            "yaml": f"  pypi: {value}",
            "md": f"PyPI upload: {value}",
        }[style]
        return Secret("pypi-token", value, text, core[15:])

    def huggingface_token(self, style: str = "py") -> Secret:
        core = self.chars(ALNUM, 34)
        value = "hf_" + core
        text = {
            "py": f'login("{value}")',
            "env": f"HF_HUB={value}",
            "yaml": f"  hub: {value}",
            "md": f"HF: {value}",
        }[style]
        return Secret("huggingface-token", value, text, core)

    def url_password(self, style: str = "py") -> Secret:
        password = self.password(20)
        scheme, user, rest = self.rng.choice(
            [
                ("postgres", "app", "db.internal:5432/orders"),
                ("postgresql", "report_ro", "10.0.3.7/analytics"),
                ("mysql", "root", "mysql.svc:3306/shop"),
                ("amqp", "worker", "rabbit.internal:5672/%2F"),
                ("mongodb+srv", "admin", "cluster0.ab1cd.mongodb.net/app?retryWrites=true"),
                ("https", "deploy", "artifacts.example.com/simple/"),
            ]
        )
        url = f"{scheme}://{user}:{password}@{rest}"
        text = {
            "py": f'engine = create_engine("{url}")',
            "env": f"DATABASE_URL={url}",
            "yaml": f"  url: {url}",
            "md": f"Connect with `{url}`.",
        }[style]
        return Secret("url-password", password, text)

    def assignment(self, style: str = "py") -> Secret:
        value = self.password(self.rng.randint(14, 24))
        name = self.pick(
            "password",
            "db_password",
            "secret",
            "client_secret",
            "token",
            "api_key",
            "apiKey",
            "auth_token",
            "SECRET_KEY",
        )
        text = {
            "py": f'{name} = "{value}"',
            "env": f"{name.upper()}={value}",
            "yaml": f'  {name}: "{value}"',
            "md": f"`{name} = '{value}'`",
            "json": f'  "{name}": "{value}",',
        }[style]
        return Secret("assignment", value, text)

    # -- batches -----------------------------------------------------------------------------

    def kinds(self) -> dict[str, Callable[..., Secret]]:
        return {
            "private-key": self.private_key,
            "anthropic-key": self.anthropic_key,
            "openai-key": self.openai_key,
            "github-token": self.github_token,
            "gitlab-token": self.gitlab_token,
            "slack-token": self.slack_token,
            "slack-webhook": self.slack_webhook,
            "stripe-key": self.stripe_key,
            "aws-key": self.aws_key,
            "google-key": self.google_key,
            "google-oauth": self.google_oauth,
            "jwt": self.jwt,
            "npm-token": self.npm_token,
            "pypi-token": self.pypi_token,
            "huggingface-token": self.huggingface_token,
            "url-password": self.url_password,
            "aws-secret": self.aws_secret,
            "assignment": self.assignment,
        }

    def one_of_each(self, style: str = "py") -> list[Secret]:
        return [make(style) for make in self.kinds().values()]

    def some(self, n: int, style: str = "py") -> list[Secret]:
        """`n` secrets of kinds drawn in turn from a shuffled list of all kinds."""
        makers = list(self.kinds().values())
        self.rng.shuffle(makers)
        return [makers[i % len(makers)](style) for i in range(n)]


def file_text(secrets: list[Secret], style: str = "py", header: str = "") -> str:
    """A file holding `secrets` one per line (blocks as they are), between ordinary lines."""
    lines = [header] if header else []
    for i, s in enumerate(secrets):
        lines.append(s.text)
        if style == "py" and i % 3 == 2:
            lines.append("")
    return "\n".join(lines) + "\n"
