"""The server's own tokenizer, for a remote backend given no local GGUF.

Three dialects, one :class:`~codegemma_lsp.engine.base.Tokenizer`:

- ``llama-server``: ``POST /tokenize`` (``add_special`` and ``parse_special`` off) and
  ``POST /detokenize``;
- ``llama-cpp-python`` (``python -m llama_cpp.server``): ``POST /extras/tokenize`` and
  ``/extras/detokenize``. It always adds BOS (dropped here) and always parses
  special-token text;
- ``vllm``: ``POST /tokenize`` and ``/detokenize`` with ``add_special_tokens`` off.

Where the server would parse special-token text in user text (the last two), text is
cut after the ``<`` of each control-token spelling before it is sent, so that code
which spells ``<|fim_prefix|>`` or ``<eos>`` stays text.

Each prompt piece is one round trip, so answers are kept in a small LRU cache: the
context files and the prompt's stable start come back from it while the user types.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from codegemma_lsp.engine.base import ModelLoadError
from codegemma_lsp.engine.http_stream import RemoteError

Dialect = Literal["llama-server", "llama-cpp-python", "vllm"]
JsonCall = Callable[[str, Any], Any]
"""POST ``path`` with a JSON payload, returning the parsed answer or raising RemoteError."""

CACHE_ENTRIES = 256

_CONTROL_SPELLING = re.compile(
    r"<(?=(?:bos|eos|pad|unk|mask|start_of_turn|end_of_turn|unused\d+)>"
    r"|\|(?:fim_[a-z]+|file_separator)\|>)"
)
"""The ``<`` of a control token's spelling in Gemma's vocabulary."""

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


def split_control_spellings(text: str) -> list[str]:
    """``text`` cut after the ``<`` of every control-token spelling it holds."""
    cuts = [m.start() + 1 for m in _CONTROL_SPELLING.finditer(text)]
    if not cuts:
        return [text]
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _ids(answer: Any, where: str) -> list[int]:
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(tokens, list):
        raise RemoteError(f"{where} answered without a token list", kind="protocol")
    ids: list[int] = []
    for token in tokens:
        # llama-server's with_pieces answers objects: {"id": ..., "piece": ...}.
        value = token.get("id") if isinstance(token, dict) else token
        if not isinstance(value, int) or isinstance(value, bool):
            raise RemoteError(f"{where} answered a token that is not an id", kind="protocol")
        ids.append(value)
    return ids


class ServerTokenizer:
    """A :class:`~codegemma_lsp.engine.base.Tokenizer` that asks the server."""

    def __init__(self, call: JsonCall, dialect: Dialect, *, model: str | None = None) -> None:
        self._call = call
        self.dialect = dialect
        self.model = model
        self._tokens: _Lru[str, tuple[int, ...]] = _Lru(CACHE_ENTRIES)
        self._texts: _Lru[tuple[int, ...], str] = _Lru(CACHE_ENTRIES)
        self._specials: dict[str, int | None] = {}
        self._special_texts: dict[int, str] = {}
        self._bos: int | None = None
        self._bos_known = False

    # ----- the three dialects ---------------------------------------------------------

    def _raw_tokenize(self, text: str, *, special: bool) -> list[int]:
        if self.dialect == "llama-server":
            payload = {"content": text, "add_special": False, "parse_special": special}
            return _ids(self._call("/tokenize", payload), "/tokenize")
        if self.dialect == "vllm":
            payload = {"prompt": text, "add_special_tokens": False}
            if self.model:
                payload["model"] = self.model
            return _ids(self._call("/tokenize", payload), "/tokenize")
        ids = _ids(self._call("/extras/tokenize", {"input": text}), "/extras/tokenize")
        bos = self._server_bos()
        return ids[1:] if bos is not None and ids[:1] == [bos] else ids

    def _server_bos(self) -> int | None:
        """The BOS llama-cpp-python's server puts before every tokenization (None: none)."""
        if not self._bos_known:
            ids = _ids(self._call("/extras/tokenize", {"input": ""}), "/extras/tokenize")
            self._bos = ids[0] if len(ids) == 1 else None
            self._bos_known = True
        return self._bos

    def _raw_detokenize(self, ids: Sequence[int]) -> str:
        if self.dialect == "llama-server":
            answer = self._call("/detokenize", {"tokens": list(ids)})
            key = "content"
        elif self.dialect == "vllm":
            payload: dict[str, Any] = {"tokens": list(ids)}
            if self.model:
                payload["model"] = self.model
            answer = self._call("/detokenize", payload)
            key = "prompt"
        else:
            answer = self._call("/extras/detokenize", {"tokens": list(ids)})
            key = "text"
        text = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise RemoteError("the server's detokenize answered no text", kind="protocol")
        return text

    # ----- the Tokenizer protocol -------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        if not text:
            return []
        cached = self._tokens.get(text)
        if cached is not None:
            return list(cached)
        if self.dialect == "llama-server":
            ids = self._raw_tokenize(text, special=False)
        else:
            ids = [
                token
                for piece in split_control_spellings(text)
                for token in self._raw_tokenize(piece, special=False)
            ]
        self._tokens.put(text, tuple(ids))
        return ids

    def special_id(self, text: str) -> int | None:
        if text in self._specials:
            return self._specials[text]
        ids = self._raw_tokenize(text, special=True)
        if self.dialect == "llama-cpp-python" and len(ids) > 1 and ids[0] == self._server_bos():
            ids = ids[1:]  # "<bos>" itself: the added BOS, then the parsed one
        found = ids[0] if len(ids) == 1 else None
        self._specials[text] = found
        if found is not None:
            self._special_texts[found] = text
        return found

    def detokenize(self, ids: Sequence[int]) -> str:
        """Runs between known special ids go to the server (special ids it may not render);
        the special ids asked for through :meth:`special_id` are written as their text."""
        out: list[str] = []
        run: list[int] = []

        def flush() -> None:
            if run:
                key = tuple(run)
                text = self._texts.get(key)
                if text is None:
                    text = self._raw_detokenize(run)
                    self._texts.put(key, text)
                out.append(text)
                run.clear()

        for token in ids:
            special = self._special_texts.get(token)
            if special is None:
                run.append(token)
            else:
                flush()
                out.append(special)
        flush()
        return "".join(out)


def probe_openai_tokenizer(call: JsonCall, model: str | None) -> ServerTokenizer:
    """The tokenizer an OpenAI-compatible server offers: llama-cpp-python's, then vLLM's."""
    failures: list[str] = []
    for dialect in ("llama-cpp-python", "vllm"):
        tokenizer = ServerTokenizer(call, dialect, model=model)
        try:
            tokenizer.special_id("<bos>")
        except RemoteError as exc:
            if exc.kind != "status":
                raise
            failures.append(str(exc))
            continue
        return tokenizer
    raise ModelLoadError(
        "the server offers no tokenizer endpoint (" + "; ".join(failures) + "): set model.path "
        "to a GGUF with the server's vocabulary to tokenize locally"
    )
