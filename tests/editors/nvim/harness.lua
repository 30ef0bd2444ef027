-- Drives one headless Neovim scenario for tests/editors/test_neovim.py.
--
-- A scenario script does `local H = dofile(<this file>)`, sets Neovim up, then
-- calls `H.run(function() ... end)`. The body runs in a coroutine resumed from
-- timers, so between steps control returns to Neovim's main loop: keys fed with
-- nvim_input go through the typeahead exactly like typed keys (mappings, InsertEnter,
-- CursorMovedI and TextChangedI all fire), and LSP replies and debounce timers run.
--
-- Parameters come from the JSON file named by $CODEGEMMA_NVIM_PARAMS; the outcome
-- (values the scenario recorded, a timeline, messages, notifications) is written to
-- params.result_file, then Neovim quits. A watchdog ends a stuck scenario.

local api, uv = vim.api, vim.uv

local H = {}

local params_file = assert(os.getenv('CODEGEMMA_NVIM_PARAMS'), '$CODEGEMMA_NVIM_PARAMS is not set')
H.params = vim.json.decode(table.concat(vim.fn.readfile(params_file), '\n'))
H.ns = api.nvim_create_namespace('nvim.lsp.inline_completion')

local started = uv.hrtime()
local result = { ok = false, values = {}, timeline = {}, notifications = {} }
local finished = false

function H.now_ms()
  return (uv.hrtime() - started) / 1e6
end

--- Records a value the Python side asserts on.
function H.set(key, value)
  result.values[key] = value
end

--- Adds a line to the timeline that is printed when a test fails.
function H.note(what, value)
  table.insert(result.timeline, { t_ms = math.floor(H.now_ms()), what = what, value = value })
end

-- Notifications are kept so tests can assert that none complained.
local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(result.notifications, { msg = tostring(msg), level = level })
  H.note('notify', msg)
  return notify(msg, level, opts)
end

local function messages()
  local ok, out = pcall(api.nvim_exec2, 'messages', { output = true })
  return ok and out.output or ('(messages unavailable: ' .. tostring(out) .. ')')
end

local function finish(err)
  if finished then
    return
  end
  finished = true
  result.ok = err == nil
  result.error = err
  result.messages = messages()
  result.elapsed_ms = math.floor(H.now_ms())
  local ok, lines = pcall(api.nvim_buf_get_lines, 0, 0, -1, false)
  result.final_buffer = ok and lines or nil
  vim.fn.writefile({ vim.json.encode(result) }, H.params.result_file)
  -- Stop the servers without waiting for a graceful shutdown: the test only needs the result.
  for _, client in ipairs(vim.lsp.get_clients()) do
    client:stop(true)
  end
  vim.cmd('qall!')
end

local runner ---@type thread?

local function resume(co)
  local ok, err = coroutine.resume(co)
  if not ok then
    finish(tostring(err))
  end
end

--- Yields to Neovim's main loop for `ms` milliseconds.
function H.sleep(ms)
  local co = assert(coroutine.running(), 'H.sleep outside H.run')
  vim.defer_fn(function()
    resume(co)
  end, ms)
  coroutine.yield()
end

--- Polls `cond` every 5 ms until it returns a truthy value, which is returned.
function H.wait_until(what, timeout_ms, cond)
  local deadline = H.now_ms() + timeout_ms
  while true do
    local value = cond()
    if value then
      return value
    end
    if H.now_ms() > deadline then
      error(('timed out after %d ms waiting for %s'):format(timeout_ms, what), 0)
    end
    H.sleep(5)
  end
end

local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return { pos[1], pos[2] }
end

--- Feeds keys as typed ones and waits until Neovim has consumed them, detected by
--- a change of mode, cursor or buffer.
function H.feed(keys)
  local before = { api.nvim_get_mode().mode, cursor(), api.nvim_buf_get_changedtick(0) }
  api.nvim_input(keys)
  H.wait_until('Neovim to consume ' .. vim.inspect(keys), 2000, function()
    local now = { api.nvim_get_mode().mode, cursor(), api.nvim_buf_get_changedtick(0) }
    return not vim.deep_equal(before, now) and api.nvim_get_mode().blocking == false
  end)
  H.note('fed', keys)
end

--- Types `text` one character at a time, `delay_ms` apart (a fast typist: under the
--- 200 ms debounce of vim.lsp.inline_completion).
function H.type(text, delay_ms)
  for _, char in ipairs(vim.fn.split(text, '\\zs')) do
    H.feed(char == '<' and '<lt>' or char)
    H.sleep(delay_ms or 30)
  end
end

--- The ghost text on screen: the inline-completion extmark's text, or nil.
function H.ghost()
  local marks = api.nvim_buf_get_extmarks(0, H.ns, 0, -1, { details = true })
  local mark = marks[1]
  if not mark then
    return nil
  end
  local details = mark[4]
  local function text_of(chunks)
    local parts = {}
    for _, chunk in ipairs(chunks or {}) do
      -- ComplHintMore is the " (1/3)" counter, not completion text.
      if chunk[2] ~= 'ComplHintMore' then
        table.insert(parts, chunk[1])
      end
    end
    return table.concat(parts)
  end
  local lines = { text_of(details.virt_text) }
  for _, virt_line in ipairs(details.virt_lines or {}) do
    table.insert(lines, text_of(virt_line))
  end
  return {
    row = mark[2],
    col = mark[3],
    text = table.concat(lines, '\n'),
    pos = details.virt_text_pos,
    marks = #marks,
  }
end

--- The text of line `lnum` (1-based; default: the cursor's).
function H.line(lnum)
  lnum = lnum or api.nvim_win_get_cursor(0)[1]
  return api.nvim_buf_get_lines(0, lnum - 1, lnum, true)[1]
end

H.cursor = cursor

--- The one attached client named `name`, once it has initialized.
function H.wait_attached(name, timeout_ms)
  return H.wait_until(name .. ' to attach', timeout_ms, function()
    local client = vim.lsp.get_clients({ bufnr = 0, name = name })[1]
    return client and client.initialized and client or nil
  end)
end

--- Opens the scenario's file through the codegemma plugin and waits until its model is
--- ready; records and returns the plugin's status.
function H.open_ready()
  local codegemma = require('codegemma')
  vim.cmd.edit(vim.fn.fnameescape(H.params.file))
  H.wait_attached('codegemma', H.params.attach_timeout_ms)
  H.wait_until('the model to be ready', H.params.ready_timeout_ms, function()
    return codegemma.status().state == 'ready'
  end)
  H.set('status', codegemma.status())
  return codegemma
end

--- Counts answered requests per method, so a step can wait for the next answer.
H.answered = {}
api.nvim_create_autocmd('LspRequest', {
  callback = function(args)
    local request = args.data.request
    if request.type == 'complete' then
      H.answered[request.method] = (H.answered[request.method] or 0) + 1
      H.note('answered', request.method)
    end
  end,
})

--- Runs the scenario body; any error ends the run with ok=false and the traceback.
function H.run(body)
  vim.defer_fn(function()
    finish(('watchdog: scenario still running after %d ms'):format(H.params.timeout_ms))
  end, H.params.timeout_ms)
  runner = coroutine.create(function()
    local ok, err = xpcall(body, debug.traceback)
    finish(ok and nil or err)
  end)
  vim.schedule(function()
    resume(runner)
  end)
end

return H
