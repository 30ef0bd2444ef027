"""The models codegemma-lsp knows how to fetch: model id + quantisation -> a file on the hub.

Each entry names the repository, the file, the commit it was published at, and its
SHA-256 and size. Pinning the commit keeps the checksum true: a later upload to the
same repository cannot change what ``codegemma-lsp download`` fetches by default.

The checksums and sizes come from a published manifest of these files; no machine of
this project can reach the hub to recompute them. An entry without a SHA-256 is
checked against the SHA-256 the hub itself publishes for the file (the object id of
its Git LFS pointer, which the HF cache uses as the blob's name).

More entries can be added with a JSON file named by ``CODEGEMMA_LSP_REGISTRY``: a list
of objects with the fields of :class:`ModelFile` (``model``, ``quant``, ``repo``,
``filename`` and optionally ``revision``, ``sha256``, ``size``). Tests use it to point at
a local stand-in hub; users can use it for a model of their own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "codegemma-2b"
DEFAULT_QUANT = "Q4_K_M"
REGISTRY_ENV = "CODEGEMMA_LSP_REGISTRY"


@dataclass(frozen=True, kw_only=True)
class ModelShape:
    """What the memory of a context depends on."""

    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_embd: int
    n_ff: int
    n_vocab: int = 256000
    n_ctx_train: int = 8192


SHAPES: dict[str, ModelShape] = {
    # CodeGemma 2B: multi-query attention (one KV head), so its KV cache is tiny.
    "codegemma-2b": ModelShape(
        n_layer=18, n_head=8, n_head_kv=1, head_dim=256, n_embd=2048, n_ff=16384
    ),
    "codegemma-7b": ModelShape(
        n_layer=28, n_head=16, n_head_kv=16, head_dim=256, n_embd=3072, n_ff=24576
    ),
    "codegemma-7b-it": ModelShape(
        n_layer=28, n_head=16, n_head_kv=16, head_dim=256, n_embd=3072, n_ff=24576
    ),
}


@dataclass(frozen=True, kw_only=True)
class ModelFile:
    model: str
    quant: str
    repo: str
    filename: str
    revision: str = "main"
    sha256: str | None = None
    size: int | None = None

    @property
    def command(self) -> str:
        """The command that fetches this file."""
        quant = "" if self.quant == DEFAULT_QUANT else f" --quant {self.quant}"
        return f"codegemma-lsp download {self.model}{quant}"

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/blob/{self.revision}/{self.filename}"


class UnknownModel(ValueError):
    """No registry entry for this model id and quantisation; the message lists the choices."""


_BARTOWSKI_2B = "4c371c2e831eebf3de95e32c841c8b38d4d9502e"
_BARTOWSKI_7B = "7445262558e223ac999c8c34c6bcbb6e35821a47"

_BUILT_IN: tuple[ModelFile, ...] = (
    ModelFile(
        model="codegemma-2b",
        quant="Q2_K",
        repo="bartowski/codegemma-2b-GGUF",
        filename="codegemma-2b-Q2_K.gguf",
        revision=_BARTOWSKI_2B,
        sha256="1b7d4770626049df049be42ee507dca0040f3e7a669f11d7aa3f6d1ce9a4d3c6",
        size=1157923968,
    ),
    ModelFile(
        model="codegemma-2b",
        quant="Q3_K_M",
        repo="bartowski/codegemma-2b-GGUF",
        filename="codegemma-2b-Q3_K_M.gguf",
        revision=_BARTOWSKI_2B,
        sha256="ba8fd65055d91b6b8722eb3181ec05bc803b8d89488aa473466983ab54331216",
        size=1383801984,
    ),
    ModelFile(
        model="codegemma-2b",
        quant="Q4_K_M",
        repo="bartowski/codegemma-2b-GGUF",
        filename="codegemma-2b-Q4_K_M.gguf",
        revision=_BARTOWSKI_2B,
        sha256="4747caaf4dc51a6e7ad6df5fe26f4c485d847998bd58933eaf011f76e5273c14",
        size=1630262400,
    ),
    ModelFile(
        model="codegemma-2b",
        quant="Q8_0",
        repo="bartowski/codegemma-2b-GGUF",
        filename="codegemma-2b-Q8_0.gguf",
        revision=_BARTOWSKI_2B,
        sha256="b2afa04a0561c7269016e4d5c0e0f80c2b09b2c166d999ada2b1956c30aaf621",
        size=2669069440,
    ),
    ModelFile(
        model="codegemma-7b",
        quant="Q2_K",
        repo="bartowski/codegemma-7b-GGUF",
        filename="codegemma-7b-Q2_K.gguf",
        revision=_BARTOWSKI_7B,
        sha256="a3bbd1b2aa85dcb315c3e18fff0e3a470f22ad33810138ac0001fd750fcd7588",
        size=3481446784,
    ),
    ModelFile(
        model="codegemma-7b",
        quant="Q3_K_M",
        repo="bartowski/codegemma-7b-GGUF",
        filename="codegemma-7b-Q3_K_M.gguf",
        revision=_BARTOWSKI_7B,
        sha256="eb65f44dffa132249940e4785aab30f05ac65175b6b65be33b1ac1b49eb60ef6",
        size=4369328512,
    ),
    ModelFile(
        model="codegemma-7b",
        quant="Q4_K_M",
        repo="bartowski/codegemma-7b-GGUF",
        filename="codegemma-7b-Q4_K_M.gguf",
        revision=_BARTOWSKI_7B,
        sha256="5d36c9391069f7c54339a71a52ed8c0bb36219cba621189fc5427d4cdc6c8e5a",
        size=5329758592,
    ),
    ModelFile(
        model="codegemma-7b",
        quant="Q8_0",
        repo="bartowski/codegemma-7b-GGUF",
        filename="codegemma-7b-Q8_0.gguf",
        revision=_BARTOWSKI_7B,
        sha256="a5f7f8aec7cd475e86fd203bcf4bdc76c2df3172b3d2567656ae4e5360166a5b",
        size=9077844352,
    ),
    # No pinned commit or checksum known for these: checked against the hub's own SHA-256.
    *(
        ModelFile(
            model="codegemma-7b-it",
            quant=quant,
            repo="bartowski/codegemma-7b-it-GGUF",
            filename=f"codegemma-7b-it-{quant}.gguf",
        )
        for quant in ("Q2_K", "Q3_K_M", "Q4_K_M", "Q8_0")
    ),
)


def _extra_entries(environ: Mapping[str, str]) -> list[ModelFile]:
    path = environ.get(REGISTRY_ENV)
    if not path:
        return []
    try:
        raw = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnknownModel(f"cannot read {REGISTRY_ENV}={path}: {exc}") from None
    if not isinstance(raw, list):
        raise UnknownModel(f"{REGISTRY_ENV}={path} must hold a JSON list of models")
    names = {f.name for f in fields(ModelFile)}
    entries = []
    for item in raw:
        if not isinstance(item, dict) or not {"model", "quant", "repo", "filename"} <= set(item):
            raise UnknownModel(
                f"{REGISTRY_ENV}={path}: each model needs model, quant, repo and filename"
            )
        entries.append(ModelFile(**{k: v for k, v in item.items() if k in names}))
    return entries


def entries(environ: Mapping[str, str] | None = None) -> list[ModelFile]:
    """Every known file; entries from ``CODEGEMMA_LSP_REGISTRY`` come first and win."""
    return [*_extra_entries(os.environ if environ is None else environ), *_BUILT_IN]


def model_ids(items: Iterable[ModelFile] | None = None) -> list[str]:
    seen: dict[str, None] = {}
    for entry in entries() if items is None else items:
        seen.setdefault(entry.model, None)
    return list(seen)


def lookup(model: str, quant: str, environ: Mapping[str, str] | None = None) -> ModelFile:
    """The entry for ``model`` at ``quant`` (case-insensitive), or UnknownModel."""
    known = entries(environ)
    for entry in known:
        if entry.model.lower() == model.lower() and entry.quant.lower() == quant.lower():
            return entry
    quants = [e.quant for e in known if e.model.lower() == model.lower()]
    if quants:
        raise UnknownModel(
            f"no {quant} file is known for {model}; choose one of: {', '.join(quants)}"
        )
    raise UnknownModel(f"unknown model {model!r}; choose one of: {', '.join(model_ids(known))}")


def shape_of(model: str) -> ModelShape | None:
    return SHAPES.get(model)


def by_filename(name: str, environ: Mapping[str, str] | None = None) -> ModelFile | None:
    """The entry whose file has this name, for checking a file given by path."""
    for entry in entries(environ):
        if entry.filename == name:
            return entry
    return None


def as_json(entry: ModelFile) -> dict[str, Any]:
    return {f.name: getattr(entry, f.name) for f in fields(ModelFile)}
