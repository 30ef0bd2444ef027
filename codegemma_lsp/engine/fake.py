"""Backends that need no model: a fake for fast tests and a scripted one for black-box checks.

Both run the same request path as the llama.cpp backend (cut points, scope,
context, prompt ids, truncation); only the text they "generate" is canned. Their
tokenizer is a fake too (:class:`FakeTokenizer`), so fast tests see the very ids
a model would be given, laid out the same way.
"""

from __future__ import annotations

import os
import stat
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codegemma_lsp.engine.base import (
    CancelToken,
    EngineError,
    Generation,
    GenerationPolicy,
    ModelLoadError,
    common_prefix,
)

FAKE_SPECIALS: Mapping[str, int] = {
    "<pad>": 0,
    "<eos>": 1,
    "<bos>": 2,
    "<|fim_prefix|>": 67,
    "<|fim_middle|>": 68,
    "<|fim_suffix|>": 69,
    "<|file_separator|>": 70,
    "<end_of_turn>": 107,
    "<start_of_turn>": 106,
}
"""The fake vocabulary's special tokens, at the ids CodeGemma's GGUF gives them."""

BYTE_BASE = 256
"""The fake's plain text is one id per UTF-8 byte: ``BYTE_BASE + byte``."""

FAKE_N_CTX = 32768
"""Room for any test prompt, though the fake's byte ids outnumber a real tokenizer's."""


class FakeTokenizer:
    """A named fake tokenizer: deterministic, lossless, one id per UTF-8 byte.

    Special tokens are found only by :meth:`special_id`; :meth:`tokenize` never
    produces them, whatever the text (like llama.cpp with ``special=False``).
    """

    def __init__(self, specials: Mapping[str, int] = FAKE_SPECIALS) -> None:
        self._ids = dict(specials)
        self._texts = {token: text for text, token in specials.items()}

    def tokenize(self, text: str) -> list[int]:
        return list(map(BYTE_BASE.__add__, text.encode("utf-8", "surrogatepass")))

    def detokenize(self, ids: Sequence[int]) -> str:
        pieces: list[str] = []
        run = bytearray()
        for token in ids:
            if BYTE_BASE <= token < BYTE_BASE + 256:
                run.append(token - BYTE_BASE)
                continue
            pieces.append(_decode(bytes(run)))
            run.clear()
            pieces.append(self._texts.get(token, f"<unknown:{token}>"))
        pieces.append(_decode(bytes(run)))
        return "".join(pieces)

    def special_id(self, text: str) -> int | None:
        return self._ids.get(text)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # a budget cut a character in two
        return data.decode("utf-8", "replace")


@dataclass(frozen=True)
class FakeCall:
    """One :meth:`FakeBackend.generate` call: the prompt ids it was given, and the policy."""

    prompt: tuple[int, ...]
    policy: GenerationPolicy


