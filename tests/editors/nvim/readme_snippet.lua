-- The README's Neovim set-up, run as written (paths swapped for the test's):
-- the server must attach to a Python buffer and load the model it names.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local H = dofile(vim.fs.joinpath(here, 'harness.lua'))
local P = H.params

assert(load(P.snippet, 'README.md'))()

H.run(function()
  H.open_ready()
end)
