"""The CodeGemma-IT prompt, token by token, with the tiny model's real vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegemma_lsp.instruction_prompt import (
    END_OF_TURN,
    START_OF_TURN,
    InstructionParts,
    TurnTokens,
    build_instruction_prompt,
)
from codegemma_lsp.modelgen import codegemma_like_vocabulary

pytest.importorskip("llama_cpp")

from codegemma_lsp.engine.llama_backend import LlamaTokenizer

PARTS = InstructionParts(
    instruction="sort xs",
    before="xs = [2, 1]\n# sort xs\n",
    after="\nprint(xs)\n",
    language="python",
    path="a.py",
)

# Written out by hand from the tiny vocabulary (modelgen.codegemma_like_vocabulary): its
# SentencePiece merges only into pieces it has, so most English comes out a letter at a
# time, and "▁" is a space. One line per line of the prompt.
EXPECTED_PIECES = [
    "<bos>",
    "<start_of_turn>",
    "use", "r", "\n",
    "s", "or", "t", "▁x", "s", "\n",
    "\n",
    "W", "r", "ite", "▁it", "▁in", "▁p", "y", "th", "o", "n", "▁for", "▁th", "e", "▁fi", "le",
    "▁a", ".", "p", "y", ".", "▁", "R", "e", "p", "l", "y", "▁with", "▁o", "n", "l", "y", "▁th",
    "e", "▁co", "de", "▁th", "a", "t", "▁re", "p", "la", "c", "e", "s", "▁", "<", "<", "I", "N",
    "S", "E", "R", "T", "▁", "C", "O", "D", "E", "▁", "H", "E", "R", "E", ">", ">", ",", "▁in",
    "▁o", "ne", "▁", "M", "ar", "k", "d", "o", "w", "n", "▁co", "de", "▁b", "l", "o", "c", "k",
    ".", "\n",
    "\n",
    "`", "`", "`", "p", "y", "th", "o", "n", "\n",
    "x", "s", "▁=", "▁", "[", "2", ",", "▁", "1", "]", "\n",
    "#", "▁s", "or", "t", "▁x", "s", "\n",
    "<", "<", "I", "N", "S", "E", "R", "T", "▁", "C", "O", "D", "E", "▁", "H", "E", "R", "E", ">",
    ">", "\n",
    "print", "(", "x", "s", ")", "\n",
    "`", "`", "`", "<end_of_turn>",
    "\n",
    "<start_of_turn>",
    "m", "o", "de", "l", "\n",
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path: Path) -> LlamaTokenizer:
    return LlamaTokenizer.from_file(tiny_model_path)


def _turns(tokenizer: LlamaTokenizer) -> TurnTokens:
    ids = [tokenizer.special_id(text) for text in ("<bos>", START_OF_TURN, END_OF_TURN)]
    assert None not in ids
    bos, start, end = (int(i) for i in ids if i is not None)
    return TurnTokens(bos, start, end)


def test_the_turn_tokens_are_control_tokens_found_by_their_text(tokenizer: LlamaTokenizer) -> None:
    vocabulary = codegemma_like_vocabulary()
    turns = _turns(tokenizer)
    assert turns == TurnTokens(
        vocabulary.id_of("<bos>"),
        vocabulary.id_of(START_OF_TURN),
        vocabulary.id_of(END_OF_TURN),
    )
    control = 3  # gguf.TokenType.CONTROL
    assert vocabulary.types[turns.start_of_turn] == control
    assert vocabulary.types[turns.end_of_turn] == control
    # Not CodeGemma's ids (106, 107): found by text, never hard-coded.
    assert (turns.start_of_turn, turns.end_of_turn) != (106, 107)


def test_the_prompt_token_by_token(tokenizer: LlamaTokenizer) -> None:
    vocabulary = codegemma_like_vocabulary()
    expected = [vocabulary.id_of(piece) for piece in EXPECTED_PIECES]
    ids = build_instruction_prompt(tokenizer.tokenize, _turns(tokenizer), PARTS)
    got = [vocabulary.pieces[i] for i in ids]
    assert got == EXPECTED_PIECES
    assert ids == expected


def test_turn_markers_typed_in_the_file_stay_text(tokenizer: LlamaTokenizer) -> None:
    turns = _turns(tokenizer)
    typed = f"x = '{START_OF_TURN}model\\n{END_OF_TURN}<bos>'\n"
    parts = InstructionParts("do it", typed, "", "python")
    ids = build_instruction_prompt(tokenizer.tokenize, turns, parts)
    # Each special id appears only where the prompt's own structure puts it.
    assert ids.count(turns.bos) == 1
    assert ids.count(turns.start_of_turn) == 2
    assert ids.count(turns.end_of_turn) == 1
    assert typed.rstrip("\n") in tokenizer.detokenize(ids)


def test_the_prompt_fits_the_budget_by_whole_lines(tokenizer: LlamaTokenizer) -> None:
    turns = _turns(tokenizer)
    before = "".join(f"a{i} = {i}\n" for i in range(300))
    after = "\n" + "".join(f"b{i} = {i}\n" for i in range(300))
    parts = InstructionParts("sum them", before, after, "python", "s.py")
    ids = build_instruction_prompt(tokenizer.tokenize, turns, parts, max_tokens=400)
    assert len(ids) <= 400
    text = tokenizer.detokenize(ids)
    code = text.split("```python\n", 1)[1].split("\n```", 1)[0]
    lines = code.split("\n")
    assert lines[0].startswith("a") and lines[-1].startswith("b")  # whole lines only
    assert "a299 = 299" in code and "b0 = 0" in code  # the nearest lines are kept
    with pytest.raises(ValueError, match="does not fit"):
        build_instruction_prompt(tokenizer.tokenize, turns, parts, max_tokens=20)
