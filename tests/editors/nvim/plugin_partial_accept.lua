-- The plugin's partial accept: with ghost text shown, <C-Right> inserts its next word,
-- the rest stays shown, and the server counts a partial accept (codegemma/stats).
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local H = dofile(vim.fs.joinpath(here, 'harness.lua'))
local P = H.params
local api = vim.api

vim.lsp.log.set_level(vim.log.levels.DEBUG)
vim.opt.runtimepath:append(P.plugin_dir)
require('codegemma').setup({ cmd = P.cmd, settings = P.settings })

H.run(function()
  local codegemma = require('codegemma')
  vim.cmd.edit(vim.fn.fnameescape(P.file))
  local client = H.wait_attached('codegemma', P.attach_timeout_ms)
  H.wait_until('the model to be ready', P.ready_timeout_ms, function()
    return codegemma.status().state == 'ready'
  end)
  H.set('word_mapping', vim.fn.maparg('<C-Right>', 'i', false, true).desc or vim.NIL)
  H.set('line_mapping', vim.fn.maparg('<C-Down>', 'i', false, true).desc or vim.NIL)

  api.nvim_win_set_cursor(0, { P.line, 0 })
  H.feed('A')
  H.set('ghost', H.wait_until('ghost text', P.ghost_timeout_ms, H.ghost))
  H.feed('<C-Right>')
  H.set('line_after_word', H.line())
  H.set('cursor_after_word', H.cursor())
  H.wait_until('the partial accept command to be answered', 2000, function()
    return H.answered['workspace/executeCommand']
  end)
  H.set('ghost_after_word', H.wait_until('the rest as ghost text', P.ghost_timeout_ms, H.ghost))
  local response = client:request_sync('codegemma/stats', {}, 2000, 0)
  H.set('stats', response and response.result or vim.NIL)
end)
