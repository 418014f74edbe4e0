"""Text the server holds: open documents, the shared read-only document view, the language table,
token counts, masking of secrets, typed chat messages.

May import: nothing else of ctx_lsp.
"""
