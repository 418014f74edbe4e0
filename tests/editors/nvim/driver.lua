-- Headless Neovim driver for tests/editors/test_neovim.py.
--
--   nvim --headless --clean -u driver.lua FILE
--
-- Environment: CTX_TEST_PLUGIN (editors/nvim), CTX_TEST_SCENARIO (inline | codeaction |
-- commit | commands), CTX_TEST_OUT (JSON file for the observations), CTX_TEST_CMD (optional
-- JSON list overriding the server command), CTX_TEST_MODEL (the `model` setting).
-- Every scenario writes what it saw to CTX_TEST_OUT, then quits; a failure is recorded as
-- `error` (and quits with :cquit, so that `git commit` aborts in the commit scenario).
local out_path = assert(os.getenv('CTX_TEST_OUT'), 'CTX_TEST_OUT')
local scenario = assert(os.getenv('CTX_TEST_SCENARIO'), 'CTX_TEST_SCENARIO')
vim.opt.rtp:prepend(assert(os.getenv('CTX_TEST_PLUGIN'), 'CTX_TEST_PLUGIN'))
vim.o.swapfile = false
vim.o.shada = ''

local obs = { scenario = scenario, nvim = tostring(vim.version()) }
local finished = false

local function write()
  local f = assert(io.open(out_path, 'w'))
  f:write(vim.json.encode(obs))
  f:close()
end

local function finish(quit_cmd)
  if finished then
    return
  end
  finished = true
  write()
  vim.cmd(quit_cmd or 'qa!')
end

local function fail(err)
  obs.error = tostring(err)
  finish('cquit 3')
end

-- The test's settings: same keys as `settings.ctx` in a user's config.
local config = { settings = { ctx = { model = os.getenv('CTX_TEST_MODEL') or 'test-model' } } }
if scenario == 'completion' then
  vim.g.ctx_lsp = { inline = false }
end
if os.getenv('CTX_TEST_CMD') then
  config.cmd = vim.json.decode(os.getenv('CTX_TEST_CMD'))
end
vim.lsp.config('ctx_lsp', config)
vim.lsp.enable('ctx_lsp')

-- Steps run in a coroutine that sleeps with timers, so the editor's main loop (LSP messages,
-- typed keys, autocommands) runs between them.
local co
local function resume()
  local ok, err = coroutine.resume(co)
  if not ok then
    fail(debug.traceback(co, err))
  end
end

local function sleep(ms)
  vim.defer_fn(resume, ms)
  coroutine.yield()
end

local function wait_for(what, cond, timeout_ms)
  local deadline = vim.uv.now() + (timeout_ms or 20000)
  while true do
    local ok, value = pcall(cond)
    if ok and value then
      return value
    end
    if vim.uv.now() > deadline then
      error('timed out waiting for ' .. what .. (ok and '' or (': ' .. tostring(value))), 0)
    end
    sleep(50)
  end
end

local function lines(buf)
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end

local function attach(buf)
  local client = wait_for('the ctx-lsp client to attach', function()
    return require('ctx_lsp').client(buf)
  end)
  obs.attached = true
  obs.client_name = client.name
  obs.server_name = client.server_info and client.server_info.name
  obs.root_dir = client.root_dir
  obs.plugin_loaded = vim.g.loaded_ctx_lsp == true
  local cmds = vim.api.nvim_buf_get_commands(buf, {})
  obs.buffer_commands = vim.tbl_keys(cmds)
  table.sort(obs.buffer_commands)
  return client
end

local function ghost_text(buf)
  for name, ns in pairs(vim.api.nvim_get_namespaces()) do
    if name:find('inline_completion', 1, true) then
      for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })) do
        local parts = {}
        for _, chunk in ipairs(mark[4].virt_text or {}) do
          table.insert(parts, chunk[1])
        end
        for _, vline in ipairs(mark[4].virt_lines or {}) do
          local l = {}
          for _, chunk in ipairs(vline) do
            table.insert(l, chunk[1])
          end
          table.insert(parts, '\n' .. table.concat(l))
        end
        if #parts > 0 then
          return table.concat(parts)
        end
      end
    end
  end
end

--- Wait for the answer of a :Ctx* command (require('ctx_lsp').last); raise its error.
local function command_result(command, timeout_ms)
  local ctx = require('ctx_lsp')
  local last = wait_for(command, function()
    return ctx.last and ctx.last.command == command and ctx.last
  end, timeout_ms or 30000)
  if last.error then
    error(command .. ' failed: ' .. last.error, 0)
  end
  return last
end

local scenarios = {}

