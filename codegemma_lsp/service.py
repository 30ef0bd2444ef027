"""The completion service: which requests reach the model, and which do not need it.

It sits between the LSP handlers and the pipeline. For each request it:

1. cancels the previous request for the same document (the newest wins);
2. answers from the suggestion cache when the user typed what was suggested;
3. joins a precomputed completion already running for the same place, or the
   generation an earlier request started when the user has typed a start of what it
   is producing (:mod:`codegemma_lsp.running`: it goes on instead of being cancelled);
4. otherwise runs :func:`~codegemma_lsp.completion.run_completion` on the
   inference thread, with the document's last window carried through the edits
   made since, so the prompt's start stays put and its KV cache is reused.

The repository context comes from the :data:`~codegemma_lsp.completion.ContextProvider`
given to the constructor (the server's workspace index), which the pipeline calls
itself. It also pre-warms a document's prompt when it opens and precomputes the
next suggestion after an accept, both as background work that yields to requests.

Pacing (:mod:`codegemma_lsp.pacing`): the settings each request runs with have their
auto values set from the machine's speed (measured at load) and the user's pauses
between edits (:meth:`CompletionService.edited`). A block is answered by its first
line and its rest generated in the background, where multi-line pays
(:mod:`codegemma_lsp.first_line`); a request at the place the rest is for waits for
it instead of starting afresh. After an answer, once the user has paused, the prompt
of the likely next place (the next line) is evaluated in the background.
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
from functools import partial
from typing import Any

from codegemma_lsp.block_rest import (
    generate_rest,
    has_rest,
    next_line_prompt,
    shows_first_line,
    whole_block,
)
from codegemma_lsp.completion import (
    CompletionOutcome,
    CompletionQuery,
    ContextProvider,
    carry_window,
    run_completion,
)
from codegemma_lsp.config import Settings
from codegemma_lsp.documents import Document, DocumentSnapshot
from codegemma_lsp.engine.base import Backend, CancelToken, EngineError, Generation
from codegemma_lsp.engine.host import ModelHost
from codegemma_lsp.engine.worker import InferenceWorker
from codegemma_lsp.first_line import next_line_insert
from codegemma_lsp.oracle import OracleBook
from codegemma_lsp.pacing import (
    PAUSE_MIN_MS,
    Pacing,
    PauseTracker,
    derive_pacing,
    paced_settings,
    pins_of,
)
from codegemma_lsp.running import Progress, RunningGeneration
from codegemma_lsp.stats import RequestRecord, Source, Stats
from codegemma_lsp.suggestions import CONTEXT_CHARS, Suggestion, SuggestionStore
from codegemma_lsp.syntax.cutpoints import Window, shift_window
from codegemma_lsp.syntax.scope import Scope

log = logging.getLogger(__name__)

current_request_id: ContextVar[int | str | None] = ContextVar("request_id", default=None)
"""The JSON-RPC id of the request being handled: the server sets it, records carry it."""


@dataclass(frozen=True)
class Answer:
    text: str
    suggestion_id: int
    others: tuple[tuple[str, int], ...] = ()
    """The other candidates to cycle through: (text, suggestion id), in order."""

    @property
    def items(self) -> list[tuple[str, int]]:
        return [(self.text, self.suggestion_id), *self.others]

    @classmethod
    def of(cls, found: list[tuple[Suggestion, str]]) -> Answer:
        """The answer from cache hits: (suggestion, text to insert), first one first."""
        (first, text), *others = found
        return cls(text, first.id, tuple((rest, item.id) for item, rest in others))


NOTHING = Answer("", 0)
"""Waiting for work at a place ended where the model had nothing to offer (silence)."""


@dataclass
class _Precompute:
    revision: int
    cursor: int
    future: asyncio.Future[CompletionOutcome]


@dataclass
class _Rest:
    """A block's rest being generated after its first line (``first``) was shown."""

    first: Suggestion
    future: asyncio.Future[CompletionOutcome | None]


def offers_nothing(outcome: CompletionOutcome) -> bool:
    """The model ran to its own end and left nothing to show: the same prompt would
    again (greedy decoding), so the place can be answered from memory. A time or a
    cancel cut it short of that, and a declined place never ran the model."""
    generation = outcome.generation
    return (
        not outcome.text
        and not outcome.cancelled
        and generation is not None
        and generation.stop_reason not in ("time", "cancelled")
    )


