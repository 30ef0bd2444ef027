"""Generate code from an instruction, with an instruction-tuned model (CodeGemma 7B-IT).

It knows nothing of LSP. The way one request travels:

1. :func:`find_target`: the instruction (the ``instruction`` argument, the
   selected text, or the comment block at or above the cursor) and the range the
   answer replaces: the selection, or an empty range at the start of the line
   below the comment (or below the cursor's line);
2. :func:`instruction_parts`: the instruction, the file's language and path, and
   the code around that range, for :mod:`~codegemma_lsp.instruction_prompt`;
3. the engine: ids in, text out, on the inference thread; generation stops at
   ``<end_of_turn>``, at the token limit, or once the answer's code block closes,
   and reports the lines written so far at each line end;
4. :func:`finish_generation`: the answer's code (its Markdown fence stripped),
   indented to the block, trimmed to whole syntax units with the completion's
   truncation, as the text of one edit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from codegemma_lsp.documents import DocumentSnapshot
from codegemma_lsp.engine.base import Backend, CancelToken, Generation, GenerationPolicy
from codegemma_lsp.instruction_prompt import (
    END_OF_TURN,
    START_OF_TURN,
    InstructionParts,
    TurnTokens,
    answer_code,
    answer_finished,
    answer_lines,
    build_instruction_prompt,
)
from codegemma_lsp.syntax.comments import comment_block
from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.truncation import truncate_explained

log = logging.getLogger(__name__)

Source = Literal["argument", "selection", "comment"]

NO_INSTRUCTION = (
    "no instruction: write a comment and put the cursor in it or on the line below, "
    "or select the words that say what to write"
)
CODE_BEFORE_CHARS = 24_000
"""Text before the insertion point looked at, before the token budget trims it by lines."""
CODE_AFTER_CHARS = 8_000
MAX_UNITS = 32
"""Whole syntax units (functions, statements...) an answer may hold; the rest is dropped."""


@dataclass(frozen=True)
class GenerateTarget:
    """Where the answer goes and what it is to do. Offsets are str offsets into the text."""

    source: Source
    instruction: str
    start: int
    end: int
    """The range the code replaces (empty: inserted at ``start``)."""
    indent: str
    """The indentation of the block the code goes in; every line of code gets it."""
    first_indent: str
    """What the code's first line gets instead, where ``start`` is past some of the indentation."""
    newline_before: bool = False
    """``start`` is the end of a last line without a newline: the code starts a new line."""
    newline_after: bool = False
    """The code is whole lines: it ends with a newline."""


@dataclass(frozen=True)
class GeneratedEdit:
    """Replace ``[start, end)`` (str offsets) with ``text``."""

    start: int
    end: int
    text: str
    lines: int
    whole: bool
    """The code was trimmed to whole syntax; False: no beginning of it is whole, and it
    is inserted as the model wrote it, for the user to judge."""


@dataclass(frozen=True)
class GenerateOutcome:
    edit: GeneratedEdit | None
    generation: Generation | None
    message: str | None = None
    """Why there is no edit, in words for the user."""
    timings_ms: dict[str, float] | None = None

    @property
    def cancelled(self) -> bool:
        return self.generation is not None and self.generation.stop_reason == "cancelled"


# ----- 1. the target -----------------------------------------------------------------


def find_target(
    snapshot: DocumentSnapshot, start: int, end: int, instruction: str | None = None
) -> GenerateTarget | str:
    """What to generate and where, for a range (str offsets); or why there is nothing to do.

    - A selection is replaced; its text is the instruction unless one is given.
    - An empty range with an instruction given: the code goes below the cursor's line,
      or on it when it is blank.
    - An empty range alone: the comment block at or above the cursor is the
      instruction, and the code goes below it.
    """
    text = snapshot.text
    start, end = sorted((max(0, min(start, len(text))), max(0, min(end, len(text)))))
    given = (instruction or "").strip()
    if start < end:
        words = given or text[start:end].strip()
        if not words:
            return "the selection holds no instruction: select the words that say what to write"
        line = _line_start(text, start)
        indent = _indentation(text, line)
        before = text[line:start]
        # The first line gets what indentation the selection's line lacks before it.
        first = indent[len(before) :] if indent.startswith(before) else ""
        return GenerateTarget(
            "selection",
            words,
            start,
            end,
            indent,
            first,
            newline_after=text[start:end].endswith("\n"),
        )
    if given:
        return _below_cursor(text, start, given)
    block = comment_block(
        snapshot.tree, snapshot.encoded, snapshot.byte_at_offset(start), snapshot.language
    )
    if block is None or not block.text:
        return NO_INSTRUCTION
    insert = snapshot.offset_at_byte(block.end)
    return GenerateTarget(
        "comment",
        block.text,
        insert,
        insert,
        block.indent,
        block.indent,
        newline_before=insert == len(text) and not text.endswith("\n"),
        newline_after=True,
    )


