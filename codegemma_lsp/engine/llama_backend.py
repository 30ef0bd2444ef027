"""CodeGemma through llama.cpp, in-process (llama-cpp-python 0.3.36).

The generation loop is our own rather than ``Llama.generate`` because it must
check the cancel flag between prompt batches, stop on token ids (the FIM
markers detokenize to "", so stop strings never fire), and decode greedily
without a sampler chain. It keeps ``Llama``'s own bookkeeping (``input_ids``,
``n_tokens``) true to what the KV cache holds, so prefix reuse stays correct
across calls, cancelled ones included.

What this relies on in llama-cpp-python, none of it documented API:

- ``Llama.n_tokens`` / ``Llama.input_ids``: the tokens the KV cache holds.
  ``Llama.eval`` appends to both and first drops KV cells past ``n_tokens``.
- ``Llama.eval`` with ``logits_all=False`` asks llama.cpp for logits of each
  batch's last token only; ``llama_get_logits_ith(ctx, -1)`` reads them.
- ``llama_memory_seq_rm`` on ``llama_get_memory(ctx)`` trims the cache to the
  reused prefix (what ``Llama.generate`` does through ``_ctx.kv_cache_seq_rm``).
- ``Llama.detokenize`` asserts a piece fits 32 bytes and would misread a longer
  one, so pieces are read with ``llama_token_to_piece`` directly.
- ``Llama._batch.set_batch`` and ``Llama._ctx.decode``: checking a prompt-lookup
  draft needs the logits of every token in its batch, which ``Llama.eval`` does
  not ask for unless the whole model was made with ``logits_all``.
- ``Llama`` takes no ``n_seq_max``: several candidates need a context with room for
  several sequences in one unified KV cache, so the load sets them in the default
  context parameters ``Llama`` starts from (:func:`_parallel_sequences`).

Several candidates (``policy.candidates`` > 1) share the prompt's KV cells: sequence 0
holds the prompt as always; ``llama_memory_seq_cp`` adds sequences 1..k-1 to the same
cells (a unified cache copies nothing), and one ``llama_batch`` per step decodes one
token of each candidate still going. Afterwards the other sequences' cells are removed,
so that sequence 0 and ``Llama``'s bookkeeping hold the prompt and the first candidate,
as after a single generation.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegemma_lsp.engine import llama_log
from codegemma_lsp.engine.base import (
    BackendNotReady,
    CancelToken,
    EngineError,
    Generation,
    GenerationPolicy,
    ModelLoadError,
    StopReason,
    common_prefix,
    single_line_end,
)
from codegemma_lsp.engine.lookup import draft_tokens
from codegemma_lsp.engine.snapshots import Snapshot, SnapshotStore
from codegemma_lsp.engine.weight_buffers import weights_off_amx

if TYPE_CHECKING:
    import llama_cpp

DEFAULT_N_CTX = 4096
REQUIRED_SPECIALS = ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|file_separator|>")
"""Special tokens a CodeGemma vocabulary has. The engine serves CodeGemma models, so it
refuses a model without them at load time; how prompts use them is the pipeline's business."""
# ggml_type ids (ggml.h), as llama_cpp.GGML_TYPE_* names them.
_KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}
DEFAULT_N_BATCH = 256
UBATCH = 64
MAX_CANDIDATES = 4
"""Sequences the context is made with room for: the most candidates one request gets."""


