"""The project's one file-extension → language table."""

from __future__ import annotations

import posixpath

#: File extension → LSP language id.
EXTENSION_LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".cs": "csharp",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".php": "php",
    ".dart": "dart",
    ".rb": "ruby",
}

# Short ids some clients send.
_ALIASES = {"py": "python", "js": "javascript", "ts": "typescript"}
# Markdown fence names where they differ from the LSP id.
_FENCE = {"typescriptreact": "tsx", "javascriptreact": "jsx"}


def language_of(path: str, language_id: str = "") -> str:
    """The client's language id when it sent a real one, else the one the extension names;
    "" when neither knows."""
    lang = (language_id or "").lower()
    if lang and lang != "plaintext":
        return _ALIASES.get(lang, lang)
    return EXTENSION_LANGUAGES.get(posixpath.splitext(path.lower())[1], "")


def fence_language(path: str) -> str:
    """The Markdown code-fence name for a file ("" when unknown)."""
    lang = language_of(path)
    return _FENCE.get(lang, lang)
