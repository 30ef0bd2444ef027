"""Where llama.cpp keeps a model's weights on the CPU, and the AMX crash this avoids.

llama-cpp-python 0.3.36's llama.cpp, built on a CPU with Intel AMX, lists two extra
weight buffers before plain memory: ``AMX`` and ``CPU_REPACK``. It puts each weight in
the first one that takes it, so Q4_K weights land in ``AMX``, and its AMX matrix
multiply then crashes the process in the first decode (seen on a Xeon with
``amx_int8``: SIGSEGV in ``ggml_backend_amx_mul_mat``).

Turning the extra buffers off (``use_extra_bufts``) avoids the crash but also loses
``CPU_REPACK``, whose interleaved Q4 layout is what makes generation fast on AVX2 and
AVX-512: on the 2B-shaped Q4_K_M here, 7.4 generated tokens/s without it against 9.3
with it. So on such a CPU the load turns the extra buffers off and names
``CPU_REPACK`` itself, through ``tensor_buft_overrides``, for exactly the weights whose
type it repacks (read from the file's GGUF header). Anything unexpected (no
``CPU_REPACK`` in this build, a header that will not read) falls back to plain memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPACKED_TYPES = frozenset({2, 12, 20})
"""ggml types that ``CPU_REPACK`` interleaves on x86: Q4_0, Q4_K, IQ4_NL."""
_CPU_DEVICE = 0  # GGML_BACKEND_DEVICE_TYPE_CPU


def cpu_has_amx(cpuinfo: str | None = None) -> bool:
    """Whether the CPU reports Intel AMX (``amx_int8``/``amx_tile`` in /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return "amx_int8" in flags or "amx_tile" in flags


def repack_pattern(tensors: Iterable[tuple[str, int]]) -> str | None:
    """A regex matching exactly the named weights whose ggml type ``CPU_REPACK`` takes.

    None when there are none: an override that matches nothing is left out.
    """
    names = sorted(name for name, kind in tensors if kind in REPACKED_TYPES)
    if not names:
        return None
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


class _Override(ctypes.Structure):
    # llama_model_tensor_buft_override: { const char * pattern; ggml_backend_buffer_type_t buft; }
    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


class _GgufInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


def _ggml() -> Any:
    from llama_cpp._ggml import libggml  # the library llama_cpp itself loaded

    lib = libggml
    lib.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    lib.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    lib.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    lib.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_backend_buft_name.restype = ctypes.c_char_p
    lib.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
    lib.gguf_init_from_file.restype = ctypes.c_void_p
    lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, _GgufInitParams]
    lib.gguf_get_n_tensors.restype = ctypes.c_int64
    lib.gguf_get_n_tensors.argtypes = [ctypes.c_void_p]
    lib.gguf_get_tensor_name.restype = ctypes.c_char_p
    lib.gguf_get_tensor_name.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.gguf_get_tensor_type.restype = ctypes.c_int
    lib.gguf_get_tensor_type.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.gguf_free.restype = None
    lib.gguf_free.argtypes = [ctypes.c_void_p]
    return lib


def _extra_buffer(lib: Any, name: str) -> int | None:
    """The CPU device's extra buffer type called ``name``, or None."""
    lib_llama = _llama_lib()
    lib_llama.llama_backend_init()  # registers the CPU backend; idempotent
    device = lib.ggml_backend_dev_by_type(_CPU_DEVICE)
    if not device:
        return None
    registry = lib.ggml_backend_dev_backend_reg(device)
    address = lib.ggml_backend_reg_get_proc_address(registry, b"ggml_backend_dev_get_extra_bufts")
    if not address:
        return None
    listing = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)
    bufts = listing(device)
    index = 0
    while bufts and bufts[index]:
        if lib.ggml_backend_buft_name(bufts[index]) == name.encode():
            return int(bufts[index])
        index += 1
    return None


def _llama_lib() -> Any:
    import llama_cpp.llama_cpp as low_level

    return low_level


def tensor_types(lib: Any, path: Path) -> list[tuple[str, int]]:
    """Each tensor's name and ggml type, from the file's GGUF header (no data is read)."""
    context = lib.gguf_init_from_file(str(path).encode(), _GgufInitParams(True, None))
    if not context:
        raise OSError(f"cannot read the GGUF header of {path}")
    try:
        return [
            (lib.gguf_get_tensor_name(context, i).decode(), lib.gguf_get_tensor_type(context, i))
            for i in range(lib.gguf_get_n_tensors(context))
        ]
    finally:
        lib.gguf_free(context)


def _repack_overrides(path: Path) -> ctypes.Array[_Override] | None:
    lib = _ggml()
    repack = _extra_buffer(lib, "CPU_REPACK")
    if repack is None:
        return None
    pattern = repack_pattern(tensor_types(lib, path))
    if pattern is None:
        return None
    return (_Override * 2)(_Override(pattern.encode(), repack), _Override(None, None))


@contextlib.contextmanager
def weights_off_amx(path: Path, *, has_amx: bool | None = None) -> Iterator[None]:
    """On a CPU with AMX, load ``path`` with its Q4 weights repacked but none in AMX.

    Patches the default model parameters that ``llama_cpp.Llama`` starts from, for the
    duration of the load. Elsewhere it changes nothing.
    """
    if not (cpu_has_amx() if has_amx is None else has_amx):
        yield
        return
    low_level = _llama_lib()
    try:
        overrides = _repack_overrides(path)
    except Exception as exc:  # a foreign build or a header we cannot read: plain memory
        log.info("weights stay in plain memory: %s", exc)
        overrides = None
    original = low_level.llama_model_default_params

    def without_amx() -> Any:
        params = original()
        params.use_extra_bufts = False
        if overrides is not None:
            params.tensor_buft_overrides = ctypes.cast(overrides, ctypes.c_void_p)
        return params

    low_level.llama_model_default_params = without_amx
    try:
        yield
    finally:
        low_level.llama_model_default_params = original
