"""The workspace's private `.ctx/` folder: atomic files, the chat history, the session, the
response cache.

May import: ctx_lsp.text, ctx_lsp.config.
"""
