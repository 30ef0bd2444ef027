"""Safe reads of workspace files for repository context.

A file is read only when all of these hold:

- it lies inside the workspace, also after following symlinks (a link that leaves
  the workspace is never followed);
- neither its name nor its target's is a secret file (:func:`is_secret_path`), and its
  text holds no secret (:func:`secret_in`: a private key, an access token...);
- it has one name only: a file with hard links may be a link to a file outside the
  workspace, and nothing tells which of its names came first;
- git does not ignore it (:mod:`codegemma_lsp.context.gitignore`);
- it is no larger than the size cap and has no NUL byte in its head (not binary).

Open documents are read from the editor's text (``open_text``), never from disk,
and pass the same checks. Every existence probe is remembered, so that the index
can tell which packs a created or deleted file affects.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from codegemma_lsp.context.gitignore import IgnoreOracle, git_listed_files
from codegemma_lsp.privacy import is_secret_path, secret_in

log = logging.getLogger(__name__)

OpenText = Callable[[Path], "str | None"]

_BINARY_SNIFF = 8192
_WALK_LIMIT = 20_000
# Without git, these folders are skipped when listing (they are ignored in nearly every repo).
_WALK_SKIP = frozenset(
    {"node_modules", "__pycache__", "target", "build", "dist", "venv", "bin", "obj", "out"}
)

Stamp = tuple[int, int]
"""(mtime in ns, size) of a file read from disk."""


@dataclass
class Trail:
    """What one context build looked at, to know later which changes concern it."""

    probes: dict[Path, bool] = field(default_factory=dict)
    """Paths checked for a file, and whether there was one."""
    dirs: set[Path] = field(default_factory=set)
    reads: dict[Path, Stamp | None] = field(default_factory=dict)
    """Files read from disk, with their stamp (None: missing or unreadable)."""
    opened: dict[Path, int] = field(default_factory=dict)
    """Files read from the editor, with a hash of their text."""


@dataclass(frozen=True)
class SourceFile:
    """A workspace file's text as context sees it."""

    path: Path
    rel: str
    text: str
    stamp: Stamp | None
    """Where it came from: (mtime_ns, size) from disk, or None for the editor's text."""


def _no_open_text(_: Path) -> str | None:
    return None


