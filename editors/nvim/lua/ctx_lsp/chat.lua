-- ctx-lsp chat for Neovim: a chat buffer in a split that shows the remembered conversation
-- (`ctx.chatHistory`), streams answers (`ctx.chat` progress reports: each one the new text),
-- and applies an answer's code block to the file (`ctx.applyCode`). See `:help ctx-lsp-chat`.
local M = {}

local api = vim.api

---@class ctx_lsp.ChatBlock
---@field first integer 0-based line of the block's first code line in the chat buffer
---@field last integer 0-based line of its last code line
---@field history_id string
---@field index integer 0-based block index in that answer
---@field range table|nil the selection the question was about (the apply target)

---@class ctx_lsp.ChatState
---@field buf integer|nil the chat buffer
---@field source integer|nil the code buffer the chat is about (its client, its URI)
---@field blocks ctx_lsp.ChatBlock[]
---@field streaming table|nil { token, request_id, answer_start, text }
local state = { blocks = {} }
M.state = state

local tokens = 0

local function notify(msg, level)
  vim.notify('ctx: ' .. msg, level or vim.log.levels.INFO, { title = 'ctx-lsp' })
end

local function buf_valid()
  return state.buf and api.nvim_buf_is_valid(state.buf)
end

local function set_lines(first, last, lines)
  vim.bo[state.buf].modifiable = true
  api.nvim_buf_set_lines(state.buf, first, last, false, lines)
  vim.bo[state.buf].modifiable = false
end

local function append(lines)
  local n = api.nvim_buf_line_count(state.buf)
  local empty = n == 1 and api.nvim_buf_get_lines(state.buf, 0, 1, false)[1] == ''
  set_lines(empty and 0 or n, -1, lines)
end

local function scroll_to_end()
  local win = vim.fn.bufwinid(state.buf)
  if win ~= -1 then
    api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(state.buf), 0 })
  end
end

