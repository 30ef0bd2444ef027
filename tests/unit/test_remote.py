"""The remote backends' pure parts: slot choice, the token loop, retries, payloads, the
server tokenizer's bookkeeping. The engines themselves are tested in tests/remote."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import pytest

from codegemma_lsp.config import env_layer, parse_settings
from codegemma_lsp.engine.base import CancelToken, GenerationPolicy
from codegemma_lsp.engine.http_stream import RemoteError
from codegemma_lsp.engine.remote import Piece, TokenFollower, slot_for, with_retries
from codegemma_lsp.engine.remote_llama_server import completion_payload as llama_payload
from codegemma_lsp.engine.remote_llama_server import parse_event
from codegemma_lsp.engine.remote_openai import completion_payload as openai_payload
from codegemma_lsp.engine.remote_openai import parse_chunk, refuses_ids
from codegemma_lsp.engine.remote_tokenizer import ServerTokenizer, split_control_spellings

END, STOP = frozenset({1}), frozenset({9})


def test_slot_is_stable_and_in_range() -> None:
    assert slot_for("client-a", "file:///x.py", 4) == slot_for("client-a", "file:///x.py", 4)
    assert all(0 <= slot_for("c", f"file:///{i}.py", 3) < 3 for i in range(50))
    assert slot_for("c", "file:///x.py", 1) == 0
    assert slot_for("c", "file:///x.py", 0) == 0


def test_slots_spread_documents_and_clients() -> None:
    counts = Counter(
        slot_for(f"client-{c}", f"file:///{d}.py", 4) for c in range(8) for d in range(50)
    )
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 400 / 4 * 0.6
    # The same file name for two users lands apart now and then, not always together.
    assert len({slot_for(f"client-{c}", "file:///main.py", 4) for c in range(8)}) > 1


def _follow(
    policy: GenerationPolicy, pieces: list[Piece], max_new: int = 10
) -> tuple[str, int, str]:
    follower = TokenFollower(policy, max_new)
    for piece in pieces:
        reason = follower.add(piece)
        if reason is not None:
            return follower.text, follower.generated, reason
    return follower.text, follower.generated, "-"


def _ends_block(text: str) -> bool:
    return text.endswith("return x\n")


@pytest.mark.parametrize(
    ("policy", "pieces", "max_new", "expected"),
    [
        pytest.param(
            GenerationPolicy(end_ids=END, stop_ids=STOP),
            [Piece("a", (5,)), Piece("b", (6,)), Piece("", (9,)), Piece("c", (7,))],
            10,
            ("ab", 2, "stop"),
            id="stop-id",
        ),
        pytest.param(
            GenerationPolicy(end_ids=END, stop_ids=STOP),
            [Piece("a", (5,)), Piece("", (1,))],
            10,
            ("a", 1, "eos"),
            id="end-id",
        ),
        pytest.param(
            GenerationPolicy(stop_ids=STOP),
            [Piece("a"), Piece("", control=True), Piece("b")],
            10,
            ("a", 1, "stop"),
            id="control-without-id",
        ),
        pytest.param(
            GenerationPolicy(),
            [Piece("a"), Piece("", control=True), Piece("b")],
            10,
            ("ab", 3, "-"),
            id="control-without-id-and-no-stops-asked",
        ),
        pytest.param(
            GenerationPolicy(),
            [Piece("a"), Piece("b"), Piece("c")],
            2,
            ("ab", 2, "length"),
            id="length",
        ),
        pytest.param(
            GenerationPolicy(single_line=True),
            [Piece("\n  "), Piece("x = 1"), Piece("\ny")],
            10,
            ("\n  x = 1", 3, "newline"),
            id="single-line-keeps-a-leading-blank-line",
        ),
        pytest.param(
            GenerationPolicy(stop_check=_ends_block),
            [Piece("  y = 1\n"), Piece("  return x"), Piece("\n"), Piece("more")],
            10,
            ("  y = 1\n  return x\n", 3, "syntax"),
            id="syntax-at-a-line-end",
        ),
        pytest.param(
            GenerationPolicy(),
            [Piece("ab", (5, 6)), Piece("c", (7,))],
            10,
            ("abc", 3, "-"),
            id="an-event-with-two-tokens",
        ),
    ],
)
def test_token_follower(
    policy: GenerationPolicy, pieces: list[Piece], max_new: int, expected: tuple[str, int, str]
) -> None:
    assert _follow(policy, pieces, max_new) == expected


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _flaky(failures: list[RemoteError]) -> tuple[Any, list[int]]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "answer"

    return attempt, calls


def _refused() -> RemoteError:
    return RemoteError("cannot reach x: connection refused", kind="connect", retryable=True)


def test_retries_with_backoff_until_it_works() -> None:
    clock = _Clock()
    attempt, calls = _flaky([_refused(), _refused()])
    result = with_retries(
        attempt, deadline=10.0, cancel=CancelToken(), clock=clock, sleep=clock.sleep
    )
    assert result == "answer"
    assert len(calls) == 3
    assert clock.now == pytest.approx(0.1 + 0.2)


def test_gives_up_after_the_last_attempt() -> None:
    clock = _Clock()
    attempt, calls = _flaky([_refused()] * 5)
    with pytest.raises(RemoteError):
        with_retries(attempt, deadline=10.0, cancel=CancelToken(), clock=clock, sleep=clock.sleep)
    assert len(calls) == 3


def test_never_retries_past_the_deadline() -> None:
    clock = _Clock()
    attempt, calls = _flaky([_refused()] * 5)
    with pytest.raises(RemoteError):
        with_retries(attempt, deadline=0.05, cancel=CancelToken(), clock=clock, sleep=clock.sleep)
    assert len(calls) == 1


def test_never_retries_what_would_fail_again() -> None:
    clock = _Clock()
    attempt, calls = _flaky([RemoteError("401", kind="status", status=401)])
    with pytest.raises(RemoteError):
        with_retries(attempt, deadline=10.0, cancel=CancelToken(), clock=clock, sleep=clock.sleep)
    assert len(calls) == 1


def test_llama_server_payload() -> None:
    policy = GenerationPolicy(max_new_tokens=64, time_budget_ms=1500, reuse_cache=True)
    payload = llama_payload([2, 67, 5], policy, slot=3, max_new=64)
    assert payload["prompt"] == [2, 67, 5]
    assert payload["cache_prompt"] is True
    assert payload["id_slot"] == 3
    assert payload["n_predict"] == 64
    assert payload["stream"] is True
    assert payload["return_tokens"] is True
    assert payload["t_max_predict_ms"] == 1500
    assert payload["temperature"] == 0.0
    baseline = llama_payload([2], GenerationPolicy(reuse_cache=False), slot=None, max_new=1)
    assert baseline["cache_prompt"] is False
    assert "id_slot" not in baseline
    assert "t_max_predict_ms" not in baseline


def test_openai_payload() -> None:
    policy = GenerationPolicy(end_ids=END, stop_ids=STOP)
    ids = openai_payload([2, 5], policy, max_tokens=16, model="codegemma")
    assert ids["prompt"] == [2, 5]
    assert ids["stop_token_ids"] == [1, 9]
    assert ids["max_tokens"] == 16
    assert ids["model"] == "codegemma"
    text = openai_payload("<|fim_prefix|>x", policy, max_tokens=16, model=None)
    assert "stop_token_ids" not in text
    assert "model" not in text


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        pytest.param(
            '{"choices": [{"text": "ab", "finish_reason": null}]}', ("ab", None), id="token"
        ),
        pytest.param(
            '{"choices": [{"text": "", "finish_reason": "length"}]}', ("", "length"), id="end"
        ),
        pytest.param("[DONE]", None, id="done"),
    ],
)
def test_parse_chunk(data: str, parsed: tuple[str, str | None] | None) -> None:
    assert parse_chunk(data) == parsed


def test_an_error_event_is_an_error() -> None:
    with pytest.raises(RemoteError, match="out of memory"):
        parse_chunk('{"error": {"message": "out of memory"}}')
    with pytest.raises(RemoteError, match="slot unavailable"):
        parse_event('{"error": {"code": 503, "message": "slot unavailable"}}')


def test_refuses_ids() -> None:
    body = (
        '{"error": {"message": "6 validation errors: prompt ... Input should be a valid string"}}'
    )
    assert refuses_ids(RemoteError("x", kind="status", status=500, body=body))
    assert not refuses_ids(RemoteError("x", kind="status", status=503, body=body))
    assert not refuses_ids(RemoteError("x", kind="status", status=500, body="out of memory"))
    too_long = "This model's maximum context length is 8192 tokens; reduce the prompt"
    assert not refuses_ids(RemoteError("x", kind="status", status=400, body=too_long))


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        pytest.param("a < b and c<d>", ["a < b and c<d>"], id="code"),
        pytest.param("x<|fim_prefix|>y", ["x<", "|fim_prefix|>y"], id="fim-marker"),
        pytest.param("<eos><bos>", ["<", "eos><", "bos>"], id="two"),
        pytest.param("a <|> b", ["a <|> b"], id="haskell-alternative"),
    ],
)
def test_split_control_spellings(text: str, pieces: list[str]) -> None:
    assert split_control_spellings(text) == pieces


class _FakeLlamaCppPythonTokenizer:
    """A named fake of llama-cpp-python's ``/extras/tokenize`` and ``/extras/detokenize``:
    one id per character (BOS 2 first), ``<bos>`` and ``<|fim_prefix|>`` parsed as special."""

    SPECIALS: ClassVar[dict[str, int]] = {"<bos>": 2, "<|fim_prefix|>": 67}

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, path: str, payload: Any) -> Any:
        self.calls.append((path, payload))
        if path == "/extras/tokenize":
            text, ids = payload["input"], [2]
            while text:
                special = next((s for s in self.SPECIALS if text.startswith(s)), None)
                if special:
                    ids.append(self.SPECIALS[special])
                    text = text[len(special) :]
                else:
                    ids.append(1000 + ord(text[0]))
                    text = text[1:]
            return {"tokens": ids}
        assert path == "/extras/detokenize"
        return {"text": "".join(chr(t - 1000) for t in payload["tokens"] if t >= 1000)}


def test_server_tokenizer_drops_the_added_bos_and_keeps_markers_text() -> None:
    server = _FakeLlamaCppPythonTokenizer()
    tokenizer = ServerTokenizer(server, "llama-cpp-python")
    assert tokenizer.special_id("<bos>") == 2
    assert tokenizer.special_id("<|fim_prefix|>") == 67
    assert tokenizer.special_id("<|nope|>") is None
    ids = tokenizer.tokenize("a<|fim_prefix|>")
    assert 67 not in ids and 2 not in ids
    assert tokenizer.detokenize([2, 67, *ids]) == "<bos><|fim_prefix|>a<|fim_prefix|>"


def test_server_tokenizer_caches_answers() -> None:
    server = _FakeLlamaCppPythonTokenizer()
    tokenizer = ServerTokenizer(server, "llama-cpp-python")
    tokenizer.tokenize("context file")
    before = len(server.calls)
    assert tokenizer.tokenize("context file") == tokenizer.tokenize("context file")
    assert len(server.calls) == before


def test_the_api_key_setting_comes_from_the_environment_and_stays_out_of_reprs() -> None:
    settings, problems = parse_settings([env_layer({"CODEGEMMA_LSP_MODEL_API_KEY": "sk-x-123"})])
    assert problems == []
    assert settings.model.api_key == "sk-x-123"
    assert "sk-x-123" not in repr(settings)


@pytest.mark.parametrize(
    ("layer", "problem"),
    [
        pytest.param(
            {"backend": "llama-server", "url": "http://gpu:8080", "slots": 4}, None, id="ok"
        ),
        pytest.param({"backend": "openai", "promptFormat": "text"}, None, id="text"),
        pytest.param({"promptFormat": "tokens"}, "model.promptFormat", id="bad-format"),
        pytest.param({"timeoutMs": 5}, "model.timeoutMs", id="timeout-too-short"),
        pytest.param({"backend": "vllm"}, "model.backend", id="unknown-backend"),
    ],
)
def test_remote_settings(layer: dict[str, Any], problem: str | None) -> None:
    _, problems = parse_settings([{"model": layer}])
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(f"setting {problem} ")
