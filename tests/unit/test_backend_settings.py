"""model.backend: what it accepts, from which source, and what the scripted backend reads."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from codegemma_lsp.config import (
    BackendChoice,
    ModelSettings,
    SettingsSources,
    parse_backend,
    parse_settings,
)
from codegemma_lsp.engine.base import ModelLoadError
from codegemma_lsp.engine.fake import MAX_SCRIPT_BYTES, FakeBackend, ScriptedBackend, read_script
from codegemma_lsp.engine.host import make_backend


@pytest.mark.parametrize(
    ("value", "choice"),
    [
        pytest.param("llama", BackendChoice("llama"), id="llama"),
        pytest.param("fake", BackendChoice("fake"), id="fake"),
        pytest.param("fake:0.5", BackendChoice("fake", delay_s=0.5), id="fake-delay"),
        pytest.param("fake:0", BackendChoice("fake"), id="fake-zero"),
        pytest.param(" Fake:2 ", BackendChoice("fake", delay_s=2.0), id="spaces-and-case"),
        pytest.param(
            "scripted:/tmp/out.txt", BackendChoice("scripted", path="/tmp/out.txt"), id="s"
        ),
        pytest.param("scripted:a:b", BackendChoice("scripted", path="a:b"), id="colon-in-path"),
    ],
)
def test_parse_backend_accepts(value: str, choice: BackendChoice) -> None:
    assert parse_backend(value) == choice


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("fake:nan", "from 0 to", id="nan"),
        pytest.param("fake:-1", "from 0 to", id="negative"),
        pytest.param("fake:inf", "from 0 to", id="inf"),
        pytest.param("fake:1e9", "from 0 to", id="huge"),
        pytest.param("fake:soon", "a number", id="not-a-number"),
        pytest.param("fake:", "a number", id="empty-delay"),
        pytest.param("scripted:", "path of a file", id="empty-path"),
        pytest.param("scripted:  ", "path of a file", id="blank-path"),
        pytest.param("llama:x", "must be llama", id="llama-with-argument"),
        pytest.param("gpt", "must be llama", id="unknown"),
        pytest.param("", "must be llama", id="empty"),
    ],
)
def test_parse_backend_refuses(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_backend(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("fake:nan", id="nan"),
        pytest.param("fake:-1", id="negative"),
        pytest.param("fake:inf", id="inf"),
        pytest.param("scripted:", id="empty-path"),
        pytest.param(7, id="number"),
    ],
)
def test_a_bad_backend_falls_back_at_settings_time(value: object) -> None:
    settings, problems = parse_settings([{"model": {"backend": value}}])
    assert settings.model.backend == "llama"
    assert len(problems) == 1
    assert problems[0].startswith(f"setting model.backend = {value!r} must be")


@pytest.mark.parametrize(
    ("source", "label"),
    [
        pytest.param("initialization", "initializationOptions", id="initialization-options"),
        pytest.param("workspace", "workspace settings", id="workspace-settings"),
    ],
)
@pytest.mark.parametrize("backend", ["fake", "fake:1", "scripted:/etc/passwd", "SCRIPTED:/x"])
def test_clients_cannot_choose_a_test_backend(source: str, label: str, backend: str) -> None:
    sources = SettingsSources()
    setattr(sources, source, {"model": {"backend": backend, "nCtx": 1024}})
    settings, problems = sources.resolve()
    assert settings.model.backend == "llama"
    assert settings.model.n_ctx == 1024, "the rest of the section still applies"
    assert problems == [
        f"setting model.backend = {backend!r} from the {label} is ignored: test backends "
        "(fake, scripted:PATH) are accepted only on the command line (--backend)"
    ]


def test_the_command_line_and_environment_choose_test_backends() -> None:
    settings, problems = SettingsSources(command_line={"model": {"backend": "fake"}}).resolve()
    assert (settings.model.backend, problems) == ("fake", [])
    settings, problems = SettingsSources(environment={"model": {"backend": "fake:1"}}).resolve()
    assert (settings.model.backend, problems) == ("fake:1", [])


def test_a_client_cannot_override_the_command_lines_test_backend() -> None:
    sources = SettingsSources(
        command_line={"model": {"backend": "fake"}},
        workspace={"model": {"backend": "scripted:/etc/passwd"}},
    )
    settings, problems = sources.resolve()
    assert settings.model.backend == "fake"
    assert len(problems) == 1


def test_a_client_may_still_choose_llama() -> None:
    settings, problems = SettingsSources(workspace={"model": {"backend": "llama"}}).resolve()
    assert (settings.model.backend, problems) == ("llama", [])


def test_make_backend_builds_the_choice(tmp_path: Path) -> None:
    fake = make_backend(ModelSettings(backend="fake:0.25"))
    assert isinstance(fake, FakeBackend) and fake.delay_s == 0.25
    scripted = make_backend(ModelSettings(backend=f"scripted:{tmp_path / 'out.txt'}"))
    assert isinstance(scripted, ScriptedBackend) and scripted.path == tmp_path / "out.txt"
    with pytest.raises(ModelLoadError, match="fake:SECONDS"):
        make_backend(ModelSettings(backend="fake:nan"))


def _stdin_is_a_file() -> bool:
    try:
        return stat.S_ISREG(os.fstat(0).st_mode)
    except OSError:
        return False


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _socket_file(tmp_path: Path) -> Path:
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            lambda tmp: Path("/dev/stdin"),
            "not a regular file",
            id="dev-stdin",
            marks=pytest.mark.skipif(_stdin_is_a_file(), reason="stdin is a regular file here"),
        ),
        pytest.param(lambda tmp: Path("/dev/zero"), "not a regular file", id="device"),
        pytest.param(_fifo, "not a regular file", id="fifo"),
        pytest.param(_socket_file, "not a regular file", id="socket"),
        pytest.param(lambda tmp: tmp, "not a regular file", id="directory"),
        pytest.param(lambda tmp: tmp / "missing.txt", "No such file", id="missing"),
        pytest.param(
            lambda tmp: _write(tmp / "big.txt", b"x" * (MAX_SCRIPT_BYTES + 1)),
            "larger than 1 MiB",
            id="too-big",
        ),
        pytest.param(
            lambda tmp: _write(tmp / "latin1.txt", b"caf\xe9"), "not UTF-8", id="not-utf8"
        ),
    ],
)
def test_the_scripted_backend_reads_only_a_small_regular_file(
    tmp_path: Path, make: object, reason: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    backend = ScriptedBackend(path)
    with pytest.raises(ModelLoadError, match=reason) as info:
        backend.load()
    assert str(path) in str(info.value)
    assert not backend.ready


def test_the_scripted_backend_reads_a_regular_file_and_its_links(tmp_path: Path) -> None:
    target = _write(tmp_path / "out.txt", b"print('hi')")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert read_script(link) == "print('hi')"
    exact = _write(tmp_path / "exact.txt", b"y" * MAX_SCRIPT_BYTES)
    assert len(read_script(exact)) == MAX_SCRIPT_BYTES


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
