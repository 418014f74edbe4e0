-- ctx-lsp for Neovim: buffer setup on attach, the :Ctx* commands, answer display.
-- See `:help ctx-lsp`.
local M = {}

local api = vim.api

---@class ctx_lsp.Options
---@field accept_key string|false Insert-mode key that accepts the inline completion ('<Tab>')
---@field share_diagnostics boolean Send every diagnostic on the line with code action requests
---@field output 'float'|'split' Where answers (:CtxExplain, :CtxContext…) are shown
---@field completion_autotrigger boolean Without inline completion: trigger completion while typing
---@field inline boolean Use inline completion (ghost text) where Neovim has it (0.12)
local defaults = {
  inline = true,
  accept_key = '<Tab>',
  share_diagnostics = true,
  output = 'float',
  completion_autotrigger = false,
}

---@return ctx_lsp.Options
function M.options()
  return vim.tbl_extend('force', defaults, vim.g.ctx_lsp or {})
end

--- Is this client a ctx-lsp server (by config name or by what the server calls itself)?
function M.is_ctx(client)
  return client.name == 'ctx_lsp'
    or client.name == 'ctx-lsp'
    or (client.server_info and client.server_info.name == 'ctx-lsp')
end

--- The ctx-lsp client attached to a buffer.
function M.client(bufnr)
  for _, client in ipairs(vim.lsp.get_clients({ bufnr = bufnr or 0 })) do
    if M.is_ctx(client) then
      return client
    end
  end
end

local function notify(msg, level)
  vim.notify('ctx: ' .. msg, level or vim.log.levels.INFO, { title = 'ctx-lsp' })
end

-- Observations for tests and for `:lua =require('ctx_lsp').last`.
M.last = {}

--- Run a server command: `client:exec_cmd()` with one object argument; errors are shown.
---@param bufnr integer
---@param command string
---@param args table|nil
---@param on_result fun(result: table)|nil
function M.exec(bufnr, command, args, on_result)
  bufnr = bufnr == 0 and api.nvim_get_current_buf() or bufnr
  local client = M.client(bufnr)
  if not client then
    notify('ctx-lsp is not attached to this buffer', vim.log.levels.ERROR)
    return
  end
  local provider = client.server_capabilities.executeCommandProvider
  if type(provider) ~= 'table' or not vim.list_contains(provider.commands or {}, command) then
    M.last = { command = command, error = 'the server has no command ' .. command }
    notify(('%s: this ctx-lsp server has no such command (update ctx-lsp)'):format(command), vim.log.levels.ERROR)
    return
  end
  local arg = args and next(args) and args or vim.empty_dict()
  client:exec_cmd({ title = command, command = command, arguments = { arg } }, { bufnr = bufnr }, function(err, result)
    if err then
      M.last = { command = command, error = err.message or tostring(err) }
      notify(('%s failed: %s'):format(command, err.message or tostring(err)), vim.log.levels.ERROR)
      return
    end
    M.last = { command = command, result = result }
    if on_result then
      on_result(type(result) == 'table' and result or { text = tostring(result or '') })
    end
  end)
end

-- Answers -----------------------------------------------------------------------------------

--- Show text in a scratch buffer (a float or a split, `output` option). Returns buf, win.
---@param text string
---@param title string
---@param filetype string|nil
function M.show(text, title, filetype)
  local lines = vim.split((text or ''):gsub('%s+$', ''), '\n', { plain = true })
  local buf = api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = 'wipe'
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].filetype = filetype or 'markdown'
  vim.bo[buf].modifiable = false
  local win
  if M.options().output == 'split' then
    vim.cmd((vim.o.columns >= 160 and 'vertical ' or '') .. 'botright new')
    win = api.nvim_get_current_win()
    api.nvim_win_set_buf(win, buf)
  else
    local width = 40
    for _, line in ipairs(lines) do
      width = math.max(width, vim.fn.strdisplaywidth(line) + 2)
    end
    width = math.min(width, math.max(20, math.floor(vim.o.columns * 0.8)))
    local height = math.max(1, math.min(#lines, math.floor(vim.o.lines * 0.8)))
    win = api.nvim_open_win(buf, true, {
      relative = 'editor',
      width = width,
      height = height,
      row = math.floor((vim.o.lines - height) / 2) - 1,
      col = math.floor((vim.o.columns - width) / 2),
      style = 'minimal',
      border = 'rounded',
      title = ' ctx: ' .. title .. ' ',
      title_pos = 'center',
    })
  end
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].conceallevel = 2
  vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, nowait = true, desc = 'Close' })
  M.last_shown = { buf = buf, win = win, title = title, lines = lines }
  return buf, win
end

