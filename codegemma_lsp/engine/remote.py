"""What the remote backends share: options, the tokenizer choice, retries, the token loop.

A remote backend sends the daemon's own prompt ids to an inference server and reads
the answer as a stream, one token per event. Everything else (cut points, context,
the prompt, truncation, the suggestion cache, cancel-previous, precompute) stays in
the daemon; the server does the arithmetic.

- **Tokenizer.** With ``model.path`` the GGUF's vocabulary is loaded locally
  (``vocab_only``, no weights); otherwise the server's tokenize endpoint is used.
- **Failures.** Connection errors, timeouts and 4xx/5xx answers raise
  :class:`~codegemma_lsp.engine.http_stream.RemoteError` with the server and the
  reason, after retries with backoff for the ones worth retrying; ``on_health``
  hears each failure and each success, so the daemon's status says what is wrong
  and when it is right again. No request waits past ``timeout_ms``.
- **Stops.** :class:`TokenFollower` applies the policy to each streamed token: stop
  ids, the syntactic stop check at line ends, single line, the token limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from codegemma_lsp.engine.base import (
    BackendNotReady,
    CancelToken,
    Generation,
    GenerationPolicy,
    ModelLoadError,
    StopReason,
    Tokenizer,
    single_line_end,
)
from codegemma_lsp.engine.http_stream import (
    POLL_S,
    Clock,
    Endpoint,
    HttpStream,
    RemoteError,
    StreamCancelled,
    parse_url,
    request_json,
    status_error,
)
from codegemma_lsp.engine.llama_backend import REQUIRED_SPECIALS, LlamaTokenizer

log = logging.getLogger(__name__)

DAEMON_ID = secrets.token_hex(8)
"""This daemon's client id, mixed into slot choices so that users spread over the slots."""

PROBE_TIMEOUT_S = 5.0
RETRY_ATTEMPTS = 3
FIRST_BACKOFF_S = 0.1

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class RemoteOptions:
    """A remote backend's settings (``model.*``), as plain values."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    """The bearer token; never logged, never in a repr."""
    timeout_ms: int = 15_000
    """The longest one request may take, queueing and prompt evaluation included."""
    n_ctx: int = 4096
    """Context per request; a server that reports a smaller one wins."""
    slots: int = 0
    """llama-server: how many slots to spread documents over (0: ask the server)."""
    prompt_format: str = "auto"
    """openai: ``ids``, ``text`` (special tokens as text), or ``auto`` (ids, else text)."""
    vocab_path: Path | None = None
    """A GGUF with the server's vocabulary, to tokenize locally (None: the server's)."""


def slot_for(client_id: str, key: str | None, slots: int) -> int:
    """The slot a document is pinned to: a stable hash of this client and the document.

    Stable across requests and daemon restarts of the same client id, spread evenly
    over ``slots``; different clients editing a file of the same name land apart.
    """
    if slots <= 1:
        return 0
    digest = hashlib.blake2b(f"{client_id}\n{key or ''}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % slots


@dataclass(frozen=True)
class Piece:
    """One streamed token: its text, and its ids when the server says them."""

    text: str
    ids: tuple[int, ...] = ()
    control: bool = False
    """A token the server rendered as nothing and named no id for: a control token."""


class TokenFollower:
    """The generation policy applied to streamed tokens, one at a time (pure)."""

    def __init__(self, policy: GenerationPolicy, max_new: int) -> None:
        self.policy = policy
        self.max_new = max_new
        self.text = ""
        self.generated = 0

    def add(self, piece: Piece) -> StopReason | None:
        """Take one token; the reason to stop now, or None to read on."""
        policy = self.policy
        if any(token in policy.end_ids for token in piece.ids):
            return "eos"
        if any(token in policy.stop_ids for token in piece.ids):
            return "stop"
        if piece.control and (policy.stop_ids or policy.end_ids):
            # An id-less control token can only be one of the stop ids (the FIM markers,
            # end of turn); with no stop ids asked for, it is one more token.
            return "stop"
        self.generated += max(1, len(piece.ids))
        self.text += piece.text
        if "\n" in piece.text and policy.stop_check is not None and policy.stop_check(self.text):
            return "syntax"
        if policy.single_line and (end := single_line_end(self.text)) is not None:
            self.text = self.text[:end]
            return "newline"
        if self.generated >= self.max_new:
            return "length"
        return None


@dataclass
class StreamResult:
    """What one streamed request gave, before it becomes a Generation."""

    text: str = ""
    generated: int = 0
    stop_reason: StopReason = "length"
    evaluated: int | None = None
    """Prompt tokens the server evaluated (None: it does not say)."""
    server_prompt_ms: float | None = None
    server_generate_ms: float | None = None
    first_token_at: float | None = None
    connected_ms: float = 0.0
    """Time to connect and send the request: network time that no server timing covers."""


def sleep_unless_cancelled(
    seconds: float,
    cancel: CancelToken,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    end = clock() + seconds
    while (left := end - clock()) > 0:
        if cancel.cancelled:
            raise StreamCancelled
        sleep(min(POLL_S, left))
    if cancel.cancelled:
        raise StreamCancelled


def with_retries(
    attempt: Callable[[], T],
    *,
    deadline: float,
    cancel: CancelToken,
    clock: Clock,
    attempts: int = RETRY_ATTEMPTS,
    first_backoff_s: float = FIRST_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``attempt()``, again after 0.1 s, 0.2 s, ... while it fails in a retryable way and
    the next try would start before ``deadline``."""
    backoff = first_backoff_s
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except RemoteError as exc:
            if not exc.retryable or number == attempts or clock() + backoff >= deadline:
                raise
            log.info(
                "remote attempt %d failed (%s); retrying in %.0f ms", number, exc, backoff * 1000
            )
        sleep_unless_cancelled(backoff, cancel, clock, sleep)
        backoff *= 2
    raise AssertionError("unreachable")


