"""The llama.cpp backend, on a tiny CodeGemma-format model the tests write themselves."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from codegemma_lsp import modelgen
from codegemma_lsp.engine import llama_log
from codegemma_lsp.engine.base import (
    BackendNotReady,
    CancelToken,
    EngineError,
    Generation,
    GenerationPolicy,
    ModelLoadError,
)
from codegemma_lsp.engine.llama_backend import (
    DEFAULT_N_BATCH,
    DEFAULT_N_CTX,
    LlamaBackend,
    LlamaTokenizer,
    physical_cores,
    single_line_end,
)
from codegemma_lsp.prompt import FimTokens, build_psm, context_budget, tokenize_plain

PREFIX = "def total(values):\n    result = 0\n    for value in values:\n        "
SUFFIX = "\n    return result\n"


# -- pure helpers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("abc", None, id="no-newline"),
        pytest.param("abc\ndef", 3, id="first-line"),
        pytest.param("\n  x\ny", 4, id="leading-newline-kept"),
        pytest.param("  \n\t\n x\n", 7, id="blank-lines-kept"),
        pytest.param("\n\n", None, id="only-blank-lines"),
        pytest.param("", None, id="empty"),
    ],
)
def test_single_line_end(text: str, expected: int | None) -> None:
    assert single_line_end(text) == expected


def test_physical_cores_is_positive() -> None:
    assert physical_cores() >= 1


# enum ggml_log_level: DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5
@pytest.mark.parametrize(
    ("fragments", "problems"),
    [
        pytest.param([(2, "loaded meta data\n")], [], id="info-is-no-problem"),
        pytest.param([(4, "bad thing\n")], ["bad thing"], id="error"),
        pytest.param([(3, "odd thing\n")], ["odd thing"], id="warning"),
        pytest.param([(4, "bad "), (5, "thing\n")], ["bad thing"], id="continued"),
        pytest.param([(4, "one\ntwo\n")], ["one", "two"], id="two-lines"),
        pytest.param([(4, "unterminated")], ["unterminated"], id="flushed-when-read"),
        pytest.param([(2, "."), (5, "."), (5, ".\n")], [], id="progress-dots"),
    ],
)
def test_llama_log_assembles_lines(fragments: list[tuple[int, str]], problems: list[str]) -> None:
    log = llama_log.LlamaLog()
    mark = log.mark()
    for level, text in fragments:
        log.feed(level, text)
    assert log.problems_since(mark) == problems


def test_llama_log_keeps_only_problems_after_the_mark() -> None:
    log = llama_log.LlamaLog(capacity=2)
    log.feed(4, "old\n")
    mark = log.mark()
    log.feed(3, "warned\n")
    log.feed(4, "failed\n")
    assert log.problems_since(mark) == ["warned", "failed"]
    assert log.problems_since(mark, errors_only=True) == ["failed"]


def test_llama_log_defers_records_until_the_block_ends(caplog: pytest.LogCaptureFixture) -> None:
    log = llama_log.LlamaLog()
    with caplog.at_level(logging.DEBUG, logger="codegemma_lsp.llama"):
        with log.deferred():
            log.feed(4, "during\n")
            assert caplog.messages == []
        assert caplog.messages == ["during"]
        assert caplog.records[0].levelno == logging.WARNING


def test_llama_log_demotes_the_errors_of_an_abort(caplog: pytest.LogCaptureFixture) -> None:
    log = llama_log.LlamaLog()
    mark = log.mark()
    aborting = [True]
    log.aborting = lambda: aborting[0]
    with caplog.at_level(logging.DEBUG, logger="codegemma_lsp.llama"):
        log.feed(4, "decode: failed to decode, ret = 2\n")
        aborting[0] = False
        log.feed(4, "real trouble\n")
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.WARNING]
    assert log.problems_since(mark) == ["real trouble"]


@pytest.mark.parametrize(
    ("problems", "reason"),
    [
        pytest.param(
            [
                "gguf_init_from_reader: invalid magic characters: 'this', expected 'GGUF'",
                "llama_model_load: error loading model: llama_model_loader: failed to load "
                "model from /x.gguf",
                "llama_model_load_from_file_impl: failed to load model",
            ],
            "invalid magic characters: 'this', expected 'GGUF'",
            id="not-gguf",
        ),
        pytest.param(
            [
                "llama_model_load: error loading model: unknown model architecture: 'notanarch'",
                "llama_model_load_from_file_impl: failed to load model",
            ],
            "unknown model architecture: 'notanarch'",
            id="wrong-arch",
        ),
        pytest.param(["llama_model_load_from_file_impl: failed to load model"], None, id="generic"),
        pytest.param([], None, id="nothing"),
        pytest.param(["a: x", "b: x", "no prefix here"], "x; no prefix here", id="deduplicated"),
    ],
)
def test_failure_reason(problems: list[str], reason: str | None) -> None:
    assert llama_log.failure_reason(problems) == reason


# -- with a model ---------------------------------------------------------------


@dataclass(frozen=True)
class PsmRequest:
    """A PSM middle to fill, and how: what the pipeline hands the engine, in one place."""

    prefix: str
    suffix: str
    path: str | None = None
    max_new_tokens: int = 64
    single_line: bool = False
    key: str | None = None
    reuse_cache: bool = True
    time_budget_ms: float | None = None
    lookup_tokens: int = 0
    stop_check: Callable[[str], bool] | None = field(default=None, compare=False)


def complete(backend: LlamaBackend, request: PsmRequest, cancel: CancelToken) -> Generation:
    """The pipeline's way: PSM ids fitted to the backend's n_ctx, then ``generate``."""
    fim = FimTokens.lookup(backend.tokenizer)
    budget, max_new = context_budget(backend.n_ctx, request.max_new_tokens)
    prompt = build_psm(
        backend.tokenizer, fim, request.prefix, request.suffix, request.path, budget=budget
    )
    policy = GenerationPolicy(
        max_new_tokens=max_new,
        end_ids=fim.end_ids,
        stop_ids=fim.stop_ids,
        single_line=request.single_line,
        time_budget_ms=request.time_budget_ms,
        stop_check=request.stop_check,
        key=request.key,
        reuse_cache=request.reuse_cache,
        lookup_tokens=request.lookup_tokens,
    )
    return backend.generate(prompt, policy, cancel)


def make_backend(
    path: Path, *, n_ctx: int = DEFAULT_N_CTX, n_batch: int = DEFAULT_N_BATCH
) -> LlamaBackend:
    pytest.importorskip("llama_cpp")
    # One thread: on a small shared machine, llama.cpp's thread barrier makes timings erratic.
    backend = LlamaBackend(model_path=path, n_ctx=n_ctx, n_threads=1, n_batch=n_batch)
    backend.load()
    return backend


@pytest.fixture
def backend(tiny_model_path: Path) -> Iterator[LlamaBackend]:
    backend = make_backend(tiny_model_path)
    yield backend
    backend.close()


class CancelAfter(CancelToken):
    """Cancelled from another thread once the flag has been read ``checks`` times."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks
        self._reads = 0

    @property
    def cancelled(self) -> bool:
        self._reads += 1
        if self._reads == self.checks:
            canceller = threading.Thread(target=self.cancel)
            canceller.start()
            canceller.join()
        return super().cancelled


