"""CodeGemma fill-in-the-middle prompts, built as token ids.

The prompt is assembled from ids rather than text so that the FIM markers are
always the control tokens and user text can never produce one: text is
tokenized without special tokens, and a literal marker typed in a file is broken
up before tokenizing (:func:`tokenize_plain`), in case a conversion made the
markers user-defined tokens, which llama.cpp matches even then.

PSM, the format CodeGemma's report documents (reference/FACTS.md)::

    <bos>[path\\n]<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>

Token budgets keep the end of the prefix and the start of the suffix, the text
nearest the cursor.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Tokenize = Callable[[str], list[int]]
"""Text to ids, without BOS and without parsing special tokens."""

FimMode = Literal["psm"]

FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
FILE_SEPARATOR = "<|file_separator|>"
END_OF_TURN = "<end_of_turn>"
MARKER_TEXTS = (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR, END_OF_TURN, "<bos>", "<eos>")
"""Texts of the special tokens that user text must never turn into."""

SUFFIX_SHARE = 0.25
"""The part of a tight budget the suffix gets, when the prefix could use all of it."""


@dataclass(frozen=True)
class FimTokens:
    """The ids of the special tokens a FIM prompt uses, as the loaded vocabulary has them."""

    bos: int
    eos: int
    fim_prefix: int
    fim_middle: int
    fim_suffix: int
    file_separator: int
    end_of_turn: int | None = None

    @property
    def stop_ids(self) -> frozenset[int]:
        """Ids that end a middle; llama.cpp itself treats only some of them as end of generation."""
        ids = {self.eos, self.fim_prefix, self.fim_middle, self.fim_suffix, self.file_separator}
        if self.end_of_turn is not None:
            ids.add(self.end_of_turn)
        return frozenset(ids)


def tokenize_plain(
    tokenize: Tokenize, text: str, markers: Iterable[str] = MARKER_TEXTS
) -> list[int]:
    """Tokenize user text so that no marker text in it can become its special token."""
    pieces = split_markers(text, markers)
    if len(pieces) == 1:
        return tokenize(text)
    return [token for piece in pieces for token in tokenize(piece)]


def split_markers(text: str, markers: Iterable[str]) -> list[str]:
    """Cut ``text`` after the first character of every marker text it contains."""
    cuts = sorted(
        {start + 1 for marker in markers if marker for start in _occurrences(text, marker)}
    )
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a] or [text]


def _occurrences(text: str, needle: str) -> list[int]:
    found, start = [], text.find(needle)
    while start != -1:
        found.append(start)
        start = text.find(needle, start + 1)
    return found


def split_budget(total: int, prefix_len: int, suffix_len: int) -> tuple[int, int]:
    """Share ``total`` tokens between prefix and suffix.

    Both fit: each gets its length. Otherwise the suffix gets at least
    :data:`SUFFIX_SHARE` of the total (less if it is shorter) and the prefix the rest,
    and whatever one side leaves unused goes to the other.
    """
    total = max(total, 0)
    if prefix_len + suffix_len <= total:
        return prefix_len, suffix_len
    suffix_budget = min(suffix_len, max(int(total * SUFFIX_SHARE), total - prefix_len))
    return min(prefix_len, total - suffix_budget), suffix_budget


def fit_budget(
    prefix_ids: Sequence[int],
    suffix_ids: Sequence[int],
    prefix_budget: int,
    suffix_budget: int,
) -> tuple[list[int], list[int]]:
    """Keep the last ``prefix_budget`` prefix ids and the first ``suffix_budget`` suffix ids."""
    kept_prefix = list(prefix_ids[max(len(prefix_ids) - max(prefix_budget, 0), 0) :])
    kept_suffix = list(suffix_ids[: max(suffix_budget, 0)])
    return kept_prefix, kept_suffix


def build_psm(
    tokenize: Tokenize,
    fim: FimTokens,
    prefix: str,
    suffix: str,
    path: str | None,
    *,
    max_tokens: int | None = None,
) -> list[int]:
    """``<bos>[path\\n]<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>`` as ids.

    ``max_tokens`` caps the whole prompt: the prefix and suffix are cut to fit
    (see :func:`split_budget`), and the path line is left out if even the
    markers and the path do not fit. Raises ValueError if the markers alone do not.
    """
    markers = 4  # <bos> <|fim_prefix|> <|fim_suffix|> <|fim_middle|>
    path_ids = tokenize_plain(tokenize, path + "\n") if path else []
    prefix_ids = tokenize_plain(tokenize, prefix)
    suffix_ids = tokenize_plain(tokenize, suffix)
    if max_tokens is not None:
        if max_tokens < markers:
            raise ValueError(f"a FIM prompt needs at least {markers} tokens, not {max_tokens}")
        if markers + len(path_ids) > max_tokens:
            path_ids = []
        budget = max_tokens - markers - len(path_ids)
        prefix_ids, suffix_ids = fit_budget(
            prefix_ids, suffix_ids, *split_budget(budget, len(prefix_ids), len(suffix_ids))
        )
    return [
        fim.bos,
        *path_ids,
        fim.fim_prefix,
        *prefix_ids,
        fim.fim_suffix,
        *suffix_ids,
        fim.fim_middle,
    ]


class PromptBuilder(Protocol):
    """What every FIM layout's builder looks like (see :func:`build_psm`)."""

    def __call__(
        self,
        tokenize: Tokenize,
        fim: FimTokens,
        prefix: str,
        suffix: str,
        path: str | None,
        *,
        max_tokens: int | None = None,
    ) -> list[int]: ...


BUILDERS: dict[FimMode, PromptBuilder] = {"psm": build_psm}
"""One builder per FIM layout."""
