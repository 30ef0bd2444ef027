"""From an import as written to the workspace files it names, by resolver kind.

A language folder's ``[imports]`` section names its resolver kind and that kind's
settings (``grammars/README.md``); nothing here names a language. Only files inside
the workspace are ever returned; an import of the standard library or of a
third-party package resolves to nothing. Each kind tries the places the
language's tools would look, in their order, and takes the first file that exists:

- ``dotted_modules`` (Python, Lua): relative imports (leading dots) from the
  importer's package; absolute ones from the importer's folder, each folder above it
  up to the workspace root, then the ``source_roots``; each dotted name tries the
  ``module_files`` (``{}.py``, ``{}/__init__.py``); ``from pkg import sub`` adds
  ``pkg/sub.py`` when ``sub`` is a submodule.
- ``relative_paths`` (JavaScript, TypeScript): relative specifiers only, with or
  without one of the ``extensions``, an extension's ``alternatives`` (a ``.js``
  that names a ``.ts`` source), and ``index`` files of folders.
- ``module_packages`` (Go): packages of the importer's module (its ``manifest``),
  as their non-test files.
- ``package_classes`` (Java, Kotlin): a class under the source root that the
  ``package`` line implies (and its ``sibling_roots``: ``main``/``test``,
  ``java``/``kotlin``); a package import gives that folder's files.
- ``crate_modules`` (Rust): ``mod name;`` and ``use crate::`` / ``self::`` /
  ``super::`` paths (and the crate's own name from ``tests/``), to the deepest
  module file that exists.
- ``includes`` (C, C++): quoted includes next to the importer, in the folders above
  it and in the ``quote_dirs``; angle includes in the ``angle_dirs`` only.
- ``namespaces`` (C#): ``using`` a namespace gives the files that declare it *and*
  define a type the importer names (a namespace alone can span a whole solution).

:meth:`Resolver.neighbours` adds what a kind makes visible without an import:
files of the same package (``module_packages``, ``package_classes``) and types of
the importer's namespaces, each only when the importer uses a name it declares.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codegemma_lsp.context.imports import ImportRef
from codegemma_lsp.context.lexical import identifiers
from codegemma_lsp.context.workspace import Workspace
from codegemma_lsp.syntax.languages import LanguageRegistry, LanguageSpec, default_registry

MAX_PACKAGE_FILES = 8
"""A package or namespace import adds at most this many files."""
MAX_CSHARP_FILES = 3000

_GO_MODULE = re.compile(r"^\s*module\s+(\S+)", re.M)
_GO_DECL = re.compile(
    r"^(?:func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)|type\s+([A-Za-z_]\w*)"
    r"|var\s+([A-Za-z_]\w*)|const\s+([A-Za-z_]\w*))",
    re.M,
)
_GO_GROUP = re.compile(r"^(?:var|const|type)\s*\(\s*\n(.*?)^\)", re.M | re.S)
_JVM_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)", re.M)
_JVM_TYPE = re.compile(r"\b(?:class|interface|enum|record|object)\s+([A-Za-z_]\w*)")
_CARGO_NAME = re.compile(r'^\s*name\s*=\s*"([^"]+)"', re.M)
_CS_NAMESPACE = re.compile(r"^\s*namespace\s+([\w.]+)", re.M)
_CS_TYPE = re.compile(r"\b(?:class|struct|interface|enum|record|delegate\s+\S+)\s+([A-Za-z_]\w*)")


def _strings(options: Mapping[str, Any], key: str, default: Sequence[str]) -> tuple[str, ...]:
    """A list of strings from a kind's settings (``[imports]``), or ``default``."""
    return tuple(str(v) for v in options.get(key, default))


def expand_use_tree(text: str) -> list[str]:
    """A Rust use tree as flat paths: ``a::{b, c::{d as e, self}}`` -> a::b, a::c::d, a::c."""
    flat = re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", text))
    return [path for path in _expand(flat) if path]


