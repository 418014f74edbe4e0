"""Prompt templates: data files, layered lookup, branch variants, rendering.

A template is a Markdown file (builtins live in ``ctx_lsp/builtin_templates/``)::

    ---
    description: Inline completion at the cursor
    branches: release/*, hotfix/*     (optional: comma-separated fnmatch globs)
    max_tokens: 256                   (optional: cap on the model's reply)
    name: commit                      (optional: defaults to the file name up to its first '.')
    ---
    ## system
    You are ...
    ## user
    Complete ... $prefix<CURSOR>$suffix ...

Only the lines ``## system`` and ``## user`` split sections; any other heading is content.
The front matter is optional. Placeholders are ``$name`` / ``${name}``, ``$$`` is a literal
``$``; rendering uses :meth:`string.Template.safe_substitute`, so a placeholder without a value
stays in the text as is and is reported in :attr:`Rendered.missing` (the caller logs it).

Branch variants share the name of their base template and carry ``branches``. File naming
convention: ``<name>.<variant>.md``, e.g. ``commit.release.md`` with ``branches: release/*``.
:meth:`TemplateLibrary.get` picks, among the templates of that name whose glob matches the
branch, the one with the longest matching glob; without a match, the one with no ``branches``.

Layers: builtins are loaded first; user, workspace or plugin templates are :meth:`added
<TemplateLibrary.add>` (or :meth:`loaded from a folder <TemplateLibrary.load_directory>`) later
and replace a template of the same ``(name, branches)``: later layers win.

Placeholders used by the builtin templates (the contract with the code that fills them):

========================  ============================================================
``language``              language id of the current file (``python``)
``file``                  path of the current file, relative to the project root
``branch``                current git branch (``main``; ``(detached)``; ``""``)
``prefix`` / ``suffix``   text before / after the cursor (completion)
``code``                  the code in question: selection, affected lines, code under test
``context``               surrounding code or extra context, as text
``selection``             the user's selection (chat); may be empty
``question``              the user's question (chat)
``diff``                  staged diff (commit)
``recent_commits``        recent commit subjects, one per line (commit)
``history_summary``       summary of the earlier conversation / work
``history``               the conversation to condense, as text (summary)
``commit_convention``     "Conventional Commits (feat:, fix: ...)", "plain imperative subjects"
``error_message``         diagnostic or error text (fix)
``test_framework``        e.g. ``pytest``; ``test_path``: where the tests will go
``changes`` / ``files``   changed-files summary / file list (known; free for user templates)
========================  ============================================================
"""

from __future__ import annotations

import fnmatch
import functools
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

KNOWN_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "language",
        "code",
        "prefix",
        "suffix",
        "context",
        "branch",
        "diff",
        "error_message",
        "file",
        "history",
        "history_summary",
        "recent_commits",
        "changes",
        "files",
        "selection",
        "test_framework",
        "test_path",
        "commit_convention",
        "question",
    }
)

#: Front-matter keys a template may set.
FRONT_MATTER_KEYS = ("name", "description", "branches", "max_tokens")

_SECTION_RE = re.compile(r"^##[ \t]+(system|user)[ \t]*$", re.IGNORECASE)
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")


class TemplateError(ValueError):
    """A template file that cannot be parsed; the message names the source and the problem."""


@functools.lru_cache(maxsize=256)
def _placeholders_in(text: str) -> frozenset[str]:
    """Cached: a template is rendered several times per prompt (a completion's window is
    fitted by rendering it again)."""
    names: set[str] = set()
    for m in string.Template.pattern.finditer(text):
        name = m.group("named") or m.group("braced")
        if name:
            names.add(name)
    return frozenset(names)