class LlamaBackend:
    """A :class:`~codegemma_lsp.engine.base.Backend` running a GGUF model through llama.cpp.

    Not thread-safe beyond one call at a time: the server runs every call on
    one inference thread, and a lock guards against anything else.
    """

    name = "llama.cpp"

    def __init__(
        self,
        *,
        model_path: Path,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_batch: int = DEFAULT_N_BATCH,
        flash_attn: bool = True,
        snapshot_bytes: int = 256 << 20,
        use_mmap: bool = False,
        gpu_layers: int | str = 0,
        kv_type: str = "f16",
    ) -> None:
        self.use_mmap = use_mmap
        self.gpu_layers = gpu_layers
        """0, a layer count, or ``auto``: every layer when llama.cpp can offload, else none."""
        self.kv_type = kv_type
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or physical_cores()
        self.n_batch = n_batch
        self.flash_attn = flash_attn
        self._lock = threading.Lock()
        self._llm: llama_cpp.Llama | None = None
        self._tokenizer: LlamaTokenizer | None = None
        self._snapshots = SnapshotStore(snapshot_bytes)
        self._cancel: CancelToken | None = None
        """The running call's cancel flag, which llama.cpp's abort callback reads."""
        self._evaluating = False
        """A prompt is being evaluated (not generated from): the abort callback reads it."""
        self._abort_callback: Any = None
        self._holder: str | None = None
        """The document whose prompt the live KV cache holds."""
        self.accelerated = False
        """Whether layers run on a GPU (known once loaded): several candidates are then cheap."""

    @property
    def model_name(self) -> str:
        return self.model_path.name

    def describe(self) -> str:
        return (
            f"{self.model_name} (llama.cpp, n_ctx={self.n_ctx}, "
            f"threads={self.n_threads}, batch={self.n_batch})"
        )

    @property
    def ready(self) -> bool:
        return self._llm is not None

    @property
    def llama(self) -> llama_cpp.Llama:
        """The loaded model, for benchmarks that time llama.cpp calls directly."""
        if self._llm is None:
            raise BackendNotReady(f"{self.model_name} is not loaded")
        return self._llm

    @property
    def tokenizer(self) -> LlamaTokenizer:
        if self._tokenizer is None:
            raise BackendNotReady(f"{self.model_name} is not loaded")
        return self._tokenizer

    def load(self) -> None:
        path = self.model_path
        if not path.exists():
            raise ModelLoadError(f"model file not found: {path}")
        if not path.is_file():
            raise ModelLoadError(f"model path is not a file: {path}")
        log = llama_log.install()
        import llama_cpp

        mark = log.mark()
        try:
            with (
                log.deferred(),
                _chat_templates_not_compiled(),
                _parallel_sequences(),
                weights_off_amx(path),
            ):
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    n_batch=self.n_batch,
                    # Small micro-batches: a cancel keeps every one finished before it.
                    n_ubatch=min(self.n_batch, UBATCH),
                    flash_attn=self.flash_attn,
                    use_mmap=self.use_mmap,
                    n_gpu_layers=resolve_gpu_layers(self.gpu_layers),
                    type_k=_KV_TYPES[self.kv_type],
                    type_v=_KV_TYPES[self.kv_type],
                    verbose=False,
                )
        except Exception as exc:  # whatever the loader raises, the message names the file
            reason = (
                llama_log.failure_reason(log.problems_since(mark, errors_only=True))
                or llama_log.failure_reason(log.problems_since(mark))
                or str(exc)
            )
            raise ModelLoadError(f"cannot load model file {path}: {reason}") from exc
        tokenizer = LlamaTokenizer(llm)
        try:
            check_vocabulary(tokenizer, llm)
        except ModelLoadError as exc:
            llm.close()
            raise ModelLoadError(f"{path} is not a CodeGemma model: {exc}") from None

        # Checked by llama.cpp between graph nodes, so a cancel stops a prompt batch within
        # milliseconds instead of after it (a 256-token batch is seconds on a laptop CPU).
        def abort(_data: Any) -> bool:
            cancel = self._cancel
            # ``cancelled_at`` rather than ``cancelled``: this runs very often, and the
            # loop's own checks (once per batch and per token) are the ones to count.
            # A superseded job finishes its prompt micro-batch (CancelToken.supersede).
            if cancel is None or cancel.cancelled_at is None:
                return False
            return not (cancel.finish_batch and self._evaluating)

        self._abort_callback = llama_cpp.ggml_abort_callback(abort)
        log.aborting = lambda: abort(None)
        llama_cpp.llama_set_abort_callback(llm.ctx, self._abort_callback, None)
        with self._lock:
            previous, self._llm, self._tokenizer = self._llm, llm, tokenizer
            self.accelerated = resolve_gpu_layers(self.gpu_layers) != 0
        if previous is not None:
            previous.close()

    def close(self) -> None:
        with self._lock:
            llm, self._llm, self._tokenizer = self._llm, None, None
            self._snapshots = SnapshotStore(self._snapshots.budget_bytes)
            self._holder = None
        if llm is not None:
            llm.close()

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        with self._lock:
            llm, tokenizer = self._llm, self._tokenizer
            if llm is None or tokenizer is None:
                raise BackendNotReady(f"{self.model_name} is not loaded")
            if len(prompt) >= self.n_ctx:
                raise EngineError(
                    f"a prompt of {len(prompt)} tokens leaves no room in n_ctx {self.n_ctx}"
                )
            self._cancel = cancel
            try:
                return self._generate_locked(llm, tokenizer, list(prompt), policy, cancel)
            finally:
                self._cancel = None

    def _generate_locked(
        self,
        llm: llama_cpp.Llama,
        tokenizer: LlamaTokenizer,
        prompt: list[int],
        policy: GenerationPolicy,
        cancel: CancelToken,
    ) -> Generation:
        """One greedy generation.

        ``evaluated_tokens`` counts the prompt tokens evaluated by this call
        (generated tokens are in ``generated_tokens``).
        """
        if cancel.cancelled:
            return Generation(text="", stop_reason="cancelled", prompt_tokens=len(prompt))
        started = time.perf_counter()
        self._switch_to(llm, policy.key)
        if not policy.reuse_cache:
            _forget_cache(llm)
        max_new = min(policy.max_new_tokens, self.n_ctx - len(prompt))
        evaluated = self._evaluate_prompt(llm, prompt, cancel)
        prompt_done = time.perf_counter()
        stop_reason: StopReason
        drafts = _Drafts()
        logprobs: list[float] = []
        alternatives: tuple[Generation, ...] = ()
        if llm.n_tokens < len(prompt):
            text, generated, stop_reason = "", 0, "cancelled"
        elif max_new <= 0:  # a pre-warm: the prompt is in the cache, nothing to generate
            text, generated, stop_reason = "", 0, "length"
        else:
            deadline = (
                prompt_done + policy.time_budget_ms / 1000
                if policy.time_budget_ms is not None
                else None
            )
            count = candidate_room(policy.candidates, len(prompt), max_new, self.n_ctx)
            if count > 1:
                text, generated, stop_reason, alternatives = self._generate_candidates(
                    llm, tokenizer, policy, max_new, cancel, deadline, count, logprobs
                )
            else:
                text, generated, stop_reason = self._generate(
                    llm, tokenizer, policy, max_new, cancel, deadline, prompt, drafts, logprobs
                )
        return Generation(
            text=text,
            stop_reason=stop_reason,
            prompt_tokens=len(prompt),
            evaluated_tokens=evaluated,
            generated_tokens=generated,
            prompt_ms=(prompt_done - started) * 1000,
            generate_ms=(time.perf_counter() - prompt_done) * 1000,
            drafted_tokens=drafts.drafted,
            accepted_drafts=drafts.accepted,
            logprobs=tuple(logprobs),
            alternatives=alternatives,
        )

    def _switch_to(self, llm: llama_cpp.Llama, key: str | None) -> None:
        """Make the live KV cache hold ``key``'s last prompt, saving the previous holder's."""
        if key == self._holder:
            return
        import llama_cpp

        if self._holder is not None and llm.n_tokens > 0 and self._snapshots.budget_bytes > 0:
            size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
            buffer = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(llm.ctx, buffer, size, 0)
            tokens = tuple(int(t) for t in llm.input_ids[: llm.n_tokens])
            self._snapshots.put(self._holder, Snapshot(tokens, bytes(buffer)[:written]))
        self._holder = key
        snapshot = self._snapshots.take(key) if key is not None else None
        if snapshot is None:
            return
        _forget_cache(llm)
        data = (ctypes.c_uint8 * len(snapshot.data)).from_buffer_copy(snapshot.data)
        if llama_cpp.llama_state_seq_set_data(llm.ctx, data, len(snapshot.data), 0) == 0:
            _forget_cache(llm)  # refused (a shape mismatch): start this document afresh
            return
        n = len(snapshot.tokens)
        llm.input_ids[:n] = snapshot.tokens
        llm.n_tokens = n

    def _evaluate_prompt(self, llm: llama_cpp.Llama, prompt: list[int], cancel: CancelToken) -> int:
        """Bring the KV cache to hold ``prompt``; return how many tokens were evaluated.

        The longest common prefix with what the cache holds is kept. At least
        the last prompt token is evaluated again, because its logits are needed
        and the cache does not keep them. Stops between batches once cancelled.
        """
        import llama_cpp

        cached = llm.input_ids[: llm.n_tokens].tolist()
        reuse = min(common_prefix(cached, prompt), len(prompt) - 1)
        memory = llama_cpp.llama_get_memory(llm.ctx)
        if not llama_cpp.llama_memory_seq_rm(memory, 0, reuse, -1):
            # Only recurrent models refuse a partial trim; start over.
            llama_cpp.llama_memory_seq_rm(memory, 0, 0, -1)
            reuse = 0
        llm.n_tokens = reuse
        evaluated = 0
        batch: list[int] = []
        # One micro-batch per call, so that a superseded job stops between them.
        step = min(self.n_batch, UBATCH)
        self._evaluating = True
        try:
            for start in range(reuse, len(prompt), step):
                if cancel.cancelled:
                    break
                batch = prompt[start : start + step]
                llm.eval(batch)
                evaluated += len(batch)
        except RuntimeError as exc:
            if cancel.cancelled:  # the abort callback stopped llama_decode mid-batch
                return evaluated + _keep_finished_ubatches(llm, batch)
            _forget_cache(llm)  # llama_decode failed; trust nothing in the cache
            raise EngineError(f"llama.cpp could not evaluate the prompt: {exc}") from exc
        finally:
            self._evaluating = False
        return evaluated

    def _generate(
        self,
        llm: llama_cpp.Llama,
        tokenizer: LlamaTokenizer,
        policy: GenerationPolicy,
        max_new: int,
        cancel: CancelToken,
        deadline: float | None,
        prompt: list[int],
        drafts: _Drafts,
        logprobs: list[float],
    ) -> tuple[str, int, StopReason]:
        """Greedy decoding from the evaluated prompt: (text, tokens generated, stop reason).

        ``deadline`` (a ``perf_counter`` time) bounds generation, not the prompt: a
        cold prompt still gets evaluated, and is then warm for the next request.
        With ``policy.lookup_tokens``, each step also feeds a prompt-lookup draft
        and keeps the tokens the model agrees with; the text is the same either way.
        Each generated token's log-probability is appended to ``logprobs``.
        """
        import llama_cpp
        import numpy as np

        n_vocab = llm.n_vocab()
        stop_ids = policy.stop_ids | policy.end_ids
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        lookup = policy.lookup_tokens > 0
        history = list(prompt) if lookup else []  # only drafts read it
        text = ""
        generated = 0
        # Logits to choose from: queued rows from a checked draft, else the last token's.
        queued: list[int] = []
        while True:
            if generated >= max_new or llm.n_tokens >= self.n_ctx:
                return text, generated, "length"
            if cancel.cancelled:
                return text, generated, "cancelled"
            if deadline is not None and time.perf_counter() > deadline:
                return text, generated, "time"
            row = queued.pop(0) if queued else -1
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llm.ctx, row), shape=(n_vocab,)
            )
            token = int(np.argmax(logits))
            if token not in stop_ids:
                logprobs.append(log_softmax_at(logits, token))
            if queued:
                # The draft token after ``row`` is already in the cache: keep it only if
                # the model chose it, else drop it and everything drafted after it.
                drafted = llm.input_ids[llm.n_tokens - len(queued)]
                if token == drafted:
                    drafts.accepted += 1
                else:
                    trim_cache(llm, llm.n_tokens - len(queued))
                    queued = []
            if token in stop_ids:
                if queued:
                    trim_cache(llm, llm.n_tokens - len(queued))
                return text, generated, "eos" if token in policy.end_ids else "stop"
            generated += 1
            if lookup:
                history.append(token)
            # Bytes of a character split across tokens wait in the decoder; an
            # unfinished character at the end is dropped, not shown as U+FFFD.
            piece = decoder.decode(tokenizer.piece(token))
            text += piece
            finished: StopReason | None = None
            if "\n" in piece and policy.stop_check is not None and policy.stop_check(text):
                finished = "syntax"
            elif policy.single_line and (end := single_line_end(text)) is not None:
                text, finished = text[:end], "newline"
            elif generated >= max_new:
                finished = "length"
            if policy.on_text is not None:
                policy.on_text(text)
            if finished is not None:
                if queued:
                    trim_cache(llm, llm.n_tokens - len(queued))
                return text, generated, finished
            if queued:
                continue  # the token is a draft the model agreed with: already evaluated
            draft = (
                draft_tokens(history, min(policy.lookup_tokens, max_new - generated))[
                    : max(0, self.n_ctx - llm.n_tokens - 1)
                ]
                if lookup
                else []
            )
            try:
                if draft:
                    drafts.drafted += len(draft)
                    eval_with_all_logits(llm, [token, *draft])
                    queued = list(range(len(draft) + 1))  # row i: what follows batch[i]
                else:
                    llm.eval([token])
            except RuntimeError as exc:
                if cancel.cancelled:
                    _keep_finished_ubatches(llm, [token, *draft])
                    return text, generated, "cancelled"
                _forget_cache(llm)
                raise EngineError(f"llama.cpp could not evaluate a token: {exc}") from exc

    def _generate_candidates(
        self,
        llm: llama_cpp.Llama,
        tokenizer: LlamaTokenizer,
        policy: GenerationPolicy,
        max_new: int,
        cancel: CancelToken,
        deadline: float | None,
        count: int,
        logprobs: list[float],
    ) -> tuple[str, int, StopReason, tuple[Generation, ...]]:
        """``count`` candidates from the evaluated prompt, decoded side by side.

        The first is greedy; each other starts with the next most likely first token
        (never an end token) and goes on greedily, in its own sequence over the shared
        prompt cells. Returns the first as ``_generate`` does, and the others.
        """
        import llama_cpp
        import numpy as np

        n_vocab = llm.n_vocab()
        stop_ids = policy.stop_ids | policy.end_ids
        memory = llama_cpp.llama_get_memory(llm.ctx)
        start = llm.n_tokens
        first_logits = np.array(
            np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        )
        firsts = first_tokens(first_logits, count, stop_ids)
        candidates = [_Candidate(seq) for seq in range(len(firsts))]
        batch = llama_cpp.llama_batch_init(len(candidates), 0, 1)
        try:
            for seq in range(1, len(candidates)):
                llama_cpp.llama_memory_seq_rm(memory, seq, -1, -1)
                llama_cpp.llama_memory_seq_cp(memory, 0, seq, -1, -1)
            choices = [
                (candidate, token, log_softmax_at(first_logits, token))
                for candidate, token in zip(candidates, firsts, strict=True)
            ]
            while True:
                going: list[tuple[_Candidate, int]] = []
                for candidate, token, logprob in choices:
                    if candidate.take(token, logprob, tokenizer, policy, max_new, stop_ids):
                        going.append((candidate, token))
                    if candidate.seq == 0 and policy.on_text is not None:
                        policy.on_text(candidate.text)
                if not going:
                    break
                if cancel.cancelled or (deadline is not None and time.perf_counter() > deadline):
                    reason: StopReason = "cancelled" if cancel.cancelled else "time"
                    for candidate, _ in going:
                        candidate.stop = reason
                    break
                batch.n_tokens = len(going)
                for i, (candidate, token) in enumerate(going):
                    batch.token[i] = token
                    batch.pos[i] = start + candidate.decoded
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = candidate.seq
                    batch.logits[i] = True
                status = llama_cpp.llama_decode(llm.ctx, batch)
                if status != 0:
                    if cancel.cancelled:  # the abort callback stopped it
                        for candidate, _ in going:
                            candidate.stop = "cancelled"
                        break
                    raise EngineError(f"llama.cpp could not evaluate the candidates: {status}")
                choices = []
                for i, (candidate, token) in enumerate(going):
                    candidate.decoded += 1
                    if candidate.seq == 0:
                        llm.input_ids[llm.n_tokens] = token
                        llm.n_tokens += 1
                    logits = np.ctypeslib.as_array(
                        llama_cpp.llama_get_logits_ith(llm.ctx, i), shape=(n_vocab,)
                    )
                    chosen = int(np.argmax(logits))
                    choices.append((candidate, chosen, log_softmax_at(logits, chosen)))
        except EngineError:
            _forget_cache(llm)  # llama_decode failed; trust nothing in the cache
            raise
        finally:
            for seq in range(1, len(candidates)):
                llama_cpp.llama_memory_seq_rm(memory, seq, -1, -1)
            # Sequence 0 keeps exactly what the bookkeeping says it holds.
            llama_cpp.llama_memory_seq_rm(memory, 0, llm.n_tokens, -1)
            llama_cpp.llama_batch_free(batch)
        first, others = candidates[0], candidates[1:]
        logprobs.extend(first.logprobs)
        alternatives = tuple(
            Generation(
                text=c.text,
                stop_reason=c.stop or "length",
                generated_tokens=c.generated,
                logprobs=tuple(c.logprobs),
            )
            for c in others
        )
        return first.text, first.generated, first.stop or "length", alternatives


