"""The server's copy of a document is the editor's, checked through the protocol.

A real server over stdio receives edits and, after every one, reports a digest of its
text (``codegemma/documentDigest``), which must equal the digest of a reference the test
keeps as code units (the model from ``tests/unit/test_documents.py``, which shares no
code with the server). Positions past the end of a line or of the document are valid
LSP, and so are characters that ``str.splitlines`` takes for line breaks.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegemma_lsp.documents import PositionEncoding, TextChange
from tests.conftest import SERVER
from tests.lsp.raw_client import RawClient
from tests.unit.test_documents import UnitModel, draw_batch, texts, to_units

# Not line breaks in LSP, but line breaks to str.splitlines.
NOT_BREAKS = "\f\v\x1c\x1d\x1e\x85\u2028\u2029"
_uris = itertools.count()


def start(root: Path, encoding: PositionEncoding) -> RawClient:
    client = RawClient([*SERVER, "--backend", "fake"])
    result = client.initialize(
        root, capabilities={"general": {"positionEncodings": [encoding.value]}}
    )
    assert result["capabilities"]["positionEncoding"] == encoding.value
    return client


def stop(client: RawClient) -> None:
    client.response(client.request("shutdown"))
    client.notify("exit")
    assert client.close() == 0


@pytest.fixture(scope="module", params=list(PositionEncoding), ids=lambda e: e.value)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RawClient, PositionEncoding]]:
    """One server per encoding for every example (a server costs a second to start)."""
    encoding: PositionEncoding = request.param
    client = start(tmp_path_factory.mktemp("sync"), encoding)
    try:
        yield client, encoding
        stop(client)
    finally:
        client.proc.kill()
        client.close()


def lsp_change(change: TextChange) -> dict[str, Any]:
    if change.start is None or change.end is None:
        return {"text": change.text}
    (sl, sc), (el, ec) = change.start, change.end
    return {
        "range": {
            "start": {"line": sl, "character": sc},
            "end": {"line": el, "character": ec},
        },
        "text": change.text,
    }


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def server_digest(client: RawClient, uri: str) -> Any:
    reply = client.response(
        client.request("codegemma/documentDigest", {"textDocument": {"uri": uri}})
    )
    return reply["result"]


def open_document(client: RawClient, text: str) -> str:
    uri = f"file:///sync/doc{next(_uris)}.py"
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 0, "text": text}},
    )
    return uri


def change(client: RawClient, uri: str, version: int, changes: list[TextChange]) -> None:
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [lsp_change(c) for c in changes],
        },
    )


def assert_same(client: RawClient, uri: str, version: int, text: str) -> None:
    found = server_digest(client, uri)
    assert found is not None, "the document is not open"
    assert (found["version"], found["sha256"]) == (version, digest(text))
    assert found["utf8Bytes"] == len(text.encode("utf-8", "surrogatepass"))


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), initial=texts)
def test_random_edits_leave_the_servers_text_equal_to_the_editors(
    server: tuple[RawClient, PositionEncoding], data: st.DataObject, initial: str
) -> None:
    client, encoding = server
    uri = open_document(client, initial)
    model = UnitModel(to_units(initial, encoding), encoding)
    assert_same(client, uri, 0, model.text)
    for version in range(1, data.draw(st.integers(1, 5), label="batches") + 1):
        change(client, uri, version, draw_batch(data, model))
        assert_same(client, uri, version, model.text)
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert server_digest(client, uri) is None


def test_ten_edits_around_form_feeds_and_other_non_breaks(
    server: tuple[RawClient, PositionEncoding],
) -> None:
    client, encoding = server
    text = f"x = '{NOT_BREAKS}'\ny = 1\n"
    uri = open_document(client, text)
    model = UnitModel(to_units(text, encoding), encoding)
    for version in range(1, 11):
        # Alternately at the end of the first LSP line (past every non-break) and at the
        # start of the second, which splitlines would put a line or more further down.
        first = model.lines()[0]
        position = (0, first[1] - first[0]) if version % 2 else (1, 0)
        start = model.offset(*position)
        model.replace(start, start, f"e{version}")
        change(client, uri, version, [TextChange(position, position, f"e{version}")])
        assert_same(client, uri, version, model.text)
    assert model.text.endswith("'e1e3e5e7e9\ne10e8e6e4e2y = 1\n")


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        pytest.param("abc", (0, 10), "abcX", id="past-the-end-of-the-last-line"),
        pytest.param("abc\ndef", (1, 99), "abc\ndefX", id="past-the-end-after-a-break"),
        pytest.param("abc\n", (7, 3), "abc\nX", id="past-the-last-line"),
        pytest.param("a\fb", (0, 3), "a\fbX", id="after-a-form-feed"),
        pytest.param("a\u2028b\r\nc", (0, 9), "a\u2028bX\r\nc", id="after-u2028-before-crlf"),
    ],
)
def test_insert_at_a_clamped_position(
    server: tuple[RawClient, PositionEncoding],
    text: str,
    position: tuple[int, int],
    expected: str,
) -> None:
    client, _ = server
    uri = open_document(client, text)
    change(client, uri, 1, [TextChange(position, position, "X")])
    assert_same(client, uri, 1, expected)
