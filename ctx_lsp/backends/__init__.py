"""Who answers: the OpenAI-compatible backend, backend selection, the embedded local model.

May import: ctx_lsp.text, config, store, workspace, prompting.
"""
