"""Which workspace files git ignores.

With git on the PATH and the workspace inside a work tree, git itself answers
(``git check-ignore --stdin``, one process per batch), so every rule git knows
applies: nested ``.gitignore`` files, ``.git/info/exclude``, the global excludes
file. Otherwise a small pure-Python reading of the ``.gitignore`` files applies:
comments, ``!`` negation, anchored and directory-only patterns, ``*``, ``?``,
``[...]`` and ``**``. Either way a ``.git`` folder is always ignored, and a file
inside an ignored folder stays ignored (git cannot re-include it either).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

_GIT_ENV = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
_GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class IgnoreRule:
    """One line of a ``.gitignore``, compiled."""

    base: str
    """The folder of the ``.gitignore``, relative to the workspace ("" for the root)."""
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool
    anchored: bool


def _translate(glob: str) -> str:
    """A gitignore glob (no leading or trailing slash) as a regex over a relative path."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[":
            close = glob.find("]", i + 2)
            if close < 0:
                out.append(re.escape("["))
                i += 1
                continue
            body = glob[i + 1 : close]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = close + 1
        elif glob[i] == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def parse_gitignore(text: str, base: str = "") -> list[IgnoreRule]:
    """The rules of one ``.gitignore`` whose folder is ``base`` (workspace-relative)."""
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        if not line.endswith("\\ "):
            line = line.rstrip(" ")
        negated = line.startswith("!")
        if negated or line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        # A slash anywhere but at the end ties the pattern to the .gitignore's folder.
        anchored = "/" in line
        line = line.lstrip("/")
        regex = re.compile(_translate(line) + r"\Z", re.DOTALL)
        rules.append(IgnoreRule(base, regex, negated, dir_only, anchored))
    return rules


def _rule_matches(rule: IgnoreRule, rel: str, is_dir: bool) -> bool:
    if rule.dir_only and not is_dir:
        return False
    if rule.base:
        if not rel.startswith(rule.base + "/"):
            return False
        rel = rel[len(rule.base) + 1 :]
    if rule.anchored:
        return rule.regex.match(rel) is not None
    return rule.regex.match(rel.rsplit("/", 1)[-1]) is not None


class PatternIgnore:
    """The pure-Python fallback: reads ``.gitignore`` files from the root down, lazily."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._rules: dict[str, list[IgnoreRule]] = {}

    def _rules_of(self, folder: str) -> list[IgnoreRule]:
        if folder not in self._rules:
            path = self._root / folder / ".gitignore" if folder else self._root / ".gitignore"
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            self._rules[folder] = parse_gitignore(text, folder)
        return self._rules[folder]

    def ignored(self, rel: str) -> bool:
        parts = PurePosixPath(rel).parts
        for depth in range(1, len(parts) + 1):
            if parts[depth - 1] == ".git":
                return True
            sub = "/".join(parts[:depth])
            is_dir = depth < len(parts)
            verdict = False
            for folder_depth in range(depth):
                for rule in self._rules_of("/".join(parts[:folder_depth])):
                    if _rule_matches(rule, sub, is_dir):
                        verdict = not rule.negated
            if verdict:
                return True
        return False

    def forget(self) -> None:
        self._rules.clear()


def _run_git(root: Path, args: Sequence[str], data: bytes | None = None) -> bytes | None:
    """git's stdout, or None when git is missing or fails (exit 1 is a plain answer)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            input=data,
            capture_output=True,
            env=_GIT_ENV,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("git %s failed: %s", args[0], exc)
        return None
    if done.returncode not in (0, 1):
        log.debug("git %s exited %d: %s", args[0], done.returncode, done.stderr[:200])
        return None
    return done.stdout


def git_work_tree(root: Path) -> bool:
    """Whether ``root`` lies inside a git work tree and git can be run."""
    out = _run_git(root, ["rev-parse", "--is-inside-work-tree"])
    return out is not None and out.strip() == b"true"


def git_ignored(root: Path, rels: Sequence[str]) -> set[str] | None:
    """Which of ``rels`` git ignores, in one ``check-ignore`` run; None if git failed."""
    if not rels:
        return set()
    data = b"".join(rel.encode("utf-8", "surrogateescape") + b"\0" for rel in rels)
    out = _run_git(root, ["check-ignore", "-z", "--stdin"], data)
    if out is None:
        return None
    return {item.decode("utf-8", "surrogateescape") for item in out.split(b"\0") if item}


def git_listed_files(root: Path) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files under ``root``, relative to it."""
    out = _run_git(root, ["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    if out is None:
        return None
    return sorted({item.decode("utf-8", "surrogateescape") for item in out.split(b"\0") if item})


class IgnoreOracle:
    """Answers "is this ignored?" for workspace-relative paths, with git when it can."""

    def __init__(self, root: Path, *, use_git: bool = True) -> None:
        self._root = root
        self._use_git = use_git
        self._git: bool | None = None if use_git else False
        self._patterns = PatternIgnore(root)
        self._known: dict[str, bool] = {}

    @property
    def uses_git(self) -> bool:
        if self._git is None:
            self._git = git_work_tree(self._root)
        return self._git

    def ignored_among(self, rels: Iterable[str]) -> set[str]:
        """The ignored ones of ``rels``; unknown paths are asked in one batch."""
        rels = list(dict.fromkeys(rels))
        unknown = [rel for rel in rels if rel not in self._known]
        if unknown:
            always = {rel for rel in unknown if ".git" in PurePosixPath(rel).parts}
            rest = [rel for rel in unknown if rel not in always]
            answer = git_ignored(self._root, rest) if self.uses_git and rest else None
            for rel in unknown:
                if rel in always:
                    self._known[rel] = True
                elif answer is not None:
                    self._known[rel] = rel in answer
                else:
                    self._known[rel] = self._patterns.ignored(rel)
        return {rel for rel in rels if self._known[rel]}

    def ignored(self, rel: str) -> bool:
        return bool(self.ignored_among([rel]))

    def forget(self) -> None:
        """Drop every answer (a ``.gitignore`` changed)."""
        self._known.clear()
        self._patterns.forget()
