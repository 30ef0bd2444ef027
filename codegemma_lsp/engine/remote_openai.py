"""An OpenAI-compatible server as the engine (``model.backend = "openai"``): vLLM, TGI,
llama-cpp-python's ``llama_cpp.server``.

Each generation is one streamed ``POST /v1/completions``. No server of this kind
takes a FIM ``suffix`` the way CodeGemma was trained (vLLM has none at all), so the
daemon sends its own raw FIM prompt:

- as token ids (``model.promptFormat = "ids"``), which vLLM accepts: the server
  evaluates exactly the daemon's prompt, and ``stop_token_ids`` (a vLLM extension)
  ends the middle at a FIM marker;
- or as text with the special tokens written out (``"text"``), for servers that take
  only strings, such as ``llama_cpp.server``: it tokenizes a string prompt with
  special tokens parsed, so the markers become their control ids, and adds BOS
  itself (so BOS is left out of the text). It renders a control token it
  generates as an empty piece, which the daemon takes as a stop;
- ``"auto"`` (the default) sends ids and falls back to text for good when the server
  refuses them.

``max_tokens``, greedy sampling and the bearer token (``model.apiKey``) go with each
request. These servers report no timings: the wait for the first token counts as
prompt time, network included; the time to connect and send counts as network.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from codegemma_lsp.engine.base import (
    BackendNotReady,
    CancelToken,
    GenerationPolicy,
    StopReason,
    Tokenizer,
)
from codegemma_lsp.engine.http_stream import Clock, RemoteError
from codegemma_lsp.engine.remote import (
    PROBE_TIMEOUT_S,
    Piece,
    RemoteBackend,
    StreamResult,
    TokenFollower,
    budget_from_first_token,
    follow,
)
from codegemma_lsp.engine.remote_tokenizer import probe_openai_tokenizer

log = logging.getLogger(__name__)

PROMPT_FORMATS = ("auto", "ids", "text")


def completion_payload(
    prompt: list[int] | str,
    policy: GenerationPolicy,
    *,
    max_tokens: int,
    model: str | None,
) -> dict[str, Any]:
    """The ``/v1/completions`` request for one generation (pure, for tests)."""
    payload: dict[str, Any] = {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stream": True,
        "temperature": 0.0,
        "top_p": 1.0,
        "n": 1,
        "echo": False,
    }
    if model:
        payload["model"] = model
    if not isinstance(prompt, str):
        payload["stop_token_ids"] = sorted(policy.end_ids | policy.stop_ids)
    return payload


def refuses_ids(error: RemoteError) -> bool:
    """Whether an error answer says the server takes no token-id prompt (llama_cpp.server:
    a 500 whose validation error says the prompt should be a string)."""
    body = error.body.lower()
    return error.status in (400, 422, 500) and "prompt" in body and "string" in body


def parse_chunk(data: str) -> tuple[str, str | None] | None:
    """One streamed chunk as (text, finish_reason); None for the final ``[DONE]``."""
    if data.strip() == "[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except ValueError:
        raise RemoteError("the server sent an event that is not JSON", kind="protocol") from None
    if not isinstance(chunk, dict):
        raise RemoteError("the server sent an event that is not an object", kind="protocol")
    if chunk.get("error") is not None:
        error = chunk["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise RemoteError(f"the server failed mid-answer: {message}", kind="status")
    choices = chunk.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    text = choice.get("text")
    finish = choice.get("finish_reason")
    return (text if isinstance(text, str) else "", finish if isinstance(finish, str) else None)


class _ProbeFirst:
    """Stands for the server's tokenizer until the server has been asked which it has."""

    def tokenize(self, text: str) -> list[int]:
        raise BackendNotReady("the server's tokenizer is not known yet")

    def detokenize(self, ids: Sequence[int]) -> str:
        raise BackendNotReady("the server's tokenizer is not known yet")

    def special_id(self, text: str) -> int | None:
        raise BackendNotReady("the server's tokenizer is not known yet")


