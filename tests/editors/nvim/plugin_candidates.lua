-- Several candidates (the tiny model, completion.candidates 3): <M-]> and <M-[> cycle
-- through them; the pause before asking follows the typing rhythm; :CodeGemmaStatus
-- gives the user's own numbers.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local H = dofile(vim.fs.joinpath(here, 'harness.lua'))
local P = H.params
local api = vim.api

vim.lsp.log.set_level(vim.log.levels.DEBUG)
vim.opt.runtimepath:append(P.plugin_dir)
require('codegemma').setup({ cmd = P.cmd, settings = P.settings })

H.run(function()
  local codegemma = H.open_ready()
  H.set('debounce_before', codegemma.debounce_ms())
  api.nvim_win_set_cursor(0, { P.line, 0 })
  H.feed('A')
  H.type(P.typed, 40)
  H.set('debounce_after_typing', codegemma.debounce_ms())
  local first = H.wait_until('ghost text', P.ghost_timeout_ms, H.ghost)
  H.set('first', first)
  -- Cycling changes only the ghost text, which H.feed cannot see: input and wait.
  api.nvim_input('<M-]>')
  H.set('second', H.wait_until('another candidate', 2000, function()
    local ghost = H.ghost()
    return ghost and ghost.text ~= first.text and ghost or nil
  end))
  api.nvim_input('<M-[>')
  H.set('back', H.wait_until('the first candidate again', 2000, function()
    local ghost = H.ghost()
    return ghost and ghost.text == first.text and ghost or nil
  end))
  H.set('status_command', api.nvim_exec2('CodeGemmaStatus', { output = true }).output)
  H.set('numbers', codegemma.status().numbers or vim.NIL)
end)
