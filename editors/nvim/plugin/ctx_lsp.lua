-- ctx-lsp: sets up the buffer when the ctx-lsp client attaches (see `:help ctx-lsp`).
if vim.g.loaded_ctx_lsp or vim.fn.has('nvim-0.11') == 0 then
  return
end
vim.g.loaded_ctx_lsp = true

vim.api.nvim_create_autocmd('LspAttach', {
  group = vim.api.nvim_create_augroup('ctx_lsp', { clear = true }),
  desc = 'ctx-lsp: inline completion and commands',
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and require('ctx_lsp').is_ctx(client) then
      require('ctx_lsp').on_attach(client, args.buf)
    end
  end,
})
