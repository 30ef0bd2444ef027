"""CodeGemma fill-in-the-middle prompts, built as token ids.

The prompt is assembled from ids rather than text so that the FIM markers are
always the control tokens and user text can never produce one: text is
tokenized without special tokens, and a literal marker typed in a file is broken
up before tokenizing (:func:`tokenize_plain`), in case a conversion made the
markers user-defined tokens, which llama.cpp matches even then.

PSM, the format CodeGemma's report documents (reference/FACTS.md)::

    <bos>[path\\n]<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>

Token budgets keep the end of the prefix and the start of the suffix, the text
nearest the cursor. :func:`build_prompt` is the one place a prompt is assembled:
the server's pipeline and ``codegemma-lsp prompt`` both call it, with the model's
tokenizer and a budget that fits the model's context (:func:`context_budget`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal, Protocol

from codegemma_lsp.config import FimMode as FimMode

Tokenize = Callable[[str], list[int]]
"""Text to ids, without BOS and without parsing special tokens."""


class TextTokenizer(Protocol):
    """What building a prompt needs of a tokenizer (``engine.base.Tokenizer`` has it)."""

    def tokenize(self, text: str) -> list[int]:
        """Text to ids, without BOS and without parsing special tokens."""
        ...


class SpecialLookup(Protocol):
    """What finding the special tokens needs of a tokenizer."""

    def special_id(self, text: str) -> int | None: ...


FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
FILE_SEPARATOR = "<|file_separator|>"
END_OF_TURN = "<end_of_turn>"
MARKER_TEXTS = (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR, END_OF_TURN, "<bos>", "<eos>")
"""Texts of the special tokens that user text must never turn into."""

BOS = "<bos>"
EOS = "<eos>"

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

    @classmethod
    def lookup(cls, tokenizer: SpecialLookup) -> FimTokens:
        """The ids the vocabulary gives these tokens, found by their text.

        Raises ValueError naming the first token the vocabulary lacks.
        """

        def required(text: str) -> int:
            token = tokenizer.special_id(text)
            if token is None:
                raise ValueError(f"the vocabulary has no {text} token")
            return token

        return cls(
            bos=required(BOS),
            eos=required(EOS),
            fim_prefix=required(FIM_PREFIX),
            fim_middle=required(FIM_MIDDLE),
            fim_suffix=required(FIM_SUFFIX),
            file_separator=required(FILE_SEPARATOR),
            end_of_turn=tokenizer.special_id(END_OF_TURN),
        )

    @property
    def end_ids(self) -> frozenset[int]:
        """Ids that end the text itself, rather than the middle."""
        return frozenset(i for i in (self.eos, self.end_of_turn) if i is not None)

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
    if not any(first in text for first in _first_characters(tuple(markers))):
        return tokenize(text)  # the common case: no marker can be in it
    pieces = split_markers(text, markers)
    if len(pieces) == 1:
        return tokenize(text)
    return [token for piece in pieces for token in tokenize(piece)]


@cache
def _first_characters(markers: tuple[str, ...]) -> frozenset[str]:
    return frozenset(marker[0] for marker in markers if marker)


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


@dataclass(frozen=True)
class PromptParts:
    """The texts a prompt is made of.

    ``prefix[:live_start]`` is the stable part of the prefix; ``prefix[live_start:]``
    is the live region being typed, which ``psm-line`` moves after ``<|fim_middle|>``.
    ``context`` holds (path, text) of repository files packed before the current one.
    """

    prefix: str
    suffix: str
    path: str | None = None
    live_start: int | None = None
    context: tuple[tuple[str, str], ...] = ()

    @property
    def stable_prefix(self) -> str:
        return self.prefix if self.live_start is None else self.prefix[: self.live_start]

    @property
    def live(self) -> str:
        return "" if self.live_start is None else self.prefix[self.live_start :]


Special = Literal["bos", "fim_prefix", "fim_middle", "fim_suffix", "file_separator"]
Role = Literal["context", "path", "prefix", "live", "suffix"]


@dataclass(frozen=True)
class Segment:
    """One piece of a prompt: a special token, or text with the role it plays."""

    special: Special | None = None
    text: str = ""
    role: Role | None = None


_SPECIAL_TEXT: dict[Special, str] = {
    "bos": "<bos>",
    "fim_prefix": FIM_PREFIX,
    "fim_middle": FIM_MIDDLE,
    "fim_suffix": FIM_SUFFIX,
    "file_separator": FILE_SEPARATOR,
}


def _special(name: Special) -> Segment:
    return Segment(special=name)


def _text(text: str, role: Role) -> Segment:
    return Segment(text=text, role=role)


def prompt_segments(parts: PromptParts, mode: FimMode) -> list[Segment]:
    """The prompt for ``mode`` as segments; everything that stays put while typing comes first.

    - ``psm``: ``<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>``, the official form;
    - ``psm-line``: ``<|fim_prefix|>{stable}<|fim_suffix|>{suffix}<|fim_middle|>{live}``;
    - ``spm``: ``<|fim_suffix|>{suffix}<|fim_prefix|>{prefix}<|fim_middle|>`` (llama.cpp's);
    - ``spm2``: ``<|fim_prefix|><|fim_suffix|>{suffix}<|fim_middle|>{prefix}`` (the FIM paper's).

    Each starts with ``<bos>``, then the context files (``path\n{text}<|file_separator|>``),
    then the current file's path line.
    """
    head = [_special("bos")]
    for path, text in parts.context:
        head += [_text(f"{path}\n{text}", "context"), _special("file_separator")]
    if parts.path:
        head.append(_text(parts.path + "\n", "path"))
    prefix, suffix = _text(parts.prefix, "prefix"), _text(parts.suffix, "suffix")
    if mode == "psm":
        body = [_special("fim_prefix"), prefix, _special("fim_suffix"), suffix]
        return [*head, *body, _special("fim_middle")]
    if mode == "psm-line":
        body = [
            _special("fim_prefix"),
            _text(parts.stable_prefix, "prefix"),
            _special("fim_suffix"),
            suffix,
            _special("fim_middle"),
            _text(parts.live, "live"),
        ]
        return [*head, *body]
    if mode == "spm":
        body = [_special("fim_suffix"), suffix, _special("fim_prefix"), prefix]
        return [*head, *body, _special("fim_middle")]
    if mode == "spm2":
        body = [_special("fim_prefix"), _special("fim_suffix"), suffix, _special("fim_middle")]
        return [*head, *body, prefix]
    raise ValueError(f"unknown FIM mode {mode!r}")


def render_prompt(segments: Sequence[Segment]) -> str:
    """The prompt as text, special tokens written as their text (for ``codegemma-lsp prompt``)."""
    return "".join(_SPECIAL_TEXT[s.special] if s.special else s.text for s in segments)


def _special_id(fim: FimTokens, name: Special) -> int:
    value: int = getattr(fim, name)
    return value


def context_budget(n_ctx: int, max_new_tokens: int) -> tuple[int, int]:
    """(prompt budget, new tokens) for a model context of ``n_ctx`` tokens.

    Generation gets what it asks for, up to half the context; the prompt the rest.
    """
    max_new = max(0, min(max_new_tokens, n_ctx // 2))
    return n_ctx - max_new, max_new


def build_prompt(
    tokenizer: TextTokenizer,
    special_ids: FimTokens,
    parts: PromptParts,
    mode: FimMode = "psm",
    budget: int | None = None,
) -> list[int]:
    """The prompt for ``mode`` as ids, text tokenized with :func:`tokenize_plain`.

    ``budget`` caps the whole prompt (see :func:`context_budget`). The windows are
    sized beforehand, so this is a guard against overflowing the context: context
    files go first (last one first), then the prefix loses its start and the suffix
    its end (see :func:`split_budget`), then the path line. Raises ValueError when
    even the special tokens do not fit.
    """
    segments = prompt_segments(parts, mode)
    ids = [
        [_special_id(special_ids, s.special)]
        if s.special
        else tokenize_plain(tokenizer.tokenize, s.text)
        for s in segments
    ]
    if budget is not None:
        _fit(segments, ids, budget)
    return list(itertools.chain.from_iterable(ids))


def _fit(segments: list[Segment], ids: list[list[int]], max_tokens: int) -> None:
    """Shrink ``ids`` in place, segment by segment, until they fit ``max_tokens``."""

    def total() -> int:
        return sum(len(piece) for piece in ids)

    specials = sum(1 for s in segments if s.special and s.special != "file_separator")
    if specials > max_tokens:
        raise ValueError(f"a FIM prompt needs at least {specials} tokens, not {max_tokens}")
    for i in reversed(range(len(segments))):
        if total() <= max_tokens:
            return
        if segments[i].role == "context":
            ids[i] = []
            if i + 1 < len(segments) and segments[i + 1].special == "file_separator":
                ids[i + 1] = []
    if total() <= max_tokens:
        return
    roles = [s.role for s in segments]
    p, q = roles.index("prefix"), roles.index("suffix")
    others = total() - len(ids[p]) - len(ids[q])
    path = roles.index("path") if "path" in roles else None
    if path is not None and others > max_tokens:
        others -= len(ids[path])
        ids[path] = []
    budget = max(max_tokens - others, 0)
    ids[p], ids[q] = fit_budget(ids[p], ids[q], *split_budget(budget, len(ids[p]), len(ids[q])))


def build_psm(
    tokenizer: TextTokenizer,
    fim: FimTokens,
    prefix: str,
    suffix: str,
    path: str | None,
    *,
    budget: int | None = None,
) -> list[int]:
    """``<bos>[path\\n]<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>`` as ids."""
    return build_prompt(tokenizer, fim, PromptParts(prefix, suffix, path), "psm", budget)
