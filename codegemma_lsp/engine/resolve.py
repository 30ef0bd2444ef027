"""Which GGUF file the settings mean: ``model.path``, else ``model.id`` + ``model.quant``.

Order: a configured ``model.path`` wins; otherwise the registry names a file, found in
the Hugging Face cache; otherwise, when ``model.download`` is on, it is downloaded.
With download off, the error gives the exact command that fetches it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from codegemma_lsp.config import ModelSettings
from codegemma_lsp.engine.base import ModelLoadError
from codegemma_lsp.engine.registry import ModelFile, UnknownModel, lookup


class ModelMissing(ModelLoadError):
    """The registry's file is not in the cache, and downloading is off."""

    def __init__(self, entry: ModelFile) -> None:
        self.entry = entry
        super().__init__(
            f"{entry.filename} is not downloaded yet: run `{entry.command}` "
            "(or turn model.download on, or set model.path to a GGUF file)"
        )


def registry_entry(settings: ModelSettings) -> ModelFile:
    try:
        return lookup(settings.id, settings.quant)
    except UnknownModel as exc:
        raise ModelLoadError(f"model.id/model.quant: {exc}") from None


def cached_path(settings: ModelSettings, *, cache_dir: Path | None = None) -> Path:
    """The file the settings mean, without any network; ModelMissing when not downloaded."""
    if settings.path:
        return Path(settings.path)
    from codegemma_lsp.engine.download import cached_file

    entry = registry_entry(settings)
    found = cached_file(entry, cache_dir=cache_dir)
    if found is None:
        raise ModelMissing(entry)
    return found


def needs_download(settings: ModelSettings) -> ModelFile | None:
    """The registry entry to fetch before loading, or None when nothing needs fetching."""
    if settings.path or settings.backend != "llama":
        return None
    try:
        cached_path(settings)
    except ModelMissing as missing:
        return missing.entry if settings.download else None
    except ModelLoadError:
        return None  # an unknown model id: make_backend reports it
    return None


def with_path(settings: ModelSettings, path: Path) -> ModelSettings:
    return dataclasses.replace(settings, path=str(path))