@dataclass(frozen=True)
class Template:
    name: str
    system: str
    user: str
    description: str = ""
    branches: str | None = None
    max_tokens: int | None = None
    source: str = "builtin"

    def placeholders(self) -> frozenset[str]:
        """Every ``$name`` / ``${name}`` used in system or user text."""
        return _placeholders_in(self.system) | _placeholders_in(self.user)

    def branch_patterns(self) -> list[str]:
        """The globs of :attr:`branches` (comma-separated), empty for a base template."""
        if not self.branches:
            return []
        return [p.strip() for p in self.branches.split(",") if p.strip()]

    def match_branch(self, branch: str | None) -> int:
        """Length of the longest glob matching ``branch``; -1 when none does."""
        if branch is None:
            return -1
        best = -1
        for pat in self.branch_patterns():
            if fnmatch.fnmatchcase(branch, pat):
                best = max(best, len(pat))
        return best


@dataclass(frozen=True)
class Rendered:
    system: str
    user: str
    missing: frozenset[str]
    template: Template


def parse_template(text: str, name: str, source: str) -> Template:
    """Parse template file text. ``name`` is used when the front matter sets none.

    Raises :class:`TemplateError` naming ``source`` and the line at fault.
    """
    where = source or name
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    meta: dict[str, str] = {}
    i = 0
    # Skip leading blank lines before an optional front matter.
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines) and lines[i].strip() == "---":
        start = i
        i += 1
        while True:
            if i >= len(lines):
                raise TemplateError(
                    f"{where}: front matter opened on line {start + 1} is never closed with '---'"
                )
            line = lines[i]
            if line.strip() == "---":
                i += 1
                break
            if _SECTION_RE.match(line):
                raise TemplateError(
                    f"{where}: front matter opened on line {start + 1} is never closed with "
                    f"'---' (found {line.strip()!r} on line {i + 1})"
                )
            if line.strip() and not line.lstrip().startswith("#"):
                key, sep, value = line.partition(":")
                key = key.strip().lower()
                if not sep or not key:
                    raise TemplateError(
                        f"{where}: line {i + 1}: front matter lines must be 'key: value', "
                        f"got {line.strip()!r}"
                    )
                if key not in FRONT_MATTER_KEYS:
                    raise TemplateError(
                        f"{where}: line {i + 1}: unknown front matter key {key!r} "
                        f"(known: {', '.join(FRONT_MATTER_KEYS)})"
                    )
                if key in meta:
                    raise TemplateError(f"{where}: line {i + 1}: duplicate key {key!r}")
                meta[key] = value.strip().strip("\"'")
            i += 1

    sections: dict[str, list[str]] = {}
    current: str | None = None
    for j in range(i, len(lines)):
        line = lines[j]
        m = _SECTION_RE.match(line)
        if m:
            current = m.group(1).lower()
            if current in sections:
                raise TemplateError(f"{where}: line {j + 1}: second '## {current}' section")
            sections[current] = []
            continue
        if current is None:
            if line.strip():
                raise TemplateError(
                    f"{where}: line {j + 1}: text before the first '## system' or '## user' "
                    f"heading: {line.strip()[:60]!r}"
                )
            continue
        sections[current].append(line)
    if "user" not in sections:
        raise TemplateError(f"{where}: no '## user' section (a template needs one)")

    tname = meta.get("name") or name.split(".", 1)[0]
    if not _NAME_RE.match(tname):
        raise TemplateError(f"{where}: invalid template name {tname!r} (letters, digits, _ and -)")
    max_tokens: int | None = None
    if meta.get("max_tokens"):
        try:
            max_tokens = int(meta["max_tokens"])
        except ValueError:
            max_tokens = 0
        if max_tokens <= 0:
            raise TemplateError(
                f"{where}: max_tokens must be a positive integer, got {meta['max_tokens']!r}"
            )
    branches = meta.get("branches") or None
    return Template(
        name=tname,
        system="\n".join(sections.get("system", [])).strip("\n"),
        user="\n".join(sections["user"]).strip("\n"),
        description=meta.get("description", ""),
        branches=branches,
        max_tokens=max_tokens,
        source=source,
    )


