"""The registry, model resolution, and downloads from a stand-in hub on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from codegemma_lsp.config import ModelSettings
from codegemma_lsp.engine import download as download_module
from codegemma_lsp.engine.download import (
    ChecksumMismatch,
    GatedModel,
    HubUnreachable,
    cached_file,
    download,
)
from codegemma_lsp.engine.registry import (
    DEFAULT_MODEL,
    DEFAULT_QUANT,
    REGISTRY_ENV,
    ModelFile,
    UnknownModel,
    entries,
    lookup,
)
from codegemma_lsp.engine.resolve import ModelMissing, cached_path, needs_download
from tests.hub import COMMIT, TINY_FILE, TINY_REPO, StandInHub, serve_hub, tiny_registry


@pytest.fixture(scope="module")
def tiny_bytes(tiny_model_path: Path) -> bytes:
    return tiny_model_path.read_bytes()


@pytest.fixture
def hub(tiny_bytes: bytes) -> Iterator[StandInHub]:
    with serve_hub() as running:
        running.add(TINY_REPO, TINY_FILE, tiny_bytes)
        yield running


def _entry(data: bytes, **overrides: object) -> ModelFile:
    values: dict[str, object] = {
        "model": "tiny",
        "quant": "F32",
        "repo": TINY_REPO,
        "filename": TINY_FILE,
        "revision": COMMIT,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    values.update(overrides)
    return ModelFile(**values)  # type: ignore[arg-type]


# ----- the registry ------------------------------------------------------------------


def test_default_model_is_in_the_registry_with_a_checksum() -> None:
    entry = lookup(DEFAULT_MODEL, DEFAULT_QUANT, environ={})
    assert entry.filename == "codegemma-2b-Q4_K_M.gguf"
    assert entry.sha256 is not None and len(entry.sha256) == 64
    assert entry.command == "codegemma-lsp download codegemma-2b"


@pytest.mark.parametrize(
    ("model", "quant", "words"),
    [
        pytest.param("codegemma-9b", "Q4_K_M", ["unknown model", "codegemma-2b"], id="model"),
        pytest.param("codegemma-2b", "Q5_X", ["no Q5_X file", "Q8_0"], id="quant"),
    ],
)
def test_unknown_choice_lists_the_known_ones(model: str, quant: str, words: list[str]) -> None:
    with pytest.raises(UnknownModel) as caught:
        lookup(model, quant, environ={})
    for word in words:
        assert word in str(caught.value)


def test_quant_is_case_insensitive() -> None:
    assert lookup("codegemma-7b", "q8_0", environ={}).quant == "Q8_0"


def test_registry_file_adds_entries_first(tmp_path: Path) -> None:
    registry = tiny_registry(tmp_path / "models.json", sha256="ab" * 32, size=10)
    found = entries({REGISTRY_ENV: str(registry)})
    assert found[0].model == "tiny" and found[0].revision == COMMIT
    assert lookup("tiny", "f32", environ={REGISTRY_ENV: str(registry)}).size == 10


def test_bad_registry_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "models.json"
    bad.write_text(json.dumps([{"model": "x"}]), encoding="utf-8")
    with pytest.raises(UnknownModel, match="needs model, quant, repo and filename"):
        entries({REGISTRY_ENV: str(bad)})


# ----- downloading -------------------------------------------------------------------


def test_download_fetches_verifies_and_caches(
    hub: StandInHub, tiny_bytes: bytes, tmp_path: Path
) -> None:
    entry = _entry(tiny_bytes)
    seen: list[tuple[int, int | None]] = []
    path = download(
        entry, cache_dir=tmp_path, endpoint=hub.url, progress=lambda d, t: seen.append((d, t))
    )
    assert path.read_bytes() == tiny_bytes
    assert cached_file(entry, cache_dir=tmp_path) == path
    assert "models--stand-in--tiny-codegemma-GGUF" in str(path)
    assert seen[-1] == (len(tiny_bytes), len(tiny_bytes))
    # A second call finds the file in the cache and asks the hub nothing.
    asked = len(hub.requests)
    assert download(entry, cache_dir=tmp_path, endpoint=hub.url) == path
    assert len(hub.requests) == asked


def test_download_resumes_after_a_connection_cut(
    hub: StandInHub, tiny_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # huggingface_hub counts what it has written in 10 MB chunks; smaller ones let the
    # tiny file span several, as a real model does.
    monkeypatch.setattr("huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE", 16 << 10)
    hub.cut_after = len(tiny_bytes) // 3
    path = download(_entry(tiny_bytes), cache_dir=tmp_path, endpoint=hub.url)
    assert path.read_bytes() == tiny_bytes
    ranges = [rng for method, _, rng in hub.requests if method == "GET"]
    assert len(ranges) == 2 and ranges[0] is None
    # The second GET asks only for the rest, from the last whole chunk written.
    assert ranges[1] is not None and ranges[1].startswith("bytes=")
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= hub.cut_after


def test_a_corrupted_copy_is_refused_and_deleted(tiny_bytes: bytes, tmp_path: Path) -> None:
    corrupted = bytearray(tiny_bytes)
    corrupted[len(corrupted) // 2] ^= 0xFF
    with serve_hub() as hub:
        # The hub serves other bytes than the registry's checksum names.
        hub.add(TINY_REPO, TINY_FILE, bytes(corrupted))
        with pytest.raises(ChecksumMismatch) as caught:
            download(_entry(tiny_bytes), cache_dir=tmp_path, endpoint=hub.url)
    assert "failed its checksum" in str(caught.value)
    assert "deleted it from the cache" in str(caught.value)
    assert cached_file(_entry(tiny_bytes), cache_dir=tmp_path) is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > 1000]


def test_without_a_registry_checksum_the_hubs_own_is_checked(
    tiny_bytes: bytes, tmp_path: Path
) -> None:
    corrupted = tiny_bytes[:-1] + bytes([tiny_bytes[-1] ^ 1])
    with serve_hub() as hub:
        hub.add(
            TINY_REPO, TINY_FILE, corrupted, published_sha256=hashlib.sha256(tiny_bytes).hexdigest()
        )
        with pytest.raises(ChecksumMismatch):
            download(
                _entry(tiny_bytes, sha256=None, size=None), cache_dir=tmp_path, endpoint=hub.url
            )


def test_a_wrong_size_is_refused_before_hashing(
    hub: StandInHub, tiny_bytes: bytes, tmp_path: Path
) -> None:
    with pytest.raises(ChecksumMismatch, match="the registry says 12"):
        download(_entry(tiny_bytes, size=12), cache_dir=tmp_path, endpoint=hub.url)


@pytest.mark.parametrize(
    ("token", "words"),
    [
        pytest.param(
            False, ["is gated", "accept the licence", "hf auth login", "HF_TOKEN"], id="no-token"
        ),
        pytest.param(True, ["your token has no access", "accept the licence"], id="token"),
    ],
)
def test_gated_repository_says_what_to_do(
    hub: StandInHub,
    tiny_bytes: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    token: bool,
    words: list[str],
) -> None:
    monkeypatch.setattr(download_module, "_token_present", lambda: token)
    hub.gated.add(TINY_REPO)
    with pytest.raises(GatedModel) as caught:
        download(_entry(tiny_bytes), cache_dir=tmp_path, endpoint=hub.url)
    message = str(caught.value)
    assert f"https://huggingface.co/{TINY_REPO}" in message
    for word in words:
        assert word in message


def test_no_network_is_one_line_naming_the_file(tiny_bytes: bytes, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(HubUnreachable) as caught:
        download(_entry(tiny_bytes), cache_dir=tmp_path, endpoint=f"http://127.0.0.1:{port}")
    message = str(caught.value)
    assert "\n" not in message
    assert message == f"no network: cannot reach the hub to fetch {TINY_FILE} from {TINY_REPO}"


# ----- resolution --------------------------------------------------------------------


def test_a_configured_path_wins(tmp_path: Path) -> None:
    settings = ModelSettings(path=str(tmp_path / "mine.gguf"), id="nonsense")
    assert cached_path(settings) == tmp_path / "mine.gguf"
    assert needs_download(settings) is None


def test_missing_model_names_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "codegemma_lsp.engine.download.cached_file", lambda entry, cache_dir=None: None
    )
    settings = ModelSettings(id="codegemma-2b", quant="Q8_0", download=False)
    with pytest.raises(ModelMissing) as caught:
        cached_path(settings)
    assert "run `codegemma-lsp download codegemma-2b --quant Q8_0`" in str(caught.value)
    assert needs_download(settings) is None, "download off: nothing is fetched"
    assert needs_download(ModelSettings(quant="Q8_0")) == lookup("codegemma-2b", "Q8_0", environ={})
