"""Settings: the typed, defaulted tree, its layers, the config files, and workspace trust.

May import: ctx_lsp.text.
"""
