"""GGUF files made on the spot, for tests and benchmarks.

No machine of this project can download CodeGemma, so tests load a tiny
random-weight model in CodeGemma's format instead: architecture ``gemma``, a
SentencePiece-style vocabulary that carries CodeGemma's four FIM tokens as
control tokens, and a tied output embedding. It knows nothing about code, but
it loads in milliseconds and exercises the real llama.cpp path.

The FIM tokens deliberately sit at other ids than the real vocabulary's 67-70,
so code that hard-codes those ids fails against this model.

``gguf`` and ``numpy`` are development dependencies only, so they are imported
inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

ARCHITECTURE = "gemma"

FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
FILE_SEPARATOR = "<|file_separator|>"

# SentencePiece token types, as gguf.TokenType numbers them.
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6

_SPACE = "▁"  # SentencePiece's visible space

# Words whose pieces make the tokenizer split code into readable chunks.
_CODE_WORDS_TEXT = (
    "def return self if elif else for while in is not and or import from as class "
    "try except finally with pass break continue lambda yield None True False print "
    "len range list dict str int float bool append items keys values result value "
    "name data args kwargs x y i j n total count index key item line text path "
    "function const let var this new null undefined func package main fmt err nil "
    "public private static void string char struct fn mut impl pub use"
)
_CODE_WORDS = tuple(_CODE_WORDS_TEXT.split())
_CODE_SYMBOLS = ("()", "):", "()\n", "):\n", " =", " ==", " +", " -", "->", "=>", "[]", "{}")
_INDENTS = (2, 4, 8, 12, 16)

# With a tied output embedding, a model whose blocks add little to the residual
# stream predicts its own input token forever ("((((("). Blocks that write
# loudly make greedy output vary with the context, newlines included.
_BLOCK_OUTPUT_GAIN = 64.0

# Embedding rows of tokens greedy decoding must never pick (see Vocabulary.silent_ids).
_SILENT_ROW_SCALE = 0.01


@dataclass(frozen=True, kw_only=True)
class GemmaShape:
    """The hyperparameters of a ``gemma``-architecture model."""

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    n_head_kv: int = 1
    head_dim: int = 32
    n_ff: int = 128
    n_ctx: int = 8192
    rms_eps: float = 1e-6


TINY_SHAPE = GemmaShape()
"""A model small enough to load in milliseconds and generate thousands of tokens a second."""

CODEGEMMA_2B_SHAPE = GemmaShape(
    n_layer=18, n_embd=2048, n_head=8, n_head_kv=1, head_dim=256, n_ff=16384
)
"""CodeGemma 2B's real shapes (reference/FACTS.md), for benchmarks."""

CODEGEMMA_VOCAB_SIZE = 256000


