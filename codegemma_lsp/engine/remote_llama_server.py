"""llama.cpp's ``llama-server`` as the engine (``model.backend = "llama-server"``).

Each generation is one ``POST /completion`` with:

- ``prompt``: the daemon's own prompt as token ids (BOS included), so the server
  evaluates exactly what the in-process engine would;
- ``cache_prompt: true``: the slot keeps its KV cache, and only the tokens after the
  common prefix are evaluated, which the daemon's typing-stable prompts make few;
- ``id_slot``: a stable hash of this daemon's client id and the document, over the
  server's slots (``/props`` ``total_slots``, or ``model.slots``), so users and
  documents keep their caches instead of evicting each other from slot 0;
- ``n_predict``, ``t_max_predict_ms`` (the time budget; the daemon enforces it too),
  greedy sampling;
- ``stream: true`` with ``return_tokens``: one event per token with its id, so the
  daemon applies its stop ids and its syntactic stop, and stops by closing the
  connection, which cancels the task on the server.

The server's ``timings`` (``prompt_n``, ``prompt_ms``, ``predicted_ms``; sent with
each event when ``timings_per_token`` is honoured, else with the last) become the
generation's evaluated tokens, prompt and generation times; the rest of the wall
time is network and queueing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from codegemma_lsp.engine.base import CancelToken, GenerationPolicy, StopReason, Tokenizer
from codegemma_lsp.engine.http_stream import RemoteError
from codegemma_lsp.engine.remote import (
    PROBE_TIMEOUT_S,
    Piece,
    RemoteBackend,
    StreamResult,
    TokenFollower,
    budget_from_first_token,
    follow,
    slot_for,
)
from codegemma_lsp.engine.remote_tokenizer import ServerTokenizer

log = logging.getLogger(__name__)


def completion_payload(
    prompt: list[int], policy: GenerationPolicy, *, slot: int | None, max_new: int
) -> dict[str, Any]:
    """The ``/completion`` request for one generation (pure, for tests)."""
    payload: dict[str, Any] = {
        "prompt": prompt,
        "n_predict": max_new,
        "cache_prompt": policy.reuse_cache,
        "stream": True,
        "return_tokens": True,
        "timings_per_token": True,
        "temperature": 0.0,
        "top_k": 1,
        "samplers": ["top_k"],
        "n_probs": 0,
    }
    if slot is not None:
        payload["id_slot"] = slot
    if policy.time_budget_ms is not None:
        payload["t_max_predict_ms"] = max(1, round(policy.time_budget_ms))
    return payload


def parse_event(data: str) -> dict[str, Any]:
    """One streamed event as a dict; RemoteError for an error event or bad JSON."""
    try:
        event = json.loads(data)
    except ValueError:
        raise RemoteError("llama-server sent an event that is not JSON", kind="protocol") from None
    if not isinstance(event, dict):
        raise RemoteError("llama-server sent an event that is not an object", kind="protocol")
    error = event.get("error")
    if error is not None:
        message = error.get("message", error) if isinstance(error, dict) else error
        raise RemoteError(f"llama-server failed mid-answer: {message}", kind="status")
    return event


class LlamaServerBackend(RemoteBackend):
    """A :class:`~codegemma_lsp.engine.base.Backend` on llama-server's native API."""

    name = "llama-server"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_slots: int | None = None
        """``total_slots`` from ``/props`` (None: not reported)."""

    @property
    def slots(self) -> int:
        """How many slots documents are spread over: the setting, else the server's count."""
        return self.options.slots or self.server_slots or 1

    def _server_tokenizer(self) -> Tokenizer:
        return ServerTokenizer(self.post_json, "llama-server")

    def _probe(self, cancel: CancelToken | None) -> None:
        props = self.call_json("GET", "/props", timeout_s=PROBE_TIMEOUT_S, cancel=cancel)
        if not isinstance(props, dict):
            raise RemoteError(f"{self.options.url}/props did not answer an object", kind="protocol")
        slots = props.get("total_slots")
        if isinstance(slots, int) and slots > 0:
            self.server_slots = slots
        settings = props.get("default_generation_settings")
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        if isinstance(n_ctx, int) and 0 < n_ctx < self._n_ctx:
            log.info("llama-server slots hold %d tokens each: prompts are fitted to that", n_ctx)
            self._n_ctx = n_ctx
        log.info(
            "llama-server at %s: %s slots, n_ctx %d per request",
            self.options.url,
            self.server_slots or "?",
            self._n_ctx,
        )

    def slot_for(self, key: str | None) -> int:
        return slot_for(self.client_id, key, self.slots)

    def _stream(
        self, prompt: list[int], policy: GenerationPolicy, cancel: CancelToken, deadline: float
    ) -> StreamResult:
        max_new = max(0, min(policy.max_new_tokens, self._n_ctx - len(prompt)))
        payload = completion_payload(
            prompt, policy, slot=self.slot_for(policy.key), max_new=max_new
        )
        result = StreamResult()
        with self._post_stream("/completion", payload, result, cancel, deadline) as stream:
            follower = TokenFollower(policy, max(max_new, 1))
            last: dict[str, Any] = {}

            def pieces() -> Iterator[Piece]:
                for data in stream.events():
                    event = parse_event(data)
                    last.update(event)
                    budget_from_first_token(stream, policy, result, self.clock)
                    tokens = tuple(t for t in event.get("tokens") or () if isinstance(t, int))
                    content = str(event.get("content") or "")
                    if event.get("stop"):
                        if tokens or content:
                            yield Piece(content, tokens)
                        return
                    # A server too old for return_tokens sends a control token as an empty
                    # event (it holds back a split character until it is whole).
                    yield Piece(content, tokens, control=not tokens and not content)

            reason: StopReason | None = None
            try:
                if max_new > 0:
                    reason = follow(
                        pieces(), follower, on_piece=self.on_piece, clock=self.clock, result=result
                    )
                else:
                    _drain(pieces())
            except RemoteError as exc:
                if exc.kind != "timeout" or result.first_token_at is None:
                    raise
                reason = "time"  # generation ran out of time: keep what came
        result.text, result.generated = follower.text, follower.generated
        if reason is None:
            stop_type = last.get("stop_type")
            reason = "eos" if stop_type == "eos" else "length"
            if (
                stop_type == "limit"
                and policy.time_budget_ms is not None
                and last.get("timings", {}).get("predicted_ms", 0) >= policy.time_budget_ms
            ):
                reason = "time"
        result.stop_reason = reason
        timings = last.get("timings")
        if isinstance(timings, dict):
            result.evaluated = _int(timings.get("prompt_n"))
            result.server_prompt_ms = _float(timings.get("prompt_ms"))
            result.server_generate_ms = _float(timings.get("predicted_ms"))
        return result


def _drain(pieces: Iterator[Piece]) -> None:
    """A pre-warm (``n_predict`` 0): read to the end, for the timings."""
    for _ in pieces:
        pass


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
