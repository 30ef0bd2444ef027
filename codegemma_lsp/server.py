"""The language server: thin LSP handlers over the documents, settings and engine.

This is the only module that imports pygls. Fast handlers (document sync)
mutate state on the event loop; completions take a snapshot and run on the
inference thread, where the newest request for a document cancels the older.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard, cast

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import to_fs_path

from codegemma_lsp import __version__, pygls_shim
from codegemma_lsp.config import ModelSettings, Settings, SettingsSources, client_layer
from codegemma_lsp.context.index import ContextIndex
from codegemma_lsp.documents import (
    MAX_LINE_CHARS,
    Document,
    DocumentSnapshot,
    DocumentStore,
    PositionEncoding,
    TextChange,
    cursor_after,
)
from codegemma_lsp.engine.base import CancelToken
from codegemma_lsp.engine.host import HostStatus, ModelHost
from codegemma_lsp.engine.resolve import needs_download
from codegemma_lsp.engine.worker import InferenceWorker
from codegemma_lsp.generate import GeneratedEdit, GenerateTarget
from codegemma_lsp.generate import find_target as find_generate_target
from codegemma_lsp.generate_service import GenerateService, carry_range
from codegemma_lsp.lifecycle import ParentWatchdog, arm_exit_deadline, process_alive
from codegemma_lsp.oracle import OracleBook
from codegemma_lsp.privacy import is_secret_path, secret_in
from codegemma_lsp.service import Answer, CompletionService, current_request_id
from codegemma_lsp.stats import Stats
from codegemma_lsp.tcp_auth import (
    FIRST_MESSAGE_BYTES,
    SERVER_NOT_INITIALIZED,
    Refusal,
    first_message_refusal,
    without_token,
)
from codegemma_lsp.transport import (
    End,
    Event,
    Lost,
    Message,
    MessageReader,
    Unreadable,
    envelope_problem,
    pump_stream,
    start_reader_thread,
)
from codegemma_lsp.user_numbers import FLUSH_S, TICK_S, UserNumbers

log = logging.getLogger(__name__)

ACCEPT_COMMAND = "codegemma.accept"
ACCEPT_PARTIAL_COMMAND = "codegemma.acceptPartial"
GENERATE_COMMAND = "codegemma.generate"
STATUS_NOTIFICATION = "codegemma/status"
STATS_REQUEST = "codegemma/stats"
BENCH_ORACLE_NOTIFICATION = "codegemma/benchOracle"

PREWARM_DELAY_S = 0.25
"""How long ``didOpen`` messages must pause before the newest document is pre-warmed."""
DOCUMENT_DIGEST_REQUEST = "codegemma/documentDigest"
DEBUG_CLOCK_REQUEST = "codegemma/debugAdvanceClock"
"""``serve --debug-clock`` only (tests): move the user numbers' clock on, then judge."""
SLOW_ADVICE = (
    "Run `codegemma-lsp doctor` to measure this machine; then try a smaller model or "
    "quantisation (model.quant Q4_K_M or smaller), GPU layers (model.gpuLayers), or fewer "
    "busy apps competing for the cores (model.threads)."
)

_INVALID_REQUEST = -32600
_PARSE_ERROR = -32700


@dataclass(frozen=True)
class _UnreadableRequest:
    """A request whose params did not match the method's schema."""

    id: Any
    method: str
    error: JsonRpcException


_OWN_DOCUMENT_SYNC = (
    types.TEXT_DOCUMENT_DID_OPEN,
    types.TEXT_DOCUMENT_DID_CHANGE,
    types.TEXT_DOCUMENT_DID_CLOSE,
)


class CodeGemmaProtocol(LanguageServerProtocol):
    """Fills the protocol gaps pygls leaves: requests before ``initialize`` and after
    ``shutdown``, requests with malformed params (pygls only logs those), messages that
    are not JSON-RPC, and ``exit`` (which ends :meth:`CodeGemmaServer.serve_stdio`)."""

    def _register_builtin_features(self) -> None:
        super()._register_builtin_features()  # type: ignore[no-untyped-call]
        # pygls keeps a copy of every document that we never read, edited by rules of its
        # own: it splits lines at \f, \v and U+2028 too, and clamps the positions in the
        # params it then hands to our handlers. Our DocumentStore is the only copy.
        pygls_shim.drop_builtin_features(self, _OWN_DOCUMENT_SYNC)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:  # type: ignore[override]  # no user handler to wrap
        server = cast(CodeGemmaServer, pygls_shim.owning_server(self))
        server.stop(0 if pygls_shim.shutdown_requested(self) else 1, "exit")

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Any,
        args: Any = None,
        kwargs: Any = None,
    ) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        # pygls files the future of each async or generator handler under its id, and only
        # a request's answer takes it out again: every notification left one behind.
        future = pygls_shim.request_futures(self).get(msg_id)
        if future is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None

        def forget(done: Any) -> None:
            # Later, not now: ``shutdown`` cancels these while it iterates over them.
            if loop is None or loop.is_closed():
                self._forget_future(msg_id, done)
            else:
                loop.call_soon_threadsafe(self._forget_future, msg_id, done)

        future.add_done_callback(forget)

    def _forget_future(self, msg_id: Any, future: Any) -> None:
        futures = pygls_shim.request_futures(self)
        if futures.get(msg_id) is future:
            del futures[msg_id]

    def receive(self, value: Any) -> None:
        """Handle one decoded JSON value from the transport."""
        problem = envelope_problem(value)
        if problem is not None:
            msg_id, reason = problem
            log.warning("invalid JSON-RPC message: %s", reason)
            self._send_error(msg_id, _INVALID_REQUEST, f"invalid request: {reason}")
            return
        try:
            message = self.structure_message(value)
            self.handle_message(message)
        except Exception as exc:  # one bad message must not stop the ones after it
            log.warning("message dropped: %s", exc)
            pygls_shim.report_error(self, exc, JsonRpcException)

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "id" in data and "method" in data:
                return _UnreadableRequest(data["id"], str(data["method"]), exc)
            raise

    def handle_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None)
        if isinstance(message, _UnreadableRequest):
            if not pygls_shim.initialized(self) and method != types.INITIALIZE:
                self._send_error(msg_id, SERVER_NOT_INITIALIZED, "server not initialized")
            else:
                log.warning("%s: invalid params (%s)", method, message.error)
                self._send_error(msg_id, message.error.code, f"invalid params for {method}")
            return
        is_request = method is not None and msg_id is not None
        if is_request and method != types.INITIALIZE and not pygls_shim.initialized(self):
            self._send_error(msg_id, SERVER_NOT_INITIALIZED, "server not initialized")
            return
        if is_request and pygls_shim.shutdown_requested(self) and method != types.EXIT:
            self._send_error(msg_id, _INVALID_REQUEST, "server is shutting down")
            return
        # An async handler's task copies the context here, so it sees its own id.
        token = current_request_id.set(msg_id if is_request else None)
        try:
            super().handle_message(message)
        finally:
            current_request_id.reset(token)

    def request_future(self, msg_id: Any) -> Any:
        """The future pygls cancels on ``$/cancelRequest`` for request ``msg_id``, if running.

        For ``workspace/executeCommand`` it is not the command handler's own task (pygls
        runs that as a separate step), so a long command must watch this one."""
        return pygls_shim.request_futures(self).get(msg_id)

    def _send_error(self, msg_id: Any, code: int, message: str) -> None:
        pygls_shim.send_message(
            self, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
        )