--- `window/showDocument` for ctx-lsp: answers open in a split, not over the current buffer.
function M.show_document(err, result, ctx)
  local default = vim.lsp.handlers['window/showDocument']
  if err or type(result) ~= 'table' or result.external or not tostring(result.uri):match('^file:') then
    return default(err, result, ctx)
  end
  local bufnr = vim.uri_to_bufnr(result.uri)
  if vim.fn.bufwinid(bufnr) == -1 then
    if api.nvim_win_get_config(0).relative ~= '' then -- from a float: go to a normal window
      vim.cmd('wincmd p')
    end
    vim.cmd((vim.o.columns >= 160 and 'vertical ' or '') .. 'belowright split')
  end
  M.last_document = result.uri
  return default(err, result, ctx)
end

-- Commit messages ---------------------------------------------------------------------------

local function comment_char(bufnr)
  local dir = vim.fs.dirname(api.nvim_buf_get_name(bufnr))
  for _, key in ipairs({ 'core.commentString', 'core.commentChar' }) do
    local ok, out = pcall(vim.fn.systemlist, { 'git', '-C', dir, 'config', '--get', key })
    if ok and vim.v.shell_error == 0 and out[1] and out[1] ~= '' and out[1] ~= 'auto' then
      return out[1]
    end
  end
  return '#'
end

--- Put a commit message into a git commit buffer, above its comment lines. Blank lines there
--- are replaced; text the user already wrote stays below the new message.
---@param bufnr integer
---@param message string
function M.fill_commit_buffer(bufnr, message)
  local msg = vim.split(vim.trim(message), '\n', { plain = true })
  local lines = api.nvim_buf_get_lines(bufnr, 0, -1, false)
  local cc = comment_char(bufnr)
  local first_comment = #lines + 1
  for i, line in ipairs(lines) do
    if vim.startswith(line, cc) then
      first_comment = i
      break
    end
  end
  local existing = vim.list_slice(lines, 1, first_comment - 1)
  local blank = vim.trim(table.concat(existing, '\n')) == ''
  local replacement = vim.list_extend(vim.deepcopy(msg), { '' })
  if blank then
    api.nvim_buf_set_lines(bufnr, 0, first_comment - 1, false, replacement)
  else
    api.nvim_buf_set_lines(bufnr, 0, 0, false, replacement)
  end
  local win = vim.fn.bufwinid(bufnr)
  if win ~= -1 then
    api.nvim_win_set_cursor(win, { 1, 0 })
  end
end

-- Ranges and diagnostics --------------------------------------------------------------------

local function line_text(bufnr, lnum)
  return api.nvim_buf_get_lines(bufnr, lnum, lnum + 1, false)[1] or ''
end

--- Whole lines line1..line2 (1-based, inclusive) as an LSP range in the client's encoding.
function M.lines_range(bufnr, line1, line2, encoding)
  local last = line_text(bufnr, line2 - 1)
  return {
    start = { line = line1 - 1, character = 0 },
    ['end'] = { line = line2 - 1, character = vim.str_utfindex(last, encoding or 'utf-16') },
  }
end

