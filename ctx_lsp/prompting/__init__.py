"""From context to messages: templates, relevance ranking, regions, the token-budgeted prompt
builder.

May import: ctx_lsp.text, config, store, workspace.
"""
