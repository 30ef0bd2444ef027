"""Safe file access: gitignore, secrets, symlinks, size caps, editor text first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codegemma_lsp.context.gitignore import IgnoreOracle, PatternIgnore, parse_gitignore
from codegemma_lsp.context.workspace import Trail, Workspace
from tests.unit.context_workspaces import make_workspace, needs_git


@pytest.mark.parametrize(
    ("patterns", "rel", "ignored"),
    [
        pytest.param("*.log", "a/b/run.log", True, id="basename-anywhere"),
        pytest.param("*.log", "a/b/run.txt", False, id="basename-other"),
        pytest.param("/build", "build/x.py", True, id="anchored-dir-contents"),
        pytest.param("/build", "src/build/x.py", False, id="anchored-not-deeper"),
        pytest.param("build/", "build", False, id="dir-only-not-a-file"),
        pytest.param("build/", "src/build/x.py", True, id="dir-only-anywhere"),
        pytest.param("*.log\n!keep.log", "keep.log", False, id="negation"),
        pytest.param("logs/\n!logs/keep.log", "logs/keep.log", True, id="no-reinclude-in-dir"),
        pytest.param("**/tmp", "a/b/tmp/x", True, id="double-star-prefix"),
        pytest.param("a/**/b.py", "a/x/y/b.py", True, id="double-star-middle"),
        pytest.param("a/**/b.py", "a/b.py", True, id="double-star-empty"),
        pytest.param("doc/*.txt", "doc/a.txt", True, id="slash-anchors"),
        pytest.param("doc/*.txt", "doc/x/a.txt", False, id="star-stops-at-slash"),
        pytest.param("# comment\n\n", "comment", False, id="comments-and-blanks"),
        pytest.param("gen_[ab].py", "gen_a.py", True, id="class"),
        pytest.param("gen_[!ab].py", "gen_a.py", False, id="negated-class"),
        pytest.param("", ".git/config", True, id="git-folder-always"),
    ],
)
def test_pattern_ignore(tmp_path: Path, patterns: str, rel: str, ignored: bool) -> None:
    (tmp_path / ".gitignore").write_text(patterns)
    assert PatternIgnore(tmp_path).ignored(rel) is ignored


def test_nested_gitignore_applies_below_its_folder(tmp_path: Path) -> None:
    make_workspace(tmp_path, {"sub/.gitignore": "*.gen.py\n"})
    matcher = PatternIgnore(tmp_path)
    assert matcher.ignored("sub/a.gen.py")
    assert not matcher.ignored("a.gen.py")


def test_parse_gitignore_keeps_base_and_flags() -> None:
    (rule,) = parse_gitignore("!/out/\n", "pkg")
    assert (rule.base, rule.negated, rule.dir_only, rule.anchored) == ("pkg", True, True, True)


@needs_git
def test_git_oracle_answers_in_one_batch_and_skips_tracked_rules(tmp_path: Path) -> None:
    make_workspace(
        tmp_path, {".gitignore": "secret_gen/\n*.tmp\n", "sub/.gitignore": "local.py\n"}, git=True
    )
    oracle = IgnoreOracle(tmp_path)
    assert oracle.uses_git
    rels = ["a.py", "x.tmp", "secret_gen/a.py", "sub/local.py", "local.py", ".git/HEAD"]
    assert oracle.ignored_among(rels) == {"x.tmp", "secret_gen/a.py", "sub/local.py", ".git/HEAD"}


def test_oracle_without_git_reads_gitignore_files(tmp_path: Path) -> None:
    make_workspace(tmp_path, {".gitignore": "*.tmp\n"})
    oracle = IgnoreOracle(tmp_path, use_git=False)
    assert oracle.ignored_among(["a.tmp", "a.py"]) == {"a.tmp"}


@pytest.fixture
def workspace_files(tmp_path: Path) -> Path:
    return make_workspace(
        tmp_path / "ws",
        {
            "app.py": "import util\n",
            "util.py": "X = 1\n",
            ".env": "TOKEN=hunter2\n",
            ".env.local": "TOKEN=hunter2\n",
            "server.pem": "-----BEGIN-----\n",
            ".aws/config": "[default]\n",
            "credentials.json": "{}\n",
            "generated.py": "Y = 2\n",
            ".gitignore": "generated.py\n",
            "big.py": "x = 1\n" * 1000,
            "blob.py": "\x00\x01binary",
        },
    )


@pytest.mark.parametrize(
    "rel",
    [
        pytest.param(".env", id="dotenv"),
        pytest.param(".env.local", id="dotenv-local"),
        pytest.param("server.pem", id="pem"),
        pytest.param(".aws/config", id="aws-folder"),
        pytest.param("credentials.json", id="credentials"),
        pytest.param("generated.py", id="gitignored"),
        pytest.param("big.py", id="over-size-cap"),
        pytest.param("blob.py", id="binary"),
        pytest.param("missing.py", id="missing"),
        pytest.param(".git/config", id="git-folder"),
    ],
)
def test_files_context_never_reads(workspace_files: Path, rel: str) -> None:
    workspace = Workspace(workspace_files, max_file_bytes=4096, use_git=False)
    assert workspace.read(workspace_files / rel) is None


def test_a_secret_is_refused_even_from_the_editor(workspace_files: Path) -> None:
    workspace = Workspace(
        workspace_files, open_text=lambda p: "TOKEN=typed\n", max_file_bytes=4096, use_git=False
    )
    assert workspace.read(workspace_files / ".env") is None
    assert not workspace.is_file(workspace_files / ".env")


def test_open_documents_are_read_from_the_editor(workspace_files: Path) -> None:
    util = workspace_files / "util.py"
    workspace = Workspace(
        workspace_files,
        open_text=lambda p: "X = 'edited'\r\n" if p == util else None,
        use_git=False,
    )
    source = workspace.read(util)
    assert source is not None
    assert (source.text, source.stamp, source.rel) == ("X = 'edited'\n", None, "util.py")


def test_symlinks_out_of_the_workspace_are_not_followed(tmp_path: Path) -> None:
    outside = make_workspace(tmp_path / "outside", {"outside.py": "SECRET = 1\n", "d/x.py": ""})
    root = make_workspace(tmp_path / "ws", {"app.py": "import outside\n"})
    os.symlink(outside / "outside.py", root / "outside.py")
    os.symlink(outside / "d", root / "linked_dir")
    os.symlink(root / "app.py", root / "alias.py")
    workspace = Workspace(root, use_git=False)
    assert workspace.read(root / "outside.py") is None
    assert not workspace.is_file(root / "linked_dir" / "x.py")
    assert workspace.list_dir(root / "linked_dir") == ()
    assert workspace.read(root / "alias.py") is not None  # a link that stays inside is fine


def test_a_link_to_a_secret_is_a_secret(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, {".env": "TOKEN=1\n"})
    os.symlink(root / ".env", root / "settings.py")
    assert Workspace(root, use_git=False).read(root / "settings.py") is None


def test_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {"a.py": ""})
    make_workspace(tmp_path, {"other.py": "X = 1\n"})
    workspace = Workspace(root, use_git=False)
    assert workspace.normalize(root / ".." / "other.py") is None
    assert workspace.normalize("sub/../a.py") == root / "a.py"


def test_the_trail_records_probes_listings_and_reads(workspace_files: Path) -> None:
    workspace = Workspace(workspace_files, use_git=False)
    trail = Trail()
    workspace.record(trail)
    workspace.is_file(workspace_files / "nope.py")
    workspace.list_dir(workspace_files)
    workspace.read(workspace_files / "util.py")
    workspace.record(None)
    assert trail.probes[workspace_files / "nope.py"] is False
    assert workspace_files in trail.dirs
    assert trail.reads[workspace_files / "util.py"] is not None


def test_listing_without_git_skips_ignored_secret_and_hidden(workspace_files: Path) -> None:
    listing = Workspace(workspace_files, use_git=False).listing()
    assert "app.py" in listing
    assert not {".env", ".env.local", "generated.py", "server.pem", ".aws/config"} & set(listing)


@needs_git
def test_listing_with_git_skips_ignored_and_secret(tmp_path: Path) -> None:
    root = make_workspace(
        tmp_path, {"a.py": "", ".env": "T=1\n", "gen.py": "", ".gitignore": "gen.py\n"}, git=True
    )
    assert Workspace(root).listing() == [".gitignore", "a.py"]
