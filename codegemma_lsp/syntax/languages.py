"""The language registry, read from ``grammars/<name>/``.

Each folder holds a ``language.toml`` (grammar wheel, entry point, LSP language
ids, file extensions, comment markers, the words that open blocks, test-file
naming, how imports resolve) and tree-sitter queries (``*.scm``); see
``grammars/README.md``. Adding a language means adding a folder and a dependency;
no code changes, and no Python module names a language.
A language whose grammar wheel is missing is skipped with a log line, so an
unknown or uninstalled language falls back to line-based behaviour.
"""

from __future__ import annotations

import importlib
import logging
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePath
from typing import Any

import tree_sitter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeaderWords:
    """``[headers]``: how truncation reads a line above the cursor that opens a block.

    The line's first word (after any ``modifiers``) says what kind of block it opens:
    a function (a completion inside may run on over several statements), a container
    (class, module...: it ends with the definition it opened) or control flow.
    ``clause`` words continue the statement above (``else``, ``catch``).

    Where blocks close with a keyword (Lua's ``end``), ``closers`` lists it and
    ``openers`` the words that end a line opening a block (``then``, ``do``); a
    function header opens one too. Otherwise blocks are brackets (``{``), or
    indentation where ``indent_blocks`` says so.
    """

    function: frozenset[str] = frozenset()
    container: frozenset[str] = frozenset()
    """For bracket languages, any word of the header before its ``(``, ``{`` or ``=``."""
    control: frozenset[str] = frozenset()
    clause: frozenset[str] = frozenset()
    modifiers: frozenset[str] = frozenset()
    openers: frozenset[str] = frozenset()
    closers: frozenset[str] = frozenset()

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> HeaderWords:
        def words(key: str) -> frozenset[str]:
            return frozenset(str(w) for w in table.get(key, ()))

        return cls(
            function=words("function"),
            container=words("container"),
            control=words("control"),
            clause=words("clause"),
            modifiers=words("modifiers"),
            openers=words("openers"),
            closers=words("closers"),
        )


@dataclass(frozen=True)
class PairingRules:
    """``[tests]``: which files are tests, and of what (``context/tests_link.py``)."""

    family: str | None = None
    """Languages of one family can test each other's files (TypeScript tests JavaScript)."""
    names: tuple[str, ...] = ()
    """Regular expressions on a file name; group 1 is the name of the code it tests."""
    by_folder: bool = False
    """A file in a test folder (``tests/``, ``__tests__/``) tests its namesake."""
    source_dirs: tuple[str, ...] = ()
    """Folders set aside, like ``src``, when telling how near two files are."""


@dataclass(frozen=True)
class ImportRules:
    """``[imports]``: how the imports ``imports.scm`` finds name workspace files."""

    resolver: str | None = None
    """The resolver kind (``context/resolve.py``): dotted_modules, relative_paths,
    module_packages, package_classes, crate_modules, includes or namespaces."""
    names: str = "query"
    """Where the names an import takes come from: ``query`` (``@import.name``) or
    ``es_clause`` (an ES module's ``import { a, b } from``)."""
    workspace_wide: bool = False
    """An import may name any file of the language anywhere (C#'s namespaces), so a
    change to any such file may change a pack."""
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The resolver kind's own settings (file names to try, source roots)."""


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
    headers: HeaderWords = field(default_factory=HeaderWords)
    tests: PairingRules = field(default_factory=PairingRules)
    imports: ImportRules = field(default_factory=ImportRules)

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
        headers=HeaderWords.from_table(data.get("headers", {})),
        tests=_pairing_rules(data.get("tests", {})),
        imports=_import_rules(data.get("imports", {})),
    )


def _pairing_rules(table: Mapping[str, Any]) -> PairingRules:
    return PairingRules(
        family=table.get("family"),
        names=tuple(str(n) for n in table.get("names", ())),
        by_folder=bool(table.get("by_folder", False)),
        source_dirs=tuple(str(d) for d in table.get("source_dirs", ())),
    )


def _import_rules(table: Mapping[str, Any]) -> ImportRules:
    options = {k: v for k, v in table.items() if k not in ("resolver", "names", "workspace_wide")}
    return ImportRules(
        resolver=table.get("resolver"),
        names=str(table.get("names", "query")),
        workspace_wide=bool(table.get("workspace_wide", False)),
        options=options,
    )


@cache
def fallback_headers() -> HeaderWords:
    """The header words for text of no known language (``grammars/unknown.toml``)."""
    path = grammars_dir() / "unknown.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return HeaderWords.from_table(data.get("headers", {}))


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

    @property
    def specs(self) -> list[LanguageSpec]:
        return [self._by_name[name] for name in self.names]

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
