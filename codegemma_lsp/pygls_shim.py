"""The private parts of pygls the server relies on, in one place, each named for what it means.

pygls leaves gaps the protocol needs filled (reference/FACTS.md): answering -32002
before ``initialize`` and InvalidRequest after ``shutdown`` needs to know whether
those happened; answering a message pygls could not read needs its raw writer; and
the server's bookkeeping of in-flight requests reads pygls's own. pygls exposes
none of that publicly. Every such access goes through a function here, and
``tests/unit/test_pygls_shim.py`` checks each against the installed pygls, pinned
to the version they were written for (:data:`TESTED_PYGLS`): upgrading pygls fails
that test until this module is checked again.

Besides :mod:`codegemma_lsp.server`, this is the only module that imports pygls.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from pygls.exceptions import JsonRpcException, PyglsError
from pygls.protocol import JsonRPCProtocol, LanguageServerProtocol
from pygls.server import JsonRPCServer

TESTED_PYGLS = "2.1"
"""The pygls release (major.minor) whose private attributes this module was checked on."""


def initialized(protocol: LanguageServerProtocol) -> bool:
    """Whether ``initialize`` has been handled (pygls makes its workspace then)."""
    return protocol._workspace is not None


def shutdown_requested(protocol: JsonRPCProtocol) -> bool:
    """Whether ``shutdown`` has been handled."""
    return bool(protocol._shutdown)


def send_message(protocol: JsonRPCProtocol, message: dict[str, Any]) -> None:
    """Write one JSON-RPC message as is (one pygls never built, such as an error for a
    request it could not read)."""
    protocol._send_data(message)


def request_futures(protocol: JsonRPCProtocol) -> dict[Any, Future[Any]]:
    """pygls's futures of the requests in flight, by id (the ones ``$/cancelRequest``
    cancels)."""
    return protocol._request_futures


def owning_server(protocol: JsonRPCProtocol) -> JsonRPCServer:
    """The server a protocol object belongs to."""
    return protocol._server


def drop_builtin_features(protocol: JsonRPCProtocol, methods: Iterable[str]) -> None:
    """Unregister pygls's own handlers of ``methods`` (the server handles them itself)."""
    for method in methods:
        protocol.fm.builtin_features.pop(method, None)


def report_error(
    protocol: JsonRPCProtocol,
    error: Exception,
    source: type[PyglsError] | type[JsonRpcException],
) -> None:
    """Hand an error outside any request to the server's error report (as pygls does)."""
    protocol._server._report_server_error(error, source)
