"""Scratch workspaces for the repository-context tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from codegemma_lsp.context.imports import extract_imports
from codegemma_lsp.context.resolve import Resolver
from codegemma_lsp.context.workspace import Workspace
from codegemma_lsp.syntax.languages import default_registry

HAS_GIT = shutil.which("git") is not None
needs_git = pytest.mark.skipif(not HAS_GIT, reason="git is not installed")


def make_workspace(root: Path, files: dict[str, str], *, git: bool = False) -> Path:
    """Write ``files`` (workspace-relative path -> text) under ``root``; optionally git init."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if git:
        subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def resolved(root: Path, importer_rel: str) -> list[str]:
    """The workspace files the imports of ``importer_rel`` resolve to, as relative paths."""
    workspace = Workspace(root, use_git=False)
    importer = root / importer_rel
    text = importer.read_text(encoding="utf-8")
    spec = default_registry().lookup(None, importer_rel)
    assert spec is not None
    refs = extract_imports(spec, text.encode())
    return [workspace.rel(p) for p in Resolver(workspace).resolve(spec, importer, text, refs)]


def neighbours(root: Path, importer_rel: str) -> list[str]:
    workspace = Workspace(root, use_git=False)
    importer = root / importer_rel
    spec = default_registry().lookup(None, importer_rel)
    assert spec is not None
    text = importer.read_text(encoding="utf-8")
    return [workspace.rel(p) for p in Resolver(workspace).neighbours(spec, importer, text)]
