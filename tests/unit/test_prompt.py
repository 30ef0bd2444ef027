"""FIM prompts as token ids, with a fake tokenizer: one id per character."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from codegemma_lsp.prompt import (
    FimMode,
    FimTokens,
    PromptParts,
    build_prompt,
    build_psm,
    context_budget,
    fit_budget,
    prompt_segments,
    render_prompt,
    split_budget,
    split_markers,
    tokenize_plain,
)

FIM = FimTokens(bos=2, eos=1, fim_prefix=67, fim_middle=68, fim_suffix=69, file_separator=70)
BOS, PRE, MID, SUF = FIM.bos, FIM.fim_prefix, FIM.fim_middle, FIM.fim_suffix


def chars(text: str) -> list[int]:
    """The fake tokenizer: each character is its code point plus 1000."""
    return [1000 + ord(c) for c in text]


SPECIAL_TEXT = {
    FIM.bos: "<bos>",
    PRE: "<|fim_prefix|>",
    MID: "<|fim_middle|>",
    SUF: "<|fim_suffix|>",
    FIM.file_separator: "<|file_separator|>",
}


class Tokenizer:
    """A tokenizer object over a function, as :func:`build_prompt` takes one."""

    def __init__(self, tokenize: Callable[[str], list[int]]) -> None:
        self.tokenize = tokenize


CHARS = Tokenizer(chars)


def decode(ids: list[int]) -> str:
    return "".join(SPECIAL_TEXT.get(i) or chr(i - 1000) for i in ids)


def injecting(text: str) -> list[int]:
    """A tokenizer that, like llama.cpp with user-defined markers, matches marker text."""
    if "<|fim_prefix|>" in text:
        before, _, after = text.partition("<|fim_prefix|>")
        return [*injecting(before), PRE, *injecting(after)]
    return chars(text)


@pytest.mark.parametrize(
    ("prefix", "suffix", "path", "expected"),
    [
        pytest.param("ab", "c", None, [BOS, PRE, *chars("ab"), SUF, *chars("c"), MID], id="plain"),
        pytest.param(
            "ab",
            "c",
            "a/b.py",
            [BOS, *chars("a/b.py\n"), PRE, *chars("ab"), SUF, *chars("c"), MID],
            id="path-line",
        ),
        pytest.param("", "c", None, [BOS, PRE, SUF, *chars("c"), MID], id="empty-prefix"),
        pytest.param("ab", "", None, [BOS, PRE, *chars("ab"), SUF, MID], id="empty-suffix"),
        pytest.param("", "", "", [BOS, PRE, SUF, MID], id="empty-path-is-no-path"),
        pytest.param(
            "x<|fim_prefix|>y",
            "",
            None,
            [BOS, PRE, *chars("x<|fim_prefix|>y"), SUF, MID],
            id="literal-marker-stays-text",
        ),
    ],
)
def test_build_psm(prefix: str, suffix: str, path: str | None, expected: list[int]) -> None:
    assert build_psm(CHARS, FIM, prefix, suffix, path) == expected


@pytest.mark.parametrize(
    ("max_tokens", "path", "expected"),
    [
        pytest.param(
            100,
            "p",
            [BOS, *chars("p\n"), PRE, *chars("abcdef"), SUF, *chars("uvwx"), MID],
            id="fits",
        ),
        pytest.param(
            12,
            "p",
            [BOS, *chars("p\n"), PRE, *chars("bcdef"), SUF, *chars("u"), MID],
            id="cut-keeps-prefix-end-and-suffix-start",
        ),
        pytest.param(5, "p", [BOS, PRE, *chars("f"), SUF, MID], id="path-dropped-when-too-tight"),
        pytest.param(4, None, [BOS, PRE, SUF, MID], id="markers-only"),
    ],
)
def test_build_psm_budget(max_tokens: int, path: str | None, expected: list[int]) -> None:
    prompt = build_psm(CHARS, FIM, "abcdef", "uvwx", path, budget=max_tokens)
    assert prompt == expected
    assert len(prompt) <= max_tokens


def test_build_psm_refuses_a_budget_below_the_markers() -> None:
    with pytest.raises(ValueError, match="at least 4 tokens"):
        build_psm(CHARS, FIM, "a", "b", None, budget=3)


def test_build_psm_breaks_markers_a_tokenizer_would_match() -> None:
    prompt = build_psm(Tokenizer(injecting), FIM, "x<|fim_prefix|>y", "", None)
    assert prompt.count(PRE) == 1
    assert prompt == [BOS, PRE, *chars("x<|fim_prefix|>y"), SUF, MID]


@pytest.mark.parametrize(
    ("total", "prefix_len", "suffix_len", "expected"),
    [
        pytest.param(100, 30, 20, (30, 20), id="both-fit"),
        pytest.param(100, 200, 200, (75, 25), id="both-long-suffix-gets-its-share"),
        pytest.param(100, 200, 10, (90, 10), id="short-suffix-leaves-rest-to-prefix"),
        pytest.param(100, 10, 200, (10, 90), id="short-prefix-leaves-rest-to-suffix"),
        pytest.param(100, 90, 40, (75, 25), id="prefix-gives-way-to-suffix-share"),
        pytest.param(0, 5, 5, (0, 0), id="nothing"),
        pytest.param(-3, 5, 5, (0, 0), id="negative-is-nothing"),
    ],
)
def test_split_budget(
    total: int, prefix_len: int, suffix_len: int, expected: tuple[int, int]
) -> None:
    assert split_budget(total, prefix_len, suffix_len) == expected
    assert sum(split_budget(total, prefix_len, suffix_len)) <= max(total, 0)


@pytest.mark.parametrize(
    ("prefix_budget", "suffix_budget", "expected"),
    [
        pytest.param(10, 10, ([1, 2, 3, 4], [7, 8, 9]), id="all"),
        pytest.param(2, 1, ([3, 4], [7]), id="prefix-end-suffix-start"),
        pytest.param(0, 0, ([], []), id="none"),
        pytest.param(-1, -1, ([], []), id="negative"),
    ],
)
def test_fit_budget(
    prefix_budget: int, suffix_budget: int, expected: tuple[list[int], list[int]]
) -> None:
    assert fit_budget([1, 2, 3, 4], [7, 8, 9], prefix_budget, suffix_budget) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain", ["plain"], id="none"),
        pytest.param("", [""], id="empty"),
        pytest.param("a<|fim_prefix|>b", ["a<", "|fim_prefix|>b"], id="one"),
        pytest.param("<eos><eos>", ["<", "eos><", "eos>"], id="repeated"),
        pytest.param("<|file_separator|>", ["<", "|file_separator|>"], id="whole"),
    ],
)
def test_split_markers(text: str, expected: list[str]) -> None:
    pieces = split_markers(text, ["<|fim_prefix|>", "<eos>", "<|file_separator|>"])
    assert pieces == expected
    assert "".join(pieces) == text


def test_tokenize_plain_calls_the_tokenizer_once_without_markers() -> None:
    calls: list[str] = []

    def tokenize(text: str) -> list[int]:
        calls.append(text)
        return chars(text)

    assert tokenize_plain(tokenize, "def f():") == chars("def f():")
    assert calls == ["def f():"]


@pytest.mark.parametrize(
    ("fim", "expected"),
    [
        pytest.param(FIM, {1, 67, 68, 69, 70}, id="codegemma"),
        pytest.param(
            FimTokens(
                bos=2,
                eos=1,
                fim_prefix=67,
                fim_middle=68,
                fim_suffix=69,
                file_separator=70,
                end_of_turn=107,
            ),
            {1, 67, 68, 69, 70, 107},
            id="with-end-of-turn",
        ),
    ],
)
def test_stop_ids(fim: FimTokens, expected: set[int]) -> None:
    assert fim.stop_ids == expected


MODE_CASES = [
    pytest.param(
        "psm",
        "<bos>a.py\n<|fim_prefix|>def f():\n    ret<|fim_suffix|>\nx = 1<|fim_middle|>",
        id="psm",
    ),
    pytest.param(
        "psm-line",
        "<bos>a.py\n<|fim_prefix|>def f():\n<|fim_suffix|>\nx = 1<|fim_middle|>    ret",
        id="psm-line",
    ),
    pytest.param(
        "spm",
        "<bos>a.py\n<|fim_suffix|>\nx = 1<|fim_prefix|>def f():\n    ret<|fim_middle|>",
        id="spm",
    ),
    pytest.param(
        "spm2",
        "<bos>a.py\n<|fim_prefix|><|fim_suffix|>\nx = 1<|fim_middle|>def f():\n    ret",
        id="spm2",
    ),
]


@pytest.mark.parametrize(("mode", "expected"), MODE_CASES)
def test_modes_render(mode: FimMode, expected: str) -> None:
    parts = PromptParts("def f():\n    ret", "\nx = 1", "a.py", live_start=9)
    assert render_prompt(prompt_segments(parts, mode)) == expected


@pytest.mark.parametrize(("mode", "expected"), MODE_CASES)
def test_modes_ids_match_their_rendering(mode: FimMode, expected: str) -> None:
    parts = PromptParts("def f():\n    ret", "\nx = 1", "a.py", live_start=9)
    ids = build_prompt(CHARS, FIM, parts, mode)
    assert decode(ids) == expected


def test_context_files_come_first_joined_by_file_separator() -> None:
    parts = PromptParts("x", "", "app.py", context=(("util.py", "def u(): ..."), ("b.py", "B")))
    assert render_prompt(prompt_segments(parts, "psm")) == (
        "<bos>util.py\ndef u(): ...<|file_separator|>b.py\nB<|file_separator|>"
        "app.py\n<|fim_prefix|>x<|fim_suffix|><|fim_middle|>"
    )


def test_overflow_drops_context_before_cutting_the_prefix() -> None:
    parts = PromptParts("abcdef", "gh", "p", context=(("c", "0123456789"),))
    ids = build_prompt(CHARS, FIM, parts, "psm", budget=15)
    assert decode(ids) == "<bos>p\n<|fim_prefix|>abcdef<|fim_suffix|>gh<|fim_middle|>"


class Specials:
    def __init__(self, ids: dict[str, int]) -> None:
        self.ids = ids

    def special_id(self, text: str) -> int | None:
        return self.ids.get(text)


CODEGEMMA_IDS = {
    "<bos>": 2,
    "<eos>": 1,
    "<|fim_prefix|>": 67,
    "<|fim_middle|>": 68,
    "<|fim_suffix|>": 69,
    "<|file_separator|>": 70,
}


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        pytest.param(CODEGEMMA_IDS, FIM, id="codegemma"),
        pytest.param(
            {**CODEGEMMA_IDS, "<end_of_turn>": 107},
            FimTokens(2, 1, 67, 68, 69, 70, end_of_turn=107),
            id="with-end-of-turn",
        ),
    ],
)
def test_fim_tokens_are_looked_up_by_their_text(ids: dict[str, int], expected: FimTokens) -> None:
    assert FimTokens.lookup(Specials(ids)) == expected


def test_a_vocabulary_without_a_fim_token_is_named() -> None:
    ids = {k: v for k, v in CODEGEMMA_IDS.items() if k != "<|fim_suffix|>"}
    with pytest.raises(ValueError, match=r"no <\|fim_suffix\|> token"):
        FimTokens.lookup(Specials(ids))


@pytest.mark.parametrize(
    ("n_ctx", "max_new", "expected"),
    [
        pytest.param(4096, 64, (4032, 64), id="room"),
        pytest.param(256, 200, (128, 128), id="generation-gets-half-at-most"),
        pytest.param(4096, 0, (4096, 0), id="pre-warm"),
    ],
)
def test_context_budget(n_ctx: int, max_new: int, expected: tuple[int, int]) -> None:
    assert context_budget(n_ctx, max_new) == expected


def test_end_ids_are_the_ends_of_text() -> None:
    fim = FimTokens(2, 1, 67, 68, 69, 70, end_of_turn=107)
    assert fim.end_ids == {1, 107}
    assert fim.end_ids <= fim.stop_ids
