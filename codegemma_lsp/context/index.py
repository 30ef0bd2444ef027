"""The repository context of each file, built once and kept until it must change.

The server holds one :class:`ContextIndex` per workspace folder. ``context_for``
returns the same :class:`PackedContext` object, so the same prompt bytes and the
same KV cache, until something it was built from changes:

- a file it read, probed for or listed (``notify_changed`` from didChange, didSave,
  didOpen, didClose and ``workspace/didChangeWatchedFiles``; or ``check_mtimes``,
  which stats what the packs used, and which ``context_for`` itself runs at most
  every ``recheck_seconds``);
- the current file's *imports*: a keystroke in the current file only re-reads
  its imports, and the pack stays as it is unless their resolved files differ
  once they parse cleanly (a half-typed import changes nothing).

A rebuild whose result equals the old pack keeps the old object, so a change that
does not matter never costs the model a re-evaluation. Things inferred from the
current file's text besides its imports (names it uses from package neighbours,
identifier overlap with test candidates) are taken at build time only, for the
same reason.

One lock guards everything: the server may ask from its worker thread while the
event loop notifies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter

from codegemma_lsp.config import ContextSettings
from codegemma_lsp.context.imports import ImportRef, extract_imports, imports_settled
from codegemma_lsp.context.lexical import code_identifiers
from codegemma_lsp.context.outline import outline
from codegemma_lsp.context.packer import EMPTY, Candidate, Measure, PackedContext, pack
from codegemma_lsp.context.resolve import Resolver
from codegemma_lsp.context.tests_link import (
    PairingIndex,
    family,
    find_tests,
    impl_key,
    implementation_of,
    subject_keys,
    subject_of,
)
from codegemma_lsp.context.workspace import OpenText, SourceFile, Trail, Workspace, disk_stamp
from codegemma_lsp.syntax.languages import LanguageRegistry, LanguageSpec, default_registry
from codegemma_lsp.syntax.nodes import approx_tokens

log = logging.getLogger(__name__)

TESTS_RANK = 1000
IMPL_RANK = 0


def approx_measure(text: str) -> int:
    return approx_tokens(text.encode("utf-8", "surrogatepass"))


def _no_open_text(_: Path) -> str | None:
    return None


@dataclass
class _FileInfo:
    source: SourceFile
    spec: LanguageSpec | None
    refs: tuple[ImportRef, ...]
    tree: tree_sitter.Tree | None = None
    outline: str | None = None
    focused: tuple[frozenset[str], str] | None = None
    """The last focused outline, with its focus (packs rebuilt often ask the same)."""

    @property
    def data(self) -> bytes:
        return self.source.text.encode("utf-8", "surrogatepass")


@dataclass
class _Entry:
    pack: PackedContext
    refs: tuple[ImportRef, ...]
    direct: tuple[Path, ...]
    trail: Trail
    lexical: str
    """The current file's text as of its last change of imports (see ``context_for``)."""
    lexical_tree: tree_sitter.Tree
    """The parse of ``lexical``."""
    keys: set[tuple[str, str]] = field(default_factory=set)
    watched: tuple[str, ...] = ()
    """Extensions of languages whose imports may name any of their files (``[imports]``
    ``workspace_wide``): a change to any such file may change the pack."""
    dirty: bool = False
    """The current file changed: its imports must be read again."""
    stale: bool = False
    """Something the pack was built from changed: rebuild (and keep the old object if equal)."""


@dataclass
class IndexStats:
    """Counters for logs and benchmarks."""

    builds: int = 0
    """Packs built from scratch or rebuilt."""
    kept: int = 0
    """Rebuilds (or import re-reads) that found the pack unchanged and kept it."""
    changed: int = 0
    """Rebuilds that produced a different pack."""
    build_ms: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    """Durations of the latest builds."""


@dataclass
class _Node:
    path: Path
    depth: int
    rank: int
    order: int
    test: bool = False
    links: list[tuple[ImportRef, list[Path]]] = field(default_factory=list)
    """Its imports, each with the files it resolved to."""

    @property
    def imports(self) -> list[Path]:
        return list(dict.fromkeys(path for _, paths in self.links for path in paths))


