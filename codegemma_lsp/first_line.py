"""Where a completion's generation ends, so that it answers inside the user's pause.

- **First line first.** A block costs seconds on a slow CPU, longer than most of the
  user's pauses. So a block plan answers with its first line: generation stops at the
  end of its first non-blank line. When multi-line completions pay on this machine
  (``completion.multiLine``, see :mod:`codegemma_lsp.pacing`), the service then
  generates the rest of the block in the background, and the next request at the same
  place (the user accepted the line, or typed it) is answered from it
  (:mod:`codegemma_lsp.block_rest`). Where the first line cannot stand alone (it opens
  a block that truncation would cut), the request waits for the rest instead.
- **A line ends at its newline.** Where nothing follows the cursor on its line, a line
  completion ends at the first newline: truncation keeps no text past it there, so the
  model's next line would be generated only to be cut.
"""

from __future__ import annotations

from dataclasses import replace

from codegemma_lsp.engine.base import GenerationPolicy


def first_line_end(text: str) -> int | None:
    """Where the first non-blank line of ``text`` ends (its newline), or None if it does not.

    Blank lines and indentation before it belong to it, as in a single-line completion.
    """
    start = 0
    while (newline := text.find("\n", start)) != -1:
        if text[start:newline].strip():
            return newline
        start = newline + 1
    return None


def first_line_policy(block: GenerationPolicy) -> GenerationPolicy:
    """The block's policy cut to its first line (no syntax check: one line has no end)."""
    return replace(block, single_line=True, stop_check=None)


def _any_line_end(_text: str) -> bool:
    return True


def line_policy(line: GenerationPolicy, suffix: str) -> GenerationPolicy:
    """A line completion's policy: it ends at the first newline when the cursor's line has
    nothing after it (the stop check runs at every line end)."""
    if suffix.split("\n", 1)[0].strip():
        return line
    return replace(line, stop_check=_any_line_end)
