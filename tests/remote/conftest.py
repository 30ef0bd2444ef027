"""Real engines on loopback: llama-cpp-python's OpenAI-compatible server with the tiny model."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from codegemma_lsp.engine.http_stream import RemoteError, parse_url, request_json

START_TIMEOUT_S = 120.0


@dataclass
class EngineProcess:
    """``python -m llama_cpp.server`` on 127.0.0.1, its output kept in a file."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = 30.0) -> bool:
        """Whether ``text`` shows up in the server's output within ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if text in self.log():
                return True
            time.sleep(0.05)
        return text in self.log()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_llama_cpp_server(
    model: Path, log_path: Path, *, n_ctx: int = 2048, extra: tuple[str, ...] = ()
) -> EngineProcess:
    port = free_port()
    out = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            *extra,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    engine = EngineProcess(f"http://127.0.0.1:{port}", process, log_path)
    end = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited:\n{engine.log()[-3000:]}")
        try:
            request_json(parse_url(engine.url), "GET", "/v1/models", deadline=time.monotonic() + 5)
            return engine
        except RemoteError as exc:
            if exc.status == 401:  # up, and asking for its API key
                return engine
        if time.monotonic() > end:
            engine.stop()
            raise RuntimeError(f"llama_cpp.server did not start:\n{engine.log()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def llama_cpp_server(
    tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineProcess]:
    """One server for a module's tests (it runs one request at a time)."""
    engine = start_llama_cpp_server(
        tiny_model_path, tmp_path_factory.mktemp("engine") / "llama_cpp_server.log"
    )
    yield engine
    engine.stop()


@pytest.fixture
def own_llama_cpp_server(tiny_model_path: Path, tmp_path: Path) -> Iterator[EngineProcess]:
    """A server for one test alone, which may kill it."""
    engine = start_llama_cpp_server(tiny_model_path, tmp_path / "llama_cpp_server.log")
    yield engine
    engine.stop()
