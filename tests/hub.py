"""A stand-in for the Hugging Face hub on 127.0.0.1, so download tests never touch the network.

It serves the two requests ``hf_hub_download`` makes, as huggingface_hub's
``file_download.py`` expects them:

- ``HEAD /{owner}/{name}/resolve/{revision}/{file}``: 200 with ``X-Repo-Commit``,
  ``ETag``/``X-Linked-Etag`` (for a Git LFS file, its SHA-256) and
  ``Content-Length``/``X-Linked-Size``; or, for a gated repository, 403 with
  ``X-Error-Code: GatedRepo``; or 404 with ``X-Error-Code: EntryNotFound``.
- ``GET`` of the same path, honouring ``Range: bytes=N-`` with a 206.

``cut_after`` makes the first full GET of a file send that many bytes of the body and
then drop the connection, as a network that fails mid-file does.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HostedFile:
    data: bytes
    sha256: str
    """What the hub publishes as the file's SHA-256 (its ETag); normally that of ``data``."""


@dataclass
class StandInHub:
    files: dict[tuple[str, str], HostedFile] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)
    cut_after: int | None = None
    chunk_delay_s: float = 0.0
    """Pause after each 64 KiB of a body: a slow network, so a download takes a while."""
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path, Range header) of every request, in order."""
    url: str = ""
    _cuts_done: int = 0

    def add(
        self, repo: str, filename: str, data: bytes, *, published_sha256: str | None = None
    ) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.files[(repo, filename)] = HostedFile(data, published_sha256 or sha)
        return sha


def _handler(hub: StandInHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _target(self) -> tuple[str, str] | None:
            parts = self.path.split("?", 1)[0].lstrip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return None
            return f"{parts[0]}/{parts[1]}", "/".join(parts[4:])

        def _refuse(self, repo: str | None) -> bool:
            if repo is not None and repo in hub.gated:
                self.send_response(403)
                self.send_header("X-Error-Code", "GatedRepo")
                self.send_header(
                    "X-Error-Message",
                    f"Access to model {repo} is restricted and you are not in the authorized list.",
                )
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True
            return False

        def _headers_for(self, hosted: HostedFile, status: int, start: int) -> None:
            size = len(hosted.data)
            self.send_response(status)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hosted.sha256}"')
            self.send_header("X-Linked-Etag", f'"{hosted.sha256}"')
            self.send_header("X-Linked-Size", str(size))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(size - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.end_headers()

        def _lookup(self, method: str) -> HostedFile | None:
            hub.requests.append((method, self.path, self.headers.get("Range")))
            target = self._target()
            if self._refuse(target[0] if target else None):
                return None
            hosted = hub.files.get(target) if target else None
            if hosted is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()
            return hosted

        def do_HEAD(self) -> None:
            hosted = self._lookup("HEAD")
            if hosted is not None:
                self._headers_for(hosted, 200, 0)

        def do_GET(self) -> None:
            hosted = self._lookup("GET")
            if hosted is None:
                return
            start = 0
            ranged = self.headers.get("Range")
            if ranged and ranged.startswith("bytes="):
                start = int(ranged.removeprefix("bytes=").split("-", 1)[0] or 0)
            self._headers_for(hosted, 206 if start else 200, start)
            body = hosted.data[start:]
            if not start and hub.cut_after is not None and hub._cuts_done == 0:
                hub._cuts_done += 1
                self.wfile.write(body[: hub.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            if not hub.chunk_delay_s:
                self.wfile.write(body)
                return
            for start in range(0, len(body), 64 << 10):
                self.wfile.write(body[start : start + (64 << 10)])
                self.wfile.flush()
                time.sleep(hub.chunk_delay_s)

    return Handler


@contextmanager
def serve_hub(hub: StandInHub | None = None) -> Iterator[StandInHub]:
    hub = hub or StandInHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


TINY_REPO = "stand-in/tiny-codegemma-GGUF"
TINY_FILE = "tiny-codegemma-F32.gguf"


def tiny_registry(
    path: Path,
    *,
    sha256: str | None,
    size: int | None,
    model: str = "tiny",
    quant: str = "F32",
) -> Path:
    """A CODEGEMMA_LSP_REGISTRY file with one entry, ``model`` at ``quant`` (by default
    ``tiny`` at ``F32``; ``codegemma-2b`` at ``Q4_K_M`` makes the tiny file the default
    model), served by the stand-in hub as TINY_FILE of TINY_REPO."""
    entry: dict[str, Any] = {
        "model": model,
        "quant": quant,
        "repo": TINY_REPO,
        "filename": TINY_FILE,
        "revision": COMMIT,
    }
    if sha256 is not None:
        entry["sha256"] = sha256
    if size is not None:
        entry["size"] = size
    path.write_text(json.dumps([entry]), encoding="utf-8")
    return path


def hub_env(hub: StandInHub, hf_home: Path, registry: Path) -> dict[str, str]:
    """Environment for a subprocess that downloads from ``hub`` into ``hf_home``."""
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING", "CODEGEMMA_LSP_"))
    }
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_XET="1",
        CODEGEMMA_LSP_REGISTRY=str(registry),
    )
    return env


def default_model_env(hub: StandInHub, root: Path, data: bytes) -> dict[str, str]:
    """Environment in which the default model (codegemma-2b Q4_K_M) is ``data``, served by
    ``hub`` and downloaded into ``root/hf`` on first use: what a new user gets, in small."""
    hub.add(TINY_REPO, TINY_FILE, data)
    registry = tiny_registry(
        root / "default-model.json",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        model="codegemma-2b",
        quant="Q4_K_M",
    )
    return {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(root / "hf"),
        "CODEGEMMA_LSP_REGISTRY": str(registry),
    }