local function to_lsp_diagnostic(bufnr, d, encoding)
  if d.user_data and type(d.user_data.lsp) == 'table' then
    return d.user_data.lsp
  end
  local function pos(lnum, col)
    local text = line_text(bufnr, lnum)
    col = math.max(0, math.min(col or 0, #text))
    return { line = lnum, character = vim.str_utfindex(text, encoding, col, false) }
  end
  return {
    range = { start = pos(d.lnum, d.col), ['end'] = pos(d.end_lnum or d.lnum, d.end_col or d.col) },
    severity = d.severity,
    message = d.message,
    source = d.source,
    code = d.code,
  }
end

--- Every diagnostic of the buffer (any namespace: other servers, linters) on the lines of
--- `range`, as LSP diagnostics, merged with those already in `existing`.
function M.diagnostics_for(bufnr, range, encoding, existing)
  local out, seen = {}, {}
  local function add(d)
    local key = ('%d:%d:%s'):format(d.range.start.line, d.range.start.character, d.message)
    if not seen[key] then
      seen[key] = true
      table.insert(out, d)
    end
  end
  for _, d in ipairs(existing or {}) do
    add(d)
  end
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    local last = d.end_lnum or d.lnum
    if last >= range.start.line and d.lnum <= range['end'].line then
      add(to_lsp_diagnostic(bufnr, d, encoding))
    end
  end
  return out
end

-- Neovim sends a server only the diagnostics it published itself; ctx-lsp publishes none but
-- fixes those of other servers and linters. This adds them to its code action requests.
local shared = {}
local function share_diagnostics(client)
  if shared[client.id] then
    return
  end
  shared[client.id] = true
  local request = client.request
  client.request = function(self, method, params, handler, bufnr)
    if
      method == 'textDocument/codeAction'
      and type(params) == 'table'
      and params.context
      and params.range
      and M.options().share_diagnostics
    then
      local buf = bufnr
      if not buf or buf == 0 then
        buf = vim.uri_to_bufnr(params.textDocument.uri)
      end
      params.context.diagnostics =
        M.diagnostics_for(buf, params.range, self.offset_encoding, params.context.diagnostics)
    end
    return request(self, method, params, handler, bufnr)
  end
end

-- Commands ----------------------------------------------------------------------------------

local function uri(bufnr)
  return vim.uri_from_bufnr(bufnr)
end

function M.commit_message(bufnr)
  M.exec(bufnr, 'ctx.commitMessage', { uri = uri(bufnr) }, function(result)
    local text = vim.trim(result.text or '')
    if text == '' then
      notify('the model returned an empty commit message', vim.log.levels.WARN)
    elseif vim.bo[bufnr].filetype == 'gitcommit' then
      M.fill_commit_buffer(bufnr, text)
    else
      M.show(text, 'commit message', 'gitcommit')
    end
  end)
end

function M.explain(bufnr, line1, line2)
  local client = M.client(bufnr)
  local range = M.lines_range(bufnr, line1, line2, client and client.offset_encoding)
  M.exec(bufnr, 'ctx.explain', { uri = uri(bufnr), range = range }, function(result)
    if not result.shown then -- the server opens the answer itself where it can
      M.show(result.text or '', 'explanation')
    end
  end)
end

function M.generate_tests(bufnr, line1, line2)
  local client = M.client(bufnr)
  local range = M.lines_range(bufnr, line1, line2, client and client.offset_encoding)
  M.exec(bufnr, 'ctx.generateTests', { uri = uri(bufnr), range = range }, function(result)
    if not result.shown then
      M.show(result.text or '', 'tests', vim.bo[bufnr].filetype)
    end
  end)
end

function M.show_context(bufnr)
  M.exec(bufnr, 'ctx.showContext', {}, function(result)
    M.show(result.text or '', 'context')
  end)
end

function M.summarize(bufnr)
  M.exec(bufnr, 'ctx.summarizeHistory', {}, function(result)
    M.show(result.text or '', 'history summary')
  end)
end

function M.clear_history(bufnr)
  M.exec(bufnr, 'ctx.clearHistory', {}, function(result)
    notify(result.text or 'history cleared')
  end)
end

--- Trust (or stop trusting) this workspace's own .ctx/ files as they are now: until then the
--- server holds back the keys that choose where code goes (baseUrl, apiKeyEnv…) and its templates.
function M.trust(bufnr, trust)
  M.exec(bufnr, 'ctx.trustWorkspace', { trust = trust, uri = uri(bufnr) }, function(result)
    notify(result.text or '')
  end)
end

local function pin(bufnr, command, path)
  if path == '' then
    path = api.nvim_buf_get_name(bufnr)
  end
  M.exec(bufnr, command, { path = vim.fn.fnamemodify(path, ':p') }, function(result)
    notify(result.text or '')
  end)
end

local function commands(bufnr)
  local function cmd(name, fn, opts)
    api.nvim_buf_create_user_command(bufnr, name, fn, opts)
  end
  cmd('CtxCommitMessage', function()
    M.commit_message(bufnr)
  end, { desc = 'ctx: write a commit message for the staged changes' })
  cmd('CtxExplain', function(o)
    M.explain(bufnr, o.line1, o.line2)
  end, { range = true, desc = 'ctx: explain the lines (default: current line)' })
  cmd('CtxGenerateTests', function(o)
    M.generate_tests(bufnr, o.line1, o.line2)
  end, { range = true, desc = 'ctx: write unit tests for the lines' })
  cmd('CtxContext', function()
    M.show_context(bufnr)
  end, { desc = 'ctx: show what the model sees' })
  cmd('CtxSummarize', function()
    M.summarize(bufnr)
  end, { desc = 'ctx: summarize the chat history' })
  cmd('CtxClearHistory', function()
    M.clear_history(bufnr)
  end, { desc = 'ctx: clear the chat history' })
  cmd('CtxTrust', function()
    M.trust(bufnr, true)
  end, { desc = "ctx: trust this workspace's .ctx/ files as they are now" })
  cmd('CtxUntrust', function()
    M.trust(bufnr, false)
  end, { desc = "ctx: stop trusting this workspace's .ctx/ files" })
  cmd('CtxChat', function(o)
    local client = M.client(bufnr)
    local range = o.range > 0 and M.lines_range(bufnr, o.line1, o.line2, client and client.offset_encoding) or nil
    require('ctx_lsp.chat').ask(bufnr, o.args, range)
  end, { nargs = '*', range = true, desc = 'ctx: open the chat; ask a question (about the selection)' })
  cmd('CtxAddFile', function(o)
    pin(bufnr, 'ctx.addFile', o.args)
  end, { nargs = '?', complete = 'file', desc = 'ctx: pin a file into the context' })
  cmd('CtxRemoveFile', function(o)
    pin(bufnr, 'ctx.removeFile', o.args)
  end, { nargs = '?', complete = 'file', desc = 'ctx: unpin a file' })
end

-- Completion items ------------------------------------------------------------------------

--- vim.lsp.completion inserts only the first word of a plain-text item's textEdit (it expects
--- a keyword); a suggestion is a whole line or more. When a ctx-lsp item is accepted, put the
--- rest of its text in.
local function complete_done(bufnr)
  local item = vim.v.completed_item
  local lsp = vim.tbl_get(item or {}, 'user_data', 'nvim', 'lsp') or {}
  local completion_item, client = lsp.completion_item, vim.lsp.get_client_by_id(lsp.client_id or -1)
  if not (completion_item and client and M.is_ctx(client)) then
    return
  end
  local reason = vim.v.event and vim.v.event.reason
  if (reason and reason ~= 'accept') or completion_item.insertTextFormat == 2 then
    return -- cancelled, or a snippet (which Neovim expands itself)
  end
  local new_text = vim.tbl_get(completion_item, 'textEdit', 'newText') or completion_item.insertText
  local word = item.word or ''
  if type(new_text) ~= 'string' or new_text == word or word == '' then
    return
  end
  local win = vim.fn.bufwinid(bufnr)
  if win == -1 then
    return
  end
  local row, col = unpack(api.nvim_win_get_cursor(win))
  local start = col - #word
  if start < 0 or line_text(bufnr, row - 1):sub(start + 1, col) ~= word then
    return
  end
  local new_lines = vim.split(new_text, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row - 1, start, row - 1, col, new_lines)
  local last = new_lines[#new_lines]
  api.nvim_win_set_cursor(win, { row + #new_lines - 1, (#new_lines == 1 and start or 0) + #last })
end

-- Attach ------------------------------------------------------------------------------------

--- Chat answers stream as `$/progress` reports on our token: those go to the chat buffer,
--- every report also to the handler that was there (Neovim's progress status).
local routed = {}
local function route_progress(client)
  if routed[client.id] then
    return
  end
  routed[client.id] = true
  local handlers = client.handlers or {}
  local previous = handlers['$/progress'] or vim.lsp.handlers['$/progress']
  handlers['$/progress'] = function(err, params, ctx)
    require('ctx_lsp.chat').on_progress(params)
    return previous(err, params, ctx)
  end
  client.handlers = handlers
end

--- Map `key` in insert mode to accept the inline completion. Without a suggestion the key does
--- what it did before: a global expression mapping (like Neovim's own <Tab>, which jumps in
--- snippets) is chained; any other existing mapping is left alone (map it yourself then).
local function map_accept_key(bufnr, key)
  if not key or key == '' then
    return
  end
  local prev = vim.fn.maparg(key, 'i', false, true)
  local fallback
  if vim.tbl_isempty(prev) then
    fallback = function()
      return key
    end
  elseif prev.buffer == 0 and prev.expr == 1 and prev.callback then
    fallback = prev.callback
  elseif prev.desc == 'ctx: accept the inline completion' then
    return -- already mapped in this buffer
  else
    return
  end
  vim.keymap.set('i', key, function()
    if vim.lsp.inline_completion.get() then
      return ''
    end
    return fallback()
  end, { buffer = bufnr, expr = true, desc = 'ctx: accept the inline completion' })
end

---@param client vim.lsp.Client
---@param bufnr integer
function M.on_attach(client, bufnr)
  local opts = M.options()
  local inline = vim.lsp.inline_completion
  if opts.inline and inline and client:supports_method('textDocument/inlineCompletion', bufnr) then
    inline.enable(true, { bufnr = bufnr })
    map_accept_key(bufnr, opts.accept_key)
  elseif client:supports_method('textDocument/completion', bufnr) then
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = opts.completion_autotrigger })
    api.nvim_create_autocmd('CompleteDone', {
      group = api.nvim_create_augroup('ctx_lsp_complete_' .. bufnr, { clear = true }),
      buffer = bufnr,
      desc = 'ctx: insert the whole suggestion',
      callback = function()
        complete_done(bufnr)
      end,
    })
  end
  share_diagnostics(client)
  route_progress(client)
  commands(bufnr)
end

return M