@pytest.mark.model
def test_load_finds_the_fim_tokens_by_text(backend: LlamaBackend) -> None:
    assert backend.ready
    assert backend.name == "llama.cpp"
    assert backend.model_name == "tiny-codegemma.gguf"
    assert "tiny-codegemma.gguf" in backend.describe()
    vocabulary = modelgen.codegemma_like_vocabulary()
    fim = FimTokens.lookup(backend.tokenizer)
    assert fim.fim_prefix == vocabulary.id_of("<|fim_prefix|>")
    assert fim.fim_middle == vocabulary.id_of("<|fim_middle|>")
    assert fim.fim_suffix == vocabulary.id_of("<|fim_suffix|>")
    assert fim.file_separator == vocabulary.id_of("<|file_separator|>")
    assert fim.end_of_turn == vocabulary.id_of("<end_of_turn>")
    assert (fim.bos, fim.eos) == (2, 1)


@pytest.mark.model
def test_complete_returns_text(backend: LlamaBackend) -> None:
    generation = complete(
        backend, PsmRequest(PREFIX, SUFFIX, "pkg/mod.py", max_new_tokens=16), CancelToken()
    )
    assert generation.text.strip()
    assert generation.stop_reason == "length"
    assert generation.generated_tokens == 16
    assert generation.evaluated_tokens == generation.prompt_tokens > 10
    assert generation.prompt_ms > 0
    assert generation.generate_ms > 0