class LlamaTokenizer:
    """A loaded vocabulary as a :class:`~codegemma_lsp.engine.base.Tokenizer`."""

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self._llm = llm
        self._pieces: dict[int, bytes] = {}
        self._special_pieces: dict[int, bytes] = {}

    @classmethod
    def from_file(cls, path: Path) -> LlamaTokenizer:
        """The tokenizer of a GGUF file, loading its vocabulary alone (no weights)."""
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        log = llama_log.install()
        import llama_cpp

        mark = log.mark()
        try:
            with log.deferred(), _chat_templates_not_compiled():
                llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
        except Exception as exc:  # whatever the loader raises, the message names the file
            reason = llama_log.failure_reason(log.problems_since(mark)) or str(exc)
            raise ModelLoadError(f"cannot load the vocabulary of {path}: {reason}") from exc
        return cls(llm)

    def tokenize(self, text: str) -> list[int]:
        if not text:
            return []
        # A lone surrogate (an editor can send one) cannot be encoded; it becomes "?".
        data = text.encode("utf-8", errors="replace")
        return [int(t) for t in self._llm.tokenize(data, add_bos=False, special=False)]

    def detokenize(self, ids: Sequence[int]) -> str:
        data = b"".join(self._special_piece(token) for token in ids)
        return data.decode("utf-8", errors="replace")

    def special_id(self, text: str) -> int | None:
        llm = self._llm
        for token in (llm.token_bos(), llm.token_eos()):
            if token >= 0 and self._special_piece(token) == text.encode("utf-8"):
                return int(token)
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return int(ids[0]) if len(ids) == 1 else None

    def piece(self, token: int) -> bytes:
        """The bytes of one generated token; control tokens are empty."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = _token_to_piece(self._llm, token, special=False)
            self._pieces[token] = piece
        return piece

    def _special_piece(self, token: int) -> bytes:
        piece = self._special_pieces.get(token)
        if piece is None:
            piece = _token_to_piece(self._llm, token, special=True)
            self._special_pieces[token] = piece
        return piece


def check_vocabulary(tokenizer: LlamaTokenizer, llm: llama_cpp.Llama) -> None:
    """Raise ModelLoadError unless the vocabulary has the tokens CodeGemma prompts need."""
    if llm.token_bos() < 0 or llm.token_eos() < 0:
        raise ModelLoadError("the vocabulary has no <bos> or no <eos> token")
    for text in REQUIRED_SPECIALS:
        if tokenizer.special_id(text) is None:
            raise ModelLoadError(f"the vocabulary has no {text} token")


@dataclass
class _Drafts:
    drafted: int = 0
    accepted: int = 0


@dataclass
class _Candidate:
    """One candidate's state while candidates are decoded side by side."""

    seq: int
    text: str = ""
    generated: int = 0
    decoded: int = 0
    """Its tokens in the KV cache, after the prompt."""
    stop: StopReason | None = None
    logprobs: list[float] = field(default_factory=list)
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    def take(
        self,
        token: int,
        logprob: float,
        tokenizer: LlamaTokenizer,
        policy: GenerationPolicy,
        max_new: int,
        stop_ids: frozenset[int],
    ) -> bool:
        """Add the chosen token, by the single generation's rules; True while it goes on."""
        if token in stop_ids:
            self.stop = "eos" if token in policy.end_ids else "stop"
            return False
        self.generated += 1
        self.logprobs.append(logprob)
        piece = self.decoder.decode(tokenizer.piece(token))
        self.text += piece
        if "\n" in piece and policy.stop_check is not None and policy.stop_check(self.text):
            self.stop = "syntax"
        elif policy.single_line and (end := single_line_end(self.text)) is not None:
            self.text, self.stop = self.text[:end], "newline"
        elif self.generated >= max_new:
            self.stop = "length"
        return self.stop is None


