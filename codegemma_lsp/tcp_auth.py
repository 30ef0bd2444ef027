"""Who may drive a server that listens on TCP: the client that knows its token.

Any local process can connect to a loopback port. So with ``--tcp``, a connection
becomes the server's client only when its first message is ``initialize`` with
``initializationOptions.tcpToken`` equal to the token the server was started with.
Until then the connection changes nothing; a connection that fails is answered and
closed. The token is random (``secrets``) unless given, and compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

TOKEN_OPTION = "tcpToken"
"""The key of ``initializationOptions`` (or of its ``codegemma`` section) that holds it."""
ENV_TOKEN = "CODEGEMMA_LSP_TCP_TOKEN"
"""Where the token may come from instead of ``--tcp-token``: a process's environment is
private to its user, while its command line is visible to every local user."""
FIRST_MESSAGE_BYTES = 1 << 20
"""The longest first message read from a connection that has not proved itself."""

SERVER_NOT_INITIALIZED = -32002
REQUEST_FAILED = -32803


@dataclass(frozen=True)
class Refusal:
    """An answer to a first message that does not open a session."""

    msg_id: Any
    code: int
    reason: str

    def response(self) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": self.msg_id,
            "error": {"code": self.code, "message": f"codegemma-lsp: {self.reason}"},
        }


def new_token() -> str:
    return secrets.token_urlsafe(24)


def first_message_refusal(value: Any, token: str) -> Refusal | None:
    """Why ``value``, a connection's first message, does not open a session; None when
    it does. It opens one when it is ``initialize`` carrying the token."""
    msg_id = value.get("id") if isinstance(value, dict) else None
    if not (isinstance(msg_id, str) or type(msg_id) is int):
        msg_id = None
    if not isinstance(value, dict) or value.get("method") != "initialize" or msg_id is None:
        return Refusal(msg_id, SERVER_NOT_INITIALIZED, "the first message must be initialize")
    sent = _sent_token(value.get("params"))
    if sent is None or not hmac.compare_digest(sent.encode(), token.encode()):
        return Refusal(
            msg_id,
            REQUEST_FAILED,
            f"wrong or missing {TOKEN_OPTION} in initializationOptions: this server "
            "serves only the client that started it",
        )
    return None


def without_token(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` less the token, so that no log line or settings layer ever holds it."""
    params = value.get("params")
    if not isinstance(params, dict):
        return value
    options = params.get("initializationOptions")
    if not isinstance(options, dict):
        return value
    options = {key: item for key, item in options.items() if key != TOKEN_OPTION}
    section = options.get("codegemma")
    if isinstance(section, dict) and TOKEN_OPTION in section:
        options["codegemma"] = {k: v for k, v in section.items() if k != TOKEN_OPTION}
    return {**value, "params": {**params, "initializationOptions": options}}


def _sent_token(params: Any) -> str | None:
    if not isinstance(params, dict):
        return None
    options = params.get("initializationOptions")
    if not isinstance(options, dict):
        return None
    for holder in (options, options.get("codegemma")):
        if isinstance(holder, dict) and isinstance(holder.get(TOKEN_OPTION), str):
            sent: str = holder[TOKEN_OPTION]
            return sent
    return None
