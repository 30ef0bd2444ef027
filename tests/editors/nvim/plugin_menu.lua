-- The plugin's path for Neovim 0.11 (no vim.lsp.inline_completion), forced with
-- inline = false: after a pause in typing the completion menu opens with the
-- server's suggestion, and <Tab> accepts it.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local H = dofile(vim.fs.joinpath(here, 'harness.lua'))
local P = H.params
local api = vim.api

vim.lsp.log.set_level(vim.log.levels.DEBUG)
vim.opt.runtimepath:append(P.plugin_dir)
require('codegemma').setup({ cmd = P.cmd, settings = P.settings, inline = false })

H.run(function()
  H.open_ready()

  api.nvim_win_set_cursor(0, { P.line, 0 })
  H.feed('A')
  H.type(P.typed)
  H.wait_until('the completion menu', P.ghost_timeout_ms, function()
    return vim.fn.pumvisible() == 1
  end)
  local info = vim.fn.complete_info({ 'items', 'selected' })
  -- What the menu shows; the word it would insert is only the text up to the first space.
  H.set('menu_entries', vim.tbl_map(function(item)
    return item.abbr ~= '' and item.abbr or item.word
  end, info.items))
  H.set('line_with_menu', H.line())
  H.feed('<Tab>')
  H.wait_until('the menu to close', 2000, function()
    return vim.fn.pumvisible() == 0
  end)
  H.set('line_after_tab', H.line())
  H.set('ghost', H.ghost() or vim.NIL)
end)