--- The code blocks of an answer whose first line is `start` (0-based) in the chat buffer.
local function index_blocks(text, start, history_id, range)
  local lines = vim.split(text, '\n', { plain = true })
  local fence, first, index = nil, nil, 0
  for i, line in ipairs(lines) do
    local row = start + i - 1
    if not fence then
      local ticks = line:match('^ ? ? ?(```+)') or line:match('^ ? ? ?(~~~+)')
      if ticks then
        fence, first = ticks, row + 1
      end
    elseif vim.trim(line) == fence or (vim.trim(line):match('^[`~]+$') and #vim.trim(line) >= #fence) then
      table.insert(state.blocks, { first = first, last = row - 1, history_id = history_id, index = index, range = range })
      index = index + 1
      fence = nil
    end
  end
  if index == 0 and history_id ~= '' and text:match('%S') then
    -- an answer without a fence is one block when it is code (a /fix or /tests answer)
    table.insert(state.blocks, {
      first = start,
      last = start + #lines - 1,
      history_id = history_id,
      index = 0,
      range = range,
      whole = true,
    })
  end
end

local function add_turn(question, answer, history_id, cut, range)
  append({ '## You', '' })
  append(vim.split(question, '\n', { plain = true }))
  append({ '', '## ctx', '' })
  local start = api.nvim_buf_line_count(state.buf)
  append(vim.split(answer, '\n', { plain = true }))
  if cut then
    append({ '', '*(answer cut short)*' })
  end
  append({ '' })
  index_blocks(answer, start, history_id, range)
end

--- The chat buffer, shown in a split (created, and filled with the restored conversation,
--- the first time).
local function open_buffer(source, on_ready)
  if buf_valid() then
    if vim.fn.bufwinid(state.buf) == -1 then
      vim.cmd((vim.o.columns >= 160 and 'vertical ' or '') .. 'botright split')
      api.nvim_win_set_buf(0, state.buf)
    end
    state.source = source
    return on_ready()
  end
  state.buf = api.nvim_create_buf(false, true)
  state.source = source
  state.blocks = {}
  vim.bo[state.buf].bufhidden = 'hide'
  vim.bo[state.buf].filetype = 'markdown'
  vim.bo[state.buf].modifiable = false
  pcall(api.nvim_buf_set_name, state.buf, 'ctx://chat')
  vim.cmd((vim.o.columns >= 160 and 'vertical ' or '') .. 'botright split')
  api.nvim_win_set_buf(0, state.buf)
  vim.wo.wrap = true
  vim.wo.linebreak = true
  M.buffer_commands(state.buf)
  require('ctx_lsp').exec(source, 'ctx.chatHistory', {}, function(result)
    for _, turn in ipairs(result.turns or {}) do
      add_turn(turn.question, turn.answer, turn.historyId, turn.cut)
    end
    M.restored = #(result.turns or {})
    scroll_to_end()
    on_ready()
  end)
end

--- `$/progress` for the tokens of our chat requests: each report's message is new text.
function M.on_progress(params)
  local s = state.streaming
  if not (s and params and params.token == s.token and buf_valid()) then
    return false
  end
  local value = params.value or {}
  if value.kind == 'report' and type(value.message) == 'string' and value.message ~= '' then
    M.reports = (M.reports or 0) + 1
    s.text = s.text .. value.message
    local pieces = vim.split(value.message, '\n', { plain = true })
    local last = api.nvim_buf_line_count(state.buf) - 1
    local line = api.nvim_buf_get_lines(state.buf, last, last + 1, false)[1] or ''
    pieces[1] = line .. pieces[1]
    set_lines(last, last + 1, pieces)
    scroll_to_end()
  end
  return true
end

--- Ask `question` about the code buffer `source` (its selection `range`, if any).
function M.ask(source, question, range)
  local ctx = require('ctx_lsp')
  local client = ctx.client(source)
  if not client then
    return notify('ctx-lsp is not attached to this buffer', vim.log.levels.ERROR)
  end
  open_buffer(source, function()
    if not question or vim.trim(question) == '' then
      return
    end
    if state.streaming then
      return notify('an answer is still coming: :CtxChatStop stops it', vim.log.levels.WARN)
    end
    tokens = tokens + 1
    local token = ('ctx-chat-%d-%d'):format(vim.fn.getpid(), tokens)
    append({ '## You', '' })
    append(vim.split(question, '\n', { plain = true }))
    append({ '', '## ctx', '', '' })
    local answer_start = api.nvim_buf_line_count(state.buf) - 1
    state.streaming = { token = token, answer_start = answer_start, text = '' }
    local arg = { question = question, uri = vim.uri_from_bufnr(source), range = range }
    local params = { command = 'ctx.chat', arguments = { arg }, workDoneToken = token }
    local ok, request_id = client:request('workspace/executeCommand', params, function(err, result)
      local s = state.streaming
      state.streaming = nil
      if not buf_valid() then
        return
      end
      if err then
        local text = s and s.text or ''
        set_lines(answer_start, -1, vim.split(text, '\n', { plain = true }))
        append({ '', ('*(%s)*'):format(err.message or tostring(err)), '' })
        ctx.last = { command = 'ctx.chat', error = err.message or tostring(err) }
        return
      end
      local text = result.text or ''
      -- the final text replaces the streamed one (they are equal; this keeps the buffer exact)
      set_lines(answer_start, -1, vim.split(text, '\n', { plain = true }))
      if result.cut then
        append({ '', '*(answer cut short)*' })
      end
      append({ '' })
      index_blocks(text, answer_start, result.historyId or '', range)
      scroll_to_end()
      ctx.last = { command = 'ctx.chat', result = result }
    end, source)
    if ok then
      state.streaming.request_id = request_id
      state.streaming.client = client
    end
  end)
end

--- Stop the answer being written (its partial text stays in the history, marked cut).
function M.stop()
  local s = state.streaming
  if s and s.client and s.request_id then
    s.client:cancel_request(s.request_id)
  end
end

--- Apply the code block under the cursor (in the chat buffer) to the code buffer: the
--- selection the question was about, else the whole file.
function M.apply()
  if not buf_valid() or api.nvim_get_current_buf() ~= state.buf then
    return notify(':CtxChatApply works in the chat buffer, on a code block', vim.log.levels.WARN)
  end
  local row = api.nvim_win_get_cursor(0)[1] - 1
  local block
  for _, b in ipairs(state.blocks) do
    if row >= b.first - (b.whole and 0 or 1) and row <= b.last + (b.whole and 0 or 1) then
      block = b
    end
  end
  if not block then
    return notify('the cursor is not on a code block of an answer', vim.log.levels.WARN)
  end
  local source = state.source
  if not (source and api.nvim_buf_is_valid(source)) then
    return notify('the file this chat is about is gone', vim.log.levels.ERROR)
  end
  local arg = {
    historyId = block.history_id,
    block = block.index,
    uri = vim.uri_from_bufnr(source),
    range = block.range,
  }
  require('ctx_lsp').exec(source, 'ctx.applyCode', arg, function(result)
    if not result.applied then
      notify('the edit was not applied', vim.log.levels.WARN)
    end
  end)
end

function M.buffer_commands(buf)
  api.nvim_buf_create_user_command(buf, 'CtxChatApply', function()
    M.apply()
  end, { desc = 'ctx: apply the code block under the cursor to the file' })
  api.nvim_buf_create_user_command(buf, 'CtxChatStop', function()
    M.stop()
  end, { desc = 'ctx: stop the answer being written' })
  api.nvim_buf_create_user_command(buf, 'CtxChat', function(o)
    if state.source and api.nvim_buf_is_valid(state.source) then
      M.ask(state.source, o.args)
    end
  end, { nargs = '*', desc = 'ctx: ask in the chat' })
end

return M
