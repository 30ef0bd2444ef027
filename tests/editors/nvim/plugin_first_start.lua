-- A new user's first start, through editor-configs/nvim with no model path: the server
-- downloads the model (slowly, from a stand-in hub) while the user is already typing.
-- Records how many loads the server reported ($/progress begins and ends, and
-- codegemma/status states), whether Neovim asked again for a completion once the model
-- was ready (with no keystroke), and what :CodeGemmaStatus says afterwards.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local H = dofile(vim.fs.joinpath(here, 'harness.lua'))
local P = H.params
local api = vim.api

vim.lsp.log.set_level(vim.log.levels.DEBUG)
vim.opt.runtimepath:append(P.plugin_dir)
-- Settings given, so Neovim sends them twice: as initializationOptions, and in a
-- didChangeConfiguration right after initialized.
require('codegemma').setup({ cmd = P.cmd, settings = P.settings })

local INLINE = 'textDocument/inlineCompletion'
local progress = { begin = 0, report = 0, ['end'] = 0 }
local states = {}
local asked_after_ready, answered_after_ready = 0, 0
local ready = false
-- The highest percentage the plugin was told, from its status events: polling its state
-- could miss a download that goes from 0% to 100% between two polls.
local max_progress = -1

api.nvim_create_autocmd('LspProgress', {
  callback = function(args)
    local value = args.data.params.value
    if type(value) == 'table' and progress[value.kind] then
      progress[value.kind] = progress[value.kind] + 1
      H.note('progress', value)
    end
  end,
})
api.nvim_create_autocmd('User', {
  pattern = 'CodeGemmaStatus',
  callback = function(args)
    table.insert(states, args.data.state)
    ready = args.data.state == 'ready'
    if type(args.data.progress) == 'number' and args.data.progress > max_progress then
      max_progress = args.data.progress
    end
  end,
})
api.nvim_create_autocmd('LspRequest', {
  callback = function(args)
    local request = args.data.request
    if ready and request.method == INLINE and request.type == 'pending' then
      asked_after_ready = asked_after_ready + 1
    elseif ready and request.method == INLINE and request.type == 'complete' then
      answered_after_ready = answered_after_ready + 1
    end
  end,
})

H.run(function()
  local codegemma = require('codegemma')
  vim.cmd.edit(vim.fn.fnameescape(P.file))
  H.wait_attached('codegemma', P.attach_timeout_ms)
  -- Start typing at once: the model is still on its way.
  api.nvim_win_set_cursor(0, { P.line, 0 })
  H.feed('A')
  H.set('state_when_typing', codegemma.status().state)
  local statusline_downloading = vim.NIL
  H.wait_until('the model to be ready', P.ready_timeout_ms, function()
    local status = codegemma.status()
    if status.state == 'downloading' and statusline_downloading == vim.NIL then
      statusline_downloading = codegemma.statusline()
    end
    return status.state == 'ready'
  end)
  H.set('max_progress', max_progress)
  H.set('statusline_downloading', statusline_downloading)
  -- No key is pressed from here on: the plugin must ask again by itself.
  local indicator_ns = api.nvim_create_namespace('codegemma.indicator')
  local indicator_seen = false
  H.wait_until('a request after ready, answered', P.ghost_timeout_ms, function()
    if #api.nvim_buf_get_extmarks(0, indicator_ns, 0, -1, {}) > 0 then
      indicator_seen = true
    end
    return answered_after_ready > 0
  end)
  H.set('indicator_seen', indicator_seen)
  H.set('indicator_marks_after', #api.nvim_buf_get_extmarks(0, indicator_ns, 0, -1, {}))
  H.set('asked_after_ready', asked_after_ready)
  H.set('ghost', H.ghost() or vim.NIL)
  H.set('status', codegemma.status())
  H.set('status_command', api.nvim_exec2('CodeGemmaStatus', { output = true }).output)
  -- Anything a second load would send comes within moments.
  H.sleep(1000)
  H.set('progress', progress)
  H.set('states', states)
end)
