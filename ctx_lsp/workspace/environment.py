"""Environment variables in the context: allowlisted names only, secrets never."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ctx_lsp.text.redact import redact

#: A name that looks like it holds a secret: its value never enters the context.
SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSW|PWD$|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE|SIGNATURE|CERT",
    re.IGNORECASE,
)
HIDDEN = "<hidden: secret-looking name>"


def looks_secret(name: str) -> bool:
    return name != "PWD" and bool(SECRET_NAME.search(name))


def allowed_environment(env: Mapping[str, str], allowlist: Iterable[str]) -> dict[str, str]:
    """Allowlisted variables that are set; secret-looking names keep their name only."""
    out: dict[str, str] = {}
    for name in allowlist:
        if name in env:
            out[name] = HIDDEN if looks_secret(name) else redact(env[name])
    return out
