"""The benchmark model's recipe, checked on tiny shapes (the real build takes minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegemma_lsp import modelgen
from codegemma_lsp.evals import bench_model

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")


def test_the_cache_lives_under_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bench_model.cache_dir() == tmp_path / "codegemma-lsp" / "bench"
    name = bench_model.model_path().name
    assert name.endswith(".gguf")
    assert f"r{bench_model.RECIPE_VERSION}" in name


def test_without_xdg_cache_home_it_is_under_the_home_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert bench_model.cache_dir() == Path.home() / ".cache" / "codegemma-lsp" / "bench"


def test_a_full_disk_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_model, "_free_bytes", lambda _path: 1 << 30)
    with pytest.raises(bench_model.BenchModelError, match="GB free"):
        bench_model.build_model(tmp_path / "m.gguf")
    assert list(tmp_path.iterdir()) == []


def _tensors(path: Path) -> dict[str, object]:
    reader = gguf.GGUFReader(str(path))
    return {tensor.name: tensor for tensor in reader.tensors}


def test_streamed_writing_keeps_norms_in_f32_and_scales_chosen_rows(tmp_path: Path) -> None:
    vocabulary = modelgen.codegemma_like_vocabulary()
    stop = vocabulary.id_of(modelgen.FILE_SEPARATOR)
    path = modelgen.write_gemma_streamed(
        tmp_path / "m.gguf",
        shape=modelgen.TINY_SHAPE,
        vocabulary=vocabulary,
        dtype="f16",
        row_scales={stop: 4.0},
        tensor_gains={"attn_q.weight": 2.0},
    )
    tensors = _tensors(path)
    norm = tensors["output_norm.weight"]
    assert norm.tensor_type == gguf.GGMLQuantizationType.F32  # type: ignore[attr-defined]
    embedding = np.asarray(tensors["token_embd.weight"].data, dtype=np.float32)  # type: ignore[attr-defined]
    norms = np.linalg.norm(embedding, axis=1)
    ordinary = vocabulary.types.index(1)
    silent = vocabulary.id_of("<bos>")
    assert norms[stop] > 3 * norms[ordinary] > 100 * norms[silent]


def test_streamed_writing_loads_in_llama_cpp(tmp_path: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    path = modelgen.write_gemma_streamed(
        tmp_path / "m.gguf",
        shape=modelgen.TINY_SHAPE,
        vocabulary=modelgen.codegemma_like_vocabulary(),
        dtype="f16",
        tensor_gains=bench_model.TENSOR_GAINS,
    )
    llm = llama_cpp.Llama(str(path), n_ctx=128, n_threads=1, verbose=False)
    try:
        llm.eval([2, 300, 301])
    finally:
        llm.close()
