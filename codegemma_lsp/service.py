"""The completion service: which requests reach the model, and which do not need it.

It sits between the LSP handlers and the pipeline. For each request it:

1. cancels the previous request for the same document (the newest wins);
2. answers from the suggestion cache when the user typed what was suggested;
3. joins a precomputed completion already running for the same place;
4. otherwise runs :func:`~codegemma_lsp.completion.run_completion` on the
   inference thread, with the document's last window carried through the edits
   made since, so the prompt's start stays put and its KV cache is reused.

It also pre-warms a document's prompt when it opens and precomputes the next
suggestion after an accept, both as background work that yields to requests.
Every request leaves a :class:`~codegemma_lsp.stats.RequestRecord`, and so does
each piece of background work: a cancelled job's record is written when the job
stops, so the tokens it evaluated before it saw its cancel are counted too.
No pygls here: the server translates LSP to these calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from codegemma_lsp.completion import (
    CompletionOutcome,
    CompletionQuery,
    carry_window,
    plan_completion,
    run_completion,
)
from codegemma_lsp.config import Settings
from codegemma_lsp.documents import Document, DocumentSnapshot
from codegemma_lsp.engine.base import CancelToken, Generation
from codegemma_lsp.engine.host import ModelHost
from codegemma_lsp.engine.worker import InferenceWorker
from codegemma_lsp.stats import RequestRecord, Source, Stats
from codegemma_lsp.suggestions import SuggestionStore
from codegemma_lsp.syntax.cutpoints import Window

log = logging.getLogger(__name__)

current_request_id: ContextVar[int | str | None] = ContextVar("request_id", default=None)
"""The JSON-RPC id of the request being handled: the server sets it, records carry it."""


@dataclass(frozen=True)
class Answer:
    text: str
    suggestion_id: int


@dataclass
class _Precompute:
    revision: int
    cursor: int
    future: asyncio.Future[CompletionOutcome]


class CompletionService:
    def __init__(
        self,
        host: ModelHost,
        worker: InferenceWorker,
        stats: Stats,
        settings: Callable[[], Settings],
    ) -> None:
        self.host = host
        self.worker = worker
        self.stats = stats
        self.settings = settings
        self.suggestions = SuggestionStore()
        self._windows: dict[str, tuple[int, Window]] = {}
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._precomputed: dict[str, _Precompute] = {}
        self.context_files: Callable[[DocumentSnapshot], tuple[tuple[str, str], ...]] | None = None
        """Repository context for a document, set by the server when it has a workspace."""

    def _context(
        self, snapshot: DocumentSnapshot
    ) -> Callable[[], tuple[tuple[str, str], ...]] | None:
        provider = self.context_files
        if provider is None:
            return None
        return lambda: provider(snapshot)

    # ----- requests -------------------------------------------------------------

    async def complete(self, document: Document, cursor: int, path: str | None) -> Answer | None:
        """The completion at ``cursor``; raises CancelledError when a newer request won."""
        received = time.perf_counter()
        uri = document.uri
        previous = self._inflight.get(uri)
        if previous is not None and not previous.done():
            previous.cancel()
        current = asyncio.current_task()
        if current is not None:
            self._inflight[uri] = current
        try:
            return await self._complete(document, cursor, path, received, current_request_id.get())
        finally:
            if self._inflight.get(uri) is current:
                del self._inflight[uri]

    async def _complete(
        self,
        document: Document,
        cursor: int,
        path: str | None,
        received: float,
        request_id: int | str | None,
    ) -> Answer | None:
        settings = self.settings()
        uri = document.uri
        if settings.engine.cache:
            hit = self.suggestions.lookup(uri, document.text, cursor)
            if hit is not None:
                item, rest = hit
                elapsed = (time.perf_counter() - received) * 1000
                self.stats.record(
                    RequestRecord(uri, "cache", elapsed, overhead_ms=elapsed, request_id=request_id)
                )
                return Answer(rest, item.id)
        backend = self.host.backend
        if backend is None:
            log.debug("no completion: model %s", self.host.status.state)
            return None
        snapshot = document.snapshot()
        joined = self._joinable_precompute(document, cursor)
        job: Future[CompletionOutcome] | None = None
        token: CancelToken | None = None
        before_ms = (time.perf_counter() - received) * 1000
        try:
            if joined is not None:
                outcome = await asyncio.shield(joined)
            else:
                query = CompletionQuery(snapshot, cursor, path, self._previous_window(document))
                context = self._context(snapshot)
                job, token = self.worker.submit(
                    uri, lambda cancel: run_completion(backend, query, settings, cancel, context)
                )
                outcome = await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            total = (time.perf_counter() - received) * 1000
            record = RequestRecord(uri, "model", total, cancelled=True, request_id=request_id)
            if job is None or token is None:
                self.stats.record(record)  # it joined background work, which records itself
            else:
                token.cancel()
                self._record_when_stopped(job, record, snapshot.revision)
            raise
        after = time.perf_counter()
        self._remember_window(uri, snapshot.revision, outcome)
        if outcome.cancelled:
            # Superseded on the worker side before this task saw its cancel.
            total = (time.perf_counter() - received) * 1000
            record = RequestRecord(uri, "model", total, cancelled=True, request_id=request_id)
            self.stats.record(_with_generation(record, outcome.generation))
            raise asyncio.CancelledError
        handler_ms = before_ms + (time.perf_counter() - after) * 1000
        self._record(uri, outcome, received, handler_ms, request_id)
        if not outcome.text:
            return None
        added = self.suggestions.add(uri, snapshot.text, cursor, outcome.text)
        return Answer(outcome.text, added.id)

    def _record_when_stopped(
        self, job: Future[CompletionOutcome], record: RequestRecord, revision: int
    ) -> None:
        """Record a cancelled job once it has stopped, with the tokens it evaluated.

        Its window is remembered as well: its prompt, or the part evaluated before
        the cancel, is what the KV cache now holds, so the next request should
        keep that window's cuts.
        """
        loop = asyncio.get_running_loop()

        def stopped(done: Future[CompletionOutcome]) -> None:
            outcome = None if done.cancelled() or done.exception() is not None else done.result()
            if outcome is None:
                self.stats.record(record)
                return
            self.stats.record(_with_generation(record, outcome.generation))
            self._remember_window(record.uri, revision, outcome)

        def on_worker_thread(done: Future[CompletionOutcome]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is exiting
                loop.call_soon_threadsafe(stopped, done)

        job.add_done_callback(on_worker_thread)

    def _joinable_precompute(
        self, document: Document, cursor: int
    ) -> asyncio.Future[CompletionOutcome] | None:
        pending = self._precomputed.get(document.uri)
        if pending is None or pending.future.done():
            return None
        if pending.revision == document.revision and pending.cursor == cursor:
            return pending.future
        return None

    def _previous_window(self, document: Document) -> Window | None:
        """The last window chosen for this document, moved through the edits made since."""
        stored = self._windows.get(document.uri)
        if stored is None:
            return None
        revision, window = stored
        edits = document.edits_since(revision)
        return None if edits is None else carry_window(window, edits)

    def _remember_window(self, uri: str, revision: int, outcome: CompletionOutcome) -> None:
        if outcome.plan.window is not None:
            current = self._windows.get(uri)
            if current is None or current[0] <= revision:
                self._windows[uri] = (revision, outcome.plan.window)

    def _record(
        self,
        uri: str,
        outcome: CompletionOutcome,
        received: float,
        handler_ms: float,
        request_id: int | str | None,
    ) -> None:
        generation = outcome.generation or Generation("", "length")
        timings = outcome.timings_ms
        llama_ms = generation.prompt_ms + generation.generate_ms - timings.get("stop_check", 0.0)
        overhead = handler_ms + sum(timings.get(k, 0.0) for k in ("plan", "truncate", "stop_check"))
        record = RequestRecord(
            uri=uri,
            source="model" if outcome.generation is not None else "none",
            total_ms=(time.perf_counter() - received) * 1000,
            llama_ms=llama_ms,
            overhead_ms=overhead,
            prompt_tokens=generation.prompt_tokens,
            evaluated_tokens=generation.evaluated_tokens,
            generated_tokens=generation.generated_tokens,
            prompt_ms=generation.prompt_ms,
            generate_ms=generation.generate_ms,
            stop_reason=generation.stop_reason if outcome.generation else "-",
            request_id=request_id,
            drafted_tokens=generation.drafted_tokens,
            accepted_drafts=generation.accepted_drafts,
        )
        self.stats.record(record)
        plan = outcome.plan
        window = plan.window
        log.info(
            "completion scope=%s(%s) cut=%s kept=%s prompt_tokens=%d evaluated=%d generated=%d "
            "stop=%s chars=%d total_ms=%.1f llama_ms=%.1f overhead_ms=%.1f",
            plan.scope.value,
            plan.reason,
            window.kind if window else "-",
            window.prefix.kept if window else "-",
            record.prompt_tokens,
            record.evaluated_tokens,
            record.generated_tokens,
            record.stop_reason,
            len(outcome.text),
            record.total_ms,
            record.llama_ms,
            record.overhead_ms,
        )
        if self.settings().log.code:
            log.info("completion text: %r", outcome.text)

    # ----- background work ------------------------------------------------------

    def prewarm(self, document: Document, path: str | None) -> None:
        """Evaluate the document's prompt up to its end, so the first request is warm."""
        settings = self.settings()
        backend = self.host.backend
        if not settings.engine.prewarm or backend is None:
            return
        snapshot = document.snapshot()
        plan = plan_completion(
            CompletionQuery(snapshot, len(snapshot.text), path), settings, force=True
        )
        if plan.request is None:
            return
        request = replace(plan.request, max_new_tokens=0, stop_check=None)
        context = self._context(snapshot)

        def warm(cancel: CancelToken) -> Generation:
            started = time.perf_counter()
            files = context() if context is not None else ()
            generation = backend.complete(replace(request, context=files), cancel)
            # On the inference thread: a deque append is atomic, so no hop to the loop.
            self._record_background(document.uri, "prewarm", started, generation)
            return generation

        self.worker.submit(f"prewarm:{document.uri}", warm, background=True)

    def accepted(self, document: Document, suggestion_id: int, path: str | None) -> None:
        """After an accept, precompute the suggestion that follows the accepted text."""
        settings = self.settings()
        backend = self.host.backend
        item = self.suggestions.get(document.uri, suggestion_id)
        if item is None or backend is None or not settings.engine.cache:
            return
        end = item.accepted_end(document.text)
        if end is None:
            return
        snapshot = document.snapshot()
        query = CompletionQuery(snapshot, end, path, self._previous_window(document))
        context = self._context(snapshot)
        future, _ = self.worker.submit(
            f"next:{document.uri}",
            lambda cancel: run_completion(backend, query, settings, cancel, context),
            background=True,
        )
        wrapped = asyncio.wrap_future(future)
        self._precomputed[document.uri] = _Precompute(snapshot.revision, end, wrapped)

        started = time.perf_counter()

        def store(done: asyncio.Future[CompletionOutcome]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            outcome = done.result()
            self._record_background(document.uri, "precompute", started, outcome.generation)
            self._remember_window(document.uri, snapshot.revision, outcome)
            if outcome.text and not outcome.cancelled:
                self.suggestions.add(document.uri, snapshot.text, end, outcome.text)

        wrapped.add_done_callback(store)

    def _record_background(
        self, uri: str, source: Source, started: float, generation: Generation | None
    ) -> None:
        total = (time.perf_counter() - started) * 1000
        cancelled = generation is not None and generation.stop_reason == "cancelled"
        record = RequestRecord(uri, source, total, cancelled=cancelled)
        self.stats.record(_with_generation(record, generation))

    def forget(self, uri: str) -> None:
        self.worker.cancel(uri)
        self.worker.cancel(f"prewarm:{uri}")
        self.worker.cancel(f"next:{uri}")
        self._windows.pop(uri, None)
        self._precomputed.pop(uri, None)
        self.suggestions.forget(uri)

    def reset(self) -> None:
        """Drop everything that came from the previous model."""
        self.cancel_all()
        self.suggestions = SuggestionStore()
        self._windows.clear()
        self._precomputed.clear()

    def cancel_all(self) -> None:
        self.worker.cancel_all()
        for task in list(self._inflight.values()):
            task.cancel()


def _with_generation(record: RequestRecord, generation: Generation | None) -> RequestRecord:
    """``record`` with the token counts and llama.cpp time of ``generation``."""
    if generation is None:
        return record
    return replace(
        record,
        llama_ms=generation.prompt_ms + generation.generate_ms,
        prompt_tokens=generation.prompt_tokens,
        evaluated_tokens=generation.evaluated_tokens,
        generated_tokens=generation.generated_tokens,
        prompt_ms=generation.prompt_ms,
        generate_ms=generation.generate_ms,
        stop_reason=generation.stop_reason,
        drafted_tokens=generation.drafted_tokens,
        accepted_drafts=generation.accepted_drafts,
    )