class CodeGemmaServer(LanguageServer):
    protocol: CodeGemmaProtocol

    def __init__(
        self,
        command_line: dict[str, Any] | None = None,
        environment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            "codegemma-lsp",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=CodeGemmaProtocol,
        )
        self.sources = SettingsSources(
            environment=environment or {}, command_line=command_line or {}
        )
        self.settings = Settings()
        self.documents = DocumentStore()
        self.stats = Stats()
        self.worker = InferenceWorker(on_cancel_latency=self.stats.record_cancel_latency)
        self.host = ModelHost(self.worker, self._on_host_status)
        self.root_path: str | None = None
        self.context_index: ContextIndex | None = None
        self.service = CompletionService(
            self.host, self.worker, self.stats, lambda: self.settings, context=self.context_files
        )
        self.service.on_slow = self.warn_slow
        self.clock_offset_s = 0.0
        """Added to the user numbers' clock (``codegemma/debugAdvanceClock``, tests only)."""
        self.numbers = UserNumbers(
            self.stats, self.documents.get, clock=lambda: time.monotonic() + self.clock_offset_s
        )
        self._tick_timer: asyncio.TimerHandle | None = None
        self._last_flush = time.monotonic()
        self.generator = GenerateService(lambda: self.settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._prewarm_timer: asyncio.TimerHandle | None = None
        self._refusals: dict[str, tuple[Document, int, int, str | None]] = {}
        """Per document: the revision and size limit a refusal was found for, and it."""
        self._oracle_pending: dict[str, tuple[int, int, int, str]] = {}
        """Benchmark only: what the typist types next, told for a version still to come."""
        self._progress_token: str | None = None
        self._requested_model: ModelSettings | None = None
        """The model settings of the newest load started (or about to start)."""
        self._last_state = ""
        self._load_task: asyncio.Future[None] | None = None
        """Held so the event loop's weak reference is not the only one to a running load."""
        self._bad_message_reported = False
        # The transport's settings apply from the first byte, before any client settings.
        startup = self.sources.resolve()[0].server
        self.reader = MessageReader(startup.max_message_bytes)
        self.parent_check_s = startup.parent_check_ms / 1000
        self.exit_deadline_s: float | None = None
        """Set by the command line: end the process this long after deciding to stop."""
        self._exit_deadline_armed = False
        self._stopped: asyncio.Future[int] | None = None
        self._watchdog: ParentWatchdog | None = None

    # ----- transport and lifecycle ------------------------------------------------

    def serve_stdio(self, stdin: BinaryIO, stdout: BinaryIO) -> int:
        """Serve one client over a pair of byte streams until ``exit``, the end of input,
        input that is not LSP, or the client's process going away; returns the exit code
        (0 only after ``shutdown``)."""
        self.protocol.set_writer(StdoutWriter(stdout))

        def on_end(event: Event) -> None:
            # The client is gone: the exit deadline runs from now, not from when the
            # event loop gets to the news.
            self._arm_exit_deadline(self._exit_code(event))

        async def connect() -> None:
            loop = asyncio.get_running_loop()
            start_reader_thread(stdin, self.reader, loop, self._on_event, on_end=on_end)

        return self._run(connect)

    def serve_tcp(
        self,
        host: str,
        port: int,
        *,
        token: str | None = None,
        on_listening: Callable[[int], None] | None = None,
    ) -> int:
        """Serve one client on ``host:port`` until it disconnects (see :mod:`tcp_auth`).

        With ``token``, a connection becomes the client only when its first message is
        ``initialize`` carrying the token; a connection that fails is answered, closed, and
        changes nothing. Without, the first connection is the client. Once there is a
        client, every other connection is closed at once. ``on_listening`` gets the port.
        """
        client: asyncio.StreamWriter | None = None
        candidates: set[asyncio.StreamWriter] = set()

        def become_client(writer: asyncio.StreamWriter, reader: MessageReader) -> None:
            nonlocal client
            client = writer
            for other in candidates - {writer}:
                other.close()
            candidates.clear()
            reader.max_message_bytes = self.reader.max_message_bytes
            self.reader = reader
            self.protocol.set_writer(writer)

        async def on_client(stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if client is not None:
                log.warning("refused a connection: this server has its client")
                writer.close()
                return
            if token is None:
                become_client(writer, self.reader)
                await pump_stream(stream, self.reader, self._on_event)
                return
            reader = MessageReader(min(FIRST_MESSAGE_BYTES, self.reader.max_message_bytes))
            candidates.add(writer)
            state = "first"  # then "client", or "refused"

            def on_event(event: Event) -> None:
                nonlocal state
                if state == "client":
                    self._on_event(event)
                    return
                if state == "refused" or isinstance(event, End):
                    return
                refusal = (
                    first_message_refusal(event.value, token)
                    if isinstance(event, Message)
                    else Refusal(None, _PARSE_ERROR, "the first message could not be read")
                )
                if client is not None:  # another connection got there first
                    refusal = Refusal(None, _INVALID_REQUEST, "this server has its client")
                if refusal is not None:
                    log.warning("refused a connection: %s", refusal.reason)
                    state = "refused"
                    candidates.discard(writer)
                    body = json.dumps(refusal.response()).encode()
                    writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    writer.close()
                    return
                assert isinstance(event, Message)
                state = "client"
                become_client(writer, reader)
                log.info("a client connected with the token")
                self._on_event(Message(without_token(event.value)))

            await pump_stream(stream, reader, on_event)

        async def connect() -> None:
            tcp = await asyncio.start_server(on_client, host, port)
            bound = tcp.sockets[0].getsockname()[1]
            log.info("listening on %s:%d", host, bound)
            if on_listening is not None:
                on_listening(bound)

        return self._run(connect)

    def _run(self, connect: Callable[[], Awaitable[None]]) -> int:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._stopped = loop.create_future()
        try:
            loop.run_until_complete(connect())
            return loop.run_until_complete(self._stopped)
        finally:
            self._wind_down(loop)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Message):
            self.protocol.receive(event.value)
        elif isinstance(event, Unreadable):
            log.warning("unreadable message: %s", event.reason)
            self.protocol._send_error(None, _PARSE_ERROR, f"parse error: {event.reason}")
            self._report_bad_message()
        elif isinstance(event, Lost):
            log.error("%s: the input is not LSP; exiting so the editor restarts us", event.reason)
            self.stop(self._exit_code(event), "lost the input")
        elif isinstance(event, End):
            self.stop(self._exit_code(event), "end of input")

    def _exit_code(self, event: Event) -> int:
        """LSP's rule: 0 only when the input ends after ``shutdown``."""
        ended = isinstance(event, End) and pygls_shim.shutdown_requested(self.protocol)
        return 0 if ended else 1

    def stop(self, code: int, why: str) -> None:
        """Stop serving with exit code ``code``; on the event loop."""
        stopped = self._stopped
        if stopped is None or stopped.done():
            return
        log.info("stopping: %s", why)
        self._arm_exit_deadline(code)
        # Background work (pre-warm, precompute, context) must not outlive the client.
        self.service.cancel_all()
        stopped.set_result(code)

    def stop_threadsafe(self, code: int, why: str) -> None:
        """:meth:`stop` from any thread; the exit deadline starts now, even if the event
        loop is busy."""
        self._arm_exit_deadline(code)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: already stopping
                loop.call_soon_threadsafe(self.stop, code, why)

    def _arm_exit_deadline(self, code: int) -> None:
        if self.exit_deadline_s is not None and not self._exit_deadline_armed:
            self._exit_deadline_armed = True
            arm_exit_deadline(code, self.exit_deadline_s)

    def watch_client(self, pid: int | None) -> None:
        """Exit when the client's process goes away without telling us."""
        if not pid or self.parent_check_s <= 0 or self._watchdog is not None:
            return
        if not process_alive(pid):
            # A client in another PID namespace (a container, a remote host) sends a pid
            # that means nothing here; watching it would end the server at once.
            log.warning("the client's processId %d is not a process seen here; not watched", pid)
            return
        self._watchdog = ParentWatchdog(
            pid,
            lambda: self.stop_threadsafe(1, f"the client's process {pid} is gone"),
            interval=self.parent_check_s,
        ).start()

    def _wind_down(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel everything still running; never wait for the inference thread."""
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        self.numbers.finish()
        self.service.cancel_all()
        self.worker.shutdown()
        self.generator.close()
        self.generator.worker.shutdown()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=0.2))
        loop.close()

    # ----- settings and model -------------------------------------------------

    def apply_settings(self) -> None:
        """Resolve all sources; tell the user about bad values; reload the model if it changed."""
        settings, problems = self.sources.resolve()
        self.settings = settings
        self.reader.max_message_bytes = settings.server.max_message_bytes
        for problem in problems:
            log.warning("%s", problem)
            self.show(types.MessageType.Warning, f"codegemma-lsp: {problem}")
        self.configure_context()
        self.generator.configure()
        # Compared with the last load *asked for*, not the host's settings: the host learns
        # them only once the load starts, after an await, and a didChangeConfiguration that
        # arrives meanwhile with the same settings (Neovim sends one right after initialized)
        # would otherwise load the model twice.
        if self._requested_model != settings.model:
            self._requested_model = settings.model
            self.service.reset()
            self.start_loading()

    def configure_context(self) -> None:
        """One context index for the workspace root, when there is a root and it is enabled."""
        settings = self.settings.context
        if not settings.enabled or not _usable_path(self.root_path):
            self.context_index = None
        elif self.context_index is None:
            try:
                self.context_index = ContextIndex(
                    Path(self.root_path), open_text=self.open_text, settings=settings
                )
            except Exception as exc:  # no context is better than no model
                log.warning("no repository context for %r: %s", self.root_path, exc)
        else:
            self.context_index.configure(settings)

    def open_text(self, path: Path) -> str | None:
        """The editor's text of an open document, which wins over the file on disk."""
        for uri in list(self.documents):
            if to_fs_path(uri) == str(path):
                document = self.documents.get(uri)
                return document.text if document is not None else None
        return None

    def context_files(self, snapshot: DocumentSnapshot) -> tuple[tuple[str, str], ...]:
        index, path = self.context_index, to_fs_path(snapshot.uri)
        if index is None or not _usable_path(path):
            return ()
        # The snapshot's own text and tree: the index parses nothing of the current file.
        return index.context_for(Path(path), text=snapshot.text, tree=snapshot.tree).files

    def context_changed(self, uri: str, *, closed: bool = False) -> None:
        index, path = self.context_index, to_fs_path(uri)
        if index is None or not _usable_path(path):
            return
        index.notify_changed(Path(path))
        if closed:
            index.forget(Path(path))

    def set_workspace_settings(self, value: Any) -> bool:
        """Take settings pushed by the client; False when they hold nothing for us."""
        layer, problems = client_layer(value)
        for problem in problems:
            self.show(types.MessageType.Warning, f"codegemma-lsp: {problem}")
        if not layer:
            return False
        self.sources.workspace = layer
        return True

    async def pull_workspace_settings(self) -> None:
        """Pull the ``codegemma`` section if the client supports ``workspace/configuration``."""
        workspace = self.client_capabilities.workspace
        if workspace is None or not workspace.configuration:
            return
        try:
            result = await asyncio.wait_for(
                self.workspace_configuration_async(
                    types.ConfigurationParams(items=[types.ConfigurationItem(section="codegemma")])
                ),
                5,
            )
        except Exception as exc:  # a client that fails the pull keeps the settings it pushed
            log.warning("workspace/configuration failed: %s", exc)
            return
        if result and result[0] is not None:
            layer, problems = client_layer(result[0])
            for problem in problems:
                self.show(types.MessageType.Warning, f"codegemma-lsp: {problem}")
            self.sources.workspace = layer

    def start_loading(self) -> None:
        self._load_task = asyncio.ensure_future(self._load_with_progress())

    async def _load_with_progress(self) -> None:
        model = self.settings.model
        fetch = None
        if model.backend == "llama" and not model.path:
            # A look into the HF cache (no network), off the event loop: the first one
            # imports huggingface_hub.
            fetch = await asyncio.get_running_loop().run_in_executor(None, needs_download, model)
        window = self.client_capabilities.window
        if window is not None and window.work_done_progress:
            token = f"codegemma-load-{uuid.uuid4()}"
            try:
                await asyncio.wait_for(self.work_done_progress.create_async(token), 5)
            except Exception as exc:  # progress is a nicety; loading goes on without it
                log.debug("no progress token: %s", exc)
            else:
                if model != self._requested_model:
                    return  # a newer load started while the token was being created
                self._end_progress("superseded")
                # A percentage in the begin tells the client that reports will carry one.
                self.work_done_progress.begin(
                    token,
                    types.WorkDoneProgressBegin(
                        title="codegemma-lsp",
                        message=f"downloading {fetch.filename}" if fetch else "loading the model",
                        percentage=0 if fetch else None,
                    ),
                )
                self._progress_token = token
        if model != self._requested_model:
            return
        self.host.load(model, snapshot_mb=self.settings.engine.snapshot_mb)

    def _end_progress(self, message: str) -> None:
        token, self._progress_token = self._progress_token, None
        if token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))

    def _on_host_status(self, status: HostStatus) -> None:
        # Called from the inference thread: hop onto the event loop to write.
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._publish_status, status)

    def _publish_status(self, status: HostStatus) -> None:
        params: dict[str, Any] = {
            "state": status.state,
            "model": status.model,
            "message": status.message,
        }
        if status.progress is not None:
            params["progress"] = status.progress
        if status.speed is not None:
            params["speed"] = status.speed.to_json()
        self.protocol.notify(STATUS_NOTIFICATION, params)
        token = self._progress_token
        if token is not None and status.state == "downloading":
            self.work_done_progress.report(
                token,
                types.WorkDoneProgressReport(message=status.message, percentage=status.progress),
            )
        elif token is not None and status.state == "loading" and self._last_state == "downloading":
            self.work_done_progress.report(
                token, types.WorkDoneProgressReport(message="loading the model", percentage=100)
            )
        elif status.state not in ("loading", "downloading"):
            self._end_progress(status.state)
        self._last_state = status.state
        if status.state == "error":
            log.error("model load failed: %s", status.message)
            self.show(types.MessageType.Error, f"codegemma-lsp: {status.message}")

    def show(self, kind: types.MessageType, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def warn_slow(self, median_ms: float) -> None:
        """Say once, in the status and a message, that answers have become slow."""
        message = (
            f"completions are slow: the last 20 took {median_ms / 1000:.1f} s (median), more "
            f"than completion.slowMs {self.settings.completion.slow_ms} ms. {SLOW_ADVICE}"
        )
        log.warning("%s", message)
        status = self.host.status
        self.protocol.notify(
            STATUS_NOTIFICATION,
            {"state": status.state, "model": status.model, "message": message, "slow": True},
        )
        self.show(types.MessageType.Warning, f"codegemma-lsp: {message}")

    # ----- the user's numbers -----------------------------------------------------

    def start_ticking(self) -> None:
        """Every few seconds, judge accepted text old enough; every minute, flush the
        numbers to today's file."""
        if self._tick_timer is None and self._loop is not None:
            self._tick_timer = self._loop.call_later(TICK_S, self._tick)

    def _tick(self) -> None:
        self._tick_timer = None
        self.numbers.tick()
        if time.monotonic() - self._last_flush >= FLUSH_S:
            self._last_flush = time.monotonic()
            self.numbers.flush()
        self.start_ticking()

    def advance_clock(self, params: Any) -> dict[str, Any]:
        """``codegemma/debugAdvanceClock`` {seconds}: the tests' way past the 30 s."""
        seconds = params.get("seconds") if isinstance(params, dict) else None
        if seconds is None:
            seconds = getattr(params, "seconds", 0)
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
            self.clock_offset_s += float(seconds)
        self.numbers.tick()
        return self.stats.user_numbers()

    # ----- documents ------------------------------------------------------------

    def relative_path(self, uri: str) -> str | None:
        path = to_fs_path(uri)
        if path is None:
            return None
        if self.root_path:
            rel = os.path.relpath(path, self.root_path)
            if not rel.startswith(".."):
                return rel.replace(os.sep, "/")
        return os.path.basename(path)

    def open_document(self, item: types.TextDocumentItem) -> None:
        # Huge or binary documents are kept (edits must still apply) but never parsed.
        parse = (
            len(item.text) <= self.settings.completion.max_file_bytes and "\x00" not in item.text
        )
        self.documents.open(
            item.uri, item.text, language_id=item.language_id, version=item.version, parse=parse
        )

    def schedule_prewarm(self, uri: str) -> None:
        """Pre-warm the newest opened document once the opening stops: a session restore
        opens dozens at once, and only the last one is about to be typed in."""
        self.cancel_prewarm()
        if self._loop is not None:
            self._prewarm_timer = self._loop.call_later(PREWARM_DELAY_S, self._prewarm, uri)

    def cancel_prewarm(self) -> None:
        if self._prewarm_timer is not None:
            self._prewarm_timer.cancel()
            self._prewarm_timer = None

    def _prewarm(self, uri: str) -> None:
        self._prewarm_timer = None
        document = self.documents.get(uri)
        if document is None or self.completion_refusal(document) is not None:
            return
        last_line = document.line_count - 1
        if document.source.line_length(last_line) > MAX_LINE_CHARS:
            return  # the prompt would end in a line that gets no completion
        self.service.prewarm(document, self.relative_path(uri))

    def change_document(self, params: types.DidChangeTextDocumentParams) -> None:
        document = self.documents.get(params.text_document.uri)
        if document is None:
            log.warning("didChange for a document that is not open")
            return
        changes = []
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                start = (change.range.start.line, change.range.start.character)
                end = (change.range.end.line, change.range.end.character)
                changes.append(TextChange(start, end, change.text))
            else:
                changes.append(TextChange(None, None, change.text))
        revision = document.revision
        clamped = document.apply_changes(changes, version=params.text_document.version)
        if clamped:
            log.warning("didChange: %d range(s) past the end of the document were clamped", clamped)
        self.numbers.edited(document.uri, document.edits_since(revision) or [])
        self.service.changed(document)
        self._tell_pending_oracle(document)
        cursor = cursor_after(document, changes)
        if (
            cursor is not None
            and self.service.eager_start()
            and self._completable_at(document, cursor)
        ):
            self.cancel_prewarm()  # the eager start warms its own prompt
            self.service.speculate(document, cursor, self.relative_path(document.uri))

    def document_digest(self, uri: str) -> dict[str, Any] | None:
        """What we hold of a document, without its text: a check that our copy is the
        editor's (``codegemma/documentDigest``)."""
        document = self.documents.get(uri)
        if document is None:
            return None
        encoded = document.text.encode("utf-8", "surrogatepass")
        return {
            "version": document.version,
            "sha256": hashlib.sha256(encoded).hexdigest(),
            "utf8Bytes": len(encoded),
        }

    # ----- completion --------------------------------------------------------------

    def tell_oracle(self, params: Any) -> None:
        """``codegemma/benchOracle`` {textDocument: {uri, version}, position, text}: what
        the benchmark's typist types next there (see :mod:`codegemma_lsp.oracle`)."""
        book = self.service.oracle
        try:
            uri = str(_field(_field(params, "textDocument"), "uri"))
            version = _field(_field(params, "textDocument"), "version")
            position = _field(params, "position")
            line, character = int(_field(position, "line")), int(_field(position, "character"))
            text = _field(params, "text")
        except (AttributeError, KeyError, TypeError, ValueError):
            log.warning("%s: malformed params", BENCH_ORACLE_NOTIFICATION)
            return
        document = self.documents.get(uri)
        if book is None or document is None or not isinstance(text, str):
            return
        if isinstance(version, int) and document.version is not None:
            if version > document.version:
                # Told before the didChange that makes this version, so that the eager
                # start that change triggers (service.speculate) knows it too.
                self._oracle_pending[uri] = (version, line, character, text)
                return
            if version != document.version:
                log.debug(
                    "%s for version %s, the document is at %s", uri, version, document.version
                )
                return
        cursor = document.resolve(line, character).offset
        book.tell(uri, document.revision, cursor, text)

    def _tell_pending_oracle(self, document: Document) -> None:
        pending = self._oracle_pending.pop(document.uri, None)
        book = self.service.oracle
        if pending is None or book is None:
            return
        version, line, character, text = pending
        if version == document.version:
            book.tell(
                document.uri, document.revision, document.resolve(line, character).offset, text
            )
        elif document.version is not None and version > document.version:
            self._oracle_pending[document.uri] = pending

    def completion_refusal(self, document: Document | None) -> str | None:
        """Why this document gets no completion, or None.

        Kept per document revision: the scan reads the whole text, and an eager start
        asks on every edit."""
        if document is None:
            return "document not open"
        limit = self.settings.completion.max_file_bytes
        cached = self._refusals.get(document.uri)
        if cached is not None:
            held, revision, held_limit, refusal = cached
            if held is document and revision == document.revision and held_limit == limit:
                return refusal
        refusal = _refusal(document, limit)
        self._refusals[document.uri] = (document, document.revision, limit, refusal)
        return refusal

    def forget_refusal(self, uri: str) -> None:
        self._refusals.pop(uri, None)

    def _completable_at(self, document: Document, offset: int) -> bool:
        refusal = self.completion_refusal(document)
        if refusal is not None:
            log.debug("no completion: %s", refusal)
            return False
        line = document.source.line_of_offset(offset)
        if document.source.line_length(line) > MAX_LINE_CHARS:
            log.debug("no completion: line longer than %d characters", MAX_LINE_CHARS)
            return False
        return True

    async def complete(self, uri: str, position: types.Position) -> tuple[Document, Answer] | None:
        self.cancel_prewarm()  # a request warms its own prompt
        document = self.documents.get(uri)
        if document is None:
            log.debug("no completion: document not open")
            return None
        resolved = document.resolve(position.line, position.character)
        if resolved.clamped:
            log.debug("position past the end of the document clamped")
        if not self._completable_at(document, resolved.offset):
            return None
        answer = await self.service.complete(document, resolved.offset, self.relative_path(uri))
        if answer is None or not answer.text:
            return None
        self.numbers.shown(uri, resolved.offset, answer.items)
        return document, answer

    # ----- generation ----------------------------------------------------------------

    def generate_actions(
        self, uri: str, selection: types.Range, only: list[str] | None
    ) -> list[types.CodeAction]:
        """The code action "Generate code from this comment" (or "from the selection"),
        where there is an instruction and an instruction model to follow it; else none."""
        kind = types.CodeActionKind.RefactorRewrite
        if only and not any(kind.value == k or kind.value.startswith(k + ".") for k in only):
            return []
        # Editors ask on every cursor move: the cheap, cached check first.
        if self.generator.unavailable_reason() is not None:
            return []
        document = self.documents.get(uri)
        if document is None or self.completion_refusal(document) is not None:
            return []
        start, end = _range_offsets(document, selection)
        target = find_generate_target(document.snapshot(), start, end)
        if isinstance(target, str):
            return []
        title = (
            "Generate code from the selection"
            if target.source == "selection"
            else "Generate code from this comment"
        )
        argument = {"uri": uri, "range": _range_json(selection)}
        command = types.Command(title=title, command=GENERATE_COMMAND, arguments=[argument])
        return [types.CodeAction(title=title, kind=kind, command=command)]

    async def generate_command(self, argument: dict[str, Any]) -> dict[str, Any]:
        """``codegemma.generate {uri, range, instruction?}``: generate, then apply the code
        with ``workspace/applyEdit``. Answers ``{applied, lines, whole}`` or, when nothing
        was inserted, ``{applied: false, message}`` (also shown to the user)."""
        reason = self.generator.unavailable_reason()
        if reason is not None:
            return self._generate_failed(f"code generation needs an instruction model: {reason}")
        uri = str(argument.get("uri", ""))
        document = self.documents.get(uri)
        refusal = self.completion_refusal(document)
        if document is None or refusal is not None:
            return self._generate_failed(f"no code generation here: {refusal}")
        start, end = _range_offsets(document, argument.get("range"))
        instruction = argument.get("instruction")
        snapshot = document.snapshot()
        target = find_generate_target(
            snapshot, start, end, instruction if isinstance(instruction, str) else None
        )
        if isinstance(target, str):
            return self._generate_failed(target)
        task = asyncio.current_task()
        request = self.protocol.request_future(current_request_id.get())
        if request is not None and task is not None:

            def on_cancel_request(done: Any) -> None:
                if done.cancelled():
                    self._call_soon(task.cancel)

            request.add_done_callback(on_cancel_request)
        token = await self._begin_generate_progress(target)
        jobs: list[CancelToken] = []
        if token is not None:
            pressed = self.work_done_progress.tokens.get(token)
            if pressed is not None:  # the editor's cancel button on the progress

                def cancel_job(_: object) -> None:
                    for job in jobs:
                        job.cancel()

                pressed.add_done_callback(cancel_job)
        loop = asyncio.get_running_loop()

        def on_progress(lines: int) -> None:
            if token is not None:
                message = f"{lines} line{'s' if lines != 1 else ''} written"
                report = types.WorkDoneProgressReport(message=message)
                loop.call_soon_threadsafe(self.work_done_progress.report, token, report)

        outcome_message = "cancelled"
        try:
            outcome = await self.generator.generate(
                snapshot, target, self.relative_path(uri), on_progress, jobs.append
            )
            if outcome.cancelled:
                return {"applied": False, "message": "cancelled"}
            outcome_message = "done" if outcome.edit is not None else "nothing to insert"
        finally:
            if token is not None:
                self.work_done_progress.end(
                    token, types.WorkDoneProgressEnd(message=outcome_message)
                )
                self.work_done_progress.tokens.pop(token, None)
        generation = outcome.generation
        log.info(
            "generate from=%s prompt_tokens=%d generated=%d stop=%s lines=%s whole=%s",
            target.source,
            generation.prompt_tokens if generation else 0,
            generation.generated_tokens if generation else 0,
            generation.stop_reason if generation else "-",
            outcome.edit.lines if outcome.edit else 0,
            outcome.edit.whole if outcome.edit else "-",
        )
        if self.settings.log.code:
            log.info("generate instruction: %r", target.instruction)
            log.info("generate answer: %r", generation.text if generation else "")
        if outcome.edit is None:
            return self._generate_failed(outcome.message or "the model wrote no code")
        return await self._apply_generated(uri, snapshot, outcome.edit)

    async def _apply_generated(
        self, uri: str, snapshot: DocumentSnapshot, edit: GeneratedEdit
    ) -> dict[str, Any]:
        document = self.documents.get(uri)
        if document is None:
            return self._generate_failed("the document was closed while the code was written")
        edits = document.edits_since(snapshot.revision)
        start = snapshot.byte_at_offset(edit.start)
        end = snapshot.byte_at_offset(edit.end)
        carried = carry_range(start, end, edits) if edits is not None else None
        if carried is None:
            return self._generate_failed(
                "the document changed where the code was to go; nothing was inserted"
            )
        start_line, start_char = document.position_at_byte(carried[0])
        end_line, end_char = document.position_at_byte(carried[1])
        text_edit = types.TextEdit(
            range=types.Range(
                start=types.Position(line=start_line, character=start_char),
                end=types.Position(line=end_line, character=end_char),
            ),
            new_text=edit.text,
        )
        workspace = self.client_capabilities.workspace
        versioned = (
            workspace is not None
            and workspace.workspace_edit is not None
            and bool(workspace.workspace_edit.document_changes)
        )
        changes = (
            types.WorkspaceEdit(
                document_changes=[
                    types.TextDocumentEdit(
                        text_document=types.OptionalVersionedTextDocumentIdentifier(
                            uri=uri, version=document.version
                        ),
                        edits=[text_edit],
                    )
                ]
            )
            if versioned
            else types.WorkspaceEdit(changes={uri: [text_edit]})
        )
        try:
            result = await self.workspace_apply_edit_async(
                types.ApplyWorkspaceEditParams(edit=changes, label="CodeGemma: generated code")
            )
        except JsonRpcException as exc:  # an editor may answer with an error, not applied=false
            return self._generate_failed(f"the generated code was not inserted: {exc}")
        if not result.applied:
            reason = result.failure_reason or "the editor refused the edit"
            return self._generate_failed(f"the generated code was not inserted: {reason}")
        if not edit.whole:
            self.show(
                types.MessageType.Warning,
                "codegemma-lsp: no beginning of the generated code is whole syntax; "
                "it was inserted as written, check it",
            )
        return {"applied": True, "lines": edit.lines, "whole": edit.whole}

    async def _begin_generate_progress(self, target: GenerateTarget) -> str | None:
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress:
            return None
        token = f"codegemma-generate-{uuid.uuid4()}"
        try:
            await asyncio.wait_for(self.work_done_progress.create_async(token), 5)
        except Exception as exc:  # progress is a nicety; generation goes on without it
            log.debug("no progress token: %s", exc)
            return None
        where = "the selection" if target.source == "selection" else "the comment"
        if target.source == "argument":
            where = "the instruction"
        self.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title="CodeGemma", message=f"generating code from {where}", cancellable=True
            ),
        )
        return token

    def _generate_failed(self, message: str) -> dict[str, Any]:
        self.show(types.MessageType.Warning, f"codegemma-lsp: {message}")
        return {"applied": False, "message": message}

    def _call_soon(self, callback: Callable[[], object]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback)

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Called for errors outside any handler's answer (a notification's handler failed).
        log.error("internal error (%s): %s", getattr(source, "__name__", source), error)
        self._report_bad_message()

    def _report_bad_message(self) -> None:
        if not self._bad_message_reported:
            self._bad_message_reported = True
            self.show(
                types.MessageType.Warning,
                "codegemma-lsp: a message could not be handled; see the log",
            )


