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
"""

from __future__ import annotations

import codecs
import ctypes
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegemma_lsp.engine import llama_log
from codegemma_lsp.engine.base import (
    BackendNotReady,
    CancelToken,
    EngineError,
    FimRequest,
    Generation,
    ModelLoadError,
    StopReason,
)
from codegemma_lsp.engine.lookup import draft_tokens
from codegemma_lsp.engine.snapshots import Snapshot, SnapshotStore
from codegemma_lsp.prompt import (
    END_OF_TURN,
    FILE_SEPARATOR,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    FimTokens,
    build_prompt,
    tokenize_plain,
)

if TYPE_CHECKING:
    import llama_cpp

DEFAULT_N_CTX = 4096
DEFAULT_N_BATCH = 256
UBATCH = 64


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
    ) -> None:
        self.use_mmap = use_mmap
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or physical_cores()
        self.n_batch = n_batch
        self.flash_attn = flash_attn
        self._lock = threading.Lock()
        self._llm: llama_cpp.Llama | None = None
        self._fim: FimTokens | None = None
        self._pieces: dict[int, bytes] = {}
        self._snapshots = SnapshotStore(snapshot_bytes)
        self._cancel: CancelToken | None = None
        """The running call's cancel flag, which llama.cpp's abort callback reads."""
        self._abort_callback: Any = None
        self._holder: str | None = None
        """The document whose prompt the live KV cache holds."""

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
    def fim_tokens(self) -> FimTokens:
        if self._fim is None:
            raise BackendNotReady(f"{self.model_name} is not loaded")
        return self._fim

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
            with log.deferred():
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
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            reason = (
                llama_log.failure_reason(log.problems_since(mark, errors_only=True))
                or llama_log.failure_reason(log.problems_since(mark))
                or str(exc)
            )
            raise ModelLoadError(f"cannot load model file {path}: {reason}") from exc
        try:
            fim = _find_fim_tokens(llm)
        except ModelLoadError as exc:
            llm.close()
            raise ModelLoadError(f"{path} is not a CodeGemma model: {exc}") from None

        # Checked by llama.cpp between graph nodes, so a cancel stops a prompt batch within
        # milliseconds instead of after it (a 256-token batch is seconds on a laptop CPU).
        def abort(_data: Any) -> bool:
            cancel = self._cancel
            # ``cancelled_at`` rather than ``cancelled``: this runs very often, and the
            # loop's own checks (once per batch and per token) are the ones to count.
            return cancel is not None and cancel.cancelled_at is not None

        self._abort_callback = llama_cpp.ggml_abort_callback(abort)
        log.aborting = lambda: abort(None)
        llama_cpp.llama_set_abort_callback(llm.ctx, self._abort_callback, None)
        with self._lock:
            previous, self._llm, self._fim, self._pieces = self._llm, llm, fim, {}
        if previous is not None:
            previous.close()

    def close(self) -> None:
        with self._lock:
            llm, self._llm, self._fim = self._llm, None, None
            self._snapshots = SnapshotStore(self._snapshots.budget_bytes)
            self._holder = None
        if llm is not None:
            llm.close()

    def complete(self, request: FimRequest, cancel: CancelToken) -> Generation:
        with self._lock:
            llm, fim = self._llm, self._fim
            if llm is None or fim is None:
                raise BackendNotReady(f"{self.model_name} is not loaded")
            self._cancel = cancel
            try:
                return self._complete(llm, fim, request, cancel)
            finally:
                self._cancel = None

    def _complete(
        self, llm: llama_cpp.Llama, fim: FimTokens, request: FimRequest, cancel: CancelToken
    ) -> Generation:
        """One greedy middle.

        ``evaluated_tokens`` counts the prompt tokens evaluated by this call
        (generated tokens are in ``generated_tokens``); ``prompt_ms`` includes
        tokenizing.
        """
        if cancel.cancelled:
            return Generation(text="", stop_reason="cancelled")
        started = time.perf_counter()
        self._switch_to(llm, request.key)
        if not request.reuse_cache:
            _forget_cache(llm)
        max_new = min(request.max_new_tokens, self.n_ctx // 2)
        prompt = build_prompt(
            self.tokenize_text,
            fim,
            request.parts,
            request.mode,
            max_tokens=self.n_ctx - max(max_new, 0),
        )
        evaluated = self._evaluate_prompt(llm, prompt, cancel)
        prompt_done = time.perf_counter()
        stop_reason: StopReason
        drafts = _Drafts()
        if llm.n_tokens < len(prompt):
            text, generated, stop_reason = "", 0, "cancelled"
        elif max_new <= 0:  # a pre-warm: the prompt is in the cache, nothing to generate
            text, generated, stop_reason = "", 0, "length"
        else:
            deadline = (
                prompt_done + request.time_budget_ms / 1000
                if request.time_budget_ms is not None
                else None
            )
            text, generated, stop_reason = self._generate(
                llm, fim, request, max_new, cancel, deadline, prompt, drafts
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

    def tokenize_text(self, text: str) -> list[int]:
        """User text to ids: no BOS, and no special tokens even for a literal marker."""
        llm = self._llm
        if llm is None:
            raise BackendNotReady(f"{self.model_name} is not loaded")

        def tokenize(piece: str) -> list[int]:
            # A lone surrogate (an editor can send one) cannot be encoded; it becomes "?".
            data = piece.encode("utf-8", errors="replace")
            return list(llm.tokenize(data, add_bos=False, special=False))

        return tokenize_plain(tokenize, text)

    def _evaluate_prompt(self, llm: llama_cpp.Llama, prompt: list[int], cancel: CancelToken) -> int:
        """Bring the KV cache to hold ``prompt``; return how many tokens were evaluated.

        The longest common prefix with what the cache holds is kept. At least
        the last prompt token is evaluated again, because its logits are needed
        and the cache does not keep them. Stops between batches once cancelled.
        """
        import llama_cpp

        cached = llm.input_ids[: llm.n_tokens].tolist()
        reuse = min(_common_prefix(cached, prompt), len(prompt) - 1)
        memory = llama_cpp.llama_get_memory(llm.ctx)
        if not llama_cpp.llama_memory_seq_rm(memory, 0, reuse, -1):
            # Only recurrent models refuse a partial trim; start over.
            llama_cpp.llama_memory_seq_rm(memory, 0, 0, -1)
            reuse = 0
        llm.n_tokens = reuse
        evaluated = 0
        batch: list[int] = []
        try:
            for start in range(reuse, len(prompt), self.n_batch):
                if cancel.cancelled:
                    break
                batch = prompt[start : start + self.n_batch]
                llm.eval(batch)
                evaluated += len(batch)
        except RuntimeError as exc:
            if cancel.cancelled:  # the abort callback stopped llama_decode mid-batch
                return evaluated + _keep_finished_ubatches(llm, batch)
            _forget_cache(llm)  # llama_decode failed; trust nothing in the cache
            raise EngineError(f"llama.cpp could not evaluate the prompt: {exc}") from exc
        return evaluated

    def _generate(
        self,
        llm: llama_cpp.Llama,
        fim: FimTokens,
        request: FimRequest,
        max_new: int,
        cancel: CancelToken,
        deadline: float | None,
        prompt: list[int],
        drafts: _Drafts,
    ) -> tuple[str, int, StopReason]:
        """Greedy decoding from the evaluated prompt: (text, tokens generated, stop reason).

        ``deadline`` (a ``perf_counter`` time) bounds generation, not the prompt: a
        cold prompt still gets evaluated, and is then warm for the next request.
        With ``request.lookup_tokens``, each step also feeds a prompt-lookup draft
        and keeps the tokens the model agrees with; the text is the same either way.
        """
        import llama_cpp
        import numpy as np

        n_vocab = llm.n_vocab()
        stop_ids = fim.stop_ids
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        lookup = request.lookup_tokens > 0
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
                return text, generated, "eos" if token in (fim.eos, fim.end_of_turn) else "fim"
            generated += 1
            if lookup:
                history.append(token)
            # Bytes of a character split across tokens wait in the decoder; an
            # unfinished character at the end is dropped, not shown as U+FFFD.
            piece = decoder.decode(self._piece(llm, token))
            text += piece
            finished: StopReason | None = None
            if "\n" in piece and request.stop_check is not None and request.stop_check(text):
                finished = "syntax"
            elif request.single_line and (end := single_line_end(text)) is not None:
                text, finished = text[:end], "newline"
            elif generated >= max_new:
                finished = "length"
            if finished is not None:
                if queued:
                    trim_cache(llm, llm.n_tokens - len(queued))
                return text, generated, finished
            if queued:
                continue  # the token is a draft the model agreed with: already evaluated
            draft = (
                draft_tokens(history, min(request.lookup_tokens, max_new - generated))[
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

    def _piece(self, llm: llama_cpp.Llama, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = _token_to_piece(llm, token)
            self._pieces[token] = piece
        return piece


@dataclass
class _Drafts:
    drafted: int = 0
    accepted: int = 0


def single_line_end(text: str) -> int | None:
    """Where a single-line completion ends: at the newline closing its first non-blank line.

    Blank lines and indentation before the first non-blank line are kept, so a
    middle that starts on the next line still gets that line.
    """
    start = 0
    while (newline := text.find("\n", start)) != -1:
        if text[start:newline].strip():
            return newline
        start = newline + 1
    return None


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


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _find_fim_tokens(llm: llama_cpp.Llama) -> FimTokens:
    """Look the FIM tokens up by their text, since another conversion may number them otherwise."""

    def single_id(text: str, *, required: bool = True) -> int | None:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if len(ids) == 1:
            return int(ids[0])
        if required:
            raise ModelLoadError(f"the vocabulary has no {text} token")
        return None

    def required_id(text: str) -> int:
        token = single_id(text)
        assert token is not None
        return token

    bos, eos = llm.token_bos(), llm.token_eos()
    if bos < 0 or eos < 0:
        raise ModelLoadError("the vocabulary has no <bos> or no <eos> token")
    return FimTokens(
        bos=bos,
        eos=eos,
        fim_prefix=required_id(FIM_PREFIX),
        fim_middle=required_id(FIM_MIDDLE),
        fim_suffix=required_id(FIM_SUFFIX),
        file_separator=required_id(FILE_SEPARATOR),
        end_of_turn=single_id(END_OF_TURN, required=False),
    )


def _token_to_piece(llm: llama_cpp.Llama, token: int) -> bytes:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    size = 64
    while True:
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, size, 0, False)
        if n >= 0:
            return buffer.raw[:n]
        size = -n  # too small: llama.cpp returns minus the size it needs


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
