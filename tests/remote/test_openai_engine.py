"""``model.backend = "openai"`` against a real llama-cpp-python server on 127.0.0.1.

llama_cpp.server takes no token-id prompts, so these also exercise the fallback to a
text prompt with the special tokens written out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codegemma_lsp.engine.base import CancelToken, GenerationPolicy, Tokenizer
from codegemma_lsp.engine.http_stream import RemoteError, parse_url, request_json
from codegemma_lsp.engine.remote import Piece, RemoteOptions
from codegemma_lsp.engine.remote_openai import OpenAiBackend
from codegemma_lsp.prompt import FimTokens, PromptParts, build_prompt
from tests.remote.conftest import EngineProcess, free_port, start_llama_cpp_server

pytestmark = pytest.mark.model

SOURCE = PromptParts("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n", "demo.py")


def _backend(url: str, **options: object) -> OpenAiBackend:
    backend = OpenAiBackend(RemoteOptions(url=url, n_ctx=2048, **options))  # type: ignore[arg-type]
    backend.load()
    return backend


def _prompt(tokenizer: Tokenizer, parts: PromptParts = SOURCE) -> tuple[list[int], FimTokens]:
    fim = FimTokens.lookup(tokenizer)
    return build_prompt(tokenizer, fim, parts, "psm"), fim


def _policy(fim: FimTokens, max_new: int = 24) -> GenerationPolicy:
    return GenerationPolicy(max_new_tokens=max_new, end_ids=fim.end_ids, stop_ids=fim.stop_ids)


def test_a_completion_through_llama_cpp_server(llama_cpp_server: EngineProcess) -> None:
    backend = _backend(llama_cpp_server.url)
    assert backend.problem is None
    prompt, fim = _prompt(backend.tokenizer)
    generation = backend.generate(prompt, _policy(fim), CancelToken())
    # The server refused the ids (it takes strings only), so the prompt went as text.
    assert backend.prompt_format == "text"
    assert generation.stop_reason in ("length", "stop", "eos")
    assert generation.generated_tokens > 0
    assert generation.prompt_tokens == len(prompt)
    assert generation.network_ms > 0
    # The next request goes as text at once; the same prompt gives the same greedy text.
    again = backend.generate(prompt, _policy(fim), CancelToken())
    assert again.text == generation.text


def test_the_text_prompt_reaches_the_server_as_the_same_ids(
    llama_cpp_server: EngineProcess,
) -> None:
    backend = _backend(llama_cpp_server.url)
    prompt, _ = _prompt(backend.tokenizer)
    text = backend.tokenizer.detokenize(prompt[1:])  # the server adds BOS itself
    answer = request_json(
        parse_url(llama_cpp_server.url), "POST", "/extras/tokenize", {"input": text}, deadline=1e12
    )
    assert answer["tokens"] == prompt


def test_the_local_vocabulary_agrees_with_the_server(
    llama_cpp_server: EngineProcess, tiny_model_path: Path
) -> None:
    remote = _backend(llama_cpp_server.url).tokenizer
    local = _backend(llama_cpp_server.url, vocab_path=tiny_model_path).tokenizer
    assert FimTokens.lookup(remote) == FimTokens.lookup(local)
    for text in ("def add(a, b):\n    return a + b\n", "x = '<|fim_prefix|>'  # <eos>", "é漢字🙂"):
        assert remote.tokenize(text) == local.tokenize(text), text
    prompt, _ = _prompt(local)
    assert remote.detokenize(prompt) == local.detokenize(prompt)


def test_a_cancel_mid_stream_closes_the_stream(llama_cpp_server: EngineProcess) -> None:
    backend = _backend(llama_cpp_server.url)
    prompt, fim = _prompt(backend.tokenizer)
    cancel = CancelToken()
    seen: list[Piece] = []

    def cancel_after_three(piece: Piece) -> None:
        seen.append(piece)
        if len(seen) == 3:
            cancel.cancel()

    backend.on_piece = cancel_after_three
    # No control-token stop, so without the cancel it would run to 1500 tokens.
    policy = GenerationPolicy(max_new_tokens=1500)
    generation = backend.generate(prompt, policy, cancel)
    assert generation.stop_reason == "cancelled"
    assert len(seen) == 3
    # The server saw the client go and stopped streaming.
    assert llama_cpp_server.wait_for_log("Disconnected from client")
    backend.on_piece = None
    after = backend.generate(prompt, _policy(fim), CancelToken())
    assert after.generated_tokens > 0


def test_the_server_killed_mid_request_is_an_error_not_a_hang(
    own_llama_cpp_server: EngineProcess,
) -> None:
    backend = _backend(own_llama_cpp_server.url)
    health: list[str | None] = []
    backend.on_health = health.append
    prompt, _ = _prompt(backend.tokenizer)

    def kill(piece: Piece) -> None:
        own_llama_cpp_server.stop()

    backend.on_piece = kill
    with pytest.raises(RemoteError) as caught:
        backend.generate(prompt, GenerationPolicy(max_new_tokens=1500), CancelToken())
    assert caught.value.kind in ("closed", "connect")
    assert health and health[-1] == str(caught.value)
    assert own_llama_cpp_server.url in str(caught.value)


def test_a_wrong_port_says_it_cannot_reach_the_server(tiny_model_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    backend = _backend(url, vocab_path=tiny_model_path)
    # Nothing listens: the backend is set up (with a local vocabulary), and says why not yet.
    assert backend.ready
    assert backend.problem is not None
    assert "connection refused" in backend.problem
    prompt, fim = _prompt(backend.tokenizer)
    with pytest.raises(RemoteError, match="connection refused") as caught:
        backend.generate(prompt, _policy(fim), CancelToken())
    assert caught.value.kind == "connect"


def test_a_wrong_path_says_to_check_the_url(llama_cpp_server: EngineProcess) -> None:
    backend = OpenAiBackend(RemoteOptions(url=llama_cpp_server.url + "/nope"))
    backend.load()
    assert backend.problem is not None
    assert "404" in backend.problem
    assert "model.url" in backend.problem


def test_a_500_answer_is_a_clear_error(llama_cpp_server: EngineProcess) -> None:
    # Sent as ids, which this server refuses with a 500 (its validation error).
    backend = _backend(llama_cpp_server.url, prompt_format="ids")
    prompt, fim = _prompt(backend.tokenizer)
    with pytest.raises(RemoteError) as caught:
        backend.generate(prompt, _policy(fim), CancelToken())
    assert caught.value.status == 500
    message = str(caught.value)
    assert message.startswith(f"{llama_cpp_server.url}/v1/completions answered 500")
    assert str(prompt[:5]).strip("[]") not in message  # the echoed prompt stays out


def test_a_pre_warm_generates_nothing(llama_cpp_server: EngineProcess) -> None:
    backend = _backend(llama_cpp_server.url)
    prompt, fim = _prompt(backend.tokenizer)
    generation = backend.generate(
        prompt, GenerationPolicy(max_new_tokens=0, end_ids=fim.end_ids), CancelToken()
    )
    assert generation.text == ""
    assert generation.generated_tokens == 0


def test_the_api_key_is_sent_and_never_shown(tiny_model_path: Path, tmp_path: Path) -> None:
    key = "sk-team-" + "0123456789abcdef"
    engine = start_llama_cpp_server(
        tiny_model_path, tmp_path / "server.log", extra=("--api_key", key)
    )
    try:
        wrong = _backend(engine.url, api_key="not-the-key")
        assert wrong.problem is not None
        assert "401" in wrong.problem and "model.apiKey" in wrong.problem
        assert "not-the-key" not in wrong.problem
        backend = _backend(engine.url, api_key=key)
        assert backend.problem is None
        assert key not in repr(backend.options)
        prompt, fim = _prompt(backend.tokenizer)
        assert backend.generate(prompt, _policy(fim), CancelToken()).generated_tokens > 0
    finally:
        engine.stop()
