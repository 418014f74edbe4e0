"""Files that never enter the context: ignored by git or `.ctxignore`, `.env*`,
key and credential files. Checked for open documents and pinned files alike."""

from __future__ import annotations

import os
import subprocess
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
    ".env*",
    "*.crt",
    "*.cer",
    "*.ppk",
    ".pgpass",
    ".kube/",
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
        self._global = _global_excludes(root)

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
        # key files keep their nature whatever the case of their name (SERVER.KEY)
        if _BUILTIN.match_file(rel) or _BUILTIN.match_file(rel.lower()):
            return "it is a secrets or key file (built-in rule)"
        parts = PurePosixPath(rel).parts
        for name, label in ((".gitignore", "git ignores it"), (".ctxignore", "it matches")):
            # git's rules: each parent folder first (nothing below an excluded folder comes
            # back); within one path, the last matching rule wins, from the global excludes
            # file and .git/info/exclude through the .gitignore files from the root down
            for i in range(1, len(parts) + 1):
                path = "/".join(parts[:i]) + ("/" if i < len(parts) else "")
                verdict, where = None, None
                for spec, base, source in self._sources(name, parts[: i - 1]):
                    result = spec.check_file(path[len(base) + 1 :] if base else path)
                    if result.include is not None:
                        verdict, where = result.include, source
                if verdict:
                    return f"{label} ({where})" if name == ".gitignore" else f"{label} {where}"
        return None

    def _sources(
        self, name: str, folders: tuple[str, ...]
    ) -> list[tuple[pathspec.PathSpec, str, str]]:
        """(spec, folder it applies to, label), lowest precedence first."""
        found: list[tuple[pathspec.PathSpec | None, str, str]] = []
        if name == ".gitignore":
            if self._global is not None:
                found.append(
                    (self._spec(self._global.parent, self._global.name), "", str(self._global))
                )
            found.append(
                (self._spec(self.root / ".git" / "info", "exclude"), "", ".git/info/exclude")
            )
        for depth in range(len(folders) + 1):
            base = "/".join(folders[:depth])
            found.append(
                (
                    self._spec(self.root.joinpath(*folders[:depth]), name),
                    base,
                    "/".join((*folders[:depth], name)),
                )
            )
        return [(spec, base, label) for spec, base, label in found if spec is not None]


def _global_excludes(root: Path) -> Path | None:
    """git's core.excludesFile, or its default ($XDG_CONFIG_HOME/git/ignore)."""
    try:
        out = subprocess.run(
            ["git", "config", "--path", "core.excludesFile"],
            cwd=root,
            stdin=subprocess.DEVNULL,  # the server's stdin is the LSP channel
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    if out:
        return Path(os.path.expanduser(out))
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(xdg) / "git" / "ignore"
