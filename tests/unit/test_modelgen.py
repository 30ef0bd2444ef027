"""The GGUF files tests make for themselves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codegemma_lsp import modelgen

pytest.importorskip("gguf")


@pytest.fixture
def llm(tiny_model_path: Path) -> Iterator[Any]:
    llama_cpp = pytest.importorskip("llama_cpp")
    model = llama_cpp.Llama(
        model_path=str(tiny_model_path), n_ctx=512, n_threads=1, flash_attn=True, verbose=False
    )
    yield model
    model.close()


def test_vocabulary_has_the_fim_tokens_away_from_their_real_ids() -> None:
    vocabulary = modelgen.codegemma_like_vocabulary()
    fim_ids = [vocabulary.id_of(text) for text in ("<|fim_prefix|>", "<|file_separator|>")]
    assert not set(fim_ids) & set(range(67, 71))
    assert vocabulary.id_of("<pad>") == 0
    assert vocabulary.id_of("<eos>") == 1
    assert vocabulary.id_of("<bos>") == 2
    assert vocabulary.id_of("<0x0A>") == vocabulary.id_of("<0x00>") + 10


def test_vocabulary_is_padded_to_the_size_asked() -> None:
    vocabulary = modelgen.codegemma_like_vocabulary(size=2000)
    assert len(vocabulary.pieces) == len(vocabulary.scores) == len(vocabulary.types) == 2000
    assert (
        vocabulary.pieces[-1]
        == f"<unused{2000 - len(modelgen.codegemma_like_vocabulary().pieces) - 1}>"
    )


def test_vocabulary_without_fim_lacks_them() -> None:
    assert "<|fim_prefix|>" not in modelgen.codegemma_like_vocabulary(fim=False).pieces


def test_every_longer_piece_is_reachable_through_its_prefixes() -> None:
    pieces = set(modelgen.codegemma_like_vocabulary().pieces)
    assert all(piece[:-1] in pieces for piece in pieces if len(piece) > 1 and "<" not in piece)


def test_writing_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = modelgen.write_tiny_codegemma(tmp_path / "a.gguf", seed=3).read_bytes()
    again = modelgen.write_tiny_codegemma(tmp_path / "b.gguf", seed=3).read_bytes()
    other = modelgen.write_tiny_codegemma(tmp_path / "c.gguf", seed=4).read_bytes()
    assert first == again
    assert first != other


def test_tiny_model_is_small(tiny_model_path: Path) -> None:
    assert tiny_model_path.stat().st_size < 2_000_000


@pytest.mark.model
def test_tiny_model_loads_as_gemma(llm: Any) -> None:
    assert llm.metadata["general.architecture"] == "gemma"
    assert llm.n_ctx() == 512


@pytest.mark.model
def test_fim_marker_is_one_control_token_only_when_special(llm: Any) -> None:
    special = llm.tokenize(b"<|fim_prefix|>", add_bos=False, special=True)
    plain = llm.tokenize(b"<|fim_prefix|>", add_bos=False, special=False)
    assert len(special) == 1
    assert len(plain) > 1
    assert special[0] not in plain


@pytest.mark.model
def test_code_tokenizes_into_readable_pieces(llm: Any) -> None:
    ids = llm.tokenize(b"def f(self):\n    return x\n", add_bos=False, special=False)
    pieces = [llm.detokenize([token]).decode() for token in ids]
    assert "def" in pieces
    assert " return" in pieces
    assert "".join(pieces) == "def f(self):\n    return x\n"


@pytest.mark.model
def test_greedy_generation_yields_ordinary_text(llm: Any) -> None:
    silent = set(modelgen.codegemma_like_vocabulary().silent_ids())
    prompts = [b"", b"def main(args):\n    ", b"import os\n"]
    for prompt in prompts:
        llm.reset()
        out: list[int] = []
        for token in llm.generate(llm.tokenize(prompt, add_bos=True), temp=0.0, top_k=1):
            out.append(token)
            if len(out) == 32:
                break
        assert not silent & set(out)
        assert llm.detokenize(out).decode("utf-8").strip()


@pytest.mark.model
def test_load_failures_are_real_load_failures(tmp_path: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    for path in (
        modelgen.write_not_gguf(tmp_path / "not.gguf"),
        modelgen.write_wrong_arch(tmp_path / "arch.gguf"),
    ):
        with pytest.raises(ValueError, match="Failed to load model"):
            llama_cpp.Llama(model_path=str(path), verbose=False)
