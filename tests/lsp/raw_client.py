"""A deliberately plain JSON-RPC client over a subprocess's stdio.

It shares no code with pygls, so it sees exactly what an outside editor would:
every byte on the server's stdout must belong to a framed message.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import IO, Any


class FramingError(AssertionError):
    pass


def read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    """The next framed message on ``stream``; None at its end. Bytes that are not a
    frame raise :class:`FramingError`."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        if line == b"\r\n":
            break
        name, sep, value = line.decode("ascii").partition(":")
        if not sep or not line.endswith(b"\r\n"):
            raise FramingError(f"unframed bytes: {line!r}")
        if name.lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise FramingError("header without Content-Length")
    message: dict[str, Any] = json.loads(stream.read(length))
    return message


class RawClient:
    def __init__(
        self, command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
        )
        self.messages: queue.Queue[dict[str, Any] | FramingError | None] = queue.Queue()
        self.received: list[dict[str, Any]] = []
        self._next_id = 0
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        try:
            while (message := read_message(stream)) is not None:
                self.messages.put(message)
            self.messages.put(None)
        except (FramingError, UnicodeDecodeError, ValueError) as exc:
            self.messages.put(FramingError(str(exc)))

    def send(self, payload: dict[str, Any] | bytes) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send_raw(self, data: bytes) -> None:
        """Bytes exactly as given: no frame is added."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any = None) -> int:
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    def next_message(self, timeout: float = 10.0) -> dict[str, Any] | None:
        item = self.messages.get(timeout=timeout)
        if isinstance(item, FramingError):
            raise item
        if item is not None:
            self.received.append(item)
        return item

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        """The first message (read from now on) that satisfies ``predicate``."""
        while True:
            message = self.next_message(timeout)
            if message is None:
                raise AssertionError(f"server closed stdout; stderr:\n{self.stderr}")
            if predicate(message):
                return message

    def response(self, msg_id: int, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_for(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def wait_status(self, state: str) -> dict[str, Any]:
        """The ``codegemma/status`` notification with ``state``: one already received,
        or the next."""

        def match(message: dict[str, Any]) -> bool:
            params = message.get("params")
            return (
                message.get("method") == "codegemma/status"
                and isinstance(params, dict)
                and params["state"] == state
            )

        for seen in self.received:
            if match(seen):
                return seen
        return self.wait_for(match)

    def initialize(self, root: Path, **params: Any) -> dict[str, Any]:
        msg_id = self.request(
            "initialize",
            {"processId": None, "rootUri": root.as_uri(), "capabilities": {}, **params},
        )
        reply = self.response(msg_id)
        self.notify("initialized", {})
        result: dict[str, Any] = reply["result"]
        return result

    def close(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