def _usable_path(path: str | None) -> TypeGuard[str]:
    """Whether ``path`` can name a file at all: a URI's ``%00`` decodes to a NUL byte,
    which every OS call refuses (ValueError), so such a root or document has no context."""
    if not path:
        return False
    if "\x00" in path:
        log.debug("no repository context for a path with a NUL byte: %r", path)
        return False
    return True


def _accept_command(document: Document, suggestion_id: int) -> types.Command:
    return types.Command(
        title="Accept",
        command=ACCEPT_COMMAND,
        arguments=[{"uri": document.uri, "id": suggestion_id}],
    )


def _inline_items(
    position: types.Position, document: Document, answer: Answer
) -> list[types.InlineCompletionItem]:
    # The range starts and ends at the cursor: VS Code and Neovim then render the
    # whole insert text as ghost text after the cursor. Several candidates are items in
    # order, which editors cycle through.
    return [
        types.InlineCompletionItem(
            insert_text=text,
            range=types.Range(start=position, end=position),
            command=_accept_command(document, suggestion_id),
        )
        for text, suggestion_id in answer.items
    ]


def _completion_items(
    position: types.Position, document: Document, answer: Answer
) -> list[types.CompletionItem]:
    return [
        _completion_item(position, document, text, suggestion_id, index)
        for index, (text, suggestion_id) in enumerate(answer.items)
    ]


