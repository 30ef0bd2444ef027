"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER = [sys.executable, "-m", "codegemma_lsp", "serve"]


@pytest.fixture(scope="session", autouse=True)
def _usage_files_stay_in_the_tests(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Servers started by tests (they inherit this environment) write their daily usage
    numbers under a temporary directory, never into the user's state directory."""
    os.environ.setdefault(
        "CODEGEMMA_LSP_STATE_DIR", str(tmp_path_factory.mktemp("codegemma-state"))
    )


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight CodeGemma-format GGUF, built once per test session."""
    from codegemma_lsp.modelgen import write_tiny_codegemma

    return write_tiny_codegemma(tmp_path_factory.mktemp("models") / "tiny-codegemma.gguf")


@pytest.fixture(scope="session")
def not_gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codegemma_lsp.modelgen import write_not_gguf

    return write_not_gguf(tmp_path_factory.mktemp("models") / "not-a-model.gguf")


@pytest.fixture(scope="session")
def wrong_arch_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codegemma_lsp.modelgen import write_wrong_arch

    return write_wrong_arch(tmp_path_factory.mktemp("models") / "wrong-arch.gguf")