def _below_cursor(text: str, cursor: int, instruction: str) -> GenerateTarget:
    line = _line_start(text, cursor)
    line_end = _line_end(text, line)
    content = text[line:line_end].rstrip("\r\n")
    if not content.strip():
        # A blank line: the code goes on it, at its indentation, else at that of the
        # code below it (the block it is in), else of the code above.
        indent = content or _indentation(text, _nearby_code_line(text, line))
        return GenerateTarget(
            "argument", instruction, line, line, indent, indent, newline_after=True
        )
    indent = _indentation(text, line)
    return GenerateTarget(
        "argument",
        instruction,
        line_end,
        line_end,
        indent,
        indent,
        newline_before=line_end == len(text) and not text.endswith("\n"),
        newline_after=True,
    )


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_end(text: str, line: int) -> int:
    """After the newline of the line starting at ``line``, or the end of the text."""
    newline = text.find("\n", line)
    return len(text) if newline < 0 else newline + 1


def _indentation(text: str, line: int) -> str:
    end = line
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[line:end]


def _nearby_code_line(text: str, line: int) -> int:
    """The start of the next line that holds more than blanks, else of the previous one."""
    below = _line_end(text, line)
    while below < len(text):
        if text[below : _line_end(text, below)].strip():
            return below
        below = _line_end(text, below)
    while line > 0:
        line = _line_start(text, line - 1)
        if text[line : _line_end(text, line)].strip():
            return line
    return line


# ----- 2. the prompt's parts ----------------------------------------------------------


def instruction_parts(
    snapshot: DocumentSnapshot, target: GenerateTarget, path: str | None
) -> InstructionParts:
    """The user turn's content: the instruction, and the code on either side of the target."""
    text = snapshot.text
    before = text[max(0, target.start - CODE_BEFORE_CHARS) : target.start]
    if target.start - CODE_BEFORE_CHARS > 0:
        before = before[before.find("\n") + 1 :]  # whole lines only
    after = text[target.end : target.end + CODE_AFTER_CHARS]
    if target.end + CODE_AFTER_CHARS < len(text):
        after = after[: after.rfind("\n") + 1]
    if target.newline_before:
        before += "\n"
    if target.newline_after:
        after = "\n" + after  # the answer is whole lines: the mark stands on its own line
    language = snapshot.language.name if snapshot.language is not None else None
    return InstructionParts(target.instruction, before, after, language, path)


# ----- 3. generation ------------------------------------------------------------------


GENERATE_KEY = "codegemma:generate"
"""The KV-cache key of generation prompts: one at a time, whatever the document."""


def turn_tokens(backend: Backend) -> TurnTokens | str:
    """The chat prompt's special ids in the backend's vocabulary, or why it has none."""
    vocabulary = backend.tokenizer
    ids = {text: vocabulary.special_id(text) for text in ("<bos>", START_OF_TURN, END_OF_TURN)}
    missing = [text for text, token in ids.items() if token is None]
    if missing:
        return (
            f"the instruction model's vocabulary has no {missing[0]} token: "
            "generate.model must name an instruction-tuned model such as codegemma-7b-it"
        )
    bos, start, end = (token for token in ids.values() if token is not None)
    return TurnTokens(bos, start, end)