@pytest.mark.model
def test_empty_prefix_and_suffix_still_generate(backend: LlamaBackend) -> None:
    generation = complete(backend, PsmRequest("", "", max_new_tokens=8), CancelToken())
    assert generation.prompt_tokens == 4
    assert generation.text.strip()


@pytest.mark.model
def test_typing_more_reuses_the_cached_prefix(backend: LlamaBackend) -> None:
    first = complete(backend, PsmRequest(PREFIX * 10, SUFFIX, max_new_tokens=4), CancelToken())
    second = complete(
        backend, PsmRequest(PREFIX * 10 + "result", SUFFIX, max_new_tokens=4), CancelToken()
    )
    assert first.evaluated_tokens == first.prompt_tokens > 150
    suffix_and_markers = len(backend.tokenizer.tokenize(SUFFIX)) + 2
    # The prefix's last token (its indentation) may merge differently with the typed word.
    retokenized = 1
    assert second.evaluated_tokens <= (
        retokenized + len(backend.tokenizer.tokenize("result")) + suffix_and_markers
    )
    assert second.prompt_tokens == first.prompt_tokens + 1


@pytest.mark.model
def test_the_same_request_again_evaluates_one_token(backend: LlamaBackend) -> None:
    request = PsmRequest(PREFIX, SUFFIX, max_new_tokens=12)
    first = complete(backend, request, CancelToken())
    again = complete(backend, request, CancelToken())
    assert again.evaluated_tokens == 1
    assert again.text == first.text


@pytest.mark.model
def test_cache_reuse_gives_what_a_fresh_model_gives(tiny_model_path: Path) -> None:
    requests = [
        PsmRequest(PREFIX, SUFFIX, "a.py"),
        PsmRequest(PREFIX + "res", SUFFIX, "a.py"),
        PsmRequest(PREFIX + "res", SUFFIX + "# end\n", "a.py"),
        PsmRequest(PREFIX, "", "b.py"),
    ]
    warm = make_backend(tiny_model_path)
    try:
        reused = [complete(warm, request, CancelToken()) for request in requests]
    finally:
        warm.close()
    assert [g.evaluated_tokens < g.prompt_tokens for g in reused] == [False, True, True, True]
    for request, generation in zip(requests, reused, strict=True):
        fresh = make_backend(tiny_model_path, n_batch=7)
        try:
            assert complete(fresh, request, CancelToken()).text == generation.text
        finally:
            fresh.close()


@pytest.mark.model
def test_prompt_lookup_drafts_change_nothing_but_the_work(tiny_model_path: Path) -> None:
    # Repetitive code, so drafts from the prompt (and the tiny model's own loops) match.
    prefix = PREFIX.replace("        ", "        result = result + value\n" * 4 + "        ")
    requests = [
        PsmRequest(prefix, SUFFIX, "a.py", max_new_tokens=48),
        PsmRequest(prefix + "result", SUFFIX, "a.py", max_new_tokens=48),
        PsmRequest(prefix, "", "a.py", max_new_tokens=48, single_line=True),
        PsmRequest(PREFIX, SUFFIX, "b.py", max_new_tokens=48),
    ]
    plain, drafted = make_backend(tiny_model_path), make_backend(tiny_model_path)
    try:
        without = [complete(plain, request, CancelToken()) for request in requests]
        with_lookup = [
            complete(drafted, replace(request, lookup_tokens=6), CancelToken())
            for request in requests
        ]
    finally:
        plain.close()
        drafted.close()
    assert [g.text for g in with_lookup] == [g.text for g in without]
    assert [g.stop_reason for g in with_lookup] == [g.stop_reason for g in without]
    assert [g.generated_tokens for g in with_lookup] == [g.generated_tokens for g in without]
    assert sum(g.accepted_drafts for g in with_lookup) > 0
    assert all(g.drafted_tokens == 0 for g in without)
    # The cache left behind holds what it claims: reuse still matches a fresh model.
    assert [g.evaluated_tokens for g in with_lookup] == [g.evaluated_tokens for g in without]


@pytest.mark.model
def test_single_line_stops_at_the_end_of_the_first_line(backend: LlamaBackend) -> None:
    # This prompt makes the tiny model (seed 0) write a newline within a few tokens.
    request = PsmRequest("import os\n", "", single_line=True, max_new_tokens=200)
    generation = complete(backend, request, CancelToken())
    assert generation.stop_reason == "newline"
    assert generation.text.strip()
    assert "\n" not in generation.text
    multi = complete(backend, PsmRequest("import os\n", "", max_new_tokens=200), CancelToken())
    assert multi.text.startswith(generation.text + "\n")