-- Type in insert mode; the suggestion shows as virtual text; <Tab> (the plugin's mapping,
-- which calls vim.lsp.inline_completion.get()) accepts it into the buffer.
function scenarios.inline()
  local buf = vim.api.nvim_get_current_buf()
  attach(buf)
  obs.inline_enabled = vim.lsp.inline_completion ~= nil
    and vim.lsp.inline_completion.is_enabled({ bufnr = buf })
  obs.tab_mapping = vim.fn.maparg('<Tab>', 'i', false, true).desc
  vim.api.nvim_buf_set_lines(buf, -1, -1, false, { '', 'def mul(a, b):', '    ' })
  vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(buf), 4 })
  vim.api.nvim_feedkeys('A', 'n', false)
  obs.ghost = wait_for('the inline completion (ghost text)', function()
    return ghost_text(buf)
  end)
  obs.mode_before_accept = vim.api.nvim_get_mode().mode
  vim.api.nvim_feedkeys(vim.keycode('<Tab>'), 'm', false)
  wait_for('the suggestion in the buffer', function()
    return lines(buf)[#lines(buf)] ~= '    '
  end, 5000)
  vim.api.nvim_feedkeys(vim.keycode('<Esc>'), 'n', false)
  sleep(50)
  obs.ghost_after = ghost_text(buf)
  obs.lines = lines(buf)
  finish()
end

-- Completion items instead of ghost text (Neovim 0.11, or the option inline = false): the
-- suggestion is an item of vim.lsp.completion; choosing it inserts it.
function scenarios.completion()
  local buf = vim.api.nvim_get_current_buf()
  attach(buf)
  obs.inline_enabled = vim.lsp.inline_completion.is_enabled({ bufnr = buf })
  vim.api.nvim_buf_set_lines(buf, -1, -1, false, { '', 'def mul(a, b):', '    ' })
  vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(buf), 4 })
  vim.api.nvim_feedkeys('A', 'n', false)
  sleep(50)
  vim.lsp.completion.get()
  local items = wait_for('the completion menu', function()
    -- (no UI is attached, so the menu is never "visible": look at its items)
    local info = vim.fn.complete_info({ 'items', 'mode' })
    obs.complete_info = info
    return #info.items > 0 and info.items
  end)
  obs.items = vim.tbl_map(function(item)
    return item.abbr -- what the menu shows (`word`, what is typed, is its first word)
  end, items)
  obs.mode_at_menu = vim.api.nvim_get_mode().mode
  -- Select the first item as a UI does (no UI is attached: no menu to <C-n> through), then
  -- accept it with <C-y>.
  vim.api.nvim_feedkeys(
    vim.keycode('<Cmd>lua vim.api.nvim_select_popupmenu_item(0, true, false, {})<CR><C-y>'),
    'n',
    false
  )
  wait_for('the item in the buffer', function()
    return lines(buf)[#lines(buf)] ~= '    '
  end, 5000)
  vim.api.nvim_feedkeys(vim.keycode('<Esc>'), 'n', false)
  sleep(50)
  obs.lines = lines(buf)
  finish()
end

-- A diagnostic from "another linter" on a line: the code actions offer Explain and Fix, and
-- choosing Fix (resolved by the server) changes the buffer.
function scenarios.codeaction()
  local buf = vim.api.nvim_get_current_buf()
  attach(buf)
  local ns = vim.api.nvim_create_namespace('test-linter')
  local text = lines(buf)[2]
  local col = assert(text:find('c', 1, true)) - 1
  vim.diagnostic.set(ns, buf, {
    {
      lnum = 1,
      col = col,
      end_col = col + 1,
      severity = vim.diagnostic.severity.ERROR,
      message = "undefined name 'c'",
      source = 'test-linter',
    },
  })
  vim.api.nvim_win_set_cursor(0, { 2, col })
  local chosen
  vim.ui.select = function(items, opts, on_choice)
    obs.titles = {}
    for i, item in ipairs(items) do
      local title = item.action and item.action.title or opts.format_item(item)
      table.insert(obs.titles, title)
      if not chosen and title:find('^Fix') then
        chosen = i
      end
    end
    obs.chosen = chosen and obs.titles[chosen]
    on_choice(chosen and items[chosen], chosen)
  end
  vim.lsp.buf.code_action()
  wait_for('the code action list', function()
    return obs.titles
  end)
  if not chosen then
    error('no Fix action offered', 0)
  end
  wait_for('the fix in the buffer', function()
    return lines(buf)[2] ~= text
  end)
  obs.lines = lines(buf)
  obs.modified = vim.bo[buf].modified
  finish()
end

-- Run by `git commit` as its editor: :CtxCommitMessage fills the message, then :wq.
function scenarios.commit()
  local buf = vim.api.nvim_get_current_buf()
  obs.filetype = vim.bo[buf].filetype
  obs.before = lines(buf)
  attach(buf)
  vim.cmd('CtxCommitMessage')
  obs.result = command_result('ctx.commitMessage').result
  wait_for('the commit message in the buffer', function()
    local first = lines(buf)[1]
    return first ~= '' and not vim.startswith(first, '#')
  end, 30000)
  obs.lines = lines(buf)
  finish('wq')
end

-- The other commands end to end: context, explain (the answer opens in a split).
function scenarios.commands()
  local buf = vim.api.nvim_get_current_buf()
  attach(buf)
  local ctx = require('ctx_lsp')
  vim.cmd('CtxContext')
  command_result('ctx.showContext')
  wait_for('the context float', function()
    return ctx.last_shown and ctx.last_shown.title == 'context'
  end)
  obs.context = ctx.last_shown.lines
  obs.context_is_float = vim.api.nvim_win_get_config(ctx.last_shown.win).relative ~= ''
  vim.cmd('close')
  vim.cmd('1,2CtxExplain')
  obs.explain = command_result('ctx.explain')
  wait_for('the answer window', function()
    return ctx.last_document or (ctx.last_shown and ctx.last_shown.title == 'explanation')
  end)
  obs.explain_document = ctx.last_document
  obs.windows = #vim.api.nvim_tabpage_list_wins(0)
  obs.current_buffer = vim.api.nvim_buf_get_name(0)
  finish()
end

-- A repository's .ctx/config.toml names another server: the question is recorded (and left
-- unanswered), the repository's server gets nothing until :CtxTrust, then it answers.
function scenarios.trust()
  local asked = {}
  vim.lsp.handlers['window/showMessageRequest'] = function(_, params)
    table.insert(asked, params.message)
    return vim.NIL
  end
  local buf = vim.api.nvim_get_current_buf()
  attach(buf)
  wait_for('the trust question', function()
    return #asked > 0
  end)
  obs.asked = asked
  local ctx = require('ctx_lsp')
  local function run(cmd, command)
    ctx.last = {}
    vim.api.nvim_buf_call(buf, function()
      vim.cmd(cmd)
    end)
    return command_result(command).result
  end
  obs.before = run('1,2CtxExplain', 'ctx.explain').text
  obs.trusted = run('CtxTrust', 'ctx.trustWorkspace')
  obs.after = run('1,2CtxExplain', 'ctx.explain').text
  finish()