def candidate_room(wanted: int, prompt_tokens: int, max_new: int, n_ctx: int) -> int:
    """How many candidates to make: as many as wanted, up to :data:`MAX_CANDIDATES` and to
    what the KV cache has room for (each candidate's tokens take cells of their own)."""
    if wanted <= 1 or max_new <= 0:
        return 1
    room = (n_ctx - prompt_tokens) // max_new
    return max(1, min(wanted, MAX_CANDIDATES, room))


def first_tokens(logits: Any, count: int, stop_ids: frozenset[int]) -> list[int]:
    """The greedy first token, then the next most likely ones that do not end the text:
    the candidates' first tokens (fewer when the vocabulary runs short)."""
    import numpy as np

    greedy = int(np.argmax(logits))
    wanted = count - 1
    look = min(wanted + len(stop_ids) + 1, len(logits))
    top = np.argpartition(logits, -look)[-look:]
    ranked = [int(t) for t in top[np.argsort(-logits[top])]]
    others = [t for t in ranked if t != greedy and t not in stop_ids][:wanted]
    return [greedy, *others]


def log_softmax_at(logits: Any, token: int) -> float:
    """The log-probability of ``token`` under the softmax of one row of logits."""
    import numpy as np

    peak = float(np.max(logits))
    return float(logits[token]) - peak - float(np.log(np.sum(np.exp(logits - peak))))