@pytest.mark.model
def test_cancel_before_start_does_no_work(backend: LlamaBackend) -> None:
    cancel = CancelToken()
    cancel.cancel()
    started = time.perf_counter()
    generation = complete(backend, PsmRequest(PREFIX * 50, SUFFIX), cancel)
    assert time.perf_counter() - started < 0.05
    assert generation.stop_reason == "cancelled"
    assert generation.text == ""
    assert generation.evaluated_tokens == 0


@pytest.mark.model
def test_cancel_during_the_prompt_stops_between_batches(tiny_model_path: Path) -> None:
    backend = make_backend(tiny_model_path, n_batch=16)
    try:
        request = PsmRequest(PREFIX * 20, SUFFIX)
        # Read once before the prompt, then once before each batch: the fifth read,
        # before the fourth batch, sees the cancel.
        cancelled = complete(backend, request, CancelAfter(checks=5))
        assert cancelled.stop_reason == "cancelled"
        assert cancelled.evaluated_tokens == 3 * 16
        assert cancelled.generated_tokens == 0
        # What was evaluated stays in the cache; the next call evaluates the rest.
        resumed = complete(backend, request, CancelToken())
        assert resumed.evaluated_tokens == resumed.prompt_tokens - 3 * 16
        assert resumed.stop_reason != "cancelled"
    finally:
        backend.close()


class ReadSignal(CancelToken):
    """Sets ``evaluating`` once the flag is read for the second time: before the first batch."""

    def __init__(self) -> None:
        super().__init__()
        self.evaluating = threading.Event()
        self._reads = 0

    @property
    def cancelled(self) -> bool:
        self._reads += 1
        if self._reads == 2:
            self.evaluating.set()
        return super().cancelled


@pytest.mark.model
def test_cancel_from_another_thread_during_a_long_prompt(tiny_model_path: Path) -> None:
    backend = make_backend(tiny_model_path, n_batch=4, n_ctx=8192)
    try:
        request = PsmRequest(PREFIX * 300, SUFFIX)
        cancel = ReadSignal()

        def cancel_soon() -> None:
            cancel.evaluating.wait()
            time.sleep(0.01)
            cancel.cancel()

        canceller = threading.Thread(target=cancel_soon)
        canceller.start()
        generation = complete(backend, request, cancel)
        canceller.join()
        assert generation.stop_reason == "cancelled"
        assert 0 < generation.evaluated_tokens < generation.prompt_tokens
        assert generation.evaluated_tokens % 4 == 0
    finally:
        backend.close()


@pytest.mark.model
def test_cancel_during_generation_keeps_what_was_generated(backend: LlamaBackend) -> None:
    request = PsmRequest(PREFIX, SUFFIX, max_new_tokens=50)
    # One read before the prompt, one per batch (one here), then one per token.
    generation = complete(backend, request, CancelAfter(checks=2 + 6))
    assert generation.stop_reason == "cancelled"
    assert generation.generated_tokens == 5
    full = complete(backend, request, CancelToken())
    assert full.text.startswith(generation.text)


@pytest.mark.model
def test_prompt_is_cut_to_the_context(tiny_model_path: Path) -> None:
    backend = make_backend(tiny_model_path, n_ctx=256)
    try:
        generation = complete(
            backend, PsmRequest(PREFIX * 100, SUFFIX * 100, max_new_tokens=32), CancelToken()
        )
        assert generation.prompt_tokens <= 256 - 32
        assert generation.generated_tokens == 32
    finally:
        backend.close()


@pytest.mark.model
def test_a_literal_marker_in_the_text_is_not_the_control_token(backend: LlamaBackend) -> None:
    fim = FimTokens.lookup(backend.tokenizer)
    text = "x = '<|fim_prefix|><|fim_middle|><|file_separator|><eos>'\n"
    ids = tokenize_plain(backend.tokenizer.tokenize, text)
    assert not set(ids) & (fim.stop_ids | {fim.bos})
    prompt = build_psm(backend.tokenizer, fim, text, text, None)
    assert prompt.count(fim.fim_prefix) == prompt.count(fim.fim_middle) == 1
    assert complete(backend, PsmRequest(text, text, max_new_tokens=4), CancelToken()).text