end

-- :CtxChat with the lines selected: the answer streams into the chat split; :CtxChatApply on
-- its code block edits the file.
function scenarios.chat()
  local buf = vim.api.nvim_get_current_buf()
  attach(buf)
  local chat = require('ctx_lsp.chat')
  vim.cmd('1,2CtxChat Add type hints to add')
  obs.chat = command_result('ctx.chat').result
  obs.reports = chat.reports
  local chat_buf = chat.state.buf
  obs.chat_lines = lines(chat_buf)
  obs.chat_window = vim.api.nvim_get_current_buf() == chat_buf
  obs.windows = #vim.api.nvim_tabpage_list_wins(0)
  local row
  for i, line in ipairs(obs.chat_lines) do
    if line:find('-> int', 1, true) then
      row = i
    end
  end
  vim.api.nvim_win_set_cursor(0, { assert(row, 'no code line in the chat buffer'), 0 })
  local before = lines(buf)
  vim.cmd('CtxChatApply')
  obs.apply = command_result('ctx.applyCode').result
  wait_for('the code block in the file', function()
    return not vim.deep_equal(lines(buf), before)
  end)
  obs.file_lines = lines(buf)
  finish()
end

-- :CtxChat without a question in a new Neovim: the restored conversation.
function scenarios.chat_restore()
  local buf = vim.api.nvim_get_current_buf()
  attach(buf)
  local chat = require('ctx_lsp.chat')
  vim.cmd('CtxChat')
  wait_for('the restored conversation', function()
    return chat.restored ~= nil
  end)
  obs.restored = chat.restored
  obs.chat_lines = lines(chat.state.buf)
  finish()
end

vim.api.nvim_create_autocmd('VimEnter', {
  once = true,
  callback = function()
    local run = scenarios[scenario]
    if not run then
      return fail('unknown scenario ' .. scenario)
    end
    co = coroutine.create(run)
    vim.defer_fn(function()
      fail('driver timeout (60 s)')
    end, 60000)
    vim.schedule(resume)
  end,
})