WARM_AFTER_S = PAUSE_MIN_MS / 1000
"""How long the user must pause after an answer before the next place is warmed."""
NEXT_LINE_MAX_CHARS = 50_000
"""The next line is computed on a copy of the document, parsed afresh on the inference
thread: past this size the parse could hold up a request."""


class CompletionService:
    def __init__(
        self,
        host: ModelHost,
        worker: InferenceWorker,
        stats: Stats,
        settings: Callable[[], Settings],
        context: ContextProvider | None = None,
    ) -> None:
        self.host = host
        self.worker = worker
        self.stats = stats
        self.settings = settings
        self.context = context
        """The repository context of a snapshot (None: no context)."""
        self.suggestions = SuggestionStore()
        self._windows: dict[str, tuple[int, Window]] = {}
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._precomputed: dict[str, _Precompute] = {}
        self._rests: dict[str, _Rest] = {}
        self._running: dict[str, RunningGeneration] = {}
        """Each document's request generation while it runs (:mod:`codegemma_lsp.running`)."""
        self._warm_timers: dict[str, asyncio.TimerHandle] = {}
        self._speculations: set[asyncio.Task[None]] = set()
        """Eager starts (:meth:`speculate`), held until done: the loop keeps only weak ones."""
        self.pauses = PauseTracker()
        self.oracle: OracleBook | None = None
        """Benchmark only (``serve --bench-oracle``): what the typist types next."""
        self._pacing: Pacing | None = None
        self.on_slow: Callable[[float], None] | None = None
        """Called once (per model) when the median latency passes ``completion.slowMs``."""
        self._slow_warned = False

    # ----- pacing ---------------------------------------------------------------

    def edited(self, uri: str, at: float | None = None) -> None:
        """An edit arrived: a pause ends; a warm-up of the next place is now stale."""
        self.pauses.edited(time.perf_counter() if at is None else at)
        timer = self._warm_timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        self.worker.cancel(f"warm:{uri}")

    def pacing(self) -> Pacing:
        """The budgets for this machine and this user now (pinned settings kept)."""
        speed = getattr(self.host.status, "speed", None)
        pacing = derive_pacing(speed, self.pauses.median_ms(), pins_of(self.settings()))
        if pacing != self._pacing:
            # The time budget follows every few pauses; the rest changes once per load.
            same = (
                self._pacing is not None
                and replace(self._pacing, time_budget_ms=pacing.time_budget_ms) == pacing
            )
            log.log(logging.DEBUG if same else logging.INFO, "pacing: %s", pacing.describe())
            self._pacing = pacing
        return pacing

    def paced_settings(self) -> Settings:
        """The settings with their auto values set by :meth:`pacing`."""
        return paced_settings(self.settings(), self.pacing())

    # ----- requests -------------------------------------------------------------

    async def complete(self, document: Document, cursor: int, path: str | None) -> Answer | None:
        """The completion at ``cursor``; raises CancelledError when a newer request won."""
        received = time.perf_counter()
        current = asyncio.current_task()
        self._take_inflight(document.uri, current)
        try:
            return await self._complete(document, cursor, path, received, current_request_id.get())
        finally:
            self._release_inflight(document.uri, current)

    def _take_inflight(self, uri: str, task: asyncio.Task[Any] | None) -> None:
        """``task`` is now the document's request: the one before it is cancelled."""
        previous = self._inflight.get(uri)
        if previous is not None and previous is not task and not previous.done():
            previous.cancel()
        if task is not None:
            self._inflight[uri] = task

    def _release_inflight(self, uri: str, task: asyncio.Task[Any] | None) -> None:
        if self._inflight.get(uri) is task:
            del self._inflight[uri]

    async def _complete(
        self,
        document: Document,
        cursor: int,
        path: str | None,
        received: float,
        request_id: int | str | None,
        *,
        eager: bool = False,
    ) -> Answer | None:
        settings = self.paced_settings()
        uri = document.uri
        model: Source = "eager" if eager else "model"
        timer = self._warm_timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        if settings.engine.cache:
            hits = self.suggestions.lookup_candidates(uri, document.text, cursor)
            if hits:
                elapsed = (time.perf_counter() - received) * 1000
                record = RequestRecord.from_generation(
                    uri, "cache", elapsed, None, handler_ms=elapsed, request_id=request_id
                )
                self.stats.record(replace(record, shown_candidates=len(hits)))
                return Answer.of(hits)
            if self.suggestions.silent_at(uri, document.text, cursor):
                elapsed = (time.perf_counter() - received) * 1000
                self.stats.record(
                    RequestRecord.from_generation(
                        uri, "cache", elapsed, None, handler_ms=elapsed, request_id=request_id
                    )
                )
                return None
        backend = self.host.backend
        if backend is None:
            log.debug("no completion: model %s", self.host.status.state)
            return None
        block_rest = self._joinable_rest(document, cursor) if settings.engine.cache else None
        if block_rest is not None:
            answer = await self._answer_from_rest(
                block_rest, document, cursor, received, request_id
            )
            if answer is not None:
                return None if answer is NOTHING else answer
        running = self._running.get(uri) if settings.engine.cache else None
        if running is not None and running.joinable(document.text, cursor):
            answer = await self._join(running, document, cursor, received, request_id)
            if answer is not None:
                return None if answer is NOTHING else answer
            # It was cut short where what was typed leaves nothing to show: start anew.
        snapshot = document.snapshot()
        joined = self._joinable_precompute(document, cursor)
        job: Future[CompletionOutcome] | None = None
        token: CancelToken | None = None
        mine: RunningGeneration | None = None
        before_ms = (time.perf_counter() - received) * 1000
        try:
            if joined is not None:
                outcome = await asyncio.shield(joined)
            else:
                query = CompletionQuery(
                    snapshot,
                    cursor,
                    path,
                    self._previous_window(document),
                    first_line=settings.completion.multi_line == "on",
                    oracle=self._oracle_at(document, cursor),
                )
                progress = Progress()
                job, token = self.worker.submit(
                    uri, self._answer_job(query, backend, settings, snapshot, progress)
                )
                mine = RunningGeneration.at(snapshot.text, cursor, job, token, progress)
                self._running[uri] = mine
                outcome = await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            total = (time.perf_counter() - received) * 1000
            if job is None or token is None:
                # It joined background work, which records itself.
                record = RequestRecord.from_generation(
                    uri, model, total, None, cancelled=True, request_id=request_id
                )
                self.stats.record(record)
            else:
                orphaned = self._orphan(mine, document)
                if not orphaned:
                    token.supersede()
                # Only an orphan's candidates are cached when it stops, so only its callback
                # keeps the text (joined: 1 MB for a big file); a storm queues hundreds.
                then = partial(
                    self._orphan_done, uri, mine, snapshot.text if orphaned else None, cursor
                )
                self._record_when_stopped(
                    job, uri, total, request_id, snapshot.revision, then, source=model
                )
                del query, then
            # The CancelledError's traceback keeps this frame until the cycle collector
            # runs (the task holds the error): let go of the document version it was for.
            del snapshot
            raise
        except EngineError as exc:
            self._settle(uri, mine)
            # The engine failed (a remote server down or refusing): no ghost text. A
            # remote backend has put the reason in codegemma/status; the record counts it.
            log.warning("no completion: %s", exc)
            total = (time.perf_counter() - received) * 1000
            record = RequestRecord.from_generation(uri, model, total, None, request_id=request_id)
            self.stats.record(replace(record, stop_reason="error"))
            return None
        after = time.perf_counter()
        self._remember_window(uri, snapshot.revision, outcome)
        if outcome.cancelled or not outcome.texts:
            self._settle(uri, mine)
        if outcome.cancelled:
            # Superseded on the worker side before this task saw its cancel.
            total = (time.perf_counter() - received) * 1000
            self.stats.record(
                RequestRecord.from_generation(
                    uri,
                    model,
                    total,
                    outcome.generation,
                    stages_ms=outcome.timings_ms,
                    cancelled=True,
                    request_id=request_id,
                )
            )
            raise asyncio.CancelledError
        handler_ms = before_ms + (time.perf_counter() - after) * 1000
        self._record(uri, outcome, received, handler_ms, request_id, eager=eager)
        if not outcome.text:
            if settings.engine.cache and offers_nothing(outcome):
                self.suggestions.add_silence(uri, snapshot.text, cursor)
            if outcome.plan.scope is Scope.LINE:
                self._precompute_next_line(document, snapshot, cursor, path, settings, backend)
            return None
        added, *others = self.suggestions.add_candidates(
            uri, snapshot.text, cursor, list(outcome.texts)
        )
        self._settle(uri, mine)
        if has_rest(outcome):
            self._start_rest(added, snapshot, outcome, backend)
        else:
            self._schedule_warm(document, snapshot, cursor, outcome, backend)
        return Answer(added.text, added.id, tuple((s.text, s.id) for s in others))

    def eager_start(self) -> bool:
        """Whether edits start the coming request's work (``engine.eagerStart``)."""
        engine = self.paced_settings().engine
        return engine.eager_start == "on" and engine.cache and engine.kv_reuse

    def speculate(self, document: Document, cursor: int, path: str | None) -> None:
        """An edit left the cursor, most likely, at ``cursor``: start the completion the
        editor is about to ask for there (``engine.eagerStart``, see :mod:`pacing`).

        It runs as a request would, and the newest wins, so the request it foresaw finds
        it running (and joins it) or done (and is answered from the cache); a request
        elsewhere supersedes it. Nothing starts where a running generation can still
        serve the cursor, or the cache or a block's rest already does."""
        if not self.eager_start() or self.host.backend is None:
            return
        uri = document.uri
        running = self._running.get(uri)
        if running is not None and running.joinable(document.text, cursor):
            return
        if self.suggestions.lookup(uri, document.text, cursor) is not None:
            return
        if self.suggestions.silent_at(uri, document.text, cursor):
            return
        if self._joinable_rest(document, cursor) is not None:
            return

        received = time.perf_counter()

        async def eager() -> None:
            try:
                await self._complete(document, cursor, path, received, None, eager=True)
            except asyncio.CancelledError:
                pass
            finally:
                self._release_inflight(uri, task)

        task = asyncio.ensure_future(eager())
        # Taken now, not when the task first runs: a request that follows at once (the
        # editor sends its pending edits just before it asks) must find and cancel it.
        self._take_inflight(uri, task)
        self._speculations.add(task)
        task.add_done_callback(self._speculations.discard)

    def _oracle_at(self, document: Document, cursor: int) -> str | None:
        if self.oracle is None:
            return None
        return self.oracle.typed_at(document.uri, document.revision, cursor)

    def _answer_job(
        self,
        query: CompletionQuery,
        backend: Backend,
        settings: Settings,
        snapshot: DocumentSnapshot,
        progress: Progress | None = None,
    ) -> Callable[[CancelToken], CompletionOutcome]:
        """The request's work on the inference thread: the pipeline, and, for a block whose
        first line cannot stand alone, the rest of the block right after it. ``progress``
        sees the first candidate's text as it is generated, for joins."""
        context = self.context
        on_text = progress.update if progress is not None else None

        def job(cancel: CancelToken) -> CompletionOutcome:
            outcome = run_completion(query, backend, settings, cancel, context, on_text=on_text)
            if has_rest(outcome) and not shows_first_line(outcome, snapshot):
                rest = generate_rest(outcome, snapshot, backend, cancel)
                if rest is not None and rest.generation is not None:
                    outcome = whole_block(outcome, rest)
            return outcome

        return job

    # ----- first line first -------------------------------------------------------

    def _start_rest(
        self,
        first: Suggestion,
        snapshot: DocumentSnapshot,
        outcome: CompletionOutcome,
        backend: Backend,
    ) -> None:
        """Generate the rest of a block whose first line was just answered, in the
        background; when done, the whole block replaces the line in the cache."""
        uri = snapshot.uri
        future, _ = self.worker.submit(
            f"rest:{uri}",
            lambda cancel: generate_rest(outcome, snapshot, backend, cancel),
            background=True,
        )
        rest = _Rest(first, asyncio.wrap_future(future))
        self._track_rest(uri, rest, snapshot.text, first.anchor, "")

    def _joinable_rest(
        self, document: Document, cursor: int
    ) -> asyncio.Future[CompletionOutcome | None] | None:
        """The rest being generated for this place: the user accepted or typed the first
        line (and perhaps a newline and indentation), and nothing else changed."""
        pending = self._rests.get(document.uri)
        if pending is None or pending.future.done():
            return None
        first = pending.first
        typed = document.text[first.anchor : cursor]
        if cursor < first.anchor or not typed.startswith(first.text):
            return None
        if typed[len(first.text) :].strip() or not first.rest_is_context(document.text, cursor):
            return None
        return pending.future

    async def _answer_from_rest(
        self,
        rest: asyncio.Future[CompletionOutcome | None],
        document: Document,
        cursor: int,
        received: float,
        request_id: int | str | None,
    ) -> Answer | None:
        """Wait for the rest of the block (or the next line), then answer from the cache it
        filled; None when it left nothing there (cut short, or superseded): the request
        then goes on as any other, its prompt warm."""
        uri = document.uri
        waited = time.perf_counter()
        try:
            await asyncio.wait([rest])  # the job's own end, cancelled or not, is no error here
        except asyncio.CancelledError:
            total = (time.perf_counter() - received) * 1000
            self.stats.record(
                RequestRecord.from_generation(
                    uri, "cache", total, None, cancelled=True, request_id=request_id
                )
            )
            raise
        waited = time.perf_counter() - waited
        hit = self.suggestions.lookup(uri, document.text, cursor)
        if hit is None:
            return self._silence(document, cursor, received, request_id, waited)
        elapsed = (time.perf_counter() - received) * 1000
        # Waiting for the model is not the handler's own work.
        handler_ms = elapsed - waited * 1000
        self.stats.record(
            RequestRecord.from_generation(
                uri, "cache", elapsed, None, handler_ms=handler_ms, request_id=request_id
            )
        )
        return Answer(hit[1], hit[0].id)

    # ----- warming the next place -------------------------------------------------

    def _precompute_next_line(
        self,
        document: Document,
        snapshot: DocumentSnapshot,
        cursor: int,
        path: str | None,
        settings: Settings,
        backend: Backend,
    ) -> None:
        """At the end of a line of code with nothing to offer there, compute in the
        background the suggestion for the next line, as if Enter had been pressed: the
        request after the user presses it (the editor indenting as predicted) is answered
        from the cache, or waits for the job."""
        insert = next_line_insert(snapshot.text, cursor)
        if insert is None or not settings.engine.cache or len(snapshot.text) > NEXT_LINE_MAX_CHARS:
            return
        uri = snapshot.uri
        text = snapshot.text
        ahead = Document(uri, text[:cursor] + insert + text[cursor:], language=snapshot.language)
        window = self._previous_window(document)
        if window is not None:
            at = snapshot.byte_at_offset(cursor)
            window = shift_window(window, at, at, at + len(insert.encode("utf-8")))
        oracle = None
        if self.oracle is not None:
            told = self.oracle.typed_at(uri, snapshot.revision, cursor)
            oracle = told[len(insert) :] if told.startswith(insert) else ""
        query = CompletionQuery(
            ahead.snapshot(), cursor + len(insert), path, window, first_line=True, oracle=oracle
        )
        context = self.context

        def job(cancel: CancelToken) -> CompletionOutcome | None:
            return run_completion(query, backend, settings, cancel, context)

        future, _ = self.worker.submit(f"next:{uri}", job, background=True)
        wrapped = asyncio.wrap_future(future)
        enter = Suggestion(
            id=0,
            anchor=cursor,
            text=insert,
            before=text[max(0, cursor - CONTEXT_CHARS) : cursor],
            after=text[cursor : cursor + CONTEXT_CHARS],
        )
        self._track_rest(uri, _Rest(enter, wrapped), text, cursor, insert, silence=True)

    def _track_rest(
        self, uri: str, rest: _Rest, text: str, anchor: int, typed: str, *, silence: bool = False
    ) -> None:
        """Hold ``rest`` until it ends; then record it and cache ``typed`` plus what it made,
        anchored at ``anchor`` in ``text`` (the document as it was when it started).
        ``silence``: the place after ``typed`` is its own, so nothing made is cached too."""
        self._rests[uri] = rest
        started = time.perf_counter()

        def store(done: asyncio.Future[CompletionOutcome | None]) -> None:
            if self._rests.get(uri) is rest:
                del self._rests[uri]
            if done.cancelled() or done.exception() is not None:
                return
            outcome = done.result()
            if outcome is None:
                return
            self._record_background(uri, "precompute", started, outcome)
            if outcome.text and not outcome.cancelled:
                self.suggestions.add(uri, text, anchor, typed + outcome.text)
            elif silence and offers_nothing(outcome):
                self.suggestions.add_silence(uri, text, anchor, typed)

        rest.future.add_done_callback(store)

    def _schedule_warm(
        self,
        document: Document,
        snapshot: DocumentSnapshot,
        cursor: int,
        outcome: CompletionOutcome,
        backend: Backend,
    ) -> None:
        """Once the user has paused after this answer, evaluate the next line's prompt."""
        if outcome.prompt is None or not self.settings().engine.prewarm:
            return
        uri = document.uri
        line_start = snapshot.text.rfind("\n", 0, cursor) + 1
        line = snapshot.text[line_start:cursor]
        indent = line[: len(line) - len(line.lstrip())]

        def warm() -> None:
            self._warm_timers.pop(uri, None)
            if document.revision != snapshot.revision or self.host.backend is not backend:
                return
            prompt = next_line_prompt(outcome, indent, backend)
            if prompt is None:
                return

            def job(cancel: CancelToken) -> Generation:
                started = time.perf_counter()
                generation = backend.generate(prompt.ids, prompt.policy, cancel)
                self.stats.record(
                    RequestRecord.from_generation(
                        uri, "prewarm", (time.perf_counter() - started) * 1000, generation
                    )
                )
                return generation

            self.worker.submit(f"warm:{uri}", job, background=True)

        previous = self._warm_timers.pop(uri, None)
        if previous is not None:
            previous.cancel()
        self._warm_timers[uri] = asyncio.get_running_loop().call_later(WARM_AFTER_S, warm)

    def _record_when_stopped(
        self,
        job: Future[CompletionOutcome],
        uri: str,
        total_ms: float,
        request_id: int | str | None,
        revision: int,
        then: Callable[[CompletionOutcome | None], None] | None = None,
        *,
        source: Source = "model",
    ) -> None:
        """Record a cancelled job once it has stopped, with the tokens it evaluated.

        Its window is remembered as well: its prompt, or the part evaluated before
        the cancel, is what the KV cache now holds, so the next request should
        keep that window's cuts. ``then`` gets the outcome afterwards (None: none).
        """
        loop = asyncio.get_running_loop()

        def stopped(done: Future[CompletionOutcome]) -> None:
            outcome = None if done.cancelled() or done.exception() is not None else done.result()
            record = RequestRecord.from_generation(
                uri,
                source,
                total_ms,
                outcome.generation if outcome is not None else None,
                stages_ms=outcome.timings_ms if outcome is not None else None,
                cancelled=True,
                request_id=request_id,
            )
            self.stats.record(record)
            if outcome is not None:
                self._remember_window(uri, revision, outcome)
            if then is not None:
                then(outcome)

        def on_worker_thread(done: Future[CompletionOutcome]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is exiting
                loop.call_soon_threadsafe(stopped, done)

        job.add_done_callback(on_worker_thread)

    # ----- joining a running generation -------------------------------------------

    def _orphan(self, running: RunningGeneration | None, document: Document) -> bool:
        """The request that started ``running`` is gone: keep the generation going for a
        request that may join it, unless the text already rules it out."""
        if running is None or self._running.get(document.uri) is not running:
            return False
        if running.token.cancelled or running.contradicted(document.text):
            self._settle(document.uri, running)
            return False
        running.orphaned = True
        return True

    def _orphan_done(
        self,
        uri: str,
        running: RunningGeneration | None,
        text: str | None,
        cursor: int,
        outcome: CompletionOutcome | None,
    ) -> None:
        """An orphaned generation ended: its candidates go to the cache, for its joiners
        and for the next request at that place (``text``: the text it was asked for, None
        when it was not orphaned)."""
        if running is None:
            return
        if text is not None and outcome is not None and not outcome.cancelled and outcome.texts:
            self.suggestions.add_candidates(uri, text, cursor, list(outcome.texts))
        elif text is not None and outcome is not None and offers_nothing(outcome):
            self.suggestions.add_silence(uri, text, cursor)
        self._settle(uri, running)

    def _settle(self, uri: str, running: RunningGeneration | None) -> None:
        if running is None:
            return
        running.settle()
        if self._running.get(uri) is running:
            del self._running[uri]

    def changed(self, document: Document) -> None:
        """After an edit: stop an orphaned generation that the text now rules out."""
        running = self._running.get(document.uri)
        if running is not None and running.orphaned and running.contradicted(document.text):
            running.token.supersede()
            self._settle(document.uri, running)

    async def _join(
        self,
        running: RunningGeneration,
        document: Document,
        cursor: int,
        received: float,
        request_id: int | str | None,
    ) -> Answer | None:
        """Wait for the running generation the user is typing into, then answer with the
        rest of its candidates from the cache (None: nothing left to show)."""
        uri = document.uri
        running.joiners += 1
        waited = time.perf_counter()
        try:
            await asyncio.shield(running.settled)
        except asyncio.CancelledError:
            total = (time.perf_counter() - received) * 1000
            record = RequestRecord.from_generation(
                uri, "cache", total, None, cancelled=True, request_id=request_id
            )
            self.stats.record(replace(record, joined=True))
            raise
        finally:
            running.joiners -= 1
        waited = time.perf_counter() - waited
        hits = self.suggestions.lookup_candidates(uri, document.text, cursor)
        if not hits:
            return self._silence(document, cursor, received, request_id, waited, joined=True)
        elapsed = (time.perf_counter() - received) * 1000
        # Waiting for the model is not the handler's own work.
        handler_ms = elapsed - waited * 1000
        record = RequestRecord.from_generation(
            uri, "cache", elapsed, None, handler_ms=handler_ms, request_id=request_id
        )
        self.stats.record(replace(record, joined=True, shown_candidates=len(hits)))
        return Answer.of(hits)

    def _silence(
        self,
        document: Document,
        cursor: int,
        received: float,
        request_id: int | str | None,
        waited_s: float,
        *,
        joined: bool = False,
    ) -> Answer | None:
        """After waiting for work at this place that left nothing in the cache: NOTHING
        when the model had nothing to offer here (the same prompt would again), else None
        (it was cut short: the request starts anew)."""
        if not self.suggestions.silent_at(document.uri, document.text, cursor):
            return None
        elapsed = (time.perf_counter() - received) * 1000
        record = RequestRecord.from_generation(
            document.uri,
            "cache",
            elapsed,
            None,
            handler_ms=elapsed - waited_s * 1000,
            request_id=request_id,
        )
        self.stats.record(replace(record, joined=joined))
        return NOTHING

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
        *,
        eager: bool = False,
    ) -> None:
        """The request's record, and its one log line (never its code, unless asked)."""
        source: Source = "model" if outcome.generation is not None else "none"
        record = RequestRecord.from_generation(
            uri,
            "eager" if eager else source,
            (time.perf_counter() - received) * 1000,
            outcome.generation,
            stages_ms=outcome.timings_ms,
            handler_ms=handler_ms,
            request_id=request_id,
        )
        record = replace(record, shown_candidates=len(outcome.texts), suppressed=outcome.suppressed)
        self.stats.record(record)
        self._check_slow()
        plan = outcome.plan
        window = plan.window
        log.info(
            "completion id=%s scope=%s(%s) cut=%s kept=%s prompt_tokens=%d evaluated=%d "
            "generated=%d stop=%s chars=%d total_ms=%.1f plan_ms=%.1f context_ms=%.1f "
            "prompt_ms=%.1f eval_ms=%.1f generate_ms=%.1f truncate_ms=%.1f llama_ms=%.1f "
            "overhead_ms=%.1f",
            request_id,
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
            record.plan_ms,
            record.context_ms,
            record.build_prompt_ms,
            record.prompt_ms,
            record.generate_ms,
            record.truncate_ms,
            record.llama_ms,
            record.overhead_ms,
        )
        if self.settings().log.code:
            log.info("completion text: %r", outcome.text)

    # ----- background work ------------------------------------------------------

    def prewarm(self, document: Document, path: str | None) -> None:
        """Evaluate the document's prompt up to its end, so the first request is warm."""
        settings = self.paced_settings()
        backend = self.host.backend
        if not settings.engine.prewarm or backend is None:
            return
        snapshot = document.snapshot()
        query = CompletionQuery(snapshot, len(snapshot.text), path)
        context = self.context

        def warm(cancel: CancelToken) -> CompletionOutcome:
            started = time.perf_counter()
            outcome = run_completion(query, backend, settings, cancel, context, warm=True)
            # On the inference thread: a deque append is atomic, so no hop to the loop.
            self._record_background(document.uri, "prewarm", started, outcome)
            return outcome

        self.worker.submit(f"prewarm:{document.uri}", warm, background=True)

    def accepted(self, document: Document, suggestion_id: int, path: str | None) -> None:
        """After an accept, precompute the suggestion that follows the accepted text
        (unless the rest of its block, or the cache, already covers that place)."""
        settings = self.paced_settings()
        backend = self.host.backend
        item = self.suggestions.get(document.uri, suggestion_id)
        if item is None or backend is None or not settings.engine.cache:
            return
        end = item.accepted_end(document.text)
        if end is None:
            return
        if self._joinable_rest(document, end) is not None:
            return
        if self.suggestions.lookup(document.uri, document.text, end) is not None:
            return
        running = self._running.get(document.uri)
        if running is not None and running.joinable(document.text, end):
            return  # the accept's own edit started it (eager start)
        snapshot = document.snapshot()
        query = CompletionQuery(
            snapshot,
            end,
            path,
            self._previous_window(document),
            first_line=settings.completion.multi_line == "on",
            oracle="" if self.oracle is not None else None,
        )
        context = self.context
        future, _ = self.worker.submit(
            f"next:{document.uri}",
            lambda cancel: run_completion(query, backend, settings, cancel, context),
            background=True,
        )
        wrapped = asyncio.wrap_future(future)
        self._precomputed[document.uri] = _Precompute(snapshot.revision, end, wrapped)

        started = time.perf_counter()

        def store(done: asyncio.Future[CompletionOutcome]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            outcome = done.result()
            self._record_background(document.uri, "precompute", started, outcome)
            self._remember_window(document.uri, snapshot.revision, outcome)
            if outcome.text and not outcome.cancelled:
                self.suggestions.add(document.uri, snapshot.text, end, outcome.text)
            elif offers_nothing(outcome):
                self.suggestions.add_silence(document.uri, snapshot.text, end)

        wrapped.add_done_callback(store)

    def _record_background(
        self, uri: str, source: Source, started: float, outcome: CompletionOutcome
    ) -> None:
        total = (time.perf_counter() - started) * 1000
        self.stats.record(
            RequestRecord.from_generation(
                uri, source, total, outcome.generation, stages_ms=outcome.timings_ms
            )
        )

    def _check_slow(self) -> None:
        """Tell the server once when answers have become slow (``completion.slowMs``)."""
        limit = self.settings().completion.slow_ms
        median = self.stats.slow_median_ms()
        if self._slow_warned or limit <= 0 or median is None or median <= limit:
            return
        self._slow_warned = True
        if self.on_slow is not None:
            self.on_slow(median)

    def forget(self, uri: str) -> None:
        self._settle(uri, self._running.get(uri))
        self.worker.cancel(uri)
        for kind in ("prewarm", "next", "rest", "warm"):
            self.worker.cancel(f"{kind}:{uri}")
        self._windows.pop(uri, None)
        self._precomputed.pop(uri, None)
        self._rests.pop(uri, None)
        timer = self._warm_timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        if self.oracle is not None:
            self.oracle.forget(uri)
        self.suggestions.forget(uri)

    def reset(self) -> None:
        """Drop everything that came from the previous model."""
        self.cancel_all()
        self.suggestions = SuggestionStore()
        self._windows.clear()
        self._precomputed.clear()
        self._rests.clear()
        self._slow_warned = False
        for timer in self._warm_timers.values():
            timer.cancel()
        self._warm_timers.clear()

    def cancel_all(self) -> None:
        for uri, running in list(self._running.items()):
            self._settle(uri, running)
        self.worker.cancel_all()
        for task in list(self._inflight.values()):
            task.cancel()