class FakeBackend:
    """A named fake: returns ``text`` (default: a fixed line) as the raw model output.

    It records the prompt ids and policy of each call (:attr:`calls`, bounded), and
    counts the prompt tokens a KV cache would evaluate again (those after the
    common prefix with the key's previous prompt), so records look like a model's.
    ``delay_s`` is spread over the "tokens" so cancellation can be exercised:
    the cancel flag is checked once per simulated token, as in the real backend, and
    the policy's ``on_text`` sees the text grow token by token. ``alternatives`` are the
    other candidates' texts (given when the policy asks for more than one), and
    ``logprobs`` a per-token log-probability for each text (none: no confidence).
    """

    name = "fake"

    def __init__(
        self,
        text: str = "pass  # codegemma-fake",
        *,
        delay_s: float = 0.0,
        tokens: int = 8,
        n_ctx: int = FAKE_N_CTX,
        alternatives: Sequence[str] = (),
        logprobs: Mapping[str, float] | None = None,
    ) -> None:
        self.text = text
        self.alternatives = tuple(alternatives)
        self.logprobs = dict(logprobs or {})
        self.delay_s = delay_s
        self.tokens = max(1, tokens)
        self._n_ctx = n_ctx
        self._tokenizer = FakeTokenizer()
        # Recent calls, for tests to inspect; bounded, since a fake may serve for hours.
        self.calls: deque[FakeCall] = deque(maxlen=1000)
        self._cached: OrderedDict[str | None, tuple[int, ...]] = OrderedDict()
        self._ready = False

    def load(self) -> None:
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def model_name(self) -> str:
        return self.name

    @property
    def tokenizer(self) -> FakeTokenizer:
        return self._tokenizer

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def prompts(self) -> list[str]:
        """The recorded prompts as text, special tokens written as their text."""
        return [self._tokenizer.detokenize(call.prompt) for call in self.calls]

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        ids = tuple(prompt)
        if len(ids) >= self._n_ctx:
            raise EngineError(
                f"a prompt of {len(ids)} tokens leaves no room in n_ctx {self._n_ctx}"
            )
        self.calls.append(FakeCall(ids, policy))
        if cancel.cancelled:
            return Generation(text="", stop_reason="cancelled", prompt_tokens=len(ids))
        previous = self._cached.get(policy.key, ()) if policy.reuse_cache else ()
        # As llama.cpp: the last prompt token is evaluated again for its logits.
        evaluated = len(ids) - min(common_prefix(previous, ids), max(len(ids) - 1, 0))
        self._remember(policy.key, ids)
        prompt_tokens, evaluated_tokens = len(ids), evaluated
        if policy.max_new_tokens <= 0:
            return Generation("", "length", prompt_tokens, evaluated_tokens)
        started = time.perf_counter()
        tokens = min(self.tokens, policy.max_new_tokens)
        text = self.text
        for done in range(tokens):
            if cancel.cancelled:
                return Generation("", "cancelled", prompt_tokens, evaluated_tokens, done)
            if self.delay_s:
                time.sleep(self.delay_s / tokens)
            if policy.on_text is not None:
                policy.on_text(text[: len(text) * (done + 1) // tokens])
        if cancel.cancelled:
            return Generation("", "cancelled", prompt_tokens, evaluated_tokens)
        others = self.alternatives[: max(0, policy.candidates - 1)]
        return Generation(
            text=text,
            stop_reason="stop",
            generated_tokens=tokens,
            generate_ms=(time.perf_counter() - started) * 1000,
            logprobs=self._logprobs(text, tokens),
            alternatives=tuple(
                Generation(
                    other, "stop", generated_tokens=tokens, logprobs=self._logprobs(other, tokens)
                )
                for other in others
            ),
            prompt_tokens=prompt_tokens,
            evaluated_tokens=evaluated_tokens,
        )

    def _logprobs(self, text: str, tokens: int) -> tuple[float, ...]:
        logprob = self.logprobs.get(text)
        return () if logprob is None else (logprob,) * tokens

    def _remember(self, key: str | None, ids: tuple[int, ...]) -> None:
        self._cached[key] = ids
        self._cached.move_to_end(key)
        while len(self._cached) > 64:
            self._cached.popitem(last=False)

    def close(self) -> None:
        self._ready = False


class ScriptedBackend(FakeBackend):
    """Returns the text of a file as the raw model output for every request.

    The file is read at load time and again for every request, so a tester can edit
    it while the server runs. Only a regular file of at most :data:`MAX_SCRIPT_BYTES`
    is read: never a pipe, a device or ``/dev/stdin`` (the server's own input).
    """

    name = "scripted"

    def __init__(self, path: Path) -> None:
        super().__init__("", tokens=1)
        self.path = path

    def load(self) -> None:
        self._reload()
        super().load()

    @property
    def model_name(self) -> str:
        return f"scripted:{self.path.name}"

    def _reload(self) -> None:
        self.text = read_script(self.path)

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        self._reload()
        return super().generate(prompt, policy, cancel)


MAX_SCRIPT_BYTES = 1 << 20


def read_script(path: Path) -> str:
    """The UTF-8 text of the regular file ``path``; ModelLoadError says why not."""
    problem = f"cannot read scripted output {path}"
    try:
        # Checked before opening, since opening a FIFO or a device can block or act,
        # and again on the open file, which is what is read.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ModelLoadError(f"{problem}: not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise ModelLoadError(f"{problem}: not a regular file")
            data = stream.read(MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise ModelLoadError(f"{problem}: {exc.strerror or exc}") from exc
    if len(data) > MAX_SCRIPT_BYTES:
        raise ModelLoadError(f"{problem}: larger than {MAX_SCRIPT_BYTES >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError(f"{problem}: not UTF-8 text") from None