class Workspace:
    """File access confined to one folder."""

    def __init__(
        self,
        root: Path,
        *,
        open_text: OpenText = _no_open_text,
        max_file_bytes: int = 262_144,
        use_git: bool = True,
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self._real_root = os.path.realpath(self.root)
        self.open_text = open_text
        self.max_file_bytes = max_file_bytes
        self.ignore = IgnoreOracle(self.root, use_git=use_git)
        self._exists: dict[Path, bool] = {}
        self._dirs: dict[Path, tuple[Path, ...]] = {}
        self._listing: list[str] | None = None
        self._trail: Trail | None = None

    def record(self, trail: Trail | None) -> None:
        """Note every probe, listing and read in ``trail`` from now on (None stops)."""
        self._trail = trail

    # --- paths ---------------------------------------------------------------------------

    def normalize(self, path: Path | str) -> Path | None:
        """``path`` made absolute and lexically normal; None when it is outside the workspace."""
        absolute = Path(os.path.normpath(os.path.join(self.root, path)))
        try:
            absolute.relative_to(self.root)
        except ValueError:
            return None
        return absolute

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def contains_real(self, path: Path) -> bool:
        """Whether ``path``, symlinks followed, still lies inside the workspace."""
        real = os.path.realpath(path)
        return real == self._real_root or real.startswith(self._real_root + os.sep)

    def is_secret(self, path: Path) -> bool:
        if is_secret_path(self.rel(path)):
            return True
        real = os.path.realpath(path)
        if real.startswith(self._real_root + os.sep):
            return is_secret_path(os.path.relpath(real, self._real_root))
        return is_secret_path(os.path.basename(real))

    def safe(self, path: Path) -> bool:
        """Inside the workspace (links followed) and not a secret; git rules are apart."""
        return (
            self.normalize(path) == path
            and ".git" not in PurePosixPath(self.rel(path)).parts
            and self.contains_real(path)
            and not self.is_secret(path)
        )

    # --- existence probes ----------------------------------------------------------------

    def is_file(self, path: Path) -> bool:
        """Whether ``path`` is a regular file that context may use (git rules apart)."""
        known = self._exists.get(path)
        if known is None:
            # Most probes miss: the cheap stat goes first, the realpath and secret checks after.
            known = path.is_file() and self.safe(path)
            self._exists[path] = known
        if self._trail is not None:
            self._trail.probes.setdefault(path, known)
        return known

    def list_dir(self, folder: Path) -> tuple[Path, ...]:
        """The usable files directly in ``folder``, sorted by name."""
        listed = self._dirs.get(folder)
        if listed is None:
            try:
                names = sorted(os.listdir(folder)) if self.safe_dir(folder) else []
            except OSError:
                names = []
            listed = tuple(folder / name for name in names if self.is_file(folder / name))
            self._dirs[folder] = listed
        if self._trail is not None:
            self._trail.dirs.add(folder)
        return listed

    def safe_dir(self, folder: Path) -> bool:
        return (
            self.normalize(folder) == folder
            and self.contains_real(folder)
            and (folder == self.root or ".git" not in PurePosixPath(self.rel(folder)).parts)
            and folder.is_dir()
        )

    def refresh(self, path: Path) -> bool:
        """Forget what was known of ``path``; True when it was created or deleted since."""
        before = self._exists.pop(path, None)
        self._dirs.pop(path.parent, None)
        now = self.is_file(path)
        created_or_deleted = before is None or before != now
        if created_or_deleted and self._listing is not None:
            rel = self.rel(path)
            if now and rel not in self._listing:
                self._listing = sorted([*self._listing, rel])
            elif not now and rel in self._listing:
                self._listing = [item for item in self._listing if item != rel]
        return created_or_deleted

    def forget_ignores(self) -> None:
        self.ignore.forget()
        self._listing = None

    # --- reading -------------------------------------------------------------------------

    def allowed(self, paths: Iterable[Path]) -> list[Path]:
        """``paths`` that are safe and not ignored by git; one git run for all of them."""
        safe = [path for path in dict.fromkeys(paths) if self.safe(path)]
        ignored = self.ignore.ignored_among(self.rel(path) for path in safe)
        return [path for path in safe if self.rel(path) not in ignored]

    def read(self, path: Path) -> SourceFile | None:
        """The file's text for context, or None when it must not or cannot be used."""
        source = self._read(path)
        if self._trail is not None:
            if source is not None and source.stamp is None:
                self._trail.opened.setdefault(path, hash(source.text))
            else:
                self._trail.reads.setdefault(
                    path, source.stamp if source is not None else disk_stamp(path)
                )
        return source

    def read_cached(self, source: SourceFile) -> None:
        """Note in the trail a read the caller served from its own cache."""
        if self._trail is None:
            return
        if source.stamp is None:
            self._trail.opened.setdefault(source.path, hash(source.text))
        else:
            self._trail.reads.setdefault(source.path, source.stamp)

    def current_text_hash(self, path: Path) -> int | None:
        """The hash :class:`Trail` keeps of an open file's text, or None when it is not open."""
        text = self.open_text(path)
        return None if text is None else hash(_normal_newlines(text))

    def _read(self, path: Path) -> SourceFile | None:
        if not self.allowed([path]):
            log.debug("context skips %s: outside, secret or ignored", path)
            return None
        if _hard_linked(path):
            return None
        text = self.open_text(path)
        if text is not None:
            if len(text) > self.max_file_bytes or "\x00" in text[:_BINARY_SNIFF]:
                return None
            source: SourceFile | None = SourceFile(
                path, self.rel(path), _normal_newlines(text), None
            )
        else:
            source = self._read_disk(path)
        if source is not None and (found := secret_in(source.text)) is not None:
            log.debug("context skips %s: it holds %s", path, found)
            return None
        return source

    def _read_disk(self, path: Path) -> SourceFile | None:
        try:
            info = path.stat()
            if info.st_size > self.max_file_bytes or not stat_module.S_ISREG(info.st_mode):
                return None
            with path.open("rb") as stream:
                # The open file is what is read: a rename since the stat must not matter.
                if os.fstat(stream.fileno()).st_nlink > 1:
                    return None
                data = stream.read(self.max_file_bytes + 1)
        except OSError:
            return None
        if len(data) > self.max_file_bytes or b"\x00" in data[:_BINARY_SNIFF]:
            return None
        text = data.decode("utf-8", "replace")
        return SourceFile(path, self.rel(path), _normal_newlines(text), stamp(info))

    # --- listing -------------------------------------------------------------------------

    def listing(self) -> list[str]:
        """Every usable file of the workspace, workspace-relative and sorted."""
        if self._listing is None:
            listed = git_listed_files(self.root) if self.ignore.uses_git else None
            if listed is None:
                listed = self._walk()
            self._listing = [rel for rel in listed if not is_secret_path(rel)]
        return self._listing

    def _walk(self) -> list[str]:
        found: list[str] = []
        for folder, dirs, files in os.walk(self.root):
            base = Path(folder)
            dirs[:] = sorted(
                name
                for name in dirs
                if not name.startswith(".")
                and name not in _WALK_SKIP
                and not (base / name).is_symlink()
                and not self.ignore.ignored(self.rel(base / name))
            )
            for name in sorted(files):
                rel = self.rel(base / name)
                if not self.ignore.ignored(rel):
                    found.append(rel)
                if len(found) >= _WALK_LIMIT:
                    return sorted(found)
        return sorted(found)


def _hard_linked(path: Path) -> bool:
    """Whether the file has more than one name, so that another of them may lie outside the
    workspace: a hard link to ``~/.ssh/id_rsa`` made inside it is the same file, and no path
    check can tell (hard links have no target to resolve). So context reads none of them."""
    try:
        links = path.stat().st_nlink
    except OSError:
        return False
    if links > 1:
        log.debug("context skips %s: it has %d hard links", path, links)
        return True
    return False


def stamp(info: os.stat_result) -> Stamp:
    return (info.st_mtime_ns, info.st_size)


def disk_stamp(path: Path) -> Stamp | None:
    """The file's current (mtime_ns, size), or None when it is gone."""
    try:
        return stamp(path.stat())
    except OSError:
        return None


def _normal_newlines(text: str) -> str:
    # CRLF costs a token per line and the model saw LF; the pack only needs to be stable.
    return text.replace("\r\n", "\n") if "\r" in text else text