@contextlib.contextmanager
def _parallel_sequences() -> Iterator[None]:
    """Make the context with room for :data:`MAX_CANDIDATES` sequences in one unified KV
    cache (a split cache would give each sequence a fraction of ``n_ctx``). ``Llama``
    starts its context parameters from ``llama_context_default_params``, so the load
    changes those; :data:`_LOADING` (held by the chat-template patch) serialises loads."""
    import llama_cpp.llama_cpp as low_level  # the module ``Llama`` reads it from

    original = low_level.llama_context_default_params

    def parallel() -> Any:
        params = original()
        params.n_seq_max = MAX_CANDIDATES
        params.kv_unified = True
        return params

    low_level.llama_context_default_params = parallel
    try:
        yield
    finally:
        low_level.llama_context_default_params = original


def _keep_finished_ubatches(llm: llama_cpp.Llama, batch: list[int]) -> int:
    """After an aborted ``llama_decode``: the micro-batches it finished stay in the KV cache
    (llama.h) but ``Llama.eval`` counted none of them. Count them, so the next request
    reuses that work, and drop anything past them; returns how many tokens were kept."""
    import llama_cpp

    memory = llama_cpp.llama_get_memory(llm.ctx)
    kept = int(llama_cpp.llama_memory_seq_pos_max(memory, 0)) + 1 - llm.n_tokens
    kept = max(0, min(kept, len(batch)))
    if kept:
        llm.input_ids[llm.n_tokens : llm.n_tokens + kept] = batch[:kept]
        llm.n_tokens += kept
    llama_cpp.llama_memory_seq_rm(memory, 0, llm.n_tokens, -1)
    return kept


