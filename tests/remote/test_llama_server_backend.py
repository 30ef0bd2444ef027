"""``model.backend = "llama-server"``: the /completion protocol, against a named fake.

See :mod:`tests.remote.fake_llama_server` for what the fake does and why there is one.
The tokenizer is the tiny model's real vocabulary, loaded locally (``model.path``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codegemma_lsp.engine.base import CancelToken, GenerationPolicy
from codegemma_lsp.engine.http_stream import RemoteError
from codegemma_lsp.engine.remote import Piece, RemoteOptions, slot_for
from codegemma_lsp.engine.remote_llama_server import LlamaServerBackend
from codegemma_lsp.prompt import FimTokens, PromptParts, build_prompt
from tests.remote.fake_llama_server import FakeLlamaServer

pytestmark = pytest.mark.model


@pytest.fixture
def fake() -> Iterator[FakeLlamaServer]:
    server = FakeLlamaServer(slots=4, pieces={1000: "x = 1", 1001: "\n", 1002: "y"})
    yield server
    server.close()


def _backend(fake: FakeLlamaServer, vocab: Path, **options: object) -> LlamaServerBackend:
    backend = LlamaServerBackend(
        RemoteOptions(url=fake.url, vocab_path=vocab, **options)  # type: ignore[arg-type]
    )
    backend.load()
    return backend


def _prompt(backend: LlamaServerBackend, prefix: str = "def f():\n    ") -> list[int]:
    tokenizer = backend.tokenizer
    return build_prompt(tokenizer, FimTokens.lookup(tokenizer), PromptParts(prefix, "\n"), "psm")


def _policy(backend: LlamaServerBackend, **fields: object) -> GenerationPolicy:
    fim = FimTokens.lookup(backend.tokenizer)
    return GenerationPolicy(end_ids=fim.end_ids, stop_ids=fim.stop_ids, **fields)  # type: ignore[arg-type]


def test_the_request_carries_the_prompt_ids_and_the_slot(
    fake: FakeLlamaServer, tiny_model_path: Path
) -> None:
    backend = _backend(fake, tiny_model_path)
    assert backend.problem is None
    assert backend.slots == 4
    assert backend.n_ctx == 2048  # the server's per-slot context is smaller than 4096
    prompt = _prompt(backend)
    policy = _policy(backend, key="file:///w/a.py", max_new_tokens=32, time_budget_ms=1500)
    generation = backend.generate(prompt, policy, CancelToken())
    sent = fake.requests[-1]
    assert sent["prompt"] == prompt
    assert sent["cache_prompt"] is True
    assert sent["id_slot"] == slot_for(backend.client_id, "file:///w/a.py", 4)
    assert sent["n_predict"] == 32
    assert sent["stream"] is True
    assert sent["return_tokens"] is True
    assert sent["t_max_predict_ms"] == 1500
    assert generation.text == "x = 1\ny"
    assert generation.generated_tokens == 3
    # The server's timings, and the rest of the wall time as network time.
    assert generation.evaluated_tokens == len(prompt)
    assert generation.prompt_ms == 5.0 * len(prompt)
    assert generation.generate_ms == 6.0
    assert generation.network_ms >= 0


def test_a_document_keeps_its_slot_and_its_cache(
    fake: FakeLlamaServer, tiny_model_path: Path
) -> None:
    backend = _backend(fake, tiny_model_path)
    head = "import os\nimport sys\n\n\ndef main(argv):\n    path = argv[1]\n    "
    first = _prompt(backend, head)
    typed = _prompt(backend, head + "ret")
    a = "file:///w/a.py"
    slot_a = slot_for(backend.client_id, a, 4)
    b = next(
        key
        for key in (f"file:///w/{n}.py" for n in range(100))
        if slot_for(backend.client_id, key, 4) != slot_a
    )
    backend.generate(first, _policy(backend, key=a), CancelToken())
    backend.generate(_prompt(backend, "class Other:\n    "), _policy(backend, key=b), CancelToken())
    again = backend.generate(typed, _policy(backend, key=a), CancelToken())
    # b went to another slot, so a's prompt was still cached: only the typed tail is new.
    assert 0 < again.evaluated_tokens < len(typed) // 2
    shared = _backend(fake, tiny_model_path, slots=1)
    shared.generate(first, _policy(shared, key=a), CancelToken())
    shared.generate(_prompt(shared, "class Other:\n    "), _policy(shared, key=b), CancelToken())
    evicted = shared.generate(typed, _policy(shared, key=a), CancelToken())
    assert evicted.evaluated_tokens > again.evaluated_tokens


def test_one_slot_shares_the_cache_like_slot_zero(
    fake: FakeLlamaServer, tiny_model_path: Path
) -> None:
    backend = _backend(fake, tiny_model_path, slots=1)
    for key in ("file:///w/a.py", "file:///w/b.py", "file:///w/c.py"):
        backend.generate(_prompt(backend), _policy(backend, key=key), CancelToken())
    assert {request["id_slot"] for request in fake.requests} == {0}


def test_a_stop_id_ends_the_middle_and_the_stream(tiny_model_path: Path) -> None:
    fake = FakeLlamaServer(script=[1000, 1001], pieces={1000: "a", 1001: "b"})
    try:
        backend = _backend(fake, tiny_model_path)
        separator = FimTokens.lookup(backend.tokenizer).file_separator
        fake.script = [1000, separator, 1001, 1001]
        fake.token_delay_s = 0.01
        generation = backend.generate(_prompt(backend), _policy(backend), CancelToken())
        assert (generation.text, generation.stop_reason) == ("a", "stop")
        assert fake.disconnected.wait(10)
    finally:
        fake.close()


def test_a_server_without_token_ids_still_stops_at_a_control_token(tiny_model_path: Path) -> None:
    fake = FakeLlamaServer(pieces={1000: "a", 1001: "b"})
    try:
        backend = _backend(fake, tiny_model_path)
        separator = FimTokens.lookup(backend.tokenizer).file_separator
        fake.script = [1000, separator, 1001]
        fake.pieces[separator] = ""  # a control token's piece
        fake.without_token_ids = True
        generation = backend.generate(_prompt(backend), _policy(backend), CancelToken())
        assert (generation.text, generation.stop_reason) == ("a", "stop")
    finally:
        fake.close()


def test_a_cancel_mid_stream_closes_the_connection(tiny_model_path: Path) -> None:
    fake = FakeLlamaServer(script=[1000] * 400, pieces={1000: "a"}, token_delay_s=0.005)
    try:
        backend = _backend(fake, tiny_model_path)
        cancel = CancelToken()
        seen: list[Piece] = []

        def cancel_after_three(piece: Piece) -> None:
            seen.append(piece)
            if len(seen) == 3:
                cancel.cancel()

        backend.on_piece = cancel_after_three
        generation = backend.generate(
            _prompt(backend), _policy(backend, max_new_tokens=400), cancel
        )
        assert generation.stop_reason == "cancelled"
        assert fake.disconnected.wait(10)
    finally:
        fake.close()


class _ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_time_budget_keeps_what_came(tiny_model_path: Path) -> None:
    fake = FakeLlamaServer(script=[1000] * 50, pieces={1000: "a"}, token_delay_s=0.005)
    clock = _ManualClock()
    try:
        backend = LlamaServerBackend(
            RemoteOptions(url=fake.url, vocab_path=tiny_model_path), clock=clock
        )
        backend.load()

        def a_second_per_token(piece: Piece) -> None:
            clock.now += 1.0

        backend.on_piece = a_second_per_token
        policy = _policy(backend, max_new_tokens=50, time_budget_ms=2500)
        generation = backend.generate(_prompt(backend), policy, CancelToken())
        assert generation.stop_reason == "time"
        assert generation.text == "aaa"
    finally:
        fake.close()


def test_a_busy_server_is_retried(fake: FakeLlamaServer, tiny_model_path: Path) -> None:
    backend = _backend(fake, tiny_model_path)
    fake.fail_first = 2
    generation = backend.generate(_prompt(backend), _policy(backend), CancelToken())
    assert generation.text == "x = 1\ny"
    assert len(fake.requests) == 3


def test_an_error_event_mid_stream_is_an_error(
    fake: FakeLlamaServer, tiny_model_path: Path
) -> None:
    backend = _backend(fake, tiny_model_path)
    health: list[str | None] = []
    backend.on_health = health.append
    fake.error_event_after = 1
    with pytest.raises(RemoteError, match="fake failure"):
        backend.generate(_prompt(backend), _policy(backend), CancelToken())
    assert health[-1] is not None and "fake failure" in health[-1]
    fake.error_event_after = None
    backend.generate(_prompt(backend), _policy(backend), CancelToken())
    assert health[-1] is None
