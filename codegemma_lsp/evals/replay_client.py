"""A plain JSON-RPC client over a server subprocess's stdio, as an editor would be.

It shares no code with pygls: every byte the server writes to stdout must be
a framed message. Reading happens on a thread that timestamps each message as
it arrives, so latencies do not include the time the replay loop takes to
look at the queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


class ProtocolError(Exception):
    """The server broke the framing, closed its stdout, or did not answer in time."""


@dataclass(frozen=True)
class Incoming:
    message: dict[str, Any]
    at: float
    """``time.perf_counter()`` when the message was read."""


class LspProcess:
    def __init__(
        self, command: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
        )
        self.incoming: queue.Queue[Incoming | ProtocolError] = queue.Queue()
        self.stderr_lines: list[str] = []
        self._next_id = 0
        self._write_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        try:
            while True:
                message = _read_message(stream)
                if message is None:
                    self.incoming.put(ProtocolError("the server closed its stdout"))
                    return
                self.incoming.put(Incoming(message, time.perf_counter()))
        except (ProtocolError, UnicodeDecodeError, ValueError) as exc:
            self.incoming.put(ProtocolError(f"bad message from the server: {exc}"))

    def send(self, payload: dict[str, Any]) -> float:
        """Write one message; returns ``time.perf_counter()`` just after it was flushed."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()
        return time.perf_counter()

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any = None) -> tuple[int, float]:
        """Send a request; returns its id and when it was sent."""
        self._next_id += 1
        sent = self.send(
            {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        )
        return self._next_id, sent

    def receive(self, timeout: float) -> Incoming | None:
        """The next message, or None after ``timeout`` seconds; answers server requests itself."""
        try:
            item = self.incoming.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if isinstance(item, ProtocolError):
            raise ProtocolError(f"{item}; the server's last log lines:\n{self.stderr_tail()}")
        message = item.message
        if "method" in message and "id" in message:
            # workspace/configuration, window/workDoneProgress/create: nothing to offer.
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
        return item

    def call(self, method: str, params: Any = None, timeout: float = 30.0) -> Any:
        """Send a request and wait for its result (other messages read meanwhile are dropped)."""
        msg_id, _ = self.request(method, params)
        deadline = time.perf_counter() + timeout
        while True:
            item = self.receive(deadline - time.perf_counter())
            if item is None:
                raise ProtocolError(f"no answer to {method} within {timeout:.0f} s")
            message = item.message
            if message.get("id") == msg_id and "method" not in message:
                if "error" in message:
                    raise ProtocolError(f"{method} failed: {message['error']}")
                return message.get("result")

    def peak_rss_mb(self) -> float | None:
        """The server process's peak resident memory (``VmHWM``), where /proc has it."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(self.stderr_lines[-lines:])

    def close(self, timeout: float = 15.0) -> int:
        """Ask the server to shut down and exit; kill it if it does not."""
        with contextlib.suppress(ProtocolError, OSError, ValueError):
            self.call("shutdown", None, timeout=timeout)
            self.notify("exit")
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def _read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        if line == b"\r\n":
            break
        name, sep, value = line.decode("ascii").partition(":")
        if not sep or not line.endswith(b"\r\n"):
            raise ProtocolError(f"unframed bytes on stdout: {line[:80]!r}")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise ProtocolError("a header without Content-Length")
    body = stream.read(length)
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ProtocolError(f"a message that is not an object: {body[:80]!r}")
    return message


def server_command(
    *,
    model: Path | None,
    backend: str | None = None,
    threads: int | None = None,
    oracle: bool = False,
) -> list[str]:
    """``python -m codegemma_lsp serve`` with the model flags the benchmark uses
    (``--bench-oracle``: accept the replay's ``codegemma/benchOracle`` notifications)."""
    command = [sys.executable, "-m", "codegemma_lsp", "serve"]
    if oracle:
        command.append("--bench-oracle")
    if model is not None:
        command += ["--model", str(model)]
    if backend is not None:
        command += ["--backend", backend]
    if threads:
        command += ["--threads", str(threads)]
    return command


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
