"""The language server: thin LSP handlers over the documents, settings and engine.

This is the only module that imports pygls. Fast handlers (document sync)
mutate state on the event loop; completions take a snapshot and run on the
inference thread, where the newest request for a document cancels the older.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path

from codegemma_lsp import __version__
from codegemma_lsp.config import Settings, SettingsSources, client_layer
from codegemma_lsp.context.index import ContextIndex
from codegemma_lsp.documents import (
    Document,
    DocumentSnapshot,
    DocumentStore,
    PositionEncoding,
    TextChange,
)
from codegemma_lsp.engine.host import HostStatus, ModelHost
from codegemma_lsp.engine.worker import InferenceWorker
from codegemma_lsp.privacy import is_secret_path
from codegemma_lsp.service import Answer, CompletionService, current_request_id
from codegemma_lsp.stats import Stats

log = logging.getLogger(__name__)

ACCEPT_COMMAND = "codegemma.accept"
ACCEPT_PARTIAL_COMMAND = "codegemma.acceptPartial"
STATUS_NOTIFICATION = "codegemma/status"
STATS_REQUEST = "codegemma/stats"

_SERVER_NOT_INITIALIZED = -32002
_INVALID_REQUEST = -32600
_PARSE_ERROR = -32700


@dataclass(frozen=True)
class _UnreadableRequest:
    """A request whose params did not match the method's schema."""

    id: Any
    method: str
    error: JsonRpcException