def _completion_item(
    position: types.Position, document: Document, answer_text: str, suggestion_id: int, index: int
) -> types.CompletionItem:
    # Completion UIs filter by the word before the cursor, so the edit replaces that
    # word with the word plus the completion, and the filter text starts with it.
    offset = document.offset_at(position.line, position.character)
    start = offset
    while start > 0 and (document.text[start - 1].isalnum() or document.text[start - 1] == "_"):
        start -= 1
    word = document.text[start:offset]
    start_line, start_char = document.position_at(start)
    text = word + answer_text
    label = text.split("\n", 1)[0].strip() or answer_text.strip()[:60]
    return types.CompletionItem(
        label=label[:80],
        kind=types.CompletionItemKind.Text,
        detail="codegemma",
        insert_text_format=types.InsertTextFormat.PlainText,
        filter_text=text,
        sort_text=str(index),
        preselect=index == 0,
        text_edit=types.TextEdit(
            range=types.Range(
                start=types.Position(line=start_line, character=start_char), end=position
            ),
            new_text=text,
        ),
        command=_accept_command(document, suggestion_id),
    )


def _refusal(document: Document, max_file_bytes: int) -> str | None:
    if is_secret_path(to_fs_path(document.uri) or document.uri):
        return "secret file"
    if document.length > max_file_bytes:
        return "file too large"
    if "\x00" in document.text:
        return "binary file"
    found = secret_in(document.text)
    if found is not None:
        return f"secret file (it holds {found})"
    return None