@dataclass(frozen=True)
class Vocabulary:
    """A SentencePiece vocabulary: pieces, merge scores and token types, by id."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    types: tuple[int, ...]

    def id_of(self, piece: str) -> int:
        return self.pieces.index(piece)

    def silent_ids(self) -> list[int]:
        """Ids whose embedding rows are shrunk so that greedy decoding never picks them.

        With a tied output embedding a row of norm ``ε`` gives a logit near 0,
        while the largest logit over the random rows is far above. Control
        tokens would end generation at random, and byte tokens could emit
        invalid UTF-8; only ordinary pieces are left. The rows are not zero:
        a context of control tokens only (an empty prefix and suffix) would
        then stay zero through every block, and all logits would tie at 0.
        """
        return [i for i, kind in enumerate(self.types) if kind != _NORMAL]


def codegemma_like_vocabulary(size: int | None = None, *, fim: bool = True) -> Vocabulary:
    """Gemma's special tokens, the FIM tokens, byte fallback, and a few hundred code pieces.

    ``size`` pads the vocabulary with ``<unusedN>`` control tokens (CodeGemma's is 256000).
    ``fim=False`` leaves the FIM tokens out, as in a plain Gemma model.
    """
    entries: list[tuple[str, int]] = [
        ("<pad>", _CONTROL),
        ("<eos>", _CONTROL),
        ("<bos>", _CONTROL),
        ("<unk>", _UNKNOWN),
        ("<start_of_turn>", _CONTROL),
        ("<end_of_turn>", _CONTROL),
    ]
    if fim:
        entries += [
            (text, _CONTROL) for text in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR)
        ]
    entries += [(f"<0x{byte:02X}>", _BYTE) for byte in range(256)]
    entries += [(piece, _NORMAL) for piece in _ordinary_pieces()]
    if size is not None:
        if size < len(entries):
            raise ValueError(f"vocabulary size {size} is below the {len(entries)} pieces needed")
        entries += [(f"<unused{k}>", _CONTROL) for k in range(size - len(entries))]
    # SentencePiece merges the pair whose merged piece scores highest; earlier pieces win.
    scores = [0.0 if kind != _NORMAL else -float(i) for i, (_, kind) in enumerate(entries)]
    return Vocabulary(
        pieces=tuple(piece for piece, _ in entries),
        scores=tuple(scores),
        types=tuple(kind for _, kind in entries),
    )


def _ordinary_pieces() -> list[str]:
    """Single characters first, then every left-to-right prefix of each longer piece.

    SentencePiece (as llama.cpp runs it) only merges two adjacent pieces into a
    piece that exists, so a word is reachable only if its prefixes are pieces too.
    """
    chars = ["\n", "\t", _SPACE] + [chr(c) for c in range(0x21, 0x7F)]
    longer: list[str] = []
    for word in _CODE_WORDS:
        longer += [word, _SPACE + word]
    longer += [symbol.replace(" ", _SPACE) for symbol in _CODE_SYMBOLS]
    longer += [_SPACE * width for width in _INDENTS]
    longer += ["\n" + _SPACE * width for width in _INDENTS]
    pieces = dict.fromkeys(chars)
    for piece in longer:
        for end in range(2, len(piece) + 1):
            pieces.setdefault(piece[:end])
    return list(pieces)


def write_tiny_codegemma(path: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight CodeGemma-format GGUF to ``path`` and return it."""
    return write_gemma(path, shape=TINY_SHAPE, vocabulary=codegemma_like_vocabulary(), seed=seed)


BROKEN_CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }{% endfor"
"""A Jinja template that does not compile: ``}}`` and ``%}`` are missing."""


def write_tiny_codegemma_broken_chat_template(path: Path, *, seed: int = 0) -> Path:
    """Like :func:`write_tiny_codegemma`, with a ``tokenizer.chat_template`` that does not
    compile."""
    return write_gemma(
        path,
        shape=TINY_SHAPE,
        vocabulary=codegemma_like_vocabulary(),
        seed=seed,
        chat_template=BROKEN_CHAT_TEMPLATE,
    )


def write_tiny_gemma_without_fim(path: Path, *, seed: int = 0) -> Path:
    """Like :func:`write_tiny_codegemma`, but a plain Gemma vocabulary with no FIM tokens."""
    vocabulary = codegemma_like_vocabulary(fim=False)
    return write_gemma(path, shape=TINY_SHAPE, vocabulary=vocabulary, seed=seed, name="tiny-gemma")


def write_gemma(
    path: Path,
    *,
    shape: GemmaShape,
    vocabulary: Vocabulary,
    seed: int = 0,
    dtype: Literal["f32", "f16"] = "f32",
    name: str = "tiny-codegemma",
    chat_template: str | None = None,
) -> Path:
    """Write a random-weight ``gemma`` GGUF; deterministic for a given seed.

    ``chat_template`` is written as ``tokenizer.chat_template`` (real GGUFs carry one;
    a completion server must load the file whatever it holds)."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    float_type = np.float32 if dtype == "f32" else np.float16
    writer = gguf.GGUFWriter(str(path), ARCHITECTURE)
    _add_hyperparameters(writer, shape, name)
    _add_tokenizer(writer, vocabulary)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    for tensor_name, tensor in _gemma_tensors(rng, shape, vocabulary):
        writer.add_tensor(tensor_name, tensor.astype(float_type))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_gemma_streamed(
    path: Path,
    *,
    shape: GemmaShape,
    vocabulary: Vocabulary,
    seed: int = 0,
    dtype: Literal["f32", "f16"] = "f16",
    name: str = "codegemma-bench",
    row_scales: Mapping[int, float] | None = None,
    tensor_gains: Mapping[str, float] | None = None,
) -> Path:
    """Like :func:`write_gemma`, but makes and writes one tensor at a time.

    A model of CodeGemma 2B's shapes holds 2.5 billion weights: :func:`write_gemma`
    would keep them all in memory before writing, this needs only the largest
    tensor. ``row_scales`` sets the scale of chosen embedding rows, relative to an
    ordinary row, in place of the silencing: with a tied output embedding, a row
    scaled above 1 makes greedy decoding pick its token now and then.
    ``tensor_gains`` overrides the gain of a block tensor by its name within the
    block (``"attn_q.weight"``); the defaults keep the blocks' output loud.
    """
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    float_type = np.dtype(np.float32 if dtype == "f32" else np.float16)
    writer = gguf.GGUFWriter(str(path), ARCHITECTURE)
    _add_hyperparameters(writer, shape, name)
    _add_tokenizer(writer, vocabulary)
    for tensor_name, rows, columns in _gemma_tensor_shapes(shape, len(vocabulary.pieces)):
        if rows == 0:  # llama.cpp multiplies by norm weights only in f32
            writer.add_tensor_info(tensor_name, (columns,), np.dtype(np.float32), columns * 4)
        else:
            nbytes = rows * columns * float_type.itemsize
            writer.add_tensor_info(tensor_name, (rows, columns), float_type, nbytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    tensors = _iter_gemma_tensors(
        rng, shape, vocabulary, float_type, row_scales, tensor_gains or {}
    )
    for _, tensor in tensors:
        writer.write_tensor_data(tensor)
    writer.close()
    return path


def _add_hyperparameters(writer: Any, shape: GemmaShape, name: str) -> None:
    writer.add_name(name)
    writer.add_context_length(shape.n_ctx)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_layer_norm_rms_eps(shape.rms_eps)


def _add_tokenizer(writer: Any, vocabulary: Vocabulary) -> None:
    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(vocabulary.pieces))
    writer.add_token_scores(list(vocabulary.scores))
    writer.add_token_types(list(vocabulary.types))
    writer.add_bos_token_id(vocabulary.id_of("<bos>"))
    writer.add_eos_token_id(vocabulary.id_of("<eos>"))
    writer.add_unk_token_id(vocabulary.id_of("<unk>"))
    writer.add_pad_token_id(vocabulary.id_of("<pad>"))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    # Gemma's converter writes this: no space is put before the first word.
    writer.add_add_space_prefix(False)
    # Written as the real converter does; the server still looks the ids up by text.
    fim_keys = {
        "tokenizer.ggml.fim_pre_token_id": FIM_PREFIX,
        "tokenizer.ggml.fim_suf_token_id": FIM_SUFFIX,
        "tokenizer.ggml.fim_mid_token_id": FIM_MIDDLE,
        "tokenizer.ggml.fim_sep_token_id": FILE_SEPARATOR,
    }
    for key, text in fim_keys.items():
        if text in vocabulary.pieces:
            writer.add_uint32(key, vocabulary.id_of(text))


def _gemma_tensor_shapes(shape: GemmaShape, n_vocab: int) -> list[tuple[str, int, int]]:
    """(name, rows, columns) of each tensor :func:`_iter_gemma_tensors` makes, in its order;
    rows is 0 for a vector."""
    embd, q_width, kv_width = (
        shape.n_embd,
        shape.n_head * shape.head_dim,
        shape.n_head_kv * shape.head_dim,
    )
    shapes = [("token_embd.weight", n_vocab, embd), ("output_norm.weight", 0, embd)]
    for block in range(shape.n_layer):
        prefix = f"blk.{block}."
        shapes += [
            (prefix + "attn_norm.weight", 0, embd),
            (prefix + "attn_q.weight", q_width, embd),
            (prefix + "attn_k.weight", kv_width, embd),
            (prefix + "attn_v.weight", kv_width, embd),
            (prefix + "attn_output.weight", embd, q_width),
            (prefix + "ffn_norm.weight", 0, embd),
            (prefix + "ffn_gate.weight", shape.n_ff, embd),
            (prefix + "ffn_up.weight", shape.n_ff, embd),
            (prefix + "ffn_down.weight", embd, shape.n_ff),
        ]
    return shapes


# Rows of the embedding made per step, so its float32 form never exists whole.
_EMBEDDING_CHUNK_ROWS = 16384


def _iter_gemma_tensors(
    rng: np.random.Generator,
    shape: GemmaShape,
    vocabulary: Vocabulary,
    float_type: np.dtype[Any],
    row_scales: Mapping[int, float] | None,
    tensor_gains: Mapping[str, float],
) -> Iterator[tuple[str, npt.NDArray[Any]]]:
    """The tensors of :func:`_gemma_tensor_shapes`, made one at a time in ``float_type``."""
    import numpy as np

    n_vocab, embd = len(vocabulary.pieces), shape.n_embd
    token_embd = np.empty((n_vocab, embd), dtype=float_type)
    for start in range(0, n_vocab, _EMBEDDING_CHUNK_ROWS):
        stop = min(start + _EMBEDDING_CHUNK_ROWS, n_vocab)
        token_embd[start:stop] = rng.standard_normal((stop - start, embd), dtype=np.float32)
    scales = dict(row_scales or {})
    silent = [token for token in vocabulary.silent_ids() if token not in scales]
    token_embd[silent] *= float_type.type(_SILENT_ROW_SCALE)
    for token, scale in scales.items():
        token_embd[token] *= float_type.type(scale)
    yield "token_embd.weight", token_embd
    del token_embd
    gains = {
        "attn_output.weight": _BLOCK_OUTPUT_GAIN,
        "ffn_down.weight": _BLOCK_OUTPUT_GAIN,
        **tensor_gains,
    }
    for tensor_name, rows, columns in _gemma_tensor_shapes(shape, n_vocab)[1:]:
        if rows == 0:
            yield tensor_name, np.ones(columns, dtype=np.float32)
            continue
        weights = rng.standard_normal((rows, columns), dtype=np.float32)
        weights *= gains.get(tensor_name.split(".", 2)[-1], 1.0) / math.sqrt(columns)
        yield tensor_name, weights.astype(float_type)


def _gemma_tensors(
    rng: np.random.Generator, shape: GemmaShape, vocabulary: Vocabulary
) -> list[tuple[str, npt.NDArray[Any]]]:
    """The tensors of a ``gemma`` model, in numpy's (rows, columns) = GGUF's reversed order.

    Norm weights are ones because the GGUF converter has already added Gemma's
    ``1 +`` to them. There is no ``output.weight``: the output is tied to
    ``token_embd.weight``, as in CodeGemma.
    """
    import numpy as np

    def random(rows: int, columns: int, gain: float = 1.0) -> npt.NDArray[Any]:
        weights = rng.standard_normal((rows, columns), dtype=np.float32)
        weights *= gain / math.sqrt(columns)
        return weights

    embd, q_width, kv_width = (
        shape.n_embd,
        shape.n_head * shape.head_dim,
        shape.n_head_kv * shape.head_dim,
    )
    token_embd = rng.standard_normal((len(vocabulary.pieces), embd), dtype=np.float32)
    token_embd[vocabulary.silent_ids()] *= _SILENT_ROW_SCALE
    tensors: list[tuple[str, npt.NDArray[Any]]] = [
        ("token_embd.weight", token_embd),
        ("output_norm.weight", np.ones(embd, dtype=np.float32)),
    ]
    for block in range(shape.n_layer):
        prefix = f"blk.{block}."
        tensors += [
            (prefix + "attn_norm.weight", np.ones(embd, dtype=np.float32)),
            (prefix + "attn_q.weight", random(q_width, embd)),
            (prefix + "attn_k.weight", random(kv_width, embd)),
            (prefix + "attn_v.weight", random(kv_width, embd)),
            (prefix + "attn_output.weight", random(embd, q_width, _BLOCK_OUTPUT_GAIN)),
            (prefix + "ffn_norm.weight", np.ones(embd, dtype=np.float32)),
            (prefix + "ffn_gate.weight", random(shape.n_ff, embd)),
            (prefix + "ffn_up.weight", random(shape.n_ff, embd)),
            (prefix + "ffn_down.weight", random(embd, shape.n_ff, _BLOCK_OUTPUT_GAIN)),
        ]
    return tensors


def write_not_gguf(path: Path) -> Path:
    """Write bytes that are not a GGUF file, for load-failure tests."""
    path.write_bytes(b"this is not a GGUF file\n" * 64)
    return path


def write_wrong_arch(path: Path) -> Path:
    """Write a valid GGUF whose architecture llama.cpp does not know."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "notanarch")
    writer.add_name("not-an-architecture")
    writer.add_context_length(128)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