class OpenAiBackend(RemoteBackend):
    """A :class:`~codegemma_lsp.engine.base.Backend` on ``/v1/completions``."""

    name = "openai"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.options.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt format must be one of {', '.join(PROMPT_FORMATS)}")
        self.prompt_format = self.options.prompt_format
        """``ids`` or ``text`` once known; ``auto`` until the server has answered."""
        self.model_id: str | None = None
        self.owned_by: str | None = None

    def _server_tokenizer(self) -> Tokenizer:
        return _ProbeFirst()

    def _probe(self, cancel: CancelToken | None) -> None:
        answer = self.call_json("GET", "/v1/models", timeout_s=PROBE_TIMEOUT_S, cancel=cancel)
        models = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(models, list) or not models:
            raise RemoteError(f"{self.options.url}/v1/models lists no model", kind="protocol")
        entries = [m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]
        chosen = next((m for m in entries if "codegemma" in m["id"].lower()), None)
        chosen = chosen or (entries[0] if entries else {})
        self.model_id = chosen.get("id")
        owner = chosen.get("owned_by")
        self.owned_by = owner if isinstance(owner, str) else None
        length = chosen.get("max_model_len")
        if isinstance(length, int) and 0 < length < self._n_ctx:
            self._n_ctx = length
        if isinstance(self._tokenizer, _ProbeFirst):
            self._tokenizer = probe_openai_tokenizer(self.post_json, self.model_id)
        log.info("OpenAI-compatible server at %s serves %s", self.options.url, self.model_id)

    @property
    def empty_is_control(self) -> bool:
        """llama-cpp-python's server streams a control token as empty text (its owner is "me")."""
        return self.prompt_format == "text" and self.owned_by in ("me", "llama-cpp-python")

    def _prompt(self, prompt: list[int]) -> list[int] | str:
        if self.prompt_format != "text":
            return prompt
        tokenizer = self.tokenizer
        bos = tokenizer.special_id("<bos>")
        ids = prompt[1:] if bos is not None and prompt[:1] == [bos] else prompt
        return tokenizer.detokenize(ids)

    def _stream(
        self, prompt: list[int], policy: GenerationPolicy, cancel: CancelToken, deadline: float
    ) -> StreamResult:
        try:
            return self._stream_once(prompt, policy, cancel, deadline)
        except RemoteError as exc:
            if self.prompt_format != "auto" or not refuses_ids(exc):
                raise
            log.info("%s takes no token-id prompts: sending text from now on", self.options.url)
            self.prompt_format = "text"
            return self._stream_once(prompt, policy, cancel, deadline)

    def _stream_once(
        self, prompt: list[int], policy: GenerationPolicy, cancel: CancelToken, deadline: float
    ) -> StreamResult:
        max_new = max(0, min(policy.max_new_tokens, self._n_ctx - len(prompt)))
        # max_tokens 0 means "no limit" to some servers: a pre-warm asks for one token.
        payload = completion_payload(
            self._prompt(prompt), policy, max_tokens=max(1, max_new), model=self.model_id
        )
        result = StreamResult()
        with self._post_stream("/v1/completions", payload, result, cancel, deadline) as stream:
            if self.prompt_format == "auto":
                self.prompt_format = "ids"  # accepted: no need to ask again
            follower = TokenFollower(policy, max(max_new, 1))
            finish: list[str | None] = [None]
            empty_is_control = self.empty_is_control

            def pieces() -> Iterator[Piece]:
                for data in stream.events():
                    parsed = parse_chunk(data)
                    if parsed is None:
                        return
                    text, finish[0] = parsed
                    budget_from_first_token(stream, policy, result, self.clock)
                    if finish[0] is not None:
                        if text:
                            yield Piece(text)
                        return
                    if text or empty_is_control:
                        yield Piece(text, control=not text)

            reason: StopReason | None = None
            try:
                if max_new > 0:
                    reason = follow(
                        pieces(), follower, on_piece=self.on_piece, clock=self.clock, result=result
                    )
                else:
                    _first_only(pieces(), result, self.clock)
            except RemoteError as exc:
                if exc.kind != "timeout" or result.first_token_at is None:
                    raise
                reason = "time"
        if max_new > 0:
            result.text, result.generated = follower.text, follower.generated
        if reason is None:
            reason = "stop" if finish[0] == "stop" else "length"
        result.stop_reason = reason
        return result


def _first_only(pieces: Iterator[Piece], result: StreamResult, clock: Clock) -> None:
    """A pre-warm: the prompt is evaluated once the first token comes; stop there."""
    for _ in pieces:
        result.first_token_at = clock()
        return