class ContextIndex:
    """Packs of related workspace files, one per current file."""

    def __init__(
        self,
        root: Path,
        *,
        open_text: OpenText = _no_open_text,
        settings: ContextSettings | None = None,
        registry: LanguageRegistry | None = None,
        measure: Measure = approx_measure,
        use_git: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or ContextSettings()
        self.registry = registry or default_registry()
        self.measure = measure
        self.workspace = Workspace(
            root, open_text=open_text, max_file_bytes=self.settings.max_file_bytes, use_git=use_git
        )
        self.resolver = Resolver(self.workspace, self.registry)
        self.stats = IndexStats()
        self._clock = clock
        self._last_check = clock()
        self._lock = threading.RLock()
        # Notices from the event loop wait here while a build holds the lock on the
        # inference thread, so a keystroke never blocks behind a cold build.
        self._pending: deque[tuple[bool, Path]] = deque()
        self._files: dict[Path, _FileInfo] = {}
        self._entries: dict[Path, _Entry] = {}
        self._pairing: PairingIndex | None = None

    @property
    def root(self) -> Path:
        return self.workspace.root

    # --- public ---------------------------------------------------------------------------

    def context_for(
        self, path: Path, *, text: str | None = None, tree: tree_sitter.Tree | None = None
    ) -> PackedContext:
        """The pack for ``path``.

        ``text`` is its current text (default: the editor's, else the disk's) and ``tree``,
        if given, the parse of ``text``: the server passes a document snapshot's, so the
        current file is never parsed twice. Without a tree, at most ``max_file_bytes`` of
        the text are parsed (imports and the names they bring come first).
        """
        with self._lock:
            self._take_notices()
            current = self.workspace.normalize(path)
            if current is None or not self.settings.enabled or self.workspace.is_secret(current):
                return EMPTY
            if self.settings.recheck_seconds and (
                self._clock() - self._last_check >= self.settings.recheck_seconds
            ):
                self.check_mtimes()
            entry = self._entries.get(current)
            if entry is not None and not entry.dirty and not entry.stale:
                return entry.pack
            if text is None:
                text = self._current_text(current)
            spec = self.registry.lookup(None, str(current))
            if text is None or spec is None:
                return EMPTY
            data = text.encode("utf-8", "surrogatepass")
            if tree is None:
                tree = spec.parser().parse(data[: self.settings.max_file_bytes])
            refs = extract_imports(spec, data, tree)
            if entry is not None and not imports_settled(spec, tree):
                # Half-typed imports (or an error that swallowed some) must not flip the
                # pack back and forth: keep what the last clean imports gave.
                if not entry.stale:
                    self.stats.kept += 1
                    return entry.pack
                refs = entry.refs
            elif (
                entry is not None
                and not entry.stale
                and self._same_imports(entry, spec, current, text, refs)
            ):
                entry.dirty = False
                entry.refs = refs
                self.stats.kept += 1
                return entry.pack
            # What the file's text says besides its imports (names it uses) is read only
            # when its imports change, so that a rebuild for another reason cannot turn
            # a keystroke into a different pack.
            if entry is not None and refs == entry.refs:
                lexical, lexical_tree = entry.lexical, entry.lexical_tree
            else:
                lexical, lexical_tree = text, tree
            fresh = self._build(current, lexical, lexical_tree, spec, refs)
            if entry is not None and fresh.pack == entry.pack:
                fresh.pack = entry.pack
                self.stats.kept += 1
            elif entry is not None:
                self.stats.changed += 1
            self._entries[current] = fresh
            return fresh.pack

    def configure(self, settings: ContextSettings) -> None:
        """New settings; packs are rebuilt when they differ from the old ones."""
        with self._lock:
            self._take_notices()
            if settings != self.settings:
                self.settings = settings
                self.workspace.max_file_bytes = settings.max_file_bytes
                self._forget_everything()

    def notify_changed(self, path: Path) -> None:
        """``path`` was edited, saved, opened, closed, created or deleted.

        Never blocks: while another thread holds the index, the notice waits for it.
        """
        self._notice(False, path)

    def forget(self, path: Path) -> None:
        """Drop the pack kept for ``path`` (its document closed); never blocks either."""
        self._notice(True, path)

    def _notice(self, forget: bool, path: Path) -> None:
        self._pending.append((forget, path))
        if self._lock.acquire(blocking=False):
            try:
                self._take_notices()
            finally:
                self._lock.release()

    def _take_notices(self) -> None:
        while self._pending:
            forget, path = self._pending.popleft()
            if forget:
                normal = self.workspace.normalize(path)
                if normal is not None:
                    self._entries.pop(normal, None)
            else:
                self._changed(path)

    def _changed(self, path: Path) -> None:
        with self._lock:
            changed = self.workspace.normalize(path)
            if changed is None:
                return
            rel = self.workspace.rel(changed)
            if changed.name == ".gitignore" or rel == ".git/info/exclude":
                self.workspace.forget_ignores()
                self._forget_everything()
                return
            structural = self.workspace.refresh(changed)
            self._files.pop(changed, None)
            self.resolver.forget(changed)
            keys = subject_keys(rel) if structural else set()
            if structural:
                self._pairing = None
            for current, entry in self._entries.items():
                if current == changed:
                    entry.dirty = True
                elif self._concerns(entry, changed, structural, keys):
                    entry.stale = True

    def check_mtimes(self) -> list[Path]:
        """Stat what the packs used; notify what changed behind the server's back."""
        with self._lock:
            self._take_notices()
            self._last_check = self._clock()
            reads: dict[Path, object] = {}
            opened: dict[Path, int] = {}
            missing: set[Path] = set()
            for entry in self._entries.values():
                if not entry.stale:
                    reads.update(entry.trail.reads)
                    opened.update(entry.trail.opened)
                    missing.update(p for p, existed in entry.trail.probes.items() if not existed)
            changed = {
                path
                for path, stamp in reads.items()
                if self.workspace.open_text(path) is not None or disk_stamp(path) != stamp
            }
            changed.update(
                path
                for path, digest in opened.items()
                if self.workspace.current_text_hash(path) != digest
            )
            changed.update(path for path in missing if path.is_file())
            for path in sorted(changed):
                self._changed(path)
            return sorted(changed)

    # --- invalidation ---------------------------------------------------------------------

    def _forget_everything(self) -> None:
        for entry in self._entries.values():
            entry.stale = True
        self._files.clear()
        self._pairing = None
        self.resolver.forget_all()

    @staticmethod
    def _concerns(
        entry: _Entry, changed: Path, structural: bool, keys: set[tuple[str, str]]
    ) -> bool:
        trail = entry.trail
        if changed in trail.reads or changed in trail.opened or changed in trail.probes:
            return True
        if entry.watched and changed.name.endswith(entry.watched):
            return True
        return structural and (changed.parent in trail.dirs or bool(keys & entry.keys))

    # --- reading --------------------------------------------------------------------------

    def _current_text(self, path: Path) -> str | None:
        """The current file's text: the editor's, else the disk's (git rules do not apply)."""
        text = self.workspace.open_text(path)
        if text is not None:
            return text
        try:
            if path.stat().st_size > self.settings.max_file_bytes:
                return None
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def _info(self, path: Path) -> _FileInfo | None:
        info = self._files.get(path)
        if info is not None:
            if info.source.stamp is None:
                fresh = self.workspace.current_text_hash(path) == hash(info.source.text)
            else:
                fresh = self.workspace.open_text(path) is None
            if fresh:
                # Keep the build's trail complete even when the file comes from the cache.
                self.workspace.read_cached(info.source)
                return info
        source = self.workspace.read(path)
        if source is None:
            self._files.pop(path, None)
            return None
        spec = self.registry.lookup(None, str(path))
        info = _FileInfo(source, spec, ())
        if spec is not None:
            info.tree = spec.parser().parse(info.data)
            info.refs = extract_imports(spec, info.data, info.tree)
        self._files[path] = info
        return info

    def _outlines(self, path: Path, focus: frozenset[str]) -> list[str]:
        """The file's outline focused on ``focus``, then its whole outline."""
        info = self._files.get(path)
        if info is None or info.spec is None:
            return []
        if info.outline is None:
            info.outline = outline(info.spec, info.data, info.tree)
        if info.focused is None or info.focused[0] != focus:
            info.focused = (focus, outline(info.spec, info.data, info.tree, focus=focus))
        return [info.focused[1], info.outline]

    def _pairs(self) -> PairingIndex:
        if self._pairing is None:
            self._pairing = PairingIndex.build(self.workspace.listing())
        return self._pairing

    # --- building -------------------------------------------------------------------------

    def _same_imports(
        self,
        entry: _Entry,
        spec: LanguageSpec,
        current: Path,
        text: str,
        refs: tuple[ImportRef, ...],
    ) -> bool:
        """Whether the current file's imports still name the files the pack was built from."""
        if refs == entry.refs:
            return True
        if not self.settings.max_depth:
            return True
        # Probes made now must join the trail: a file created later may resolve an import.
        self.workspace.record(entry.trail)
        try:
            return self._resolve_direct(spec, current, text, refs) == entry.direct
        finally:
            self.workspace.record(None)

    def _resolve_direct(
        self, spec: LanguageSpec, current: Path, text: str, refs: tuple[ImportRef, ...]
    ) -> tuple[Path, ...]:
        resolved = self.resolver.resolve(spec, current, text, refs)
        return tuple(self.workspace.allowed(resolved))

    def _build(
        self,
        current: Path,
        text: str,
        tree: tree_sitter.Tree,
        spec: LanguageSpec,
        refs: tuple[ImportRef, ...],
    ) -> _Entry:
        started = time.perf_counter()
        trail = Trail()
        self.workspace.record(trail)
        try:
            entry = self._build_recorded(current, text, tree, spec, refs, trail)
        finally:
            self.workspace.record(None)
        elapsed = (time.perf_counter() - started) * 1000
        self.stats.builds += 1
        self.stats.build_ms.append(elapsed)
        log.debug(
            "context for %s: %d files, %d tokens, %d outlined, %d dropped, %.1f ms",
            self.workspace.rel(current),
            len(entry.pack.files),
            entry.pack.tokens,
            len(entry.pack.outlined),
            len(entry.pack.dropped),
            elapsed,
        )
        return entry

    def _build_recorded(
        self,
        current: Path,
        text: str,
        tree: tree_sitter.Tree,
        spec: LanguageSpec,
        refs: tuple[ImportRef, ...],
        trail: Trail,
    ) -> _Entry:
        settings = self.settings
        rel = self.workspace.rel(current)
        data = text.encode("utf-8", "surrogatepass")
        links = self.resolver.resolve_each(spec, current, text, refs) if settings.max_depth else []
        direct = tuple(self.workspace.allowed(p for _, paths in links for p in paths))
        nodes: dict[Path, _Node] = {}
        order = iter(range(1 << 30))
        keys: set[tuple[str, str]] = set()

        def add(path: Path, depth: int, rank: int, test: bool = False) -> None:
            if path == current or len(nodes) >= settings.max_files:
                return
            node = nodes.get(path)
            if node is None:
                nodes[path] = _Node(path, depth, rank, next(order), test)
            else:
                node.depth, node.rank = min(node.depth, depth), min(node.rank, rank)

        kind = family(rel)
        tested = subject_of(rel)
        if settings.tests and kind is not None and tested is not None:
            keys.add((kind, tested))
            pairs = self._pairs()
            # One git batch for the candidates whose text the choice may read.
            self.workspace.allowed(self.root / r for r in pairs.impls.get((kind, tested), ()))
            impl = implementation_of(rel, text, pairs, self._read_rel)
            if impl is not None:
                add(self.root / impl, 1, IMPL_RANK)
        if settings.max_depth:
            for path in direct:
                add(path, 1, 1)
            neighbours = self.resolver.neighbours(spec, current, text)
            for path in self.workspace.allowed(neighbours):
                add(path, 1, 1)
        self._expand(nodes, add, current)
        if settings.tests and kind is not None and tested is None:
            keys.add((kind, impl_key(rel)))
            tests = [self.root / test for test in find_tests(rel, self._pairs())]
            for path in self.workspace.allowed(tests):
                add(path, 1, TESTS_RANK, test=True)
        candidates = []
        focus = self._focus(nodes, (spec, data, tree, links))
        for node in nodes.values():
            info = self._info(node.path)
            if info is None:
                continue
            candidates.append(
                Candidate(
                    rel=info.source.rel,
                    text=info.source.text,
                    rank=node.rank,
                    order=node.order,
                    depth=node.depth,
                    imports=tuple(self.workspace.rel(p) for p in node.imports if p in nodes),
                    test=node.test,
                )
            )
        packed = pack(
            candidates,
            max_tokens=settings.max_tokens,
            measure=self.measure,
            outlines=lambda c: self._outlines(self.root / c.rel, focus[self.root / c.rel]),
        )
        return _Entry(
            pack=packed,
            refs=refs,
            direct=direct,
            trail=trail,
            lexical=text,
            lexical_tree=tree,
            keys=keys,
            watched=self._watched(spec, nodes),
        )

    def _watched(self, spec: LanguageSpec, nodes: dict[Path, _Node]) -> tuple[str, ...]:
        """The extensions of workspace-wide languages among the current file and the pack's."""
        specs = {spec, *(self.registry.lookup(None, str(path)) for path in nodes)}
        return tuple(
            sorted(
                {
                    ext
                    for found in specs
                    if found is not None and found.imports.workspace_wide
                    for ext in found.extensions
                }
            )
        )

    def _expand(self, nodes: dict[Path, _Node], add: Callable[..., None], current: Path) -> None:
        """Follow imports breadth first, one git batch per level, up to ``max_depth``."""
        for depth in range(1, self.settings.max_depth + 1):
            level = [node for node in nodes.values() if node.depth == depth and not node.test]
            readable = set(self.workspace.allowed(node.path for node in level))
            for node in level:
                info = self._info(node.path) if node.path in readable else None
                if info is None:
                    nodes.pop(node.path, None)
                elif info.spec is not None:
                    node.links = self.resolver.resolve_each(
                        info.spec, node.path, info.source.text, info.refs
                    )
            if depth < self.settings.max_depth:
                found = [path for node in level for path in node.imports]
                allowed = set(self.workspace.allowed(found))
                for path in found:
                    if path in allowed:
                        add(path, depth + 1, depth + 1)

    def _focus(
        self,
        nodes: dict[Path, _Node],
        current: tuple[LanguageSpec, bytes, tree_sitter.Tree, list[tuple[ImportRef, list[Path]]]],
    ) -> dict[Path, frozenset[str]]:
        """The names each candidate's importers take from it, for focused outlines.

        An import that names what it takes (``from m import a``, ``import { a } from``)
        gives those names; one that binds the whole module gives every identifier its
        importer's code uses.
        """
        importers = [current]
        for node in nodes.values():
            info = self._files.get(node.path)
            if info is not None and info.spec is not None and info.tree is not None:
                importers.append((info.spec, info.data, info.tree, node.links))
        focus: dict[Path, frozenset[str]] = {}
        for language, source, tree, links in importers:
            used: frozenset[str] | None = None
            for ref, targets in links:
                for target in targets:
                    if target not in nodes:
                        continue
                    names = frozenset(ref.names) - {target.stem}
                    if not names:
                        used = used or code_identifiers(language, source, tree)
                        names = used
                    focus[target] = focus.get(target, frozenset()) | names
        if any(path not in focus for path in nodes):
            language, source, tree, _ = current
            used = code_identifiers(language, source, tree)
            for path in nodes:
                focus.setdefault(path, used)
        return focus

    def _read_rel(self, rel: str) -> str | None:
        source = self.workspace.read(self.root / rel)
        return source.text if source is not None else None