def eval_with_all_logits(llm: llama_cpp.Llama, tokens: list[int]) -> None:
    """``Llama.eval`` for one short batch, asking llama.cpp for every token's logits."""
    llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
    llm._batch.set_batch(batch=tokens, n_past=llm.n_tokens, logits_all=True)
    llm._ctx.decode(llm._batch)
    llm.input_ids[llm.n_tokens : llm.n_tokens + len(tokens)] = tokens
    llm.n_tokens += len(tokens)


def trim_cache(llm: llama_cpp.Llama, keep: int) -> None:
    """Drop every cached token from position ``keep`` on."""
    import llama_cpp

    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx), 0, keep, -1)
    llm.n_tokens = keep


def _forget_cache(llm: llama_cpp.Llama) -> None:
    import llama_cpp

    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx), 0, 0, -1)
    llm.n_tokens = 0


def _token_to_piece(llm: llama_cpp.Llama, token: int, *, special: bool) -> bytes:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    size = 64
    while True:
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, size, 0, special)
        if n >= 0:
            return buffer.raw[:n]
        size = -n  # too small: llama.cpp returns minus the size it needs


_LOADING = threading.Lock()


class _UncompiledChatTemplate:
    """Stands in for llama-cpp-python's ``Jinja2ChatFormatter`` while a model loads.

    ``Llama()`` compiles every ``tokenizer.chat_template*`` in the file as Jinja. One that
    does not compile fails the whole load, and one that does is attack surface
    (CVE-2024-34359 ran code through them) for a feature a completion server never uses.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def to_chat_handler(self) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("codegemma-lsp does not render chat templates")

        return refuse


@contextlib.contextmanager
def _chat_templates_not_compiled() -> Iterator[None]:
    """Load without compiling chat templates (``Llama`` looks the formatter up on its
    module at load time). The lock keeps two loads from restoring each other's patch."""
    import llama_cpp.llama_chat_format as chat_format

    with _LOADING:
        original = chat_format.Jinja2ChatFormatter
        chat_format.Jinja2ChatFormatter = _UncompiledChatTemplate  # type: ignore[misc,assignment]
        try:
            yield
        finally:
            chat_format.Jinja2ChatFormatter = original  # type: ignore[misc]