class CodeGemmaProtocol(LanguageServerProtocol):
    """Fills the protocol gaps pygls leaves: requests before ``initialize`` and after
    ``shutdown``, and requests with malformed params (pygls only logs those)."""

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
            if self._workspace is None and method != types.INITIALIZE:
                self._send_error(msg_id, _SERVER_NOT_INITIALIZED, "server not initialized")
            else:
                log.warning("%s: invalid params (%s)", method, message.error)
                self._send_error(msg_id, message.error.code, f"invalid params for {method}")
            return
        is_request = method is not None and msg_id is not None
        if is_request and method != types.INITIALIZE and self._workspace is None:
            self._send_error(msg_id, _SERVER_NOT_INITIALIZED, "server not initialized")
            return
        if is_request and self._shutdown and method != types.EXIT:
            self._send_error(msg_id, _INVALID_REQUEST, "server is shutting down")
            return
        # An async handler's task copies the context here, so it sees its own id.
        token = current_request_id.set(msg_id if is_request else None)
        try:
            super().handle_message(message)
        finally:
            current_request_id.reset(token)

    def _send_error(self, msg_id: Any, code: int, message: str) -> None:
        self._send_data(
            {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
        )


class CodeGemmaServer(LanguageServer):
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
        self.service = CompletionService(self.host, self.worker, self.stats, lambda: self.settings)
        self.root_path: str | None = None
        self.context_index: ContextIndex | None = None
        self.service.context_files = self.context_files
        self._loop: asyncio.AbstractEventLoop | None = None
        self._progress_token: str | None = None
        self._load_task: asyncio.Future[None] | None = None
        """Held so the event loop's weak reference is not the only one to a running load."""
        self._bad_message_reported = False

    # ----- settings and model -------------------------------------------------

    def apply_settings(self) -> None:
        """Resolve all sources; tell the user about bad values; reload the model if it changed."""
        settings, problems = self.sources.resolve()
        previous = self.host.settings
        self.settings = settings
        for problem in problems:
            log.warning("%s", problem)
            self.show(types.MessageType.Warning, f"codegemma-lsp: {problem}")
        self.configure_context()
        if previous != settings.model:
            self.service.reset()
            self.start_loading()

    def configure_context(self) -> None:
        """One context index for the workspace root, when there is a root and it is enabled."""
        settings = self.settings.context
        if not settings.enabled or not self.root_path:
            self.context_index = None
        elif self.context_index is None:
            self.context_index = ContextIndex(
                Path(self.root_path), open_text=self.open_text, settings=settings
            )
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
        if index is None or path is None:
            return ()
        return index.context_for(Path(path)).files

    def context_changed(self, uri: str, *, closed: bool = False) -> None:
        index, path = self.context_index, to_fs_path(uri)
        if index is None or path is None:
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
        window = self.client_capabilities.window
        if window is not None and window.work_done_progress:
            token = f"codegemma-load-{uuid.uuid4()}"
            try:
                await asyncio.wait_for(self.work_done_progress.create_async(token), 5)
            except Exception as exc:  # progress is a nicety; loading goes on without it
                log.debug("no progress token: %s", exc)
            else:
                self.work_done_progress.begin(
                    token,
                    types.WorkDoneProgressBegin(title="codegemma-lsp", message="loading the model"),
                )
                self._progress_token = token
        self.host.load(self.settings.model, snapshot_mb=self.settings.engine.snapshot_mb)

    def _on_host_status(self, status: HostStatus) -> None:
        # Called from the inference thread: hop onto the event loop to write.
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._publish_status, status)

    def _publish_status(self, status: HostStatus) -> None:
        self.protocol.notify(
            STATUS_NOTIFICATION,
            {"state": status.state, "model": status.model, "message": status.message},
        )
        token = self._progress_token
        if token is not None and status.state != "loading":
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=status.state))
            self._progress_token = None
        if status.state == "error":
            log.error("model load failed: %s", status.message)
            self.show(types.MessageType.Error, f"codegemma-lsp: {status.message}")

    def show(self, kind: types.MessageType, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

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
        clamped = document.apply_changes(changes, version=params.text_document.version)
        if clamped:
            log.warning("didChange: %d range(s) past the end of the document were clamped", clamped)

    # ----- completion --------------------------------------------------------------

    def completion_refusal(self, document: Document | None) -> str | None:
        """Why this document gets no completion, or None."""
        if document is None:
            return "document not open"
        if is_secret_path(to_fs_path(document.uri) or document.uri):
            return "secret file"
        if len(document.text) > self.settings.completion.max_file_bytes:
            return "file too large"
        if "\x00" in document.text:
            return "binary file"
        return None

    async def complete(self, uri: str, position: types.Position) -> tuple[Document, Answer] | None:
        document = self.documents.get(uri)
        refusal = self.completion_refusal(document)
        if refusal is not None or document is None:
            log.debug("no completion: %s", refusal)
            return None
        resolved = document.resolve(position.line, position.character)
        if resolved.clamped:
            log.debug("position past the end of the document clamped")
        answer = await self.service.complete(document, resolved.offset, self.relative_path(uri))
        return None if answer is None or not answer.text else (document, answer)

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Called for messages that never reached a handler, such as broken JSON.
        if isinstance(error, json.JSONDecodeError | UnicodeDecodeError) or (
            isinstance(error, JsonRpcException) and error.code == _PARSE_ERROR
        ):
            log.warning("malformed JSON-RPC message dropped: %s", error)
            self.protocol._send_data(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": _PARSE_ERROR, "message": f"parse error: {error}"},
                }
            )
        else:
            log.error("internal error (%s): %s", getattr(source, "__name__", source), error)
        if not self._bad_message_reported:
            self._bad_message_reported = True
            self.show(
                types.MessageType.Warning,
                "codegemma-lsp: a message could not be handled; see the log",
            )


def _accept_command(document: Document, answer: Answer) -> types.Command:
    return types.Command(
        title="Accept",
        command=ACCEPT_COMMAND,
        arguments=[{"uri": document.uri, "id": answer.suggestion_id}],
    )


def _inline_item(
    position: types.Position, document: Document, answer: Answer
) -> types.InlineCompletionItem:
    # The range starts and ends at the cursor: VS Code and Neovim then render the
    # whole insert text as ghost text after the cursor.
    return types.InlineCompletionItem(
        insert_text=answer.text,
        range=types.Range(start=position, end=position),
        command=_accept_command(document, answer),
    )


