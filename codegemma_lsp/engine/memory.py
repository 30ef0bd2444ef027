"""How much memory a model and its settings need, computed from the model's shapes.

Three parts, as llama.cpp allocates them:

- the weights: the GGUF file's size (read into memory; with ``model.mmap`` on, a CPU
  build keeps the mapped file and its repacked copy, about 1 GB more for 2B);
- the KV cache: 2 (K and V) × layers × n_ctx × KV heads × head size elements of the
  cache type;
- working buffers for one micro-batch, the largest being the logits of 256000-word
  vocabulary rows; an estimate within tens of MB, not a measurement;
- on the CPU, a copy of the tied output layer: Gemma's output matrix is its token
  embedding, which a CPU build converts to Q6_K for the matrix multiply (measured on
  the 2B-shaped file: about 0.4 GiB of the resident size after loading).
"""

from __future__ import annotations

from dataclasses import dataclass

from codegemma_lsp.engine.registry import ModelShape

# Bytes per element: q8_0 stores 32 values in 34 bytes, q4_0 in 18.
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
MICRO_BATCH = 64
"""The backend's llama.cpp n_ubatch (llama_backend.UBATCH)."""

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    kv_cache: int
    buffers: int
    output_copy: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.buffers + self.output_copy

    def describe(self) -> str:
        return (
            f"about {gib(self.total)} (weights {gib(self.weights)}, KV cache "
            f"{mib(self.kv_cache)}, buffers {mib(self.buffers)})"
        )


def gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB" if size >= GIB else mib(size)


def mib(size: int) -> str:
    return f"{size / MIB:.0f} MiB" if size >= MIB else f"{size / 1024:.0f} KiB"


def kv_cache_bytes(shape: ModelShape, n_ctx: int, kv_type: str = "f16") -> int:
    elements = 2 * shape.n_layer * n_ctx * shape.n_head_kv * shape.head_dim
    return int(elements * KV_BYTES_PER_ELEMENT[kv_type])


def buffer_bytes(
    shape: ModelShape, n_ctx: int, *, flash_attention: bool = True, n_ubatch: int = MICRO_BATCH
) -> int:
    """Working memory of one micro-batch: logits, feed-forward and attention scratch."""
    logits = n_ubatch * shape.n_vocab * 4
    feed_forward = n_ubatch * (3 * shape.n_ff + 4 * shape.n_embd) * 4
    # Without flash attention the full score matrix of each head is materialised.
    scores = 0 if flash_attention else n_ubatch * n_ctx * shape.n_head * 4
    return logits + feed_forward + scores


Q6_K_BITS_PER_WEIGHT = 6.5625


def output_copy_bytes(shape: ModelShape) -> int:
    """The CPU's Q6_K copy of the tied output layer (vocabulary x embedding)."""
    return int(shape.n_vocab * shape.n_embd * Q6_K_BITS_PER_WEIGHT / 8)


def estimate(
    shape: ModelShape,
    weights_bytes: int,
    n_ctx: int,
    *,
    kv_type: str = "f16",
    flash_attention: bool = True,
    on_cpu: bool = True,
) -> MemoryEstimate:
    return MemoryEstimate(
        weights=weights_bytes,
        kv_cache=kv_cache_bytes(shape, n_ctx, kv_type),
        buffers=buffer_bytes(shape, n_ctx, flash_attention=flash_attention),
        output_copy=output_copy_bytes(shape) if on_cpu else 0,
    )


def available_bytes() -> int | None:
    """The memory the system can give without swapping (Linux), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None
