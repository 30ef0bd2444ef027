"""CodeGemma-IT prompts, built as token ids, and the code in its answers.

CodeGemma 7B-IT is a chat model. One user turn asks for the code::

    <bos><start_of_turn>user\\n{message}<end_of_turn>\\n<start_of_turn>model\\n

The turn markers are control tokens spliced in by id, looked up in the loaded
vocabulary by their text; the GGUF's chat template is never rendered (a
completion server has no need to run a template engine over a downloaded file,
reference/FACTS.md). The message's text is tokenized as one piece, as the chat
template would, but without special tokens, so that a marker typed in a file
stays text.

The message holds the instruction, the file's language and path, and the code
around the place the answer goes, with that place marked :data:`INSERT_MARK`.
The model answers with a Markdown code block, often followed by an
explanation; :func:`answer_code` keeps the block's code, and
:func:`answer_finished` tells the generation loop when the block has closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from codegemma_lsp.prompt import MARKER_TEXTS, Tokenize, tokenize_plain

START_OF_TURN = "<start_of_turn>"
END_OF_TURN = "<end_of_turn>"
TURN_MARKERS = (*MARKER_TEXTS, START_OF_TURN)
"""Special-token texts a file's text must never turn into."""

INSERT_MARK = "<<INSERT CODE HERE>>"
FENCE = "```"

BEFORE_SHARE = 0.75
"""The part of the code budget the text before the insertion point gets, when both
sides could use all of it: the code above says more about what comes next."""


@dataclass(frozen=True)
class TurnTokens:
    """The ids of a chat prompt's special tokens, as the loaded vocabulary has them."""

    bos: int
    start_of_turn: int
    end_of_turn: int


@dataclass(frozen=True)
class InstructionParts:
    """What the user turn says: the instruction, and where in which file the code goes.

    ``before`` and ``after`` are the file's text on either side of the place the
    answer goes (a selection being replaced is in neither). Where the answer is whole
    lines, ``after`` starts with a newline, so that the mark stands on a line of its own.
    """

    instruction: str
    before: str
    after: str
    language: str | None = None
    """The language's name as a Markdown fence tag (``python``, ``cpp``)."""
    path: str | None = None


def user_message(parts: InstructionParts) -> str:
    """The user turn's text: instruction, then where, then the code around that place."""
    where = f"Write it in {parts.language}" if parts.language else "Write it"
    if parts.path:
        where += f" for the file {parts.path}"
    fence = FENCE + (parts.language or "")
    code = f"{parts.before}{INSERT_MARK}{parts.after}"
    code = code.removesuffix("\n")  # the closing fence ends the last line
    return (
        f"{parts.instruction.strip()}\n\n"
        f"{where}. Reply with only the code that replaces {INSERT_MARK}, "
        f"in one Markdown code block.\n\n"
        f"{fence}\n{code}\n{FENCE}"
    )


def render_instruction_prompt(parts: InstructionParts) -> str:
    """The prompt as text, special tokens written as their text (for logs asked for and tests)."""
    return f"<bos>{START_OF_TURN}user\n{user_message(parts)}{END_OF_TURN}\n{START_OF_TURN}model\n"


def build_instruction_prompt(
    tokenize: Tokenize,
    turns: TurnTokens,
    parts: InstructionParts,
    *,
    max_tokens: int | None = None,
) -> list[int]:
    """The prompt as ids. ``max_tokens`` caps it by dropping whole lines of code:
    from the start of ``before`` and the end of ``after`` (see :data:`BEFORE_SHARE`).

    Raises ValueError when even the prompt without any code does not fit.
    """

    def message_ids(message_parts: InstructionParts) -> list[int]:
        return tokenize_plain(tokenize, "user\n" + user_message(message_parts), TURN_MARKERS)

    tail = [*tokenize_plain(tokenize, "\n", TURN_MARKERS), turns.start_of_turn]
    tail += tokenize_plain(tokenize, "model\n", TURN_MARKERS)
    fixed = 3 + len(tail)  # <bos>, <start_of_turn>, <end_of_turn>
    body = message_ids(parts)
    if max_tokens is not None and fixed + len(body) > max_tokens:
        parts = _fit_code(tokenize, parts, max_tokens - fixed, message_ids)
        body = message_ids(parts)
    return [turns.bos, turns.start_of_turn, *body, turns.end_of_turn, *tail]


def _fit_code(
    tokenize: Tokenize,
    parts: InstructionParts,
    budget: int,
    message_ids: Callable[[InstructionParts], list[int]],
) -> InstructionParts:
    """``parts`` with whole lines of code dropped until its message fits ``budget`` tokens."""
    bare = InstructionParts(parts.instruction, "", "", parts.language, parts.path)
    room = budget - len(message_ids(bare))
    if room < 0:
        raise ValueError(f"the instruction alone does not fit the {budget}-token prompt budget")
    before = parts.before.splitlines(keepends=True)
    after = parts.after.splitlines(keepends=True)
    before_costs = [len(tokenize(line)) for line in before]
    after_costs = [len(tokenize(line)) for line in after]
    before_room, after_room = _share(room, sum(before_costs), sum(after_costs))
    keep_before = _lines_within(list(reversed(before_costs)), before_room)
    keep_after = _lines_within(after_costs, after_room)
    while True:
        fitted = InstructionParts(
            parts.instruction,
            "".join(before[len(before) - keep_before :]),
            "".join(after[:keep_after]),
            parts.language,
            parts.path,
        )
        # Lines tokenized alone can count a token or two fewer than joined: trim on.
        if len(message_ids(fitted)) <= budget or keep_before + keep_after == 0:
            return fitted
        if keep_before >= keep_after:
            keep_before -= 1
        else:
            keep_after -= 1


def _share(room: int, before: int, after: int) -> tuple[int, int]:
    """Token budgets for the code before and after: each its length when both fit, else
    ``before`` gets :data:`BEFORE_SHARE` of the room and whatever ``after`` leaves."""
    if before + after <= room:
        return before, after
    after_budget = min(after, max(room - int(room * BEFORE_SHARE), room - before))
    return min(before, room - after_budget), after_budget


def _lines_within(costs: Iterable[int], budget: int) -> int:
    """How many of the lines, in the order given, fit ``budget`` tokens."""
    used = kept = 0
    for cost in costs:
        if used + cost > budget:
            break
        used += cost
        kept += 1
    return kept


def _fence_lines(text: str) -> list[int]:
    """Indices of the lines that are Markdown fences (```, optionally with an info string)."""
    return [i for i, line in enumerate(text.split("\n")) if line.lstrip().startswith(FENCE)]


def answer_code(text: str) -> str:
    """The code in a model's answer: the first fenced block's contents when there is
    one (closed or not), else the whole answer; blank lines at either end dropped."""
    lines = text.split("\n")
    fences = _fence_lines(text)
    if fences:
        opening = fences[0]
        closing = fences[1] if len(fences) > 1 else len(lines)
        lines = lines[opening + 1 : closing]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def answer_finished(text: str) -> bool:
    """Whether the answer's first code block has closed, its closing line ended:
    what follows is prose, not worth the time to generate."""
    finished_lines = text.rpartition("\n")[0]
    return len(_fence_lines(finished_lines)) >= 2


def answer_lines(text: str) -> int:
    """Lines of code written so far (what progress reports)."""
    code = answer_code(text)
    return code.count("\n") + 1 if code else 0
