-- The user's path: editor-configs/nvim through require('codegemma').setup{...}.
-- Ghost text appears; <Esc> clears it; typing the predicted character keeps the rest;
-- <Tab> accepts; <Tab> with nothing shown is a plain Tab; :CodeGemmaStatus reports.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local H = dofile(vim.fs.joinpath(here, 'harness.lua'))
local P = H.params
local api = vim.api

vim.lsp.log.set_level(vim.log.levels.DEBUG)
vim.opt.runtimepath:append(P.plugin_dir)
require('codegemma').setup({ cmd = P.cmd, settings = P.settings })

local INLINE = 'textDocument/inlineCompletion'

H.run(function()
  local codegemma = require('codegemma')
  H.set('status_command_unattached', api.nvim_exec2('CodeGemmaStatus', { output = true }).output)
  vim.cmd.edit(vim.fn.fnameescape(P.file))
  H.wait_attached('codegemma', P.attach_timeout_ms)
  H.wait_until('the model to be ready', P.ready_timeout_ms, function()
    return codegemma.status().state == 'ready'
  end)
  H.set('status', codegemma.status())
  H.set('status_command', api.nvim_exec2('CodeGemmaStatus', { output = true }).output)
  H.set('accept_mapping', vim.fn.maparg('<Tab>', 'i', false, true).desc or vim.NIL)
  H.set('next_mapping', vim.fn.maparg('<M-]>', 'i', false, true).desc or vim.NIL)

  -- The line holds the start of a statement; entering Insert mode at its end asks.
  api.nvim_win_set_cursor(0, { P.line, 0 })
  H.feed('A')
  H.set('first_ghost', H.wait_until('ghost text', P.ghost_timeout_ms, H.ghost))

  H.feed('<Esc>')
  H.set('ghost_after_esc', H.ghost() or vim.NIL)
  H.sleep(400)
  H.set('ghost_400ms_after_esc', H.ghost() or vim.NIL)

  H.feed('A')
  local ghost = H.wait_until('ghost text again', P.ghost_timeout_ms, H.ghost)
  -- Type the suggestion's first character: before the next request (200 ms debounce)
  -- Neovim must already show the rest.
  H.feed(vim.fn.strcharpart(ghost.text, 0, 1))
  H.set('ghost_after_typing_ahead', H.ghost() or vim.NIL)
  H.feed('<Tab>')
  H.set('line_after_tab', H.line())
  H.set('cursor_after_tab', H.cursor())
  H.wait_until('the accept command to be answered', 2000, function()
    return H.answered['workspace/executeCommand']
  end)

  -- Nothing is shown right after entering Insert mode on a new line: Tab is a Tab.
  H.feed('<Esc>')
  H.feed('o')
  H.feed('<Tab>')
  H.set('line_after_plain_tab', H.line())

  -- Typing ahead once the server has answered the new position too.
  H.feed('<Esc>')
  api.nvim_set_current_line('')
  H.feed('A')
  H.type(P.typed)
  ghost = H.wait_until('ghost text on the new line', P.ghost_timeout_ms, H.ghost)
  local answered = H.answered[INLINE] or 0
  H.feed(vim.fn.strcharpart(ghost.text, 0, 1))
  H.wait_until('the answer for the typed-ahead position', P.ghost_timeout_ms, function()
    return (H.answered[INLINE] or 0) > answered
  end)
  H.set('typed_ahead_line', H.line())
  H.set('ghost_after_server_answered', H.ghost() or vim.NIL)
end)
