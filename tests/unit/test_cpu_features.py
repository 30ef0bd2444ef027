"""CPU features that change how llama.cpp must load a model."""

from __future__ import annotations

import pytest

from codegemma_lsp.engine.llama_backend import cpu_has_amx


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        pytest.param("flags\t\t: fpu sse avx2 amx_bf16 amx_tile amx_int8\n", True, id="sapphire"),
        pytest.param("flags\t\t: fpu sse avx2 avx512f\n", False, id="avx512-only"),
        pytest.param("processor : 0\nflags : amx_tile\n", True, id="tile-only"),
        pytest.param("", False, id="empty"),
        pytest.param("Features : fp asimd\n", False, id="arm"),
    ],
)
def test_amx_is_read_from_the_flags_line(cpuinfo: str, expected: bool) -> None:
    assert cpu_has_amx(cpuinfo) is expected