def quantize_model(source: Path, target: Path, *, ftype: int, threads: int = 0) -> int:
    """Quantize a GGUF file with llama.cpp (``threads`` 0: all cores); llama.cpp's status."""
    llama_log.install()  # llama.cpp's progress lines go to logging, not the terminal
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    return int(
        llama_cpp.llama_model_quantize(
            str(source).encode(), str(target).encode(), ctypes.byref(params)
        )
    )


def physical_cores() -> int:
    """Physical cores this process may run on: llama.cpp gains nothing from SMT siblings."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    logical = len(allowed) if allowed else (os.cpu_count() or 1)
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return logical
    cores: set[tuple[str, str]] = set()
    for block in cpuinfo.split("\n\n"):
        fields = {
            key.strip(): value.strip()
            for key, _, value in (line.partition(":") for line in block.splitlines())
        }
        if "processor" not in fields or "core id" not in fields:
            continue
        if allowed is None or int(fields["processor"]) in allowed:
            cores.add((fields.get("physical id", ""), fields["core id"]))
    return len(cores) or logical


def resolve_gpu_layers(setting: int | str) -> int:
    """``model.gpuLayers`` as llama.cpp's n_gpu_layers: ``auto`` is all (-1) when this
    build can offload to a GPU, else 0."""
    if setting != "auto":
        return int(setting)
    import llama_cpp

    return -1 if llama_cpp.llama_supports_gpu_offload() else 0
