"""Files that never enter the context: ignored by git or `.ctxignore`, `.env*`,
key and credential files. Checked for open documents and pinned files alike."""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath

import pathspec

#: Built-in: files that hold secrets by nature (gitignore syntax).
SECRET_FILES = [
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".npmrc",
    ".netrc",
    "_netrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    "credentials",
    "credentials.json",
    "*.kdbx",
    ".aws/",
    ".ssh/",
    ".gnupg/",
    ".docker/config.json",
    "secrets.y*ml",
    "*.tfstate",
]
_BUILTIN = pathspec.GitIgnoreSpec.from_lines(SECRET_FILES)
#: Seconds an answer stays good: a new ignore rule counts within this time.
ANSWER_TTL_S = 2.0
_ALWAYS = pathspec.GitIgnoreSpec.from_lines([".git/", ".ctx/"])


class Excluder:
    """Answers "may this file be read into the context?" for one workspace folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._specs: dict[tuple[Path, str], tuple[float, pathspec.PathSpec | None]] = {}
        self._answers: dict[str, tuple[float, str | None]] = {}

    def _spec(self, directory: Path, name: str) -> pathspec.PathSpec | None:
        path = directory / name
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        cached = self._specs.get((directory, name))
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            spec = pathspec.GitIgnoreSpec.from_lines(lines)
        except (OSError, ValueError):
            spec = None
        self._specs[(directory, name)] = (mtime, spec)
        return spec

    def reason(self, rel: str) -> str | None:
        """Why `rel` (relative to the root, posix) is excluded, or None if it may be read.
        Answers are remembered for a moment: every completion asks for every open file."""
        now = time.monotonic()
        hit = self._answers.get(rel)
        if hit is not None and now - hit[0] < ANSWER_TTL_S:
            return hit[1]
        answer = self._reason(rel)
        if len(self._answers) > 4096:
            self._answers.clear()
        self._answers[rel] = (now, answer)
        return answer

    def _reason(self, rel: str) -> str | None:
        if _ALWAYS.match_file(rel):
            return "it is ctx-lsp's or git's own data"
        if _BUILTIN.match_file(rel):
            return "it is a secrets or key file (built-in rule)"
        parts = PurePosixPath(rel).parts
        git_info = self._spec(self.root / ".git" / "info", "exclude")
        if git_info is not None and git_info.match_file(rel):
            return "git ignores it (.git/info/exclude)"
        # each folder's .gitignore / .ctxignore applies to paths below it
        for depth in range(len(parts)):
            directory = self.root.joinpath(*parts[:depth])
            sub = "/".join(parts[depth:])
            for name, label in ((".gitignore", "git ignores it"), (".ctxignore", ".ctxignore")):
                spec = self._spec(directory, name)
                if spec is not None and spec.match_file(sub):
                    where = "/".join((*parts[:depth], name))
                    return f"{label} ({where})" if name == ".gitignore" else f"it matches {where}"
        return None