def _field(value: Any, name: str) -> Any:
    """A field of params that pygls left as a dict or turned into an object."""
    return value[name] if isinstance(value, dict) else getattr(value, name)


def _command_argument(args: tuple[Any, ...]) -> dict[str, Any]:
    """The first object among a command's arguments (clients nest them differently)."""
    for arg in args:
        if isinstance(arg, dict):
            return arg
        if isinstance(arg, list | tuple):
            found = _command_argument(tuple(arg))
            if found:
                return found
    return {}


def _range_offsets(document: Document, value: Any) -> tuple[int, int]:
    """A range (an lsprotocol Range, or its JSON from a command's arguments) as str offsets;
    anything unreadable is the start of the document."""

    def offset(position: Any) -> int:
        if isinstance(position, dict):
            line, character = position.get("line"), position.get("character")
        else:
            line, character = getattr(position, "line", None), getattr(position, "character", None)
        if not isinstance(line, int) or not isinstance(character, int):
            return 0
        return document.offset_at(line, character)

    if isinstance(value, dict):
        return offset(value.get("start")), offset(value.get("end"))
    return offset(getattr(value, "start", None)), offset(getattr(value, "end", None))


def _range_json(value: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": value.start.line, "character": value.start.character},
        "end": {"line": value.end.line, "character": value.end.character},
    }


