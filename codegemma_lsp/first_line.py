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
- **The next line, before Enter.** At the end of a line of code, where nothing is
  offered, the service computes in the background the suggestion for the next line, as
  if Enter had been pressed (:func:`next_line_insert` predicts the newline and the
  indentation the editor inserts); the request after Enter is answered from it.
"""

from __future__ import annotations

from dataclasses import replace

from codegemma_lsp.engine.base import GenerationPolicy


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


_OPENERS = ("{", "(", "[", ":")


def indent_unit(text: str) -> str:
    """The document's indentation step: a tab, or the most common step in spaces (else 4)."""
    steps: dict[int, int] = {}
    previous = 0
    for line in text.split("\n"):
        content = line.lstrip(" \t")
        if not content:
            continue
        indent = line[: len(line) - len(content)]
        if indent.startswith("\t"):
            return "\t"
        if len(indent) > previous:
            steps[len(indent) - previous] = steps.get(len(indent) - previous, 0) + 1
        previous = len(indent)
    if not steps:
        return "    "
    return " " * max(steps, key=lambda step: (steps[step], -step))


def next_line_insert(text: str, cursor: int) -> str | None:
    """What pressing Enter at ``cursor`` most likely inserts (a newline and the next line's
    indentation), when the cursor ends a line of code; None elsewhere.

    The indentation is the line's own, one step deeper after an opening bracket or a colon.
    """
    end = text.find("\n", cursor)
    rest = text[cursor:] if end == -1 else text[cursor:end]
    start = text.rfind("\n", 0, cursor) + 1
    line = text[start:cursor]
    if rest.strip() or not line.strip():
        return None
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if line.rstrip().endswith(_OPENERS):
        indent += indent_unit(text)
    return "\n" + indent
