"""Language families: which indexer and import syntax a document gets, and which documents
count as the same language."""

from __future__ import annotations

from ctx_lsp.text.languages import language_of
from ctx_lsp.text.opendoc import OpenDoc

_JS = {"javascript", "typescript", "javascriptreact", "typescriptreact", "js", "ts", "jsx", "tsx"}
_CLIKE = {"c", "cpp", "java", "csharp", "objective-c", "objective-cpp", "dart"}


def language(doc: OpenDoc) -> str:
    return language_of(doc.path, doc.language_id)


def family(lang: str) -> str:
    if lang == "python":
        return "python"
    if lang in _JS:
        return "js"
    if lang == "go":
        return "go"
    if lang == "rust":
        return "rust"
    if lang in _CLIKE:
        return "clike"
    return "generic"


def same_language(a: str, b: str) -> bool:
    if a == b:
        return True
    fa, fb = family(a), family(b)
    return fa == fb and fa not in ("generic", "clike")