def _expand(tree: str) -> list[str]:
    open_at = tree.find("{")
    if open_at < 0:
        return [tree.removesuffix("::*").removesuffix("*")]
    head, body = tree[:open_at], tree[open_at + 1 : tree.rfind("}")]
    items, depth, start = [], 0, 0
    for i, char in enumerate(body):
        depth += char == "{"
        depth -= char == "}"
        if char == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    paths = []
    for item in filter(None, items):
        for tail in _expand(item):
            paths.append(head.removesuffix("::") if tail == "self" else head + tail)
    return paths


class Resolver:
    """Resolves imports to workspace files; caches what it learns of the workspace."""

    def __init__(self, workspace: Workspace, registry: LanguageRegistry | None = None) -> None:
        self.ws = workspace
        self.registry = registry or default_registry()
        self._cs_index: dict[Path, tuple[tuple[str, ...], frozenset[str]]] | None = None
        self._cs_suffixes: tuple[str, ...] = ()
        """The extensions the namespace index covers."""

    def forget(self, path: Path) -> None:
        """A file changed, appeared or vanished."""
        if self._cs_index is not None and path.suffix in self._cs_suffixes:
            self._cs_index.pop(path, None)
            entry = self._cs_entry(path)
            if entry is not None:
                self._cs_index[path] = entry

    def forget_all(self) -> None:
        self._cs_index = None

    # --- dispatch -------------------------------------------------------------------------

    def resolve(
        self, spec: LanguageSpec, importer: Path, text: str, refs: Sequence[ImportRef]
    ) -> list[Path]:
        """The workspace files ``refs`` name, in import order, without repeats."""
        found = [
            path for _, paths in self.resolve_each(spec, importer, text, refs) for path in paths
        ]
        return list(dict.fromkeys(found))

    def resolve_each(
        self, spec: LanguageSpec, importer: Path, text: str, refs: Sequence[ImportRef]
    ) -> list[tuple[ImportRef, list[Path]]]:
        """Each of ``refs`` with the workspace files it names."""
        return [
            (ref, [p for p in self._resolve_one(spec, importer, text, ref) if p != importer])
            for ref in refs
        ]

    def _resolve_one(
        self, spec: LanguageSpec, importer: Path, text: str, ref: ImportRef
    ) -> list[Path]:
        kind, options = spec.imports.resolver, spec.imports.options
        if kind == "dotted_modules":
            return self._dotted(options, importer, ref)
        if kind == "relative_paths":
            return self._relative(options, importer, ref.path)
        if kind == "module_packages":
            return self._go(options, importer, ref.path)
        if kind == "package_classes":
            return self._jvm(options, importer, text, ref.path)
        if kind == "crate_modules":
            return self._rust(options, importer, ref.path)
        if kind == "includes":
            return self._include(options, importer, ref.path)
        if kind == "namespaces":
            return self._csharp_using(spec, text, ref.path)
        return []

    def neighbours(self, spec: LanguageSpec, importer: Path, text: str) -> list[Path]:
        """Files visible without an import whose declared names the importer uses."""
        kind, options = spec.imports.resolver, spec.imports.options
        if kind == "module_packages":
            return self._go_neighbours(options, importer, text)
        if kind == "package_classes":
            return self._jvm_neighbours(options, importer, text)
        if kind == "namespaces":
            return self._csharp_neighbours(spec, importer, text)
        return []

    # --- helpers --------------------------------------------------------------------------

    def _file(self, path: Path | str) -> Path | None:
        normal = self.ws.normalize(path)
        return normal if normal is not None and self.ws.is_file(normal) else None

    def _first(self, candidates: Iterable[Path | str]) -> Path | None:
        for candidate in candidates:
            found = self._file(candidate)
            if found is not None:
                return found
        return None

    def _folders_up(self, start: Path) -> list[Path]:
        """``start`` and each folder above it, up to the workspace root."""
        folders, folder = [], start
        while True:
            folders.append(folder)
            if folder == self.ws.root or folder.parent == folder:
                return folders
            folder = folder.parent

    def _read(self, path: Path) -> str:
        source = self.ws.read(path)
        return source.text if source is not None else ""

    # --- dotted modules (Python, Lua) ----------------------------------------------------

    def _module_file(self, options: Mapping[str, Any], stem: Path) -> Path | None:
        """The module a dotted name names: the first of the ``module_files`` that exists
        (``{}.py`` is ``stem.py``, ``{}/__init__.py`` is ``stem/__init__.py``)."""
        templates = _strings(options, "module_files", ())
        return self._first(
            stem.parent / template.format(stem.name) for template in templates if "{}" in template
        )

    def _dotted(self, options: Mapping[str, Any], importer: Path, ref: ImportRef) -> list[Path]:
        package_file = str(options.get("package_file", ""))
        source_roots = _strings(options, "source_roots", ())
        if ref.path.startswith("."):
            dots = len(ref.path) - len(ref.path.lstrip("."))
            base = importer.parent
            for _ in range(dots - 1):
                base = base.parent
            bases = [base]
            parts = [part for part in ref.path[dots:].split(".") if part]
        else:
            bases = [
                *self._folders_up(importer.parent),
                *(self.ws.root / root for root in source_roots),
            ]
            parts = ref.path.split(".")
        for base in bases:
            stem = base.joinpath(*parts)
            if parts:
                module = self._module_file(options, stem)
            else:
                module = self._first([stem / package_file]) if package_file else None
            # Names can be submodules only of a package (a folder).
            subs = (
                [
                    sub
                    for name in ref.names
                    if name != "*"
                    and (sub := self._module_file(options, stem.joinpath(*name.split("."))))
                    is not None
                ]
                if os.path.isdir(stem)
                else []
            )
            if module is None and not subs:
                continue
            # A package's own file adds little once the submodules it was asked for are there.
            if module is not None and not (subs and module.name == package_file):
                return [module, *subs]
            return subs
        return []

    # --- relative paths (JavaScript, TypeScript) ------------------------------------------

    def _relative(self, options: Mapping[str, Any], importer: Path, spec: str) -> list[Path]:
        if not (spec.startswith(("./", "../")) or spec in (".", "..")):
            return []
        target = importer.parent / spec
        exts = _strings(options, "extensions", ())
        alternatives: Mapping[str, Sequence[str]] = options.get("alternatives", {})
        index = str(options.get("index_name", "index"))
        candidates: list[Path] = []
        suffix = target.suffix
        if suffix in exts:
            candidates += [target.with_suffix(alt) for alt in alternatives.get(suffix, ())]
            candidates.append(target)
        candidates += [target.with_name(target.name + ext) for ext in exts]
        candidates += [target / f"{index}{ext}" for ext in exts]
        found = self._first(candidates)
        return [found] if found is not None else []

    # --- module packages (Go) -------------------------------------------------------------

    def _go_module(self, options: Mapping[str, Any], importer: Path) -> tuple[Path, str] | None:
        manifest = str(options.get("manifest", ""))
        for folder in self._folders_up(importer.parent):
            go_mod = self._file(folder / manifest) if manifest else None
            if go_mod is not None:
                match = _GO_MODULE.search(self._read(go_mod))
                return (folder, match.group(1)) if match else None
        return None

    def _go_package_files(
        self, options: Mapping[str, Any], folder: Path, *, skip: Path | None = None
    ) -> list[Path]:
        extension = str(options.get("extension", ""))
        test_suffix = str(options.get("test_suffix", "")) or None
        return [
            path
            for path in self.ws.list_dir(folder)
            if path.suffix == extension
            and not (test_suffix and path.name.endswith(test_suffix))
            and path != skip
        ]

    def _go(self, options: Mapping[str, Any], importer: Path, spec: str) -> list[Path]:
        module = self._go_module(options, importer)
        if module is None:
            return []
        folder, name = module
        if spec != name and not spec.startswith(name + "/"):
            return []
        package = self.ws.normalize(folder / spec[len(name) :].lstrip("/"))
        if package is None:
            return []
        return self._go_package_files(options, package)[:MAX_PACKAGE_FILES]

    def _go_neighbours(self, options: Mapping[str, Any], importer: Path, text: str) -> list[Path]:
        used = identifiers(text)
        found = []
        for path in self._go_package_files(options, importer.parent, skip=importer):
            if go_declarations(self._read(path)) & used:
                found.append(path)
        return found[:MAX_PACKAGE_FILES]

    # --- package classes (Java, Kotlin) ---------------------------------------------------

    def _jvm_roots(self, options: Mapping[str, Any], importer: Path, text: str) -> list[Path]:
        roots: list[Path] = []
        match = _JVM_PACKAGE.search(text)
        package = match.group(1).split(".") if match else []
        folder = importer.parent
        if package and list(folder.parts[-len(package) :]) == package:
            root = Path(*folder.parts[: -len(package)])
            roots.append(root)
            parts = list(root.parts)
            swap: dict[str, str] = {}
            for a, b in options.get("sibling_roots", ()):
                swap[a], swap[b] = b, a
            for i, part in enumerate(parts):
                if part in swap:
                    roots.append(Path(*parts[:i], swap[part], *parts[i + 1 :]))
        else:
            roots.append(folder)
        for extra in _strings(options, "source_roots", ()):
            roots.append(self.ws.root / extra)
        roots.append(self.ws.root)
        return [root for root in dict.fromkeys(roots) if self.ws.normalize(root) == root]

    def _jvm(self, options: Mapping[str, Any], importer: Path, text: str, name: str) -> list[Path]:
        parts = name.split(".")
        exts = _strings(options, "extensions", ())
        roots = self._jvm_roots(options, importer, text)
        for root in roots:
            # Longest prefix first: a static import or a nested class names its file's class.
            for k in range(len(parts), min(2, len(parts)) - 1, -1):
                found = self._first(
                    root.joinpath(*parts[: k - 1], parts[k - 1] + ext) for ext in exts
                )
                if found is not None:
                    return [found]
        for root in roots:
            listed = [p for p in self.ws.list_dir(root.joinpath(*parts)) if p.suffix in exts]
            if listed:
                return listed[:MAX_PACKAGE_FILES]
        return []

    def _jvm_neighbours(self, options: Mapping[str, Any], importer: Path, text: str) -> list[Path]:
        used = identifiers(text)
        exts = _strings(options, "extensions", ())
        return [
            path
            for path in self.ws.list_dir(importer.parent)
            if path.suffix in exts and path != importer and path.stem in used
        ][:MAX_PACKAGE_FILES]

    # --- crate modules (Rust) -------------------------------------------------------------

    def _rust_crate(self, options: Mapping[str, Any], importer: Path) -> tuple[Path, str] | None:
        manifest = str(options.get("manifest", ""))
        for folder in self._folders_up(importer.parent):
            cargo = self._file(folder / manifest) if manifest else None
            if cargo is not None:
                match = _CARGO_NAME.search(self._read(cargo))
                return folder / "src", (match.group(1) if match else "").replace("-", "_")
        return None

    @staticmethod
    def _rust_module_path(
        options: Mapping[str, Any], src: Path, importer: Path
    ) -> list[str] | None:
        try:
            parts = list(importer.relative_to(src).parts)
        except ValueError:
            return None
        module_file = options.get("module_file")
        roots = _strings(options, "crate_roots", ())
        if parts[-1] == module_file or (len(parts) == 1 and parts[0] in roots):
            return parts[:-1]
        return [*parts[:-1], Path(parts[-1]).stem]

    def _rust_children(self, options: Mapping[str, Any], folder: Path, name: str) -> Path | None:
        """``folder/name.rs`` or ``folder/name/mod.rs``: a module's file."""
        extension, module_file = str(options.get("extension", "")), options.get("module_file")
        candidates = [folder / f"{name}{extension}"]
        if module_file:
            candidates.append(folder / name / str(module_file))
        return self._first(candidates)

    def _rust_module_file(
        self, options: Mapping[str, Any], src: Path, path: Sequence[str]
    ) -> Path | None:
        for k in range(len(path), 0, -1):
            found = self._rust_children(options, src.joinpath(*path[: k - 1]), path[k - 1])
            if found is not None:
                return found
        return self._first(src / root for root in _strings(options, "crate_roots", ()))

    def _rust(self, options: Mapping[str, Any], importer: Path, argument: str) -> list[Path]:
        if re.fullmatch(r"[A-Za-z_]\w*", argument):
            # `mod name;` (or a bare `use name;`): a child module of the importer.
            owners = {str(options.get("module_file")), *_strings(options, "crate_roots", ())}
            home = importer.parent if importer.name in owners else importer.parent / importer.stem
            found = self._rust_children(options, home, argument)
            if found is not None:
                return [found]
        crate = self._rust_crate(options, importer)
        if crate is None:
            return []
        src, name = crate
        here = self._rust_module_path(options, src, importer)
        found_paths: list[Path] = []
        for path in expand_use_tree(argument):
            segments = path.split("::")
            head = segments[0]
            if head == "crate":
                full = segments[1:]
            elif head in ("self", "super") and here is not None:
                base = list(here)
                while segments and segments[0] in ("self", "super"):
                    if segments.pop(0) == "super":
                        base = base[:-1]
                full = base + segments
            elif head == name and here is None:
                full = segments[1:]
            else:
                continue
            module = self._rust_module_file(options, src, full)
            if module is not None:
                found_paths.append(module)
        return found_paths

    # --- includes (C, C++) ----------------------------------------------------------------

    def _include(self, options: Mapping[str, Any], importer: Path, written: str) -> list[Path]:
        if written.startswith("<"):
            name = written.strip("<>")
            folders = [self.ws.root / d for d in _strings(options, "angle_dirs", ())]
        else:
            name = written
            folders = [
                *self._folders_up(importer.parent),
                *(self.ws.root / d for d in _strings(options, "quote_dirs", ())),
            ]
        found = self._first(folder / name for folder in folders)
        return [found] if found is not None else []

    # --- namespaces (C#) ------------------------------------------------------------------

    def _cs_entry(self, path: Path) -> tuple[tuple[str, ...], frozenset[str]] | None:
        if not self.ws.is_file(path):
            return None
        text = self._read(path)
        return tuple(_CS_NAMESPACE.findall(text)), frozenset(_CS_TYPE.findall(text))

    def _csharp_index(
        self, spec: LanguageSpec
    ) -> dict[Path, tuple[tuple[str, ...], frozenset[str]]]:
        if self._cs_index is None or self._cs_suffixes != spec.extensions:
            self._cs_index = {}
            self._cs_suffixes = spec.extensions
            listed = [rel for rel in self.ws.listing() if rel.endswith(spec.extensions)]
            for rel in listed[:MAX_CSHARP_FILES]:
                path = self.ws.root / rel
                entry = self._cs_entry(path)
                if entry is not None:
                    self._cs_index[path] = entry
        return self._cs_index

    def _csharp_in(
        self, spec: LanguageSpec, namespaces: set[str], used: frozenset[str], typ: str | None
    ) -> list[Path]:
        found = []
        for path, (declared, types) in sorted(self._csharp_index(spec).items()):
            if not namespaces.intersection(declared):
                continue
            if (typ in types) if typ is not None else bool(types & used):
                found.append(path)
        return found

    def _csharp_using(self, spec: LanguageSpec, text: str, name: str) -> list[Path]:
        used = identifiers(text)
        found = self._csharp_in(spec, {name}, used, None)
        if not found and "." in name:
            namespace, _, typ = name.rpartition(".")
            found = self._csharp_in(spec, {namespace}, used, typ)
        return found[:MAX_PACKAGE_FILES]

    def _csharp_neighbours(self, spec: LanguageSpec, importer: Path, text: str) -> list[Path]:
        namespaces: set[str] = set()
        for declared in _CS_NAMESPACE.findall(text):
            parts = declared.split(".")
            namespaces.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
        if not namespaces:
            return []
        found = self._csharp_in(spec, namespaces, identifiers(text), None)
        return [path for path in found if path != importer][:MAX_PACKAGE_FILES]


def go_declarations(text: str) -> frozenset[str]:
    """Top-level names a Go file declares (functions, methods, types, vars, consts)."""
    names = {name for match in _GO_DECL.findall(text) for name in match if name}
    for group in _GO_GROUP.findall(text):
        names.update(re.findall(r"^\s*([A-Za-z_]\w*)", group, re.M))
    return frozenset(names)
