"""The first five minutes on the command line: download, doctor, complete's reasons,
unknown commands, and the bare command in a terminal."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub import TINY_FILE, TINY_REPO, StandInHub, hub_env, serve_hub, tiny_registry

CLI = [sys.executable, "-m", "codegemma_lsp"]


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEMMA_LSP_")}
    env.update(extra)
    return env


@pytest.fixture
def hub() -> Iterator[StandInHub]:
    with serve_hub() as running:
        yield running


def _registry(tmp_path: Path, data: bytes) -> Path:
    return tiny_registry(
        tmp_path / "models.json", sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )


# ----- download ----------------------------------------------------------------------


def test_download_fetches_verifies_and_prints_the_path(
    hub: StandInHub, tiny_model_path: Path, tmp_path: Path
) -> None:
    data = tiny_model_path.read_bytes()
    hub.add(TINY_REPO, TINY_FILE, data)
    env = hub_env(hub, tmp_path / "hf", _registry(tmp_path, data))
    done = _run("download", "tiny", "--quant", "F32", env=env)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.read_bytes() == data
    assert str(tmp_path / "hf" / "hub") in str(path)
    assert "verified" in done.stderr
    # Only the file was asked for: no telemetry, no agent list (huggingface_hub's default).
    assert hub.requests and all("/resolve/" in path for _, path, _ in hub.requests), hub.requests


def test_download_refuses_a_corrupted_copy(
    hub: StandInHub, tiny_model_path: Path, tmp_path: Path
) -> None:
    data = tiny_model_path.read_bytes()
    hub.add(TINY_REPO, TINY_FILE, data[:-8] + b"corrupt!")
    env = hub_env(hub, tmp_path / "hf", _registry(tmp_path, data))
    done = _run("download", "tiny", "--quant", "F32", env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "failed its checksum" in done.stderr and "deleted it from the cache" in done.stderr
    assert not list((tmp_path / "hf").rglob(TINY_FILE))


def test_download_of_a_gated_repository_says_how_to_log_in(
    hub: StandInHub, tiny_model_path: Path, tmp_path: Path
) -> None:
    data = tiny_model_path.read_bytes()
    hub.add(TINY_REPO, TINY_FILE, data)
    hub.gated.add(TINY_REPO)
    env = hub_env(hub, tmp_path / "hf", _registry(tmp_path, data))
    done = _run("download", "tiny", "--quant", "F32", env=env)
    assert done.returncode == 1
    assert "is gated" in done.stderr and "hf auth login" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 2, done.stderr  # the file, then why


def test_download_of_an_unknown_model_lists_the_known_ones() -> None:
    done = _run("download", "codegemma-70b", env=_clean_env())
    assert done.returncode == 2
    assert "codegemma-2b" in done.stderr and "codegemma-7b-it" in done.stderr


# ----- commands ----------------------------------------------------------------------


def test_an_unknown_command_lists_the_commands() -> None:
    done = _run("donwload", env=_clean_env())
    assert done.returncode == 2
    assert "unknown command 'donwload'" in done.stderr
    for command in ("serve", "complete", "download", "doctor"):
        assert command in done.stderr
    assert "unrecognized arguments" not in done.stderr


def test_flags_alone_still_mean_serve() -> None:
    done = _run("--backend", "fake", "--help", env=_clean_env())
    assert done.returncode == 0
    assert "--tcp" in done.stdout, "the serve command's help"


def test_bare_command_in_a_terminal_explains_itself_and_quits_on_ctrl_c(
    tmp_path: Path,
) -> None:
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "--backend", "fake"],
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        env=_clean_env(),
        cwd=tmp_path,
        close_fds=True,
    )
    os.close(child_fd)
    seen = b""

    def read_for(seconds: float, until: bytes | None = None) -> None:
        nonlocal seen
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (until is None or until not in seen):
            ready, _, _ = select.select([main_fd], [], [], 0.1)
            if ready:
                try:
                    seen += os.read(main_fd, 4096)
                except OSError:
                    return

    try:
        read_for(20, until=b"Ctrl-C quits")
        assert b"speaks the Language Server Protocol" in seen, seen
        assert b"codegemma-lsp doctor" in seen, seen
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        read_for(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main_fd)
    assert code == 130
    assert b"Fatal Python error" not in seen, seen
    assert b"Traceback" not in seen, seen


@pytest.mark.model
def test_complete_without_a_model_downloads_it_first(
    hub: StandInHub, tiny_model_path: Path, tmp_path: Path
) -> None:
    data = tiny_model_path.read_bytes()
    hub.add(TINY_REPO, TINY_FILE, data)
    env = hub_env(hub, tmp_path / "hf", _registry(tmp_path, data))
    env.update(CODEGEMMA_LSP_MODEL_ID="tiny", CODEGEMMA_LSP_MODEL_QUANT="F32")
    file = tmp_path / "demo.py"
    file.write_text("def add(a, b):\n    # add the two numbers and \n", encoding="utf-8")
    done = _run("complete", str(file), "--line", "1", "--character", "29", env=env)
    assert done.returncode == 0, done.stderr
    assert f"downloading {TINY_FILE}" in done.stderr
    assert list((tmp_path / "hf").rglob(TINY_FILE))
    # Stdout is the completion alone; with nothing to show, stderr says why.
    assert done.stdout.strip() or "no suggestion" in done.stderr


def test_bench_lookup_help_is_plain_text() -> None:
    done = _run("bench", "lookup", "--help", env=_clean_env())
    if done.returncode != 0:
        pytest.skip("the bench extra is not installed")
    assert "**" not in done.stdout and "``" not in done.stdout
    assert "What a step costs." in done.stdout


# ----- complete's reasons -------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "character", "output", "reason"),
    [
        pytest.param(
            "def add(a, b):\n    return a + b\n",
            1,
            4,
            "",
            "the model generated nothing",
            id="empty-output",
        ),
        pytest.param(
            "def add(a, b):\n    \n",
            1,
            4,
            ")))\n(((",
            "truncated to nothing",
            id="truncated",
        ),
    ],
)
def test_complete_says_why_it_printed_nothing(
    tmp_path: Path, source: str, line: int, character: int, output: str, reason: str
) -> None:
    file = tmp_path / "demo.py"
    file.write_text(source, encoding="utf-8")
    scripted = tmp_path / "out.txt"
    scripted.write_text(output, encoding="utf-8")
    done = _run(
        "complete",
        str(file),
        "--line",
        str(line),
        "--character",
        str(character),
        "--backend",
        f"scripted:{scripted}",
        env=_clean_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], done.stderr


# ----- doctor ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_fim_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codegemma_lsp.modelgen import write_tiny_gemma_without_fim

    return write_tiny_gemma_without_fim(tmp_path_factory.mktemp("models") / "gemma-no-fim.gguf")


@pytest.mark.model
def test_doctor_on_a_good_setup_measures_speed(tiny_model_path: Path, tmp_path: Path) -> None:
    done = _run("doctor", "--model", str(tiny_model_path), env=_clean_env(HOME=str(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "tokens/s" in out and "per single-line completion" in out, out
    assert "architecture gemma" in out and "<|fim_prefix|>" in out, out
    assert "llama-cpp-python 0.3" in out, out
    assert "verdict: this setup can work" in out, out


@pytest.mark.model
def test_doctor_json(tiny_model_path: Path, tmp_path: Path) -> None:
    done = _run(
        "doctor",
        "--json",
        "--no-speed",
        "--model",
        str(tiny_model_path),
        env=_clean_env(HOME=str(tmp_path)),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    sections = {f["section"] for f in report["findings"]}
    assert {"versions", "llama.cpp", "build", "model", "load", "memory", "grammars"} <= sections
    assert "speed" not in sections


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        pytest.param("not_gguf_path", ["load", "cannot load model file"], id="not-a-gguf"),
        pytest.param("wrong_arch_path", ["load", "unknown model architecture"], id="wrong-arch"),
        pytest.param("no_fim_path", ["load", "not a CodeGemma model", "fim_prefix"], id="no-fim"),
    ],
)
def test_doctor_on_a_broken_model_exits_non_zero_and_names_it(
    request: pytest.FixtureRequest, tmp_path: Path, fixture: str, words: list[str]
) -> None:
    model: Path = request.getfixturevalue(fixture)
    done = _run("doctor", "--model", str(model), env=_clean_env(HOME=str(tmp_path)))
    assert done.returncode == 1, done.stdout
    verdict = done.stdout.strip().splitlines()[-1]
    assert verdict.startswith("verdict: this setup cannot work"), done.stdout
    for word in words:
        assert word in verdict, done.stdout


def test_doctor_names_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    done = _run("doctor", "--no-speed", "--model", str(missing), env=_clean_env(HOME=str(tmp_path)))
    assert done.returncode == 1
    assert f"model file not found: {missing}" in done.stdout


def test_doctor_with_download_off_gives_the_command(tmp_path: Path, tiny_model_path: Path) -> None:
    registry = _registry(tmp_path, tiny_model_path.read_bytes())
    env = _clean_env(
        HOME=str(tmp_path),
        HF_HOME=str(tmp_path / "hf"),
        CODEGEMMA_LSP_REGISTRY=str(registry),
        CODEGEMMA_LSP_MODEL_DOWNLOAD="off",
    )
    done = _run("doctor", "--no-speed", "--model", "tiny", "--quant", "F32", env=env)
    assert done.returncode == 1, done.stdout
    assert "codegemma-lsp download tiny --quant F32" in done.stdout
