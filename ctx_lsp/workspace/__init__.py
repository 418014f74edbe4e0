"""One workspace folder: its root, git, what is excluded, pinned files, the project tree, the
context snapshot, session merge.

May import: ctx_lsp.text, ctx_lsp.config, ctx_lsp.store.
"""