@pytest.mark.model
@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("s = '日本語 é 🙂'\n", id="multibyte-through-byte-fallback"),
        pytest.param("s = '\ud800'\n", id="lone-surrogate"),
    ],
)
def test_any_text_can_be_completed(backend: LlamaBackend, prefix: str) -> None:
    generation = complete(backend, PsmRequest(prefix, "", max_new_tokens=4), CancelToken())
    assert generation.generated_tokens == 4
    assert generation.text.encode("utf-8")


@pytest.mark.model
def test_no_new_tokens_asked_for(backend: LlamaBackend) -> None:
    generation = complete(backend, PsmRequest(PREFIX, SUFFIX, max_new_tokens=0), CancelToken())
    assert (generation.text, generation.stop_reason, generation.generated_tokens) == (
        "",
        "length",
        0,
    )


@pytest.mark.model
def test_close_makes_it_not_ready(tiny_model_path: Path) -> None:
    backend = make_backend(tiny_model_path)
    backend.close()
    assert not backend.ready
    with pytest.raises(BackendNotReady):
        complete(backend, PsmRequest("a", "b"), CancelToken())
    backend.close()


def test_complete_before_load_is_not_ready(tmp_path: Path) -> None:
    backend = LlamaBackend(model_path=tmp_path / "m.gguf")
    assert not backend.ready
    with pytest.raises(BackendNotReady):
        complete(backend, PsmRequest("a", "b"), CancelToken())


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.gguf"
    with pytest.raises(ModelLoadError, match=r"^model file not found: .*missing\.gguf$"):
        LlamaBackend(model_path=path).load()


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model path is not a file"):
        LlamaBackend(model_path=tmp_path).load()


@pytest.mark.model
@pytest.mark.parametrize(
    ("write", "reason"),
    [
        pytest.param(
            modelgen.write_not_gguf,
            "invalid magic characters: 'this', expected 'GGUF'",
            id="not-gguf",
        ),
        pytest.param(
            modelgen.write_wrong_arch, "unknown model architecture: 'notanarch'", id="wrong-arch"
        ),
    ],
)
def test_load_failure_names_the_file_and_llama_cpp_s_reason(
    tmp_path: Path, write: Callable[[Path], Path], reason: str
) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    path = write(tmp_path / "broken.gguf")
    with pytest.raises(ModelLoadError) as error:
        LlamaBackend(model_path=path, n_threads=1).load()
    assert str(error.value) == f"cannot load model file {path}: {reason}"


