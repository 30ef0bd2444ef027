"""The pygls private API the server uses, checked against the installed pygls.

Pinned: a pygls other than :data:`TESTED_PYGLS` fails here first, so an upgrade is
a deliberate check of :mod:`codegemma_lsp.pygls_shim`, not a surprise in production.
"""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from codegemma_lsp import pygls_shim


class Written:
    """A pygls writer that keeps what it is given."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None: ...

    def messages(self) -> list[Any]:
        bodies = self.data.decode().split("\r\n\r\n")[1:]
        return [json.loads(body.split("Content-Length")[0]) for body in bodies]


def make() -> tuple[LanguageServer, LanguageServerProtocol, Written]:
    server = LanguageServer("shim-test", "0")
    protocol = server.protocol
    written = Written()
    protocol.set_writer(written)
    return server, protocol, written


def test_pygls_is_the_release_the_shim_was_written_for() -> None:
    version = importlib.metadata.version("pygls")
    assert version.startswith(pygls_shim.TESTED_PYGLS + "."), (
        f"pygls {version}: check every function of codegemma_lsp/pygls_shim.py (and the "
        "private methods CodeGemmaProtocol overrides) against it, then update TESTED_PYGLS"
    )


def test_the_overridden_private_methods_still_exist() -> None:
    for name in ("_register_builtin_features", "_execute_handler"):
        assert callable(getattr(LanguageServerProtocol, name, None)), name


def test_initialized_and_shutdown_follow_the_protocol() -> None:
    server, protocol, _ = make()
    assert not pygls_shim.initialized(protocol)
    assert not pygls_shim.shutdown_requested(protocol)
    list(protocol.lsp_initialize(types.InitializeParams(capabilities=types.ClientCapabilities())))
    assert pygls_shim.initialized(protocol)
    list(protocol.lsp_shutdown())
    assert pygls_shim.shutdown_requested(protocol)
    assert pygls_shim.owning_server(protocol) is server


def test_send_message_writes_it_as_is() -> None:
    _, protocol, written = make()
    message = {"jsonrpc": "2.0", "id": 3, "error": {"code": -32002, "message": "not yet"}}
    pygls_shim.send_message(protocol, message)
    assert written.messages() == [message]


def test_request_futures_is_pygls_own_table() -> None:
    _, protocol, _ = make()
    futures = pygls_shim.request_futures(protocol)
    assert futures is protocol._request_futures and futures == {}


def test_builtin_features_can_be_dropped() -> None:
    _, protocol, _ = make()
    assert types.TEXT_DOCUMENT_DID_OPEN in protocol.fm.builtin_features
    pygls_shim.drop_builtin_features(protocol, [types.TEXT_DOCUMENT_DID_OPEN])
    assert types.TEXT_DOCUMENT_DID_OPEN not in protocol.fm.builtin_features


def test_report_error_reaches_the_server() -> None:
    server, protocol, _ = make()
    seen: list[tuple[Exception, Any]] = []
    server.report_server_error = lambda error, source: seen.append((error, source))  # type: ignore[method-assign]
    error = RuntimeError("boom")
    pygls_shim.report_error(protocol, error, JsonRpcInternalError)
    assert seen == [(error, JsonRpcInternalError)]
