"""Backends that need no model: a fake for fast tests and a scripted one for black-box checks.

Both run the same request path as the llama.cpp backend (cut points, scope,
truncation); only the text they "generate" is canned.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from codegemma_lsp.engine.base import CancelToken, FimRequest, Generation, ModelLoadError


class FakeBackend:
    """A named fake: returns ``text`` (default: a fixed line) as the raw model output.

    ``delay_s`` is spread over the "tokens" so cancellation can be exercised:
    the cancel flag is checked once per simulated token, as in the real backend.
    """

    name = "fake"

    def __init__(
        self, text: str = "pass  # codegemma-fake", *, delay_s: float = 0.0, tokens: int = 8
    ) -> None:
        self.text = text
        self.delay_s = delay_s
        self.tokens = max(1, tokens)
        # Recent requests, for tests to inspect; bounded, since a fake may serve for hours.
        self.requests: deque[FimRequest] = deque(maxlen=1000)
        self._ready = False

    def load(self) -> None:
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def model_name(self) -> str:
        return self.name

    def complete(self, request: FimRequest, cancel: CancelToken) -> Generation:
        self.requests.append(request)
        started = time.perf_counter()
        for done in range(self.tokens):
            if cancel.cancelled:
                return Generation(text="", stop_reason="cancelled", generated_tokens=done)
            if self.delay_s:
                time.sleep(self.delay_s / self.tokens)
        if cancel.cancelled:
            return Generation(text="", stop_reason="cancelled")
        return Generation(
            text=self.text,
            stop_reason="fim",
            generated_tokens=self.tokens,
            generate_ms=(time.perf_counter() - started) * 1000,
        )

    def close(self) -> None:
        self._ready = False


class ScriptedBackend(FakeBackend):
    """Returns the text of a file as the raw model output for every request.

    The file is read at load time and again whenever it changes, so a tester can
    edit it while the server runs.
    """

    name = "scripted"

    def __init__(self, path: Path) -> None:
        super().__init__("", tokens=1)
        self.path = path
        self._mtime_ns = -1

    def load(self) -> None:
        self._reload()
        super().load()

    @property
    def model_name(self) -> str:
        return f"scripted:{self.path.name}"

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
            if stat.st_mtime_ns != self._mtime_ns:
                self.text = self.path.read_text(encoding="utf-8")
                self._mtime_ns = stat.st_mtime_ns
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"cannot read scripted output {self.path}: {exc}") from exc

    def complete(self, request: FimRequest, cancel: CancelToken) -> Generation:
        self._reload()
        return super().complete(request, cancel)