def _completion_item(
    position: types.Position, document: Document, answer: Answer
) -> types.CompletionItem:
    # Completion UIs filter by the word before the cursor, so the edit replaces that
    # word with the word plus the completion, and the filter text starts with it.
    offset = document.offset_at(position.line, position.character)
    start = offset
    while start > 0 and (document.text[start - 1].isalnum() or document.text[start - 1] == "_"):
        start -= 1
    word = document.text[start:offset]
    start_line, start_char = document.position_at(start)
    text = word + answer.text
    label = text.split("\n", 1)[0].strip() or answer.text.strip()[:60]
    return types.CompletionItem(
        label=label[:80],
        kind=types.CompletionItemKind.Text,
        detail="codegemma",
        insert_text_format=types.InsertTextFormat.PlainText,
        filter_text=text,
        sort_text="0",
        preselect=True,
        text_edit=types.TextEdit(
            range=types.Range(
                start=types.Position(line=start_line, character=start_char), end=position
            ),
            new_text=text,
        ),
        command=_accept_command(document, answer),
    )


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


def create_server(
    command_line: dict[str, Any] | None = None, environment: dict[str, Any] | None = None
) -> CodeGemmaServer:
    server = CodeGemmaServer(command_line, environment)

    @server.feature(types.INITIALIZE)
    def initialize(ls: CodeGemmaServer, params: types.InitializeParams) -> None:
        ls.root_path = ls.workspace.root_path
        encoding = ls.workspace.position_encoding
        ls.documents.encoding = PositionEncoding(getattr(encoding, "value", encoding) or "utf-16")
        layer, problems = client_layer(params.initialization_options)
        ls.sources.initialization = layer
        for problem in problems:
            log.warning("%s", problem)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: CodeGemmaServer, params: types.InitializedParams) -> None:
        ls._loop = asyncio.get_running_loop()
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
        document = ls.documents.get(params.text_document.uri)
        if document is not None and ls.completion_refusal(document) is None:
            ls.service.prewarm(document, ls.relative_path(document.uri))

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CodeGemmaServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.change_document(params)
        ls.context_changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CodeGemmaServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.context_changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CodeGemmaServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.service.forget(params.text_document.uri)
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
        ls.stats.shown += 1
        return types.InlineCompletionList(items=[_inline_item(params.position, *found)])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
    async def completion(
        ls: CodeGemmaServer, params: types.CompletionParams
    ) -> types.CompletionList:
        found = await ls.complete(params.text_document.uri, params.position)
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        ls.stats.shown += 1
        # Incomplete: the next keystroke must ask again rather than filter a stale list.
        return types.CompletionList(
            is_incomplete=True, items=[_completion_item(params.position, *found)]
        )

    @server.command(ACCEPT_COMMAND)
    def accept(ls: CodeGemmaServer, *args: Any) -> None:
        ls.stats.accepted += 1
        argument = _command_argument(args)
        log.debug("accepted suggestion %s", argument.get("id"))
        document = ls.documents.get(str(argument.get("uri", "")))
        suggestion_id = argument.get("id")
        if document is not None and isinstance(suggestion_id, int):
            ls.service.accepted(document, suggestion_id, ls.relative_path(document.uri))

    @server.command(ACCEPT_PARTIAL_COMMAND)
    def accept_partial(ls: CodeGemmaServer, *args: Any) -> None:
        ls.stats.accepted_partially += 1

    @server.feature(STATS_REQUEST)
    def stats(ls: CodeGemmaServer, params: Any) -> dict[str, Any]:
        records = bool(getattr(params, "records", False)) if params is not None else False
        return ls.stats.summary(with_records=records)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: CodeGemmaServer, params: None) -> None:
        ls.service.cancel_all()
        ls.host.close()

    return server