def _text_document_uri(params: Any) -> str:
    document = getattr(params, "textDocument", None)
    return str(getattr(document, "uri", ""))


def create_server(
    command_line: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    *,
    bench_oracle: bool = False,
    debug_clock: bool = False,
) -> CodeGemmaServer:
    """The server; ``bench_oracle`` (``serve --bench-oracle``, for ``bench replay`` only)
    accepts ``codegemma/benchOracle``, which tells what the typist types next;
    ``debug_clock`` (``serve --debug-clock``, tests only) accepts
    ``codegemma/debugAdvanceClock``, which moves the user numbers' clock on."""
    server = CodeGemmaServer(command_line, environment)
    if debug_clock:

        @server.feature(DEBUG_CLOCK_REQUEST)
        def advance_clock(ls: CodeGemmaServer, params: Any) -> dict[str, Any]:
            return ls.advance_clock(params)

    if bench_oracle:
        server.service.oracle = OracleBook()

        @server.feature(BENCH_ORACLE_NOTIFICATION)
        def bench_oracle_text(ls: CodeGemmaServer, params: Any) -> None:
            ls.tell_oracle(params)

    @server.feature(types.INITIALIZE)
    def initialize(ls: CodeGemmaServer, params: types.InitializeParams) -> None:
        ls.root_path = ls.workspace.root_path
        encoding = ls.workspace.position_encoding
        ls.documents.encoding = PositionEncoding(getattr(encoding, "value", encoding) or "utf-16")
        ls.watch_client(params.process_id)
        layer, problems = client_layer(params.initialization_options)
        ls.sources.initialization = layer
        for problem in problems:
            log.warning("%s", problem)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: CodeGemmaServer, params: types.InitializedParams) -> None:
        ls._loop = asyncio.get_running_loop()
        ls.start_ticking()
        await ls.pull_workspace_settings()
        ls.apply_settings()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: CodeGemmaServer, params: types.DidChangeConfigurationParams
    ) -> None:
        # Clients that use the pull model send an empty notification and expect a pull.
        if not ls.set_workspace_settings(params.settings):
            await ls.pull_workspace_settings()
        ls.apply_settings()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CodeGemmaServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.open_document(params.text_document)
        ls.context_changed(params.text_document.uri)
        ls.schedule_prewarm(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CodeGemmaServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.service.edited(params.text_document.uri)
        ls.change_document(params)
        ls.context_changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CodeGemmaServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.context_changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CodeGemmaServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.numbers.closing(params.text_document.uri)
        ls.service.forget(params.text_document.uri)
        ls.forget_refusal(params.text_document.uri)
        ls.generator.forget(params.text_document.uri)
        ls.documents.close(params.text_document.uri)
        ls.context_changed(params.text_document.uri, closed=True)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(
        ls: CodeGemmaServer, params: types.DidChangeWatchedFilesParams
    ) -> None:
        for change in params.changes:
            ls.context_changed(change.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: CodeGemmaServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        found = await ls.complete(params.text_document.uri, params.position)
        if found is None:
            return types.InlineCompletionList(items=[])
        return types.InlineCompletionList(items=_inline_items(params.position, *found))

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
    async def completion(
        ls: CodeGemmaServer, params: types.CompletionParams
    ) -> types.CompletionList:
        found = await ls.complete(params.text_document.uri, params.position)
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        # Incomplete: the next keystroke must ask again rather than filter a stale list.
        return types.CompletionList(
            is_incomplete=True, items=_completion_items(params.position, *found)
        )

    @server.command(ACCEPT_COMMAND)
    def accept(ls: CodeGemmaServer, *args: Any) -> None:
        argument = _command_argument(args)
        log.debug("accepted suggestion %s", argument.get("id"))
        ls.numbers.accepted(str(argument.get("uri", "")), argument.get("id"))
        document = ls.documents.get(str(argument.get("uri", "")))
        suggestion_id = argument.get("id")
        if document is not None and isinstance(suggestion_id, int):
            ls.service.accepted(document, suggestion_id, ls.relative_path(document.uri))

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite]),
    )
    def code_action(ls: CodeGemmaServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        only = [str(getattr(k, "value", k)) for k in params.context.only or []]
        return ls.generate_actions(params.text_document.uri, params.range, only or None)

    @server.command(GENERATE_COMMAND)
    async def generate(ls: CodeGemmaServer, *args: Any) -> dict[str, Any]:
        return await ls.generate_command(_command_argument(args))

    @server.command(ACCEPT_PARTIAL_COMMAND)
    def accept_partial(ls: CodeGemmaServer, *args: Any) -> None:
        argument = _command_argument(args)
        chars = argument.get("chars")
        count = chars if isinstance(chars, int) and not isinstance(chars, bool) else 0
        ls.numbers.accepted(str(argument.get("uri", "")), argument.get("id"), count)

    @server.feature(STATS_REQUEST)
    def stats(ls: CodeGemmaServer, params: Any) -> dict[str, Any]:
        records = bool(getattr(params, "records", False)) if params is not None else False
        summary = ls.stats.summary(with_records=records)
        summary["worker"] = asdict(ls.worker.counts)
        return summary

    @server.feature(DOCUMENT_DIGEST_REQUEST)
    def document_digest(ls: CodeGemmaServer, params: Any) -> dict[str, Any] | None:
        return ls.document_digest(_text_document_uri(params))

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: CodeGemmaServer, params: None) -> None:
        ls.numbers.finish()
        ls.service.cancel_all()
        ls.host.close()
        ls.generator.close()

    return server
