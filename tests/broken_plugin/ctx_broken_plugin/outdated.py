"""A plugin written against an API that ctx-lsp does not have: importing it fails
(the entry point `broken_import`)."""

from ctx_lsp.plugins import PluginV2  # noqa: F401  (no such name: the import fails)


class OutdatedPlugin:
    pass
