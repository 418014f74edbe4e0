-- ctx-lsp for Neovim 0.11+: `vim.lsp.enable('ctx_lsp')`.
--
-- Settings go to the server as `settings.ctx` (read with workspace/configuration and pushed
-- with workspace/didChangeConfiguration) or as `init_options`; keys are camelCase, see
-- `:help ctx-lsp-settings`. Override any field with `vim.lsp.config('ctx_lsp', { ... })`.

-- The nearest directory with either marker. (A flat list would prefer a `.ctx` folder far up,
-- e.g. in $HOME, over the project's own `.git`.) Nested lists need Neovim 0.11.3.
local root_markers = vim.fn.has('nvim-0.11.3') == 1 and { { '.ctx', '.git' } } or { '.git', '.ctx' }

---@type vim.lsp.Config
return {
  cmd = { 'ctx-lsp' },
  root_markers = root_markers,
  -- No `filetypes`: AI completion applies to every kind of file.
  settings = {
    ctx = {},
  },
  init_options = vim.empty_dict(),
  handlers = {
    -- Answers (explanations, generated tests) open in a split instead of replacing the
    -- current buffer.
    ['window/showDocument'] = function(err, result, ctx)
      return require('ctx_lsp').show_document(err, result, ctx)
    end,
  },
}
