"""From an import as written to the workspace files it names, per language.

Only files inside the workspace are ever returned; an import of the standard
library or of a third-party package resolves to nothing. Each resolver tries
the places that language's tools would look, in their order, and takes the first
file that exists:

- Python: relative imports from the importer's package; absolute ones from the
  importer's folder, each folder above it up to the workspace root, then ``src/``;
  ``from pkg import sub`` adds ``pkg/sub.py`` when ``sub`` is a submodule.
- JavaScript/TypeScript: relative specifiers only, with or without an extension,
  a ``.js`` that names a ``.ts`` source, and ``index`` files of folders.
- Go: packages of the importer's module (``go.mod``), as their non-test files.
- Java/Kotlin: a class under the source root that the ``package`` line implies
  (and its ``main``/``test``, ``java``/``kotlin`` siblings); a package import
  gives that folder's files.
- Rust: ``mod name;`` and ``use crate::`` / ``self::`` / ``super::`` paths (and the
  crate's own name from ``tests/``), to the deepest module file that exists.
- C/C++: quoted includes next to the importer, in the folders above it, in
  ``include/`` and ``src/``; angle includes in ``include/`` only.
- C#: ``using`` a namespace gives the files that declare it *and* define a type
  the importer names (a namespace alone can span a whole solution).

:meth:`Resolver.neighbours` adds what a language makes visible without an import:
Go files of the same package, Java/Kotlin classes of the same package and C#
types of the importer's namespaces, each only when the importer uses a name it
declares.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from codegemma_lsp.context.imports import ImportRef
from codegemma_lsp.context.lexical import identifiers
from codegemma_lsp.context.workspace import Workspace

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

_JS_EXTS = (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts")
_TS_EXTS = (".ts", ".tsx", ".d.ts", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs")
_JS_TO_TS = {".js": (".ts", ".tsx"), ".jsx": (".tsx",), ".mjs": (".mts",), ".cjs": (".cts",)}
_JVM_EXTS = (".java", ".kt")


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

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self._cs_index: dict[Path, tuple[tuple[str, ...], frozenset[str]]] | None = None

    def forget(self, path: Path) -> None:
        """A file changed, appeared or vanished."""
        if self._cs_index is not None and path.suffix == ".cs":
            self._cs_index.pop(path, None)
            entry = self._cs_entry(path)
            if entry is not None:
                self._cs_index[path] = entry

    def forget_all(self) -> None:
        self._cs_index = None

    # --- dispatch -------------------------------------------------------------------------

    def resolve(
        self, language: str, importer: Path, text: str, refs: Sequence[ImportRef]
    ) -> list[Path]:
        """The workspace files ``refs`` name, in import order, without repeats."""
        found = [
            path for _, paths in self.resolve_each(language, importer, text, refs) for path in paths
        ]
        return list(dict.fromkeys(found))

    def resolve_each(
        self, language: str, importer: Path, text: str, refs: Sequence[ImportRef]
    ) -> list[tuple[ImportRef, list[Path]]]:
        """Each of ``refs`` with the workspace files it names."""
        return [
            (ref, [p for p in self._resolve_one(language, importer, text, ref) if p != importer])
            for ref in refs
        ]

    def _resolve_one(self, language: str, importer: Path, text: str, ref: ImportRef) -> list[Path]:
        if language == "python":
            return self._python(importer, ref)
        if language in ("javascript", "typescript", "tsx"):
            return self._javascript(language, importer, ref.path)
        if language == "go":
            return self._go(importer, ref.path)
        if language in ("java", "kotlin"):
            return self._jvm(importer, text, ref.path)
        if language == "rust":
            return self._rust(importer, ref.path)
        if language in ("c", "cpp"):
            return self._include(importer, ref.path)
        if language == "csharp":
            return self._csharp_using(text, ref.path)
        return []

    def neighbours(self, language: str, importer: Path, text: str) -> list[Path]:
        """Files visible without an import whose declared names the importer uses."""
        if language == "go":
            return self._go_neighbours(importer, text)
        if language in ("java", "kotlin"):
            return self._jvm_neighbours(importer, text)
        if language == "csharp":
            return self._csharp_neighbours(importer, text)
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

    # --- Python ---------------------------------------------------------------------------

    def _python_module(self, stem: Path) -> Path | None:
        """``stem.py``, ``stem/__init__.py`` or ``stem.pyi``: the module a dotted name names."""
        return self._first(
            [
                stem.with_name(stem.name + ".py"),
                stem / "__init__.py",
                stem.with_name(stem.name + ".pyi"),
            ]
        )

    def _python(self, importer: Path, ref: ImportRef) -> list[Path]:
        if ref.path.startswith("."):
            dots = len(ref.path) - len(ref.path.lstrip("."))
            base = importer.parent
            for _ in range(dots - 1):
                base = base.parent
            bases = [base]
            parts = [part for part in ref.path[dots:].split(".") if part]
        else:
            bases = [*self._folders_up(importer.parent), self.ws.root / "src"]
            parts = ref.path.split(".")
        for base in bases:
            stem = base.joinpath(*parts)
            module = self._first([stem / "__init__.py"]) if not parts else self._python_module(stem)
            # Names can be submodules only of a package (a folder).
            subs = (
                [
                    sub
                    for name in ref.names
                    if name != "*"
                    and (sub := self._python_module(stem.joinpath(*name.split(".")))) is not None
                ]
                if os.path.isdir(stem)
                else []
            )
            if module is None and not subs:
                continue
            # A package's __init__ adds little once the submodules it was asked for are there.
            if module is not None and not (subs and module.name == "__init__.py"):
                return [module, *subs]
            return subs
        return []

    # --- JavaScript / TypeScript ----------------------------------------------------------

    def _javascript(self, language: str, importer: Path, spec: str) -> list[Path]:
        if not (spec.startswith(("./", "../")) or spec in (".", "..")):
            return []
        target = importer.parent / spec
        exts = _JS_EXTS if language == "javascript" else _TS_EXTS
        candidates: list[Path] = []
        suffix = target.suffix
        if suffix in _JS_EXTS:
            candidates += [target.with_suffix(ts) for ts in _JS_TO_TS.get(suffix, ())]
            candidates.append(target)
        candidates += [target.with_name(target.name + ext) for ext in exts]
        candidates += [target / f"index{ext}" for ext in exts]
        found = self._first(candidates)
        return [found] if found is not None else []

    # --- Go -------------------------------------------------------------------------------

    def _go_module(self, importer: Path) -> tuple[Path, str] | None:
        for folder in self._folders_up(importer.parent):
            go_mod = self._file(folder / "go.mod")
            if go_mod is not None:
                match = _GO_MODULE.search(self._read(go_mod))
                return (folder, match.group(1)) if match else None
        return None

    def _go_package_files(self, folder: Path, *, skip: Path | None = None) -> list[Path]:
        return [
            path
            for path in self.ws.list_dir(folder)
            if path.suffix == ".go" and not path.name.endswith("_test.go") and path != skip
        ]

    def _go(self, importer: Path, spec: str) -> list[Path]:
        module = self._go_module(importer)
        if module is None:
            return []
        folder, name = module
        if spec != name and not spec.startswith(name + "/"):
            return []
        package = self.ws.normalize(folder / spec[len(name) :].lstrip("/"))
        if package is None:
            return []
        return self._go_package_files(package)[:MAX_PACKAGE_FILES]

    def _go_neighbours(self, importer: Path, text: str) -> list[Path]:
        used = identifiers(text)
        found = []
        for path in self._go_package_files(importer.parent, skip=importer):
            if go_declarations(self._read(path)) & used:
                found.append(path)
        return found[:MAX_PACKAGE_FILES]

    # --- Java / Kotlin --------------------------------------------------------------------

    def _jvm_roots(self, importer: Path, text: str) -> list[Path]:
        roots: list[Path] = []
        match = _JVM_PACKAGE.search(text)
        package = match.group(1).split(".") if match else []
        folder = importer.parent
        if package and list(folder.parts[-len(package) :]) == package:
            root = Path(*folder.parts[: -len(package)])
            roots.append(root)
            parts = list(root.parts)
            for i, part in enumerate(parts):
                swap = {"test": "main", "main": "test", "java": "kotlin", "kotlin": "java"}
                if part in swap:
                    roots.append(Path(*parts[:i], swap[part], *parts[i + 1 :]))
        else:
            roots.append(folder)
        for extra in ("src/main/java", "src/main/kotlin", "src"):
            roots.append(self.ws.root / extra)
        roots.append(self.ws.root)
        return [root for root in dict.fromkeys(roots) if self.ws.normalize(root) == root]

    def _jvm(self, importer: Path, text: str, name: str) -> list[Path]:
        parts = name.split(".")
        roots = self._jvm_roots(importer, text)
        for root in roots:
            # Longest prefix first: a static import or a nested class names its file's class.
            for k in range(len(parts), min(2, len(parts)) - 1, -1):
                found = self._first(
                    root.joinpath(*parts[: k - 1], parts[k - 1] + ext) for ext in _JVM_EXTS
                )
                if found is not None:
                    return [found]
        for root in roots:
            listed = [p for p in self.ws.list_dir(root.joinpath(*parts)) if p.suffix in _JVM_EXTS]
            if listed:
                return listed[:MAX_PACKAGE_FILES]
        return []

    def _jvm_neighbours(self, importer: Path, text: str) -> list[Path]:
        used = identifiers(text)
        return [
            path
            for path in self.ws.list_dir(importer.parent)
            if path.suffix in _JVM_EXTS and path != importer and path.stem in used
        ][:MAX_PACKAGE_FILES]

    # --- Rust -----------------------------------------------------------------------------

    def _rust_crate(self, importer: Path) -> tuple[Path, str] | None:
        for folder in self._folders_up(importer.parent):
            cargo = self._file(folder / "Cargo.toml")
            if cargo is not None:
                match = _CARGO_NAME.search(self._read(cargo))
                return folder / "src", (match.group(1) if match else "").replace("-", "_")
        return None

    @staticmethod
    def _rust_module_path(src: Path, importer: Path) -> list[str] | None:
        try:
            parts = list(importer.relative_to(src).parts)
        except ValueError:
            return None
        if parts[-1] == "mod.rs" or (len(parts) == 1 and parts[0] in ("lib.rs", "main.rs")):
            return parts[:-1]
        return [*parts[:-1], Path(parts[-1]).stem]

    def _rust_module_file(self, src: Path, path: Sequence[str]) -> Path | None:
        for k in range(len(path), 0, -1):
            folder = src.joinpath(*path[: k - 1])
            found = self._first([folder / f"{path[k - 1]}.rs", folder / path[k - 1] / "mod.rs"])
            if found is not None:
                return found
        return self._first([src / "lib.rs", src / "main.rs"])

    def _rust(self, importer: Path, argument: str) -> list[Path]:
        if re.fullmatch(r"[A-Za-z_]\w*", argument):
            # `mod name;` (or a bare `use name;`): a child module of the importer.
            home = (
                importer.parent
                if importer.name in ("mod.rs", "lib.rs", "main.rs")
                else importer.parent / importer.stem
            )
            found = self._first([home / f"{argument}.rs", home / argument / "mod.rs"])
            if found is not None:
                return [found]
        crate = self._rust_crate(importer)
        if crate is None:
            return []
        src, name = crate
        here = self._rust_module_path(src, importer)
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
            module = self._rust_module_file(src, full)
            if module is not None:
                found_paths.append(module)
        return found_paths

    # --- C / C++ --------------------------------------------------------------------------

    def _include(self, importer: Path, written: str) -> list[Path]:
        if written.startswith("<"):
            name = written.strip("<>")
            folders = [self.ws.root / "include"]
        else:
            name = written
            folders = [
                *self._folders_up(importer.parent),
                self.ws.root / "include",
                self.ws.root / "src",
            ]
        found = self._first(folder / name for folder in folders)
        return [found] if found is not None else []

    # --- C# -------------------------------------------------------------------------------

    def _cs_entry(self, path: Path) -> tuple[tuple[str, ...], frozenset[str]] | None:
        if not self.ws.is_file(path):
            return None
        text = self._read(path)
        return tuple(_CS_NAMESPACE.findall(text)), frozenset(_CS_TYPE.findall(text))

    def _csharp_index(self) -> dict[Path, tuple[tuple[str, ...], frozenset[str]]]:
        if self._cs_index is None:
            self._cs_index = {}
            listed = [rel for rel in self.ws.listing() if rel.endswith(".cs")]
            for rel in listed[:MAX_CSHARP_FILES]:
                path = self.ws.root / rel
                entry = self._cs_entry(path)
                if entry is not None:
                    self._cs_index[path] = entry
        return self._cs_index

    def _csharp_in(self, namespaces: set[str], used: frozenset[str], typ: str | None) -> list[Path]:
        found = []
        for path, (declared, types) in sorted(self._csharp_index().items()):
            if not namespaces.intersection(declared):
                continue
            if (typ in types) if typ is not None else bool(types & used):
                found.append(path)
        return found

    def _csharp_using(self, text: str, name: str) -> list[Path]:
        used = identifiers(text)
        found = self._csharp_in({name}, used, None)
        if not found and "." in name:
            namespace, _, typ = name.rpartition(".")
            found = self._csharp_in({namespace}, used, typ)
        return found[:MAX_PACKAGE_FILES]

    def _csharp_neighbours(self, importer: Path, text: str) -> list[Path]:
        namespaces: set[str] = set()
        for declared in _CS_NAMESPACE.findall(text):
            parts = declared.split(".")
            namespaces.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
        if not namespaces:
            return []
        found = self._csharp_in(namespaces, identifiers(text), None)
        return [path for path in found if path != importer][:MAX_PACKAGE_FILES]


def go_declarations(text: str) -> frozenset[str]:
    """Top-level names a Go file declares (functions, methods, types, vars, consts)."""
    names = {name for match in _GO_DECL.findall(text) for name in match if name}
    for group in _GO_GROUP.findall(text):
        names.update(re.findall(r"^\s*([A-Za-z_]\w*)", group, re.M))
    return frozenset(names)