class RemoteBackend:
    """The parts of a remote backend that do not depend on the server's protocol.

    Subclasses implement :meth:`_probe` (learn the server: slots, context size, model
    name; may fail) and :meth:`_stream` (one streamed request).
    """

    name = "remote"

    def __init__(self, options: RemoteOptions, *, clock: Clock = time.monotonic) -> None:
        self.options = options
        self.clock = clock
        self.endpoint: Endpoint | None = None
        self._tokenizer: Tokenizer | None = None
        self._n_ctx = options.n_ctx
        self._probed = False
        self._probe_lock = threading.Lock()
        self.client_id = DAEMON_ID
        self.on_health: Callable[[str | None], None] | None = None
        """Told ``None`` after each answered request and the reason after each failure."""
        self.on_piece: Callable[[Piece], None] | None = None
        """Sees each streamed token as it arrives (tests and benchmarks)."""
        self.problem: str | None = None
        """Why the server could not be reached at load time (it is tried again later)."""

    # ----- the Backend protocol -------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.options.url

    def describe(self) -> str:
        return f"{self.name} at {self.options.url}"

    @property
    def ready(self) -> bool:
        return self._tokenizer is not None

    @property
    def tokenizer(self) -> Tokenizer:
        tokenizer = self._tokenizer
        if tokenizer is None:
            raise BackendNotReady(f"{self.describe()} is not set up")
        if not self._probed and self.options.vocab_path is None:
            self._ensure_probed()  # the server's tokenizer: learn which one it is first
        return tokenizer

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def load(self) -> None:
        """Check the settings and load a local vocabulary; then try the server once.

        A server that cannot be reached yet is not a load failure: the daemon stays
        up, says why in its status (``problem``), and tries again on each request.
        """
        try:
            self.endpoint = parse_url(self.options.url)
        except ValueError as exc:
            raise ModelLoadError(f"model.url: {exc}") from None
        if self.options.vocab_path is not None:
            tokenizer = LlamaTokenizer.from_file(self.options.vocab_path)
            _check_specials(tokenizer, str(self.options.vocab_path))
            self._tokenizer = tokenizer
        else:
            self._tokenizer = self._server_tokenizer()
        try:
            self._ensure_probed()
        except RemoteError as exc:
            self.problem = str(exc)
            log.warning("%s", exc)

    def close(self) -> None:
        # A local vocabulary is freed with its last reference.
        self._tokenizer = None

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        if self._tokenizer is None:
            raise BackendNotReady(f"{self.describe()} is not set up")
        started = self.clock()
        deadline = started + self.options.timeout_ms / 1000
        if cancel.cancelled:
            return Generation("", "cancelled", prompt_tokens=len(prompt))
        try:
            self._ensure_probed(cancel)
            result = with_retries(
                lambda: self._stream(list(prompt), policy, cancel, deadline),
                deadline=deadline,
                cancel=cancel,
                clock=self.clock,
            )
        except StreamCancelled:
            return Generation("", "cancelled", prompt_tokens=len(prompt))
        except RemoteError as exc:
            self._health(str(exc))
            raise
        self._health(None)
        return self._generation(result, len(prompt), started)

    # ----- shared plumbing -------------------------------------------------------------

    def _generation(self, result: StreamResult, prompt_tokens: int, started: float) -> Generation:
        total_ms = (self.clock() - started) * 1000
        first = result.first_token_at
        if result.server_prompt_ms is not None and result.server_generate_ms is not None:
            prompt_ms, generate_ms = result.server_prompt_ms, result.server_generate_ms
            network_ms = max(0.0, total_ms - prompt_ms - generate_ms)
        else:
            # The server says nothing of its own time: the wait for the first token
            # (network included) counts as prompt time, the rest as generation.
            network_ms = result.connected_ms
            split = (first - started) * 1000 if first is not None else total_ms
            prompt_ms = max(0.0, split - network_ms)
            generate_ms = max(0.0, total_ms - split)
        return Generation(
            text=result.text,
            stop_reason=result.stop_reason,
            prompt_tokens=prompt_tokens,
            evaluated_tokens=result.evaluated if result.evaluated is not None else 0,
            generated_tokens=result.generated,
            prompt_ms=prompt_ms,
            generate_ms=generate_ms,
            network_ms=network_ms,
        )

    def _health(self, problem: str | None) -> None:
        self.problem = problem
        if self.on_health is not None:
            self.on_health(problem)

    def _headers(self) -> dict[str, str]:
        key = self.options.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _endpoint(self) -> Endpoint:
        if self.endpoint is None:
            raise BackendNotReady(f"{self.describe()} is not set up")
        return self.endpoint

    def call_json(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        timeout_s: float | None = None,
        cancel: CancelToken | None = None,
    ) -> Any:
        """One JSON request to the server, retried like a generation."""
        timeout = self.options.timeout_ms / 1000 if timeout_s is None else timeout_s
        deadline = self.clock() + timeout
        token = cancel or CancelToken()

        def attempt() -> Any:
            return request_json(
                self._endpoint(),
                method,
                path,
                payload,
                headers=self._headers(),
                deadline=deadline,
                cancel=token,
                clock=self.clock,
            )

        try:
            return with_retries(attempt, deadline=deadline, cancel=token, clock=self.clock)
        except RemoteError as exc:
            self._health(str(exc))
            raise

    def post_json(self, path: str, payload: Any) -> Any:
        return self.call_json("POST", path, payload)

    @contextlib.contextmanager
    def _post_stream(
        self,
        path: str,
        payload: Any,
        result: StreamResult,
        cancel: CancelToken,
        deadline: float,
    ) -> Iterator[HttpStream]:
        """POST ``payload`` and yield the open stream of its answer (an error status
        raises); ``result`` gets the time it took to connect and send."""
        started = self.clock()
        stream = HttpStream(
            self._endpoint(),
            "POST",
            path,
            body=json.dumps(payload).encode("utf-8"),
            headers=self._headers(),
            deadline=deadline,
            cancel=cancel,
            clock=self.clock,
        )
        with stream:
            head = stream.open()
            result.connected_ms = ((stream.sent_at or started) - started) * 1000
            if head.status != 200:
                raise status_error(stream, stream.read_body())
            yield stream

    def _ensure_probed(self, cancel: CancelToken | None = None) -> None:
        with self._probe_lock:
            if self._probed:
                return
            self._probe(cancel)
            if self.options.vocab_path is None and self._tokenizer is not None:
                _check_specials(self._tokenizer, self.options.url)
            self._probed = True
            self.problem = None

    # ----- for subclasses ---------------------------------------------------------------

    def _server_tokenizer(self) -> Tokenizer:
        raise NotImplementedError

    def _probe(self, cancel: CancelToken | None) -> None:
        raise NotImplementedError

    def _stream(
        self, prompt: list[int], policy: GenerationPolicy, cancel: CancelToken, deadline: float
    ) -> StreamResult:
        raise NotImplementedError


def _check_specials(tokenizer: Tokenizer, where: str) -> None:
    for text in REQUIRED_SPECIALS:
        if tokenizer.special_id(text) is None:
            raise ModelLoadError(f"{where}: the vocabulary has no {text} token (not CodeGemma?)")


def budget_from_first_token(
    stream: HttpStream, policy: GenerationPolicy, result: StreamResult, clock: Clock
) -> None:
    """Until the first token: generation's own time budget starts with it (the prompt is
    evaluated by then), as in-process, so the stream's deadline moves in to it."""
    if result.first_token_at is None and policy.time_budget_ms is not None:
        stream.deadline = min(stream.deadline, clock() + policy.time_budget_ms / 1000)


def follow(
    pieces: Iterator[Piece],
    follower: TokenFollower,
    *,
    on_piece: Callable[[Piece], None] | None,
    clock: Clock,
    result: StreamResult,
) -> StopReason | None:
    """Feed streamed tokens to ``follower`` until it stops (its reason) or the stream ends
    (None). Marks the first token's arrival in ``result``."""
    for piece in pieces:
        if result.first_token_at is None:
            result.first_token_at = clock()
        if on_piece is not None:
            on_piece(piece)
        reason = follower.add(piece)
        if reason is not None:
            return reason
    return None