@functools.lru_cache(maxsize=1)
def _builtin_templates() -> tuple[Template, ...]:
    folder = resources.files("ctx_lsp.prompting").joinpath("builtin_templates")
    out: list[Template] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".md") and entry.is_file():
            text = entry.read_text(encoding="utf-8")
            out.append(parse_template(text, entry.name[:-3], f"builtin:{entry.name}"))
    return tuple(out)


class TemplateLibrary:
    """Templates by ``(name, branches)``; later additions replace earlier ones."""

    def __init__(self) -> None:
        self._templates: dict[tuple[str, str | None], Template] = {}
        for t in _builtin_templates():
            self.add(t)

    @classmethod
    def builtin(cls) -> TemplateLibrary:
        return cls()

    @staticmethod
    def _key(t: Template) -> tuple[str, str | None]:
        pats = t.branch_patterns()
        return (t.name, ",".join(sorted(pats)) if pats else None)

    def add(self, template: Template) -> None:
        """Add or replace (same name and branches) a template."""
        self._templates[self._key(template)] = template

    def add_all(self, templates: Iterable[Template]) -> None:
        for t in templates:
            self.add(t)

    def load_directory(self, directory: str | Path, source: str) -> list[str]:
        """Add every ``*.md`` template of ``directory`` (a user/workspace layer).

        Returns the problems (unreadable or invalid files, which are skipped); a missing
        folder is not a problem.
        """
        problems: list[str] = []
        folder = Path(directory)
        if not folder.is_dir():
            return problems
        for path in sorted(folder.glob("*.md")):
            try:
                text = path.read_text(encoding="utf-8")
                self.add(parse_template(text, path.name[:-3], f"{source}:{path}"))
            except (OSError, UnicodeDecodeError) as e:
                problems.append(f"{source}:{path}: cannot read: {e}")
            except TemplateError as e:
                problems.append(str(e))
        return problems

    def get(self, name: str, branch: str | None = None) -> Template:
        """The template ``name`` for ``branch``: the most specific matching variant, else the
        base. Raises KeyError with the known names when there is none."""
        best: Template | None = None
        best_len = -1
        base: Template | None = None
        found = False
        for (tname, pats), t in self._templates.items():
            if tname != name:
                continue
            found = True
            if pats is None:
                base = t
                continue
            n = t.match_branch(branch)
            if n > best_len:
                best, best_len = t, n
        if best is not None and best_len >= 0:
            return best
        if base is not None:
            return base
        if found:
            raise KeyError(
                f"template {name!r} has only branch variants and none matches branch {branch!r}"
            )
        raise KeyError(f"unknown template {name!r} (known: {', '.join(self.names())})")

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._templates})

    def all(self) -> list[Template]:
        return [
            self._templates[k] for k in sorted(self._templates, key=lambda k: (k[0], k[1] or ""))
        ]

    def render(self, name: str, values: Mapping[str, str], branch: str | None = None) -> Rendered:
        """Fill the template; placeholders without a value stay and are listed in ``missing``."""
        t = self.get(name, branch)
        vals = {k: "" if v is None else str(v) for k, v in values.items()}
        missing = frozenset(t.placeholders() - vals.keys())
        return Rendered(
            system=string.Template(t.system).safe_substitute(vals),
            user=string.Template(t.user).safe_substitute(vals),
            missing=missing,
            template=t,
        )

    def check(self) -> list[str]:
        """Problems worth showing the user: unknown placeholders, empty templates."""
        problems: list[str] = []
        for t in self.all():
            label = f"{t.source}: template {t.name!r}" + (
                f" (branches {t.branches})" if t.branches else ""
            )
            if not t.system.strip() and not t.user.strip():
                problems.append(f"{label}: system and user text are both empty")
            unknown = sorted(t.placeholders() - KNOWN_PLACEHOLDERS)
            if unknown:
                problems.append(
                    f"{label}: unknown placeholder(s) {', '.join('$' + u for u in unknown)}"
                )
        return problems

    def copy(self) -> TemplateLibrary:
        new = object.__new__(TemplateLibrary)
        new._templates = dict(self._templates)
        return new
