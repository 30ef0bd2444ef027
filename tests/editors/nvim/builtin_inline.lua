-- Neovim's own vim.lsp.inline_completion against codegemma-lsp, without the plugin:
-- type on a line, wait for the ghost text, accept it with inline_completion.get().
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local H = dofile(vim.fs.joinpath(here, 'harness.lua'))
local P = H.params

vim.lsp.log.set_level(vim.log.levels.DEBUG)
vim.lsp.config('codegemma-test', {
  cmd = P.cmd,
  filetypes = { 'python' },
  root_dir = P.root,
  handlers = {
    ['codegemma/status'] = function(_, status)
      H.note('status', status)
      H.status = status
    end,
  },
})
vim.lsp.enable('codegemma-test')
vim.lsp.inline_completion.enable()

H.run(function()
  vim.cmd.edit(vim.fn.fnameescape(P.file))
  local client = H.wait_attached('codegemma-test', P.attach_timeout_ms)
  H.set('offset_encoding', client.offset_encoding)
  -- A request sent while the model loads gets no items, and Neovim asks again only
  -- when the cursor moves: so start typing once the model is ready.
  H.wait_until('the model to be ready', P.ready_timeout_ms, function()
    return H.status and H.status.state == 'ready'
  end)

  vim.api.nvim_win_set_cursor(0, { P.line, 0 })
  H.feed('A')
  H.type(P.typed)
  local typed_at = H.now_ms()
  local ghost = H.wait_until('ghost text', P.ghost_timeout_ms, H.ghost)
  H.set('ghost_ms', math.floor(H.now_ms() - typed_at))
  H.set('ghost', ghost)
  H.set('cursor_before_accept', H.cursor())

  local tick = vim.api.nvim_buf_get_changedtick(0)
  H.set('get_returned', vim.lsp.inline_completion.get())
  H.wait_until('the accepted text in the buffer', 2000, function()
    return vim.api.nvim_buf_get_changedtick(0) ~= tick
  end)
  H.set('lines', vim.api.nvim_buf_get_lines(0, 0, -1, false))
  H.set('cursor', H.cursor())
  H.set('ghost_after_accept', H.ghost() or vim.NIL)
  -- The item's command tells the server about the accept.
  H.wait_until('workspace/executeCommand to be answered', 2000, function()
    return H.answered['workspace/executeCommand']
  end)
end)