def run_generate(
    backend: Backend,
    snapshot: DocumentSnapshot,
    target: GenerateTarget,
    path: str | None,
    *,
    max_new_tokens: int,
    cancel: CancelToken,
    on_progress: Callable[[int], None] | None = None,
) -> GenerateOutcome:
    """Prompt, generate and finish, on the generation thread with a loaded backend.
    ``on_progress`` gets the lines of code written so far, each time a line ends."""
    started = time.perf_counter()
    turns = turn_tokens(backend)
    if isinstance(turns, str):
        return GenerateOutcome(None, None, turns)
    max_new = max(1, min(max_new_tokens, backend.n_ctx // 2))
    parts = instruction_parts(snapshot, target, path)
    try:
        prompt = build_instruction_prompt(
            backend.tokenizer.tokenize, turns, parts, max_tokens=backend.n_ctx - max_new
        )
    except ValueError as exc:
        return GenerateOutcome(None, None, f"the instruction is too long: {exc}")
    prompted = time.perf_counter()
    reported = 0

    def on_line(answer: str) -> bool:
        nonlocal reported
        lines = answer_lines(answer)
        # Only forward: a line of prose before the code block counts until the block opens.
        if on_progress is not None and lines > reported:
            reported = lines
            on_progress(lines)
        return answer_finished(answer)

    if cancel.cancelled:
        return GenerateOutcome(None, Generation("", "cancelled"), "cancelled")
    eos = backend.tokenizer.special_id("<eos>")
    policy = GenerationPolicy(
        max_new_tokens=max_new,
        end_ids=frozenset({turns.end_of_turn} | ({eos} if eos is not None else set())),
        stop_check=on_line,
        key=GENERATE_KEY,
    )
    generation = backend.generate(prompt, policy, cancel)
    generated = time.perf_counter()
    timings = {"prompt": (prompted - started) * 1000, "generate": (generated - prompted) * 1000}
    if generation.stop_reason == "cancelled":
        return GenerateOutcome(None, generation, "cancelled", timings)
    edit = finish_generation(snapshot, target, generation.text)
    timings["finish"] = (time.perf_counter() - generated) * 1000
    if edit is None:
        return GenerateOutcome(None, generation, "the model wrote no code", timings)
    return GenerateOutcome(edit, generation, None, timings)


# ----- 4. the edit --------------------------------------------------------------------


def finish_generation(
    snapshot: DocumentSnapshot, target: GenerateTarget, answer: str
) -> GeneratedEdit | None:
    """The edit for a model's answer: its code, indented to the block and trimmed to
    whole syntax units; None when the answer holds no code."""
    code = answer_code(answer)
    if not code.strip():
        return None
    text = snapshot.text
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = reindent(code, target.indent, target.first_indent).split("\n")
    body = "\n".join(lines) + ("\n" if target.newline_after else "")
    prefix = text[: target.start] + ("\n" if target.newline_before else "")
    suffix = text[target.end :]
    trimmed = whole_units(prefix, body, suffix, snapshot.language)
    whole = bool(trimmed.strip())
    kept = trimmed if whole else body
    if target.newline_after and not kept.endswith("\n"):
        kept += "\n"
    if not target.newline_after:
        kept = kept.rstrip("\n")
    if target.newline_before:
        kept = "\n" + kept
    new_text = kept.replace("\n", eol) if eol != "\n" else kept
    return GeneratedEdit(
        target.start, target.end, new_text, kept.strip("\n").count("\n") + 1, whole
    )


def reindent(code: str, indent: str, first_indent: str) -> str:
    """``code`` with its common indentation replaced by ``indent`` (``first_indent`` on its
    first line); blank lines stay empty."""
    lines = code.replace("\r\n", "\n").split("\n")
    widths = [len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()]
    common = min(widths, default=0)
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            out.append("")
            continue
        out.append((first_indent if i == 0 else indent) + line[common:].rstrip())
    return "\n".join(out)


def whole_units(prefix: str, code: str, suffix: str, language: LanguageSpec | None) -> str:
    """The longest run of whole syntax units at the start of ``code``.

    The completion's truncation ends a middle once it finishes the definition it
    opened; an answer may hold several (a helper, then the function asked for), so
    truncation runs again on what follows while that stays at the block's
    indentation. It stops where the code leaves the block, repeats the suffix, or
    stops being whole.
    """
    kept = ""
    rest = code
    floor = _first_indent_width(code)
    for _ in range(MAX_UNITS):
        result = truncate_explained(prefix + kept, rest, suffix, language, scope="block")
        if not result.text.strip():
            break
        kept += result.text
        if result.reason != "block_end" or not rest.startswith(result.text):
            break  # the end of the code, or its whitespace was fitted: nothing follows
        rest = rest[len(result.text) :]
        following = _first_indent_width(rest)
        if following is None or floor is None or following < floor:
            break
    return kept


def _first_indent_width(text: str) -> int | None:
    for line in text.split("\n"):
        if line.strip():
            return len(line) - len(line.lstrip(" \t"))
    return None
