--- codegemma: ghost-text code completion in Neovim from codegemma-lsp (CodeGemma, run locally).
---
--- require('codegemma').setup()
---
--- The server fetches its model (CodeGemma 2B, Q4_K_M) into the Hugging Face cache on
--- first use; `settings = { model = { path = '...' } }` uses a GGUF file of your own.
---
--- Neovim 0.12+ shows the completion as ghost text (vim.lsp.inline_completion):
--- <Tab> accepts it (a plain Tab when none is shown), <M-]> / <M-[> cycle through the
--- server's candidates (completion.candidates),
--- <C-Right> accepts its next word and <C-Down> the rest of its line (each its usual
--- motion when none is shown).
--- Neovim 0.11 gets it in the completion menu instead (vim.lsp.completion), opened
--- after a short pause in typing; <Tab> accepts the first entry there.
--- :CodeGemmaStatus says whether the server is attached, whether its model is ready, how
--- long the last completion took, and your own numbers (shown, accepted, characters kept
--- 30 s later, latency, answers from the cache or joins). While the model loads, a message
--- says so (with the download's percentage); completions asked for meanwhile are asked
--- again once it is ready. While a completion is on its way, a "⋯" shows at the end of
--- the line. The pause before asking follows your typing rhythm (`debounce = 'auto'`):
--- twice your median gap between the last 20 keystrokes, from 75 to 600 ms.

local api = vim.api

local M = {}

local NAME = 'codegemma'
local ACCEPT_PARTIAL_COMMAND = 'codegemma.acceptPartial'
local STATUS_METHOD = 'codegemma/status'
local INLINE_METHOD = 'textDocument/inlineCompletion'
local COMPLETION_METHOD = 'textDocument/completion'
local indicator_ns = api.nvim_create_namespace('codegemma.indicator')
-- Like vim.lsp.inline_completion's own debounce: the pause before asking, until the
-- typing rhythm is known.
local DEFAULT_DEBOUNCE_MS = 200
local DEBOUNCE_MIN_MS, DEBOUNCE_MAX_MS = 75, 600
local RHYTHM_KEYSTROKES = 20
-- A longer gap between keystrokes is a pause, not the rhythm.
local RHYTHM_MAX_GAP_MS = 1000

---@class codegemma.Keymaps
---@field accept string|false
---@field next string|false
---@field prev string|false
---@field accept_word string|false
---@field accept_line string|false

---@class codegemma.Options
---@field cmd string[] How to start the server.
---@field filetypes string[]
---@field root_markers string[]
---@field settings table The server's settings ({ model = {...}, fim = {...}, completion = {...} }).
---@field inline boolean|nil Ghost text (true) or the completion menu (false).
---                           nil: ghost text where Neovim has it (0.12+).
---@field keymaps codegemma.Keymaps
---@field indicator boolean Show "⋯" at the end of the line while a completion is on its way,
---                          and a message while the model loads.
---@field debounce 'auto'|integer Milliseconds without typing before asking; 'auto' follows
---                                the typing rhythm (see M.typing_delay_ms).

---@type codegemma.Options
M.defaults = {
  cmd = { 'codegemma-lsp' },
  filetypes = {
    'python',
    'javascript',
    'typescript',
    'typescriptreact',
    'javascriptreact',
    'go',
    'java',
    'c',
    'cpp',
    'cs',
    'kotlin',
    'rust',
  },
  root_markers = { '.git' },
  settings = {},
  inline = nil,
  indicator = true,
  debounce = 'auto',
  keymaps = {
    accept = '<Tab>',
    next = '<M-]>',
    prev = '<M-[>',
    accept_word = '<C-Right>',
    accept_line = '<C-Down>',
  },
}

---@type codegemma.Options
M.options = vim.deepcopy(M.defaults)

--- The last `codegemma/status` each client sent, by client id.
---@type table<integer, {state: string, model: string, message?: string, progress?: integer}>
M.server_status = {}

--- How long the last completion took, in milliseconds, by client id.
---@type table<integer, number>
M.last_latency_ms = {}

--- The user's own numbers (`codegemma/stats` .user) each client last sent, by client id.
---@type table<integer, {at: integer, numbers: table?}>
M.numbers = {}

--- When the latest edits were made (vim.uv.now(), ms), newest first.
---@type integer[]
local keystrokes = {}

--- The pause before asking for the typing rhythm in `times` (edit times in ms, newest
--- first): twice the median gap between the last 20 keystrokes, from 75 to 600 ms; gaps
--- over a second are pauses, not rhythm. 200 ms until five gaps are known.
---@param times integer[]
---@return integer
function M.typing_delay_ms(times)
  local gaps = {}
  for i = 1, math.min(#times - 1, RHYTHM_KEYSTROKES) do
    local gap = times[i] - times[i + 1]
    if gap <= RHYTHM_MAX_GAP_MS then
      table.insert(gaps, gap)
    end
  end
  if #gaps < 5 then
    return DEFAULT_DEBOUNCE_MS
  end
  table.sort(gaps)
  local n = #gaps
  local median = n % 2 == 1 and gaps[(n + 1) / 2] or (gaps[n / 2] + gaps[n / 2 + 1]) / 2
  return math.floor(math.max(DEBOUNCE_MIN_MS, math.min(DEBOUNCE_MAX_MS, 2 * median)) + 0.5)
end

--- The pause before asking now: the `debounce` option, or the typing rhythm's.
---@return integer
function M.debounce_ms()
  local debounce = M.options.debounce
  if type(debounce) == 'number' then
    return debounce
  end
  return M.typing_delay_ms(keystrokes)
end

local function record_keystroke()
  table.insert(keystrokes, 1, vim.uv.now())
  keystrokes[RHYTHM_KEYSTROKES + 2] = nil
end

--- When each completion request still on its way was sent (vim.uv.hrtime()), by request id.
---@type table<integer, {started: integer, bufnr: integer}>
local pending = {}

---@return table? The vim.lsp.inline_completion module, where this Neovim has one (0.12+).
local function inline_module()
  local ok, module = pcall(require, 'vim.lsp.inline_completion')
  return ok and module or nil
end

local function uses_ghost_text()
  if M.options.inline == nil then
    return inline_module() ~= nil
  end
  return M.options.inline and inline_module() ~= nil
end

-- Lua's empty table is sent as a JSON array; the server wants objects.
local function as_object(value)
  if type(value) ~= 'table' or vim.islist(value) and next(value) ~= nil then
    return value
  end
  local object = vim.empty_dict()
  for key, item in pairs(value) do
    object[key] = as_object(item)
  end
  return object
end

--- Puts an accepted item into the buffer, like vim.lsp.inline_completion does, except
--- that the characters typed since the request are replaced rather than doubled: the
--- item's range ends where the cursor was when Neovim asked, and a fast typist has
--- often typed part of the suggestion since.
---@param item vim.lsp.inline_completion.Item
local function apply_item(item)
  local bufnr = api.nvim_get_current_buf()
  local text = item.insert_text
  if type(text) ~= 'string' then
    vim.snippet.expand(text.value)
  elseif not item.range then
    api.nvim_paste(text, false, -1)
  else
    local start, end_ = item.range.start, item.range.end_
    local end_row, end_col = end_.row, end_.col
    local cursor = api.nvim_win_get_cursor(0)
    local row, col = cursor[1] - 1, cursor[2]
    if row == end_row and col > end_col and row == start.row then
      local typed = api.nvim_buf_get_text(bufnr, start.row, start.col, row, col, {})[1]
      if vim.startswith(text, typed) then
        end_col = col
      end
    end
    local lines = vim.split(text, '\n', { plain = true })
    api.nvim_buf_set_text(bufnr, start.row, start.col, end_row, end_col, lines)
    local last_col = (#lines == 1 and start.col or 0) + #lines[#lines]
    api.nvim_win_set_cursor(0, { start.row + #lines, last_col })
  end
  -- The command tells the server that its suggestion was taken.
  local client = item.command and vim.lsp.get_client_by_id(item.client_id)
  if client then
    client:exec_cmd(item.command, { bufnr = bufnr })
  end
end

--- Accepts the ghost text shown in the current buffer.
---@return boolean accepted false when no ghost text is shown
function M.accept()
  local inline = inline_module()
  return inline ~= nil and inline.get({ on_accept = apply_item })
end

--- The start of `remainder` that a partial accept of `kind` takes. Bytes of UTF-8
--- sequences count as word characters, so "héllo" is one word.
---@param remainder string
---@param kind 'word'|'line'
---@return string
local function next_part(remainder, kind)
  if kind == 'word' then
    return remainder:match('^%s*[%w_\128-\255]+')
      or remainder:match('^%s*[^%w_%s\128-\255]+')
      or remainder
  end
  -- At the end of a line, the line break and the next line: a key press always moves on.
  return remainder:match('^\n?[^\n]*')
end

--- Tells the server how much of its suggestion was taken; the item's accept command
--- names the suggestion.
---@param item vim.lsp.inline_completion.Item
---@param kind 'word'|'line'
---@param part string
local function send_partial_accept(item, kind, part)
  local client = vim.lsp.get_client_by_id(item.client_id)
  local target = vim.tbl_get(item, 'command', 'arguments', 1)
  if not client or type(target) ~= 'table' then
    return
  end
  client:exec_cmd({
    title = 'codegemma: accept partially',
    command = ACCEPT_PARTIAL_COMMAND,
    arguments = {
      { uri = target.uri, id = target.id, kind = kind, chars = vim.fn.strchars(part) },
    },
  }, { bufnr = api.nvim_get_current_buf() })
end

--- Inserts the next word or the rest of the line of an item at the cursor. Neovim
--- asks again after the edit, and the server answers the remainder from its cache.
---@param item vim.lsp.inline_completion.Item
---@param kind 'word'|'line'
local function apply_part(item, kind)
  local text = item.insert_text
  if type(text) ~= 'string' then
    apply_item(item)
    return
  end
  local bufnr = api.nvim_get_current_buf()
  local cursor = api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  -- What the buffer already holds of the item: the range's start up to the cursor.
  local typed = ''
  local start = item.range and item.range.start
  if start and (start.row < row or start.row == row and start.col <= col) then
    typed = table.concat(api.nvim_buf_get_text(bufnr, start.row, start.col, row, col, {}), '\n')
  end
  if not vim.startswith(text, typed) then
    return
  end
  local remainder = text:sub(#typed + 1)
  local part = next_part(remainder, kind)
  if part == '' then
    return
  end
  if part == remainder then
    apply_item(item)
    return
  end
  local lines = vim.split(part, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local last_col = (#lines == 1 and col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { row + #lines, last_col })
  send_partial_accept(item, kind, part)
end

--- Accepts the next word (`kind` 'word') or the rest of the line ('line') of the
--- ghost text shown in the current buffer; the rest stays shown.
---@param kind 'word'|'line'
---@return boolean accepted false when no ghost text is shown
function M.accept_partial(kind)
  local inline = inline_module()
  return inline ~= nil
    and inline.get({
      on_accept = function(item)
        apply_part(item, kind)
      end,
    })
end

---@param count integer
function M.cycle(count)
  local inline = inline_module()
  if inline then
    inline.select({ count = count })
  end
end

---@param mode string
---@param lhs string|false
---@param rhs string|function
---@param bufnr integer
---@param opts table?
local function map(mode, lhs, rhs, bufnr, opts)
  if lhs then
    vim.keymap.set(mode, lhs, rhs, vim.tbl_extend('force', { buffer = bufnr }, opts or {}))
  end
end

---@param bufnr integer
---@return vim.lsp.Client?
local function attached_client(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = NAME })[1]
end

--- vim.lsp.inline_completion asks 200 ms after each keystroke, and offers no option
--- to change that. Its request timer lives in a method of its capability class (a
--- private table, vim.lsp._capability's `all`); in buffers with codegemma attached,
--- the method is given our pause instead. Where Neovim's internals differ, its own
--- 200 ms stay.
local function pace_inline_requests()
  local ok, capability = pcall(require, 'vim.lsp._capability')
  local completor = ok and type(capability.all) == 'table' and capability.all.inline_completion
  if type(completor) ~= 'table' or completor._codegemma_paced then
    return
  end
  local original = completor.automatic_request
  if type(original) ~= 'function' or type(completor.reset_timer) ~= 'function' then
    return
  end
  local automatic = vim.lsp.protocol.InlineCompletionTriggerKind.Automatic
  completor.automatic_request = function(self)
    if not attached_client(self.bufnr) then
      return original(self)
    end
    self:show()
    self:reset_timer()
    self.timer = vim.defer_fn(function()
      self:request(automatic)
    end, M.debounce_ms())
  end
  completor._codegemma_paced = true
end

---@param bufnr integer
local function setup_ghost_text(bufnr)
  vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  pace_inline_requests()
  local keys = M.options.keymaps
  map('i', keys.accept, function()
    return M.accept() and '' or keys.accept
  end, bufnr, { expr = true, desc = 'codegemma: accept the ghost text' })
  map('i', keys.accept_word, function()
    return M.accept_partial('word') and '' or keys.accept_word
  end, bufnr, { expr = true, desc = 'codegemma: accept the next word of the ghost text' })
  map('i', keys.accept_line, function()
    return M.accept_partial('line') and '' or keys.accept_line
  end, bufnr, { expr = true, desc = 'codegemma: accept the rest of the line of the ghost text' })
  map('i', keys.next, function()
    M.cycle(1)
  end, bufnr, { desc = 'codegemma: next suggestion' })
  map('i', keys.prev, function()
    M.cycle(-1)
  end, bufnr, { desc = 'codegemma: previous suggestion' })
end

--- vim.lsp.completion inserts a plain-text item's textEdit only up to its first
--- whitespace (the menu's "word") and leaves it there on accept; put in the rest.
---@param client_id integer
---@param bufnr integer
local function complete_whole_text(client_id, bufnr)
  if api.nvim_get_vvar('event').reason ~= 'accept' then
    return
  end
  local completed = api.nvim_get_vvar('completed_item')
  local lsp_data = vim.tbl_get(completed, 'user_data', 'nvim', 'lsp') or {}
  local item = lsp_data.completion_item
  if lsp_data.client_id ~= client_id or not item or not item.textEdit then
    return
  end
  local text, word = item.textEdit.newText, completed.word
  local cursor = api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  local start_col = col - #word
  if text == word or start_col < 0 or not vim.startswith(text, word) then
    return
  end
  if api.nvim_buf_get_text(bufnr, row, start_col, row, col, {})[1] ~= word then
    return
  end
  local lines = vim.split(text, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row, start_col, row, col, lines)
  local last_col = (#lines == 1 and start_col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { row + #lines, last_col })
end

---@param client vim.lsp.Client
---@param bufnr integer
local function setup_menu(client, bufnr)
  vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = true })
  -- An automatically opened menu must not insert its first entry by itself.
  local completeopt = vim.o.completeopt
  if not completeopt:find('noselect') and not completeopt:find('noinsert') then
    pcall(function()
      vim.bo[bufnr].completeopt = 'menuone,noselect,popup'
    end)
  end
  local group = api.nvim_create_augroup('codegemma.menu.' .. bufnr, { clear = true })
  api.nvim_create_autocmd('CompleteDone', {
    group = group,
    buffer = bufnr,
    callback = function()
      complete_whole_text(client.id, bufnr)
    end,
  })
  -- The server names no trigger characters, so ask after a pause in typing.
  local timer = assert(vim.uv.new_timer())
  local function ask()
    local typing = api.nvim_get_current_buf() == bufnr and api.nvim_get_mode().mode == 'i'
    if typing and vim.fn.pumvisible() == 0 then
      vim.lsp.completion.get()
    end
  end
  api.nvim_create_autocmd('TextChangedI', {
    group = group,
    buffer = bufnr,
    callback = function()
      timer:stop()
      timer:start(M.debounce_ms(), 0, vim.schedule_wrap(ask))
    end,
  })
  api.nvim_create_autocmd('BufWipeout', {
    group = group,
    buffer = bufnr,
    callback = function()
      timer:close()
    end,
  })
  local keys = M.options.keymaps
  map('i', keys.accept, function()
    if vim.fn.pumvisible() == 0 then
      return keys.accept
    end
    return vim.fn.complete_info({ 'selected' }).selected == -1 and '<C-n><C-y>' or '<C-y>'
  end, bufnr, { expr = true, desc = 'codegemma: accept the completion' })
end

---@class codegemma.Status
---@field attached boolean
---@field client_id integer?
---@field mode string 'ghost text' or 'completion menu'
---@field state string 'starting' until the server reports, then its state
---@field model string?
---@field message string?
---@field progress integer? While downloading: the percentage fetched.
---@field latency_ms number? How long the last completion took.
---@field thinking boolean A completion is on its way.
---@field slow boolean The server said its answers have become slow (the message says why).
---@field numbers table? Your own numbers, as `codegemma/stats` gives them (.user).

--- Where codegemma stands in buffer `bufnr` (default: current).
---@param bufnr integer?
---@return codegemma.Status
function M.status(bufnr)
  bufnr = bufnr and bufnr ~= 0 and bufnr or api.nvim_get_current_buf()
  local client = attached_client(bufnr)
  local reported = client and M.server_status[client.id] or {}
  local message = reported.message
  return {
    attached = client ~= nil,
    client_id = client and client.id,
    mode = uses_ghost_text() and 'ghost text' or 'completion menu',
    state = client and (reported.state or 'starting') or 'not running',
    model = reported.model ~= vim.NIL and reported.model or nil,
    message = message ~= vim.NIL and message ~= '' and message or nil,
    progress = type(reported.progress) == 'number' and reported.progress or nil,
    latency_ms = client and M.last_latency_ms[client.id] or nil,
    thinking = client ~= nil and vim.iter(pairs(pending)):any(function(_, request)
      return request.bufnr == bufnr
    end),
    slow = reported.slow == true,
    numbers = client and (M.numbers[client.id] or {}).numbers or nil,
  }
end

--- Asks the server for your numbers (codegemma/stats), at most every 10 s unless `wait`;
--- with `wait`, waits for them (a second at most).
---@param client vim.lsp.Client
---@param wait boolean?
local function refresh_numbers(client, wait)
  local known = M.numbers[client.id]
  local now = vim.uv.now()
  if wait then
    local response = client:request_sync('codegemma/stats', {}, 1000, 0)
    local result = response and response.result
    if type(result) == 'table' then
      M.numbers[client.id] = { at = now, numbers = result.user }
    end
  elseif not known or now - known.at > 10000 then
    M.numbers[client.id] = { at = now, numbers = known and known.numbers }
    client:request('codegemma/stats', {}, function(err, result)
      if not err and type(result) == 'table' then
        M.numbers[client.id] = { at = vim.uv.now(), numbers = result.user }
      end
    end, 0)
  end
end

--- Your numbers in one line, e.g. "shown 12, accepted 5 (+1 partly), 80 of 96 characters
--- kept 30 s; p50 240 ms, p95 900 ms; 25% from cache or joins".
---@param numbers table?
---@return string?
function M.format_numbers(numbers)
  if type(numbers) ~= 'table' or numbers.shown == nil then
    return nil
  end
  local latency = numbers.latency_ms or {}
  return ('shown %d, accepted %d (+%d partly), %d of %d characters kept 30 s; '
    .. 'p50 %d ms, p95 %d ms; %d%% from cache or joins'):format(
    numbers.shown,
    numbers.accepted or 0,
    numbers.accepted_partially or 0,
    numbers.retained_chars or 0,
    numbers.accepted_chars or 0,
    math.floor(latency.p50 or 0),
    math.floor(latency.p95 or 0),
    math.floor(100 * (numbers.cache_or_join_share or 0) + 0.5)
  )
end

---@param ms number
---@return string
local function format_latency(ms)
  return ms < 1000 and ('%d ms'):format(ms) or ('%.1f s'):format(ms / 1000)
end

--- One line for a statusline, e.g. "codegemma: ready".
function M.statusline()
  local status = M.status()
  if not status.attached then
    return ''
  end
  if status.state == 'downloading' and status.progress then
    return ('codegemma: downloading %d%%'):format(status.progress)
  end
  if status.state == 'ready' and status.thinking then
    return 'codegemma: thinking'
  end
  if status.state == 'ready' and status.slow then
    return 'codegemma: slow'
  end
  return 'codegemma: ' .. status.state
end

local function show_status()
  local client = attached_client(api.nvim_get_current_buf())
  if client then
    refresh_numbers(client, true)
  end
  local status = M.status()
  local lines = {}
  if status.attached then
    local attached = ('codegemma: attached (client %d, %s)'):format(status.client_id, status.mode)
    table.insert(lines, attached)
    table.insert(lines, ('server: %s, model: %s'):format(status.state, status.model or '-'))
    if status.message then
      table.insert(lines, 'message: ' .. status.message)
    end
    local latency = status.latency_ms and format_latency(status.latency_ms) or 'none yet'
    table.insert(lines, 'last completion: ' .. latency)
    local numbers = M.format_numbers(status.numbers)
    if numbers then
      table.insert(lines, 'yours: ' .. numbers)
    end
    table.insert(lines, ('asks after: %d ms without typing'):format(M.debounce_ms()))
  else
    local filetype = vim.bo.filetype ~= '' and vim.bo.filetype or 'none'
    table.insert(lines, ('codegemma: not attached to this buffer (filetype %s)'):format(filetype))
    table.insert(lines, 'filetypes: ' .. table.concat(M.options.filetypes, ' '))
    table.insert(lines, 'cmd: ' .. table.concat(M.options.cmd, ' '))
  end
  api.nvim_echo({ { table.concat(lines, '\n') } }, true, {})
end

--- Asks again for a completion at the cursor, as typing would: what was typed while the
--- model loaded got no answer, and nothing else would ask until the next keystroke.
---@param client_id integer
local function ask_again(client_id)
  local bufnr = api.nvim_get_current_buf()
  local client = attached_client(bufnr)
  if not client or client.id ~= client_id or not api.nvim_get_mode().mode:match('^i') then
    return
  end
  if uses_ghost_text() then
    -- vim.lsp.inline_completion asks (debounced) on CursorMovedI, in its own augroup.
    pcall(api.nvim_exec_autocmds, 'CursorMovedI', {
      group = ('nvim.lsp.inline_completion:%d'):format(bufnr),
      buffer = bufnr,
      modeline = false,
    })
  elseif vim.fn.pumvisible() == 0 then
    vim.lsp.completion.get()
  end
end

--- A message while the model loads, replaced as the download progresses.
---@param params {state: string, model: string, message?: string, progress?: integer}
local function show_loading(params)
  if not M.options.indicator then
    return
  end
  local text
  if params.state == 'downloading' then
    text = params.progress and ('codegemma: downloading the model, %d%%'):format(params.progress)
      or 'codegemma: downloading the model'
  elseif params.state == 'loading' then
    text = 'codegemma: loading the model; completions start when it is ready'
  end
  if text then
    api.nvim_echo({ { text, 'Comment' } }, false, {})
  end
end

---@param params {state: string, model: string, message?: string, progress?: integer}
---@param ctx lsp.HandlerContext
local function on_status(_, params, ctx)
  local previous = M.server_status[ctx.client_id]
  M.server_status[ctx.client_id] = params
  show_loading(params)
  if params.state == 'ready' and (previous == nil or previous.state ~= 'ready') then
    if previous and previous.state ~= 'ready' and M.options.indicator then
      api.nvim_echo({ { 'codegemma: ready', 'Comment' } }, false, {})
    end
    ask_again(ctx.client_id)
  end
  api.nvim_exec_autocmds('User', { pattern = 'CodeGemmaStatus', modeline = false, data = params })
end

---@param bufnr integer
local function clear_thinking(bufnr)
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, indicator_ns, 0, -1)
  end
end

--- Tracks codegemma's completion requests: the "⋯" while one is on its way, and the
--- latency of each that is answered.
---@param args vim.api.keyset.create_autocmd.callback_args
local function on_lsp_request(args)
  local data = args.data or {}
  local request = data.request or {}
  if request.method ~= INLINE_METHOD and request.method ~= COMPLETION_METHOD then
    return
  end
  local client = vim.lsp.get_client_by_id(data.client_id)
  if not client or client.name ~= NAME then
    return
  end
  local id, bufnr = data.request_id, request.bufnr or args.buf
  if request.type == 'pending' then
    pending[id] = { started = vim.uv.hrtime(), bufnr = bufnr }
    if M.options.indicator and bufnr == api.nvim_get_current_buf() then
      clear_thinking(bufnr)
      local row = api.nvim_win_get_cursor(0)[1] - 1
      pcall(api.nvim_buf_set_extmark, bufnr, indicator_ns, row, 0, {
        virt_text = { { ' ⋯', 'Comment' } },
        virt_text_pos = 'eol',
      })
    end
    return
  end
  local started = pending[id]
  pending[id] = nil
  if started and request.type == 'complete' then
    M.last_latency_ms[data.client_id] = (vim.uv.hrtime() - started.started) / 1e6
    refresh_numbers(client)
  end
  local still = vim.iter(pairs(pending)):any(function(_, other)
    return other.bufnr == bufnr
  end)
  if not still then
    clear_thinking(bufnr)
  end
end

-- ----- generate code from an instruction ----------------------------------------------

local GENERATE_COMMAND = 'codegemma.generate'
local GENERATE_PROGRESS = '^codegemma%-generate%-'

--- The generation requests this plugin sent and that are not answered yet, and the
--- server's progress tokens of generations under way (a code action's included).
---@type table<integer, {client: vim.lsp.Client, id: integer}>
local generating = {}
---@type table<string, integer>
local generate_progress = {}

--- Asks the server for code: below the comment at or above the cursor, or in place of
--- the selection (`opts.range`, an LSP range), following `opts.instruction` if given.
--- The server answers with an edit (workspace/applyEdit), which Neovim applies.
---@param opts {range?: lsp.Range, instruction?: string, bufnr?: integer}|nil
---@return integer|nil request_id nil when no codegemma server is attached
function M.generate(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or api.nvim_get_current_buf()
  local client = attached_client(bufnr)
  if not client then
    vim.notify('codegemma: not attached to this buffer', vim.log.levels.WARN)
    return nil
  end
  local range = opts.range
  if not range then
    local position = vim.lsp.util.make_position_params(0, client.offset_encoding).position
    range = { start = position, ['end'] = position }
  end
  local argument = { uri = vim.uri_from_bufnr(bufnr), range = range }
  if opts.instruction and opts.instruction ~= '' then
    argument.instruction = opts.instruction
  end
  local params = { command = GENERATE_COMMAND, arguments = { argument } }
  local request_id ---@type integer?
  local ok, id = client:request('workspace/executeCommand', params, function(err, result)
    for key, request in pairs(generating) do
      if request.client == client and request.id == request_id then
        generating[key] = nil
      end
    end
    -- "Cancelled" was asked for; the server shows its own messages (window/showMessage).
    if err and err.code ~= -32800 then
      vim.notify('codegemma: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    end
    -- A User autocommand with the answer: { applied, lines, whole } or { applied, message }.
    api.nvim_exec_autocmds('User', {
      pattern = 'CodeGemmaGenerated',
      modeline = false,
      data = type(result) == 'table' and result or { applied = false },
    })
  end, bufnr)
  if not ok or not id then
    return nil
  end
  request_id = id
  table.insert(generating, { client = client, id = id })
  return id
end

--- Cancels the generations under way: this plugin's requests, and any other (a code
--- action's) through its progress token.
function M.cancel_generate()
  for key, request in pairs(generating) do
    request.client:cancel_request(request.id)
    generating[key] = nil
  end
  for token, client_id in pairs(generate_progress) do
    local client = vim.lsp.get_client_by_id(client_id)
    if client then
      client:notify('window/workDoneProgress/cancel', { token = token })
    end
    generate_progress[token] = nil
  end
end

--- Follows the server's generation progress, so that it can be cancelled.
---@param args vim.api.keyset.create_autocmd.callback_args
local function on_progress(args)
  local data = args.data or {}
  local params = data.params or {}
  local token = params.token
  if type(token) ~= 'string' or not token:match(GENERATE_PROGRESS) then
    return
  end
  local kind = type(params.value) == 'table' and params.value.kind
  if kind == 'begin' then
    generate_progress[token] = data.client_id
  elseif kind == 'end' then
    generate_progress[token] = nil
  end
end

--- The LSP range of the last visual selection in buffer `bufnr`: characterwise as
--- selected, linewise as whole lines (up to the start of the line after the last).
---@param client vim.lsp.Client
---@param bufnr integer
---@return lsp.Range
local function visual_range(client, bufnr)
  local first = api.nvim_buf_get_mark(bufnr, '<')
  local last = api.nvim_buf_get_mark(bufnr, '>')
  if vim.fn.visualmode() == 'V' then
    return {
      start = { line = first[1] - 1, character = 0 },
      ['end'] = { line = last[1], character = 0 },
    }
  end
  local line = api.nvim_buf_get_lines(bufnr, last[1] - 1, last[1], true)[1]
  last[2] = math.min(last[2], math.max(#line - 1, 0))
  return vim.lsp.util.make_given_range_params(first, last, bufnr, client.offset_encoding).range
end

---@param command vim.api.keyset.create_user_command.command_args
local function generate_command(command)
  local bufnr = api.nvim_get_current_buf()
  local client = attached_client(bufnr)
  if not client then
    vim.notify('codegemma: not attached to this buffer', vim.log.levels.WARN)
    return
  end
  local range = command.range > 0 and visual_range(client, bufnr) or nil
  M.generate({ bufnr = bufnr, range = range, instruction = command.args })
end

---@param opts codegemma.Options|table|nil
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('codegemma needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  opts = opts or {}
  local options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- Lists replace the defaults rather than merge into them by index.
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    options[key] = opts[key] or M.defaults[key]
  end
  options.inline = opts.inline
  M.options = options

  local config = {
    cmd = options.cmd,
    filetypes = options.filetypes,
    root_markers = options.root_markers,
    handlers = { [STATUS_METHOD] = on_status },
  }
  if next(options.settings) then
    -- initializationOptions let the model load with the right settings at once;
    -- settings answer workspace/configuration and are sent again after initialize.
    config.init_options = { codegemma = as_object(options.settings) }
    config.settings = { codegemma = as_object(options.settings) }
  end
  vim.lsp.config(NAME, config)
  vim.lsp.enable(NAME)

  local group = api.nvim_create_augroup('codegemma', { clear = true })
  api.nvim_create_autocmd('LspRequest', { group = group, callback = on_lsp_request })
  api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= NAME then
        return
      end
      if uses_ghost_text() then
        setup_ghost_text(args.buf)
      else
        setup_menu(client, args.buf)
      end
      api.nvim_create_autocmd('TextChangedI', {
        group = api.nvim_create_augroup('codegemma.rhythm.' .. args.buf, { clear = true }),
        buffer = args.buf,
        callback = record_keystroke,
      })
    end,
  })
  api.nvim_create_user_command('CodeGemmaStatus', show_status, {
    desc = 'Show whether codegemma-lsp is attached and its model ready',
  })
  api.nvim_create_autocmd('LspProgress', { group = group, callback = on_progress })
  api.nvim_create_user_command('CodeGemmaGenerate', generate_command, {
    desc = 'Generate code from the comment above the cursor, the selection, or the words given',
    nargs = '*',
    range = true,
  })
  api.nvim_create_user_command('CodeGemmaGenerateCancel', M.cancel_generate, {
    desc = 'Cancel the code generations under way',
  })
end

return M
