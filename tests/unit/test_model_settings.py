"""The model settings (id, quant, download, GPU layers, KV type), the memory they need,
and the doctor's words for a speed: pure functions, tested by tables."""

from __future__ import annotations

from typing import Any

import pytest

from codegemma_lsp.config import ModelSettings, parse_settings
from codegemma_lsp.doctor import Report, speed_verdict
from codegemma_lsp.engine.base import ModelLoadError
from codegemma_lsp.engine.host import describe, make_backend
from codegemma_lsp.engine.llama_backend import resolve_gpu_layers
from codegemma_lsp.engine.memory import (
    buffer_bytes,
    estimate,
    gib,
    kv_cache_bytes,
    mib,
    output_copy_bytes,
)
from codegemma_lsp.engine.registry import SHAPES


@pytest.mark.parametrize(
    ("raw", "key", "expected", "problem"),
    [
        pytest.param({"gpuLayers": "auto"}, "gpu_layers", "auto", None, id="gpu-auto"),
        pytest.param({"gpuLayers": "AUTO"}, "gpu_layers", "auto", None, id="gpu-auto-case"),
        pytest.param({"gpuLayers": 0}, "gpu_layers", 0, None, id="gpu-zero"),
        pytest.param({"gpuLayers": "12"}, "gpu_layers", 12, None, id="gpu-count-string"),
        pytest.param({"gpuLayers": "all"}, "gpu_layers", "auto", "auto or a number", id="gpu-bad"),
        pytest.param({"gpuLayers": -1}, "gpu_layers", "auto", "from 0 to 1024", id="gpu-negative"),
        pytest.param({"gpuLayers": True}, "gpu_layers", "auto", "auto or a number", id="gpu-bool"),
        pytest.param({"kvType": "q8_0"}, "kv_type", "q8_0", None, id="kv-q8"),
        pytest.param({"kvType": "q5_1"}, "kv_type", "f16", "must be one of", id="kv-bad"),
        pytest.param({"flashAttention": "off"}, "flash_attention", False, None, id="flash-off"),
        pytest.param({"id": "codegemma-7b"}, "id", "codegemma-7b", None, id="id"),
        pytest.param({"quant": "Q8_0"}, "quant", "Q8_0", None, id="quant"),
        pytest.param({"download": False}, "download", False, None, id="download-off"),
    ],
)
def test_model_settings_parse(
    raw: dict[str, Any], key: str, expected: Any, problem: str | None
) -> None:
    settings, problems = parse_settings([{"model": raw}])
    assert getattr(settings.model, key) == expected
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_defaults_need_no_path() -> None:
    model = ModelSettings()
    assert (model.path, model.id, model.quant, model.download) == (
        None,
        "codegemma-2b",
        "Q4_K_M",
        True,
    )
    assert (model.gpu_layers, model.kv_type, model.flash_attention) == ("auto", "f16", True)
    assert describe(model) == "codegemma-2b-Q4_K_M.gguf"
    assert describe(ModelSettings(id="nope")) == "nope Q4_K_M"


def test_quantized_kv_without_flash_attention_is_refused(tmp_path: Any) -> None:
    settings = ModelSettings(path=str(tmp_path / "m.gguf"), kv_type="q8_0", flash_attention=False)
    with pytest.raises(ModelLoadError, match=r"needs model\.flashAttention on"):
        make_backend(settings)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        pytest.param(0, 0, id="zero"),
        pytest.param(7, 7, id="count"),
    ],
)
def test_gpu_layers_numbers_pass_through(setting: int, expected: int) -> None:
    assert resolve_gpu_layers(setting) == expected


@pytest.mark.model
def test_gpu_layers_auto_follows_the_build() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    expected = -1 if llama_cpp.llama_supports_gpu_offload() else 0
    assert resolve_gpu_layers("auto") == expected


# ----- memory ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "n_ctx", "kv_type", "kib_per_token"),
    [
        # 2 (K and V) x 18 layers x 1 KV head x 256 x 2 bytes = 18 KiB a token.
        pytest.param("codegemma-2b", 4096, "f16", 18, id="2b-f16"),
        # 2 x 28 x 16 x 256 x 2 bytes = 448 KiB a token.
        pytest.param("codegemma-7b", 4096, "f16", 448, id="7b-f16"),
        pytest.param("codegemma-7b", 8192, "q8_0", 448 * 34 / 64, id="7b-q8_0"),
        pytest.param("codegemma-7b", 2048, "q4_0", 448 * 18 / 64, id="7b-q4_0"),
    ],
)
def test_kv_cache_from_the_shapes(
    model: str, n_ctx: int, kv_type: str, kib_per_token: float
) -> None:
    assert kv_cache_bytes(SHAPES[model], n_ctx, kv_type) == int(kib_per_token * 1024 * n_ctx)


def test_estimate_adds_weights_kv_and_buffers() -> None:
    shape = SHAPES["codegemma-2b"]
    need = estimate(shape, 1_630_262_400, 4096)
    copy = output_copy_bytes(shape)
    assert need.total == (
        1_630_262_400 + kv_cache_bytes(shape, 4096) + buffer_bytes(shape, 4096) + copy
    )
    # The buffers are dominated by a micro-batch of logits over 256000 words (~62 MiB).
    assert 60 << 20 < need.buffers < 100 << 20
    # On the CPU the tied output layer is repacked: a Q6_K copy of 256000 x 2048 (~400 MiB).
    assert 390 << 20 < copy < 420 << 20
    assert need.describe().startswith("about 2.06 GiB")
    assert estimate(shape, 1_630_262_400, 4096, on_cpu=False).total == need.total - copy
    # Without flash attention the score matrix adds to the buffers.
    assert buffer_bytes(shape, 4096, flash_attention=False) > need.buffers


@pytest.mark.parametrize(
    ("size", "text"),
    [
        pytest.param(3 << 30, "3.00 GiB", id="gib"),
        pytest.param(72 << 20, "72 MiB", id="mib"),
        pytest.param(552064, "539 KiB", id="kib"),
    ],
)
def test_sizes_in_words(size: int, text: str) -> None:
    assert gib(size) == text or mib(size) == text


# ----- the doctor's words -----------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt_tps", "generate_tps", "status", "words"),
    [
        pytest.param(400.0, 60.0, "ok", "fast", id="fast"),
        pytest.param(72.0, 19.0, "ok", "usable", id="laptop"),  # FACTS.md's 2-core machine
        pytest.param(30.0, 9.6, "warn", "slow", id="busy"),
        pytest.param(10.0, 2.0, "warn", "too slow", id="too-slow"),
    ],
)
def test_speed_verdict(prompt_tps: float, generate_tps: float, status: str, words: str) -> None:
    got_status, text = speed_verdict(prompt_tps, generate_tps)
    assert got_status == status
    assert words in text
    assert text.startswith("expect about ") and " s per single-line completion" in text
    assert speed_verdict(5000.0, 5000.0)[1].startswith("expect under 0.1 s per single-line")


def test_report_verdict_names_the_problems() -> None:
    report = Report()
    report.add("model", "ok", "m.gguf")
    report.add("speed", "warn", "slow")
    assert report.ok
    assert report.to_text().rstrip().endswith("verdict: this setup can work (1 warning)")
    report.add("load", "fail", "not a CodeGemma model: no <|fim_prefix|>")
    assert not report.ok
    last = report.to_text().rstrip().splitlines()[-1]
    assert last == "verdict: this setup cannot work: load: not a CodeGemma model: no <|fim_prefix|>"
    assert report.to_json()["ok"] is False
