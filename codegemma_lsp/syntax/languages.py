"""The language registry, read from ``grammars/<name>/``.

Each folder holds a ``language.toml`` (grammar wheel, entry point, LSP language
ids, file extensions, comment markers) and tree-sitter queries (``*.scm``).
Adding a language means adding a folder and a dependency; no code changes.
A language whose grammar wheel is missing is skipped with a log line, so an
unknown or uninstalled language falls back to line-based behaviour.
"""

from __future__ import annotations

import importlib
import logging
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePath

import tree_sitter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LanguageSpec:
    """What the server knows about one language."""

    name: str
    module: str
    function: str
    language_ids: tuple[str, ...]
    extensions: tuple[str, ...]
    line_comment: str | None
    block_comment: tuple[str, str] | None
    folder: Path
    ts_language: tree_sitter.Language = field(compare=False, repr=False)
    indent_blocks: bool = False
    """Blocks are made by indentation (Python), not by brackets."""
    quote_lifetimes: bool = False
    """A quote can start a lifetime or label (Rust's ``'a``), not only a character literal."""

    def query_source(self, kind: str) -> str | None:
        """The text of ``<kind>.scm`` in this language's folder, if it exists."""
        path = self.folder / f"{kind}.scm"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def query(self, kind: str) -> tree_sitter.Query | None:
        """The compiled query ``<kind>.scm``, cached per language."""
        return _compiled_query(self, kind)

    def parser(self) -> tree_sitter.Parser:
        return tree_sitter.Parser(self.ts_language)


@cache
def _compiled_query(spec: LanguageSpec, kind: str) -> tree_sitter.Query | None:
    source = spec.query_source(kind)
    if source is None:
        return None
    return tree_sitter.Query(spec.ts_language, source)


def grammars_dir() -> Path:
    """Where the language folders live: inside the wheel, or at the repository root."""
    packaged = Path(__file__).resolve().parent.parent / "grammars"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "grammars"


def _load_spec(folder: Path) -> LanguageSpec | None:
    data = tomllib.loads((folder / "language.toml").read_text(encoding="utf-8"))
    try:
        module = importlib.import_module(data["module"])
        capsule = getattr(module, data.get("function", "language"))()
    except (ImportError, AttributeError) as exc:
        log.warning(
            "grammar for %s is not installed (%s); it falls back to lines", folder.name, exc
        )
        return None
    block = data.get("block_comment") or []
    return LanguageSpec(
        name=data["name"],
        module=data["module"],
        function=data.get("function", "language"),
        language_ids=tuple(data.get("language_ids", [])),
        extensions=tuple(data.get("extensions", [])),
        line_comment=data.get("line_comment"),
        block_comment=(block[0], block[1]) if len(block) == 2 else None,
        folder=folder,
        indent_blocks=bool(data.get("indent_blocks", False)),
        quote_lifetimes=bool(data.get("quote_lifetimes", False)),
        ts_language=tree_sitter.Language(capsule),
    )


class LanguageRegistry:
    """Looks a language up by LSP language id or by file extension."""

    def __init__(self, specs: Iterable[LanguageSpec]) -> None:
        self._by_name: dict[str, LanguageSpec] = {}
        self._by_id: dict[str, LanguageSpec] = {}
        self._by_ext: dict[str, LanguageSpec] = {}
        for spec in specs:
            self._by_name[spec.name] = spec
            for lid in spec.language_ids:
                self._by_id[lid.lower()] = spec
            for ext in spec.extensions:
                self._by_ext[ext.lower()] = spec

    @classmethod
    def from_folder(cls, folder: Path) -> LanguageRegistry:
        specs = []
        for sub in sorted(folder.iterdir()):
            if (sub / "language.toml").is_file():
                spec = _load_spec(sub)
                if spec is not None:
                    specs.append(spec)
        return cls(specs)

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    def by_name(self, name: str) -> LanguageSpec | None:
        return self._by_name.get(name)

    def lookup(
        self, language_id: str | None = None, path: str | None = None
    ) -> LanguageSpec | None:
        """The language for an LSP language id, else for the path's extension."""
        if language_id:
            spec = self._by_id.get(language_id.lower())
            if spec is not None:
                return spec
        if path:
            return self._by_ext.get(PurePath(path).suffix.lower())
        return None


@cache
def default_registry() -> LanguageRegistry:
    return LanguageRegistry.from_folder(grammars_dir())
