from __future__ import annotations

from typing import Any

import pytest

from codegemma_lsp.tcp_auth import (
    REQUEST_FAILED,
    SERVER_NOT_INITIALIZED,
    first_message_refusal,
    new_token,
    without_token,
)

TOKEN = "s3cret-token"


def _initialize(options: Any, msg_id: Any = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "initialize",
        "params": {"processId": None, "capabilities": {}, "initializationOptions": options},
    }


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(_initialize({"tcpToken": TOKEN}), id="top-level"),
        pytest.param(_initialize({"codegemma": {"tcpToken": TOKEN}}), id="in-section"),
        pytest.param(_initialize({"tcpToken": TOKEN, "model": {"nCtx": 1024}}), id="with-more"),
        pytest.param(_initialize({"tcpToken": TOKEN}, msg_id="a"), id="string-id"),
    ],
)
def test_the_token_opens_a_session(value: dict[str, Any]) -> None:
    assert first_message_refusal(value, TOKEN) is None


@pytest.mark.parametrize(
    ("value", "msg_id", "code"),
    [
        pytest.param(_initialize({"tcpToken": "guess"}), 1, REQUEST_FAILED, id="wrong"),
        pytest.param(_initialize({"tcpToken": TOKEN + "x"}), 1, REQUEST_FAILED, id="longer"),
        pytest.param(_initialize({"tcpToken": TOKEN[:-1]}), 1, REQUEST_FAILED, id="prefix"),
        pytest.param(_initialize({}), 1, REQUEST_FAILED, id="missing"),
        pytest.param(_initialize(None), 1, REQUEST_FAILED, id="no-options"),
        pytest.param(_initialize({"tcpToken": 123}), 1, REQUEST_FAILED, id="not-a-string"),
        pytest.param(_initialize({"tcpToken": ""}), 1, REQUEST_FAILED, id="empty"),
        pytest.param(
            {"jsonrpc": "2.0", "id": 4, "method": "shutdown"},
            4,
            SERVER_NOT_INITIALIZED,
            id="not-initialize",
        ),
        pytest.param(
            {"jsonrpc": "2.0", "method": "initialize", "params": {}},
            None,
            SERVER_NOT_INITIALIZED,
            id="initialize-as-notification",
        ),
        pytest.param(
            {**_initialize({"tcpToken": TOKEN}), "id": {"x": 1}},
            None,
            SERVER_NOT_INITIALIZED,
            id="object-id",
        ),
        pytest.param([_initialize({"tcpToken": TOKEN})], None, SERVER_NOT_INITIALIZED, id="batch"),
    ],
)
def test_anything_else_is_refused(value: Any, msg_id: Any, code: int) -> None:
    refusal = first_message_refusal(value, TOKEN)
    assert refusal is not None
    assert (refusal.msg_id, refusal.code) == (msg_id, code)
    response = refusal.response()
    assert response["id"] == msg_id and response["error"]["code"] == code
    assert TOKEN not in str(response)


def test_the_token_is_taken_out_before_the_server_sees_it() -> None:
    value = _initialize({"tcpToken": TOKEN, "codegemma": {"tcpToken": TOKEN, "fim": {}}})
    cleaned = without_token(value)
    assert TOKEN not in str(cleaned)
    assert cleaned["params"]["initializationOptions"] == {"codegemma": {"fim": {}}}
    assert TOKEN in str(value), "the original is left alone"


def test_new_tokens_are_long_and_different() -> None:
    tokens = {new_token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(token) >= 32 for token in tokens)
