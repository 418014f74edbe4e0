"""ctx-lsp: a language server that gives any LSP editor AI help that remembers."""

__version__ = "0.1.0"
