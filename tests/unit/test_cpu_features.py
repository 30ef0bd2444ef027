"""CPU features that change how llama.cpp must load a model."""

from __future__ import annotations

import re

import pytest

from codegemma_lsp.engine.weight_buffers import cpu_has_amx, repack_pattern


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


Q4_K_M = [
    ("token_embd.weight", 14),  # Q6_K
    ("blk.0.attn_q.weight", 12),  # Q4_K
    ("blk.0.attn_v.weight", 14),
    ("blk.0.attn_norm.weight", 0),  # F32
    ("blk.1.ffn_up.weight", 12),
    ("blk.10.ffn_up.weight", 12),
]


@pytest.mark.parametrize(
    ("tensors", "repacked"),
    [
        pytest.param(
            Q4_K_M,
            {"blk.0.attn_q.weight", "blk.1.ffn_up.weight", "blk.10.ffn_up.weight"},
            id="q4_k_m: only the Q4_K weights",
        ),
        pytest.param(
            [("a.weight", 2), ("b.weight", 20), ("c.weight", 8)],
            {"a.weight", "b.weight"},
            id="q4_0 and iq4_nl",
        ),
        pytest.param([("a.weight", 0), ("b.weight", 8)], set(), id="f32 and q8_0: none"),
    ],
)
def test_the_repack_override_matches_exactly_the_repacked_types(
    tensors: list[tuple[str, int]], repacked: set[str]
) -> None:
    pattern = repack_pattern(tensors)
    if not repacked:
        assert pattern is None
        return
    assert pattern is not None
    # llama.cpp applies the pattern with std::regex_search: a name must not match a longer one.
    matched = {name for name, _ in tensors if re.search(pattern, name)}
    assert matched == repacked
    assert not re.search(pattern, "blk.1.ffn_up.weight.extra")
    assert not re.search(pattern, "xblk.0.attn_q.weight")
