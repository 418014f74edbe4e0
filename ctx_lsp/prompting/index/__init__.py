"""The workspace code index: every file that may enter the context, its definitions
(tree-sitter, regex fallback) and imports, kept current and persisted under `.ctx/index/`."""