@pytest.mark.model
def test_truncated_file_says_so(tmp_path: Path, tiny_model_path: Path) -> None:
    path = tmp_path / "truncated.gguf"
    path.write_bytes(tiny_model_path.read_bytes()[: tiny_model_path.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="not within the file bounds"):
        make_backend(path)


@pytest.mark.model
def test_a_model_without_fim_tokens_is_not_codegemma(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    path = modelgen.write_tiny_gemma_without_fim(tmp_path / "gemma.gguf")
    with pytest.raises(ModelLoadError) as error:
        make_backend(path)
    assert str(error.value) == (
        f"{path} is not a CodeGemma model: the vocabulary has no <|fim_prefix|> token"
    )


@pytest.mark.model
def test_switching_documents_restores_the_previous_snapshot(backend: LlamaBackend) -> None:
    a = PsmRequest(PREFIX * 10, SUFFIX, "a.py", max_new_tokens=2, key="a")
    b = PsmRequest("const x = 1;\n" * 10, "", "b.js", max_new_tokens=2, key="b")
    complete(backend, a, CancelToken())
    complete(backend, b, CancelToken())
    back_to_a = complete(backend, a, CancelToken())
    assert back_to_a.prompt_tokens > 50
    assert back_to_a.evaluated_tokens <= 2


@pytest.mark.model
def test_without_reuse_the_whole_prompt_is_evaluated(backend: LlamaBackend) -> None:
    request = PsmRequest(PREFIX, SUFFIX, max_new_tokens=2)
    complete(backend, request, CancelToken())
    again = complete(backend, replace(request, reuse_cache=False), CancelToken())
    assert again.evaluated_tokens == again.prompt_tokens


@pytest.mark.model
def test_time_budget_stops_generation(backend: LlamaBackend) -> None:
    request = PsmRequest(PREFIX, SUFFIX, max_new_tokens=4000, time_budget_ms=0)
    generation = complete(backend, request, CancelToken())
    assert generation.stop_reason == "time"
    assert generation.generated_tokens <= 1


@pytest.mark.model
def test_stop_check_ends_generation_at_a_line_end(backend: LlamaBackend) -> None:
    seen: list[str] = []

    def stop(text: str) -> bool:
        seen.append(text)
        return True

    request = PsmRequest("import os\n", "", max_new_tokens=200, stop_check=stop)
    generation = complete(backend, request, CancelToken())
    assert generation.stop_reason == "syntax"
    assert seen and "\n" in seen[0]


@pytest.mark.model
def test_max_new_tokens_zero_only_warms_the_cache(backend: LlamaBackend) -> None:
    warm = complete(backend, PsmRequest(PREFIX * 5, SUFFIX, max_new_tokens=0), CancelToken())
    assert warm.text == "" and warm.generated_tokens == 0 and warm.evaluated_tokens > 0
    after = complete(backend, PsmRequest(PREFIX * 5, SUFFIX, max_new_tokens=2), CancelToken())
    assert after.evaluated_tokens <= 1


@pytest.mark.model
def test_a_cancel_interrupts_a_prompt_batch_in_the_middle(tiny_model_path: Path) -> None:
    # One batch holds the whole prompt, so only llama.cpp's abort callback can stop it early.
    backend = make_backend(tiny_model_path, n_batch=2048)
    try:
        cancel = CancelToken()
        request = PsmRequest(PREFIX * 60, SUFFIX, max_new_tokens=4)
        timer = threading.Timer(0.001, cancel.cancel)
        timer.start()
        generation = complete(backend, request, cancel)
        timer.join()
        assert generation.stop_reason == "cancelled"
        after = complete(backend, request, CancelToken())
        assert after.stop_reason != "cancelled"
        # Micro-batches finished before the abort are kept (how many depends on the
        # machine's speed); nothing else is, and nothing kept is evaluated twice.
        assert generation.evaluated_tokens < after.prompt_tokens
        assert generation.evaluated_tokens + after.evaluated_tokens == after.prompt_tokens
    finally:
        backend.close()


@pytest.mark.model
def test_an_interrupted_batch_keeps_its_finished_micro_batches(tiny_model_path: Path) -> None:
    backend = make_backend(tiny_model_path, n_batch=2048)
    try:
        request = PsmRequest(PREFIX * 60, SUFFIX, max_new_tokens=4)
        full = complete(backend, request, CancelToken()).prompt_ms
        backend.close()
        backend.load()
        cancel = CancelToken()
        timer = threading.Timer(full / 2000, cancel.cancel)  # about halfway through
        timer.start()
        interrupted = complete(backend, request, cancel)
        timer.join()
        after = complete(backend, request, CancelToken())
        # What the interrupted call finished is not evaluated again.
        assert interrupted.evaluated_tokens + after.evaluated_tokens <= after.prompt_tokens + 1
    finally:
        backend.close()


@pytest.mark.model
def test_the_tokenizer_decodes_special_tokens_as_their_text(backend: LlamaBackend) -> None:
    tokenizer = backend.tokenizer
    fim = FimTokens.lookup(tokenizer)
    text = "def f(x):\n    return x  # 日本\n"
    prompt = build_psm(tokenizer, fim, text, "", "a.py")
    assert (
        tokenizer.detokenize(prompt)
        == f"<bos>a.py\n<|fim_prefix|>{text}<|fim_suffix|><|fim_middle|>"
    )
    assert tokenizer.special_id("<|fim_prefix|>") == fim.fim_prefix
    assert tokenizer.special_id("no such token") is None


@pytest.mark.model
def test_the_vocabulary_alone_tokenizes_as_the_loaded_model(
    backend: LlamaBackend, tiny_model_path: Path
) -> None:
    alone = LlamaTokenizer.from_file(tiny_model_path)
    text = "for value in values:\n    total += value\n"
    assert alone.tokenize(text) == backend.tokenizer.tokenize(text)
    assert FimTokens.lookup(alone) == FimTokens.lookup(backend.tokenizer)


@pytest.mark.model
def test_a_prompt_that_leaves_no_room_is_refused(tiny_model_path: Path) -> None:
    backend = make_backend(tiny_model_path, n_ctx=256)
    try:
        with pytest.raises(EngineError, match="leaves no room"):
            backend.generate([2] * 256, GenerationPolicy(), CancelToken())
    finally:
        backend.close()
