"""What ``codegemma-lsp doctor`` asks of llama.cpp: its build, and a loaded model's facts.

Kept in the engine because only the engine imports ``llama_cpp``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codegemma_lsp.engine.registry import ModelShape

# Shared libraries llama-cpp-python installs per ggml backend, named as users know them.
_BACKEND_NAMES = {
    "cuda": "CUDA",
    "metal": "Metal",
    "vulkan": "Vulkan",
    "blas": "BLAS",
    "hip": "HIP (ROCm)",
    "sycl": "SYCL",
    "musa": "MUSA",
    "opencl": "OpenCL",
    "rpc": "RPC",
    "kompute": "Kompute",
    "cann": "CANN",
}
GPU_BACKENDS = frozenset({"CUDA", "Metal", "Vulkan", "HIP (ROCm)", "SYCL", "MUSA", "OpenCL"})


@dataclass(frozen=True)
class BuildReport:
    package_version: str
    llama_cpp_version: str
    system_info: str
    cpu_features: tuple[str, ...]
    backends: tuple[str, ...]
    """Compiled-in ggml backends besides the CPU (CUDA, Metal, Vulkan, BLAS, ...)."""
    gpu_offload: bool

    @property
    def gpu_backends(self) -> tuple[str, ...]:
        return tuple(b for b in self.backends if b in GPU_BACKENDS)


def build_report() -> BuildReport:
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    features = tuple(
        name for name, value in re.findall(r"(\w+) = (\w+)", info) if value not in ("0", "")
    )
    backends: set[str] = set()
    lib = Path(llama_cpp.__file__).resolve().parent / "lib"
    for library in lib.glob("*ggml-*"):
        key = library.name.split("ggml-", 1)[1].split(".", 1)[0].lower()
        if key in _BACKEND_NAMES:
            backends.add(_BACKEND_NAMES[key])
    for key, name in _BACKEND_NAMES.items():
        if re.search(rf"\b{key}\b", info, flags=re.IGNORECASE):
            backends.add(name)
    try:
        version = llama_cpp.llama_version().decode()
    except Exception:  # older builds have no llama_version()
        version = "unknown"
    return BuildReport(
        package_version=str(getattr(llama_cpp, "__version__", "unknown")),
        llama_cpp_version=version,
        system_info=info,
        cpu_features=features,
        backends=tuple(sorted(backends)),
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
    )


@dataclass(frozen=True)
class LoadedModel:
    architecture: str
    fim_tokens: dict[str, int]
    shape: ModelShape | None
    n_params: int | None
    metadata: dict[str, Any] = field(default_factory=dict)


def loaded_model_report(llm: Any, fim_tokens: dict[str, int]) -> LoadedModel:
    """Facts of a loaded ``llama_cpp.Llama``: its architecture and shapes from the GGUF."""
    import llama_cpp

    metadata: dict[str, str] = dict(getattr(llm, "metadata", {}) or {})
    arch = metadata.get("general.architecture", "unknown")

    def number(key: str) -> int | None:
        value = metadata.get(f"{arch}.{key}")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    n_layer, n_head = number("block_count"), number("attention.head_count")
    n_head_kv, head_dim = number("attention.head_count_kv"), number("attention.key_length")
    n_embd, n_ff = number("embedding_length"), number("feed_forward_length")
    shape = None
    if None not in (n_layer, n_head, n_embd, n_ff):
        assert n_layer is not None and n_head is not None and n_embd is not None
        assert n_ff is not None
        shape = ModelShape(
            n_layer=n_layer,
            n_head=n_head,
            n_head_kv=n_head_kv or n_head,
            head_dim=head_dim or n_embd // n_head,
            n_embd=n_embd,
            n_ff=n_ff,
            n_vocab=int(llm.n_vocab()),
            n_ctx_train=number("context_length") or 0,
        )
    try:
        n_params: int | None = int(llama_cpp.llama_model_n_params(llm.model))
    except Exception:
        n_params = None
    return LoadedModel(
        architecture=arch, fim_tokens=fim_tokens, shape=shape, n_params=n_params, metadata=metadata
    )
