-- Generating code with the plugin: :CodeGemmaGenerate below a comment, the same through
-- vim.lsp.buf.code_action(), and :'<,'>CodeGemmaGenerate on a visual selection. Each
-- time the server answers with workspace/applyEdit, which Neovim applies; the test
-- checks where the lines landed.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local H = dofile(vim.fs.joinpath(here, 'harness.lua'))
local P = H.params
local api = vim.api

vim.lsp.log.set_level(vim.log.levels.DEBUG)
vim.opt.runtimepath:append(P.plugin_dir)
require('codegemma').setup({ cmd = P.cmd, settings = P.settings })

local answers = {}
api.nvim_create_autocmd('User', {
  pattern = 'CodeGemmaGenerated',
  callback = function(args)
    table.insert(answers, args.data)
    H.note('generated', args.data)
  end,
})

local function lines()
  return api.nvim_buf_get_lines(0, 0, -1, true)
end

--- Waits for the buffer to change from `before`; returns its lines.
local function wait_changed(what, tick)
  H.wait_until(what, P.generate_timeout_ms, function()
    return api.nvim_buf_get_changedtick(0) ~= tick
  end)
  return lines()
end

H.run(function()
  H.open_ready()
  H.set('generate_command', vim.fn.exists(':CodeGemmaGenerate') == 2)

  -- 1. :CodeGemmaGenerate with the cursor on the comment.
  api.nvim_win_set_cursor(0, { P.comment_line, 4 })
  local tick = api.nvim_buf_get_changedtick(0)
  vim.cmd('CodeGemmaGenerate')
  H.set('after_command', wait_changed('the generated code', tick))
  H.wait_until('the answer', P.generate_timeout_ms, function()
    return answers[1]
  end)
  H.set('command_answer', answers[1])

  -- 2. The code action, with the cursor on the blank line below a second comment.
  H.feed('u') -- undo the first insertion: the same text again
  H.set('after_undo', lines())
  api.nvim_win_set_cursor(0, { P.comment_line, 0 })
  local titles = {}
  tick = api.nvim_buf_get_changedtick(0)
  vim.lsp.buf.code_action({
    apply = true,
    filter = function(action)
      table.insert(titles, action.title)
      return action.title == 'Generate code from this comment'
    end,
  })
  H.set('after_action', wait_changed('the code action', tick))
  H.set('action_titles', titles)
  H.feed('u')

  -- 3. A visual selection of the comment's words, replaced by the code.
  api.nvim_win_set_cursor(0, { P.comment_line, P.words_col })
  H.feed('v')
  H.feed('$') -- to the end of the line: Neovim's mark then says "and the line break"
  tick = api.nvim_buf_get_changedtick(0)
  api.nvim_input(':CodeGemmaGenerate<CR>')
  H.set('after_selection', wait_changed('the selection to be replaced', tick))
end)
