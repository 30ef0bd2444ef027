"""ContextIndex: which files, and a pack that stays byte-identical until it must change."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from codegemma_lsp.config import ContextSettings
from codegemma_lsp.context.index import ContextIndex
from codegemma_lsp.context.packer import EMPTY
from tests.unit.context_workspaces import make_workspace, needs_git

APP = "from util import double\n\n\ndef run(x):\n    return double(x) + 1\n"
UTIL = "def double(x):\n    return 2 * x\n"
TEST_APP = "from app import run\n\n\ndef test_run():\n    assert run(1) == 3\n"


class Editor:
    """Open documents, as the server's store would answer ``open_text``."""

    def __init__(self) -> None:
        self.texts: dict[Path, str] = {}

    def __call__(self, path: Path) -> str | None:
        return self.texts.get(path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_workspace(
        tmp_path / "ws",
        {
            "app.py": APP,
            "util.py": UTIL,
            "tests/test_app.py": TEST_APP,
            "other.py": "X = 1\n",
            ".env": "TOKEN=hunter2\n",
        },
    )


def rels(index: ContextIndex, path: Path) -> list[str]:
    return [rel for rel, _ in index.context_for(path).files]


def test_dependencies_then_tests(root: Path) -> None:
    index = ContextIndex(root, use_git=False)
    assert rels(index, root / "app.py") == ["util.py", "tests/test_app.py"]
    assert rels(index, root / "tests/test_app.py") == ["util.py", "app.py"]


def test_a_keystroke_that_keeps_the_imports_keeps_the_pack(root: Path) -> None:
    editor = Editor()
    app = root / "app.py"
    editor.texts[app] = APP
    index = ContextIndex(root, open_text=editor, use_git=False)
    first = index.context_for(app)
    builds = index.stats.builds
    for typed in ("r", "re", "ret", "return"):
        editor.texts[app] = APP + f"\n\ndef more():\n    {typed}"
        index.notify_changed(app)
        assert index.context_for(app) is first
    assert index.stats.builds == builds


def test_a_half_typed_import_that_resolves_nowhere_keeps_the_pack(root: Path) -> None:
    editor = Editor()
    app = root / "app.py"
    editor.texts[app] = APP
    index = ContextIndex(root, open_text=editor, use_git=False)
    first = index.context_for(app)
    for typed in ("import o", "import ot", "import oth"):
        editor.texts[app] = typed + "\n" + APP
        index.notify_changed(app)
        assert index.context_for(app) is first
    editor.texts[app] = "import other\n" + APP
    index.notify_changed(app)
    assert "other.py" in [rel for rel, _ in index.context_for(app).files]


TS_BODY = "\nexport function run(a: number): number {\n  return a;\n}\n"


@pytest.mark.parametrize(
    ("rel", "head", "line", "helper", "helper_text"),
    [
        pytest.param(
            "app.py",
            "import os\n",
            "from helper import triple\n",
            "helper.py",
            "def triple(x):\n    return 3 * x\n",
            id="python",
        ),
        pytest.param(
            "app.ts",
            'import { x } from "./x";\n',
            'import { triple } from "./helper";\n',
            "helper.ts",
            "export const triple = (x: number) => 3 * x;\n",
            id="typescript",
        ),
    ],
)
def test_typing_an_import_changes_the_pack_once(
    tmp_path: Path, rel: str, head: str, line: str, helper: str, helper_text: str
) -> None:
    body = TS_BODY if rel.endswith(".ts") else APP
    files = {rel: head + body, helper: helper_text, "x.ts": "export const x = 1;\n"}
    root = make_workspace(tmp_path, files)
    editor = Editor()
    current = root / rel
    editor.texts[current] = head + body
    index = ContextIndex(root, open_text=editor, use_git=False)
    packs = [index.context_for(current)]
    for end in range(1, len(line) + 1):
        # Each prefix of the line, as typed: half-typed imports must not flip the pack.
        editor.texts[current] = head + line[:end] + ("\n" if end < len(line) else "") + body
        index.notify_changed(current)
        packed = index.context_for(current)
        if packed is not packs[-1]:
            packs.append(packed)
    assert len(packs) == 2
    assert helper in [r for r, _ in packs[-1].files]


def test_a_typed_import_of_a_file_created_later_joins_the_pack(root: Path) -> None:
    editor = Editor()
    app = root / "app.py"
    editor.texts[app] = APP
    index = ContextIndex(root, open_text=editor, use_git=False)
    first = index.context_for(app)
    editor.texts[app] = "import later\n" + APP
    index.notify_changed(app)
    assert index.context_for(app) is first  # nothing to resolve yet
    (root / "later.py").write_text("LATER = 1\n")
    index.notify_changed(root / "later.py")
    assert rels(index, app)[0] == "later.py"


def test_editing_a_context_file_rebuilds_the_packs_that_use_it(root: Path) -> None:
    editor = Editor()
    index = ContextIndex(root, open_text=editor, use_git=False)
    app, util = root / "app.py", root / "util.py"
    first = index.context_for(app)
    index.notify_changed(root / "other.py")
    assert index.context_for(app) is first
    editor.texts[util] = UTIL + "\n\ndef triple(x):\n    return 3 * x\n"
    index.notify_changed(util)
    second = index.context_for(app)
    assert second is not first
    assert "triple" in dict(second.files)["util.py"]


def test_an_outside_edit_is_noticed_by_check_mtimes(root: Path) -> None:
    index = ContextIndex(root, use_git=False)
    app, util = root / "app.py", root / "util.py"
    first = index.context_for(app)
    util.write_text(UTIL + "# edited\n")
    assert index.check_mtimes() == [util]
    assert "# edited" in dict(index.context_for(app).files)["util.py"]
    assert index.context_for(app) is not first


def test_a_touch_that_changes_nothing_keeps_the_same_object(root: Path) -> None:
    index = ContextIndex(root, use_git=False)
    app, util = root / "app.py", root / "util.py"
    first = index.context_for(app)
    info = util.stat()
    os.utime(util, ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))
    index.check_mtimes()
    assert index.context_for(app) is first
    assert index.stats.kept == 1


def test_context_for_rechecks_mtimes_on_its_own_every_so_often(root: Path) -> None:
    now = [0.0]
    settings = ContextSettings(recheck_seconds=5)
    index = ContextIndex(root, settings=settings, use_git=False, clock=lambda: now[0])
    app, util = root / "app.py", root / "util.py"
    index.context_for(app)
    util.write_text(UTIL + "# edited\n")
    now[0] = 1.0
    assert "# edited" not in dict(index.context_for(app).files)["util.py"]
    now[0] = 6.0
    assert "# edited" in dict(index.context_for(app).files)["util.py"]


def test_a_created_file_that_an_import_names_joins_the_pack(root: Path) -> None:
    editor = Editor()
    app = root / "app.py"
    editor.texts[app] = "import later\n" + APP
    index = ContextIndex(root, open_text=editor, use_git=False)
    assert "later.py" not in rels(index, app)
    (root / "later.py").write_text("LATER = 1\n")
    index.notify_changed(root / "later.py")
    assert rels(index, app)[0] == "later.py"


def test_a_created_test_joins_the_pack_of_its_implementation(root: Path) -> None:
    index = ContextIndex(root, use_git=False)
    (root / "lib.py").write_text("def f():\n    return 1\n")
    assert rels(index, root / "lib.py") == []
    (root / "tests/test_lib.py").write_text("from lib import f\n\ndef test_f():\n    f()\n")
    index.notify_changed(root / "tests/test_lib.py")
    assert rels(index, root / "lib.py") == ["tests/test_lib.py"]


def test_a_test_gets_its_implementation_even_without_an_import(tmp_path: Path) -> None:
    root = make_workspace(
        tmp_path,
        {
            "go.mod": "module example.com/demo\n",
            "calc.go": "package demo\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n",
            "calc_test.go": "package demo\n\nfunc TestAdd(t *testing.T) {\n\tAdd(1, 2)\n}\n",
        },
    )
    index = ContextIndex(root, use_git=False)
    assert rels(index, root / "calc_test.go") == ["calc.go"]
    assert rels(index, root / "calc.go") == ["calc_test.go"]


def test_imports_are_followed_to_max_depth(tmp_path: Path) -> None:
    root = make_workspace(
        tmp_path,
        {
            "a.py": "import b\n",
            "b.py": "import c\nB = 1\n",
            "c.py": "import d\nC = 1\n",
            "d.py": "D = 1\n",
        },
    )
    index = ContextIndex(root, settings=ContextSettings(max_depth=2), use_git=False)
    assert rels(index, root / "a.py") == ["c.py", "b.py"]
    deep = ContextIndex(root, settings=ContextSettings(max_depth=3), use_git=False)
    assert rels(deep, root / "a.py") == ["d.py", "c.py", "b.py"]


def test_a_dependency_over_budget_is_outlined(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(200))
    root = make_workspace(
        tmp_path,
        {"a.py": "import big\n", "big.py": f'def f(a, b):\n    """Doc."""\n{body}'},
    )
    index = ContextIndex(root, settings=ContextSettings(max_tokens=64), use_git=False)
    packed = index.context_for(root / "a.py")
    assert packed.files == (("big.py", 'def f(a, b):\n    """Doc."""\n'),)
    assert packed.outlined == ("big.py",)


def test_outlines_focus_on_the_names_the_file_uses(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(100))
    defs = "".join(f"def g{i}(a, b):\n    return a\n\n\n" for i in range(40))
    root = make_workspace(
        tmp_path,
        {"a.py": "import big\n\nbig.f(1, 2)\n", "big.py": f"{defs}def f(a, b):\n{body}"},
    )
    index = ContextIndex(root, settings=ContextSettings(max_tokens=64), use_git=False)
    packed = index.context_for(root / "a.py")
    assert packed.files == (("big.py", "def f(a, b):\n    ...\n"),)


def test_names_typed_later_do_not_change_a_rebuilt_pack(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(100))
    root = make_workspace(
        tmp_path,
        {
            "a.py": "import big\n\nbig.f(1)\n",
            "big.py": f"def f(a):\n{body}\n\ndef g(a):\n{body}",
            "other.py": "",
        },
    )
    editor = Editor()
    a = root / "a.py"
    editor.texts[a] = "import big\n\nbig.f(1)\n"
    index = ContextIndex(
        root, open_text=editor, settings=ContextSettings(max_tokens=64), use_git=False
    )
    first = index.context_for(a)
    editor.texts[a] += "big.g(2)\n"
    index.notify_changed(a)
    index.notify_changed(root / "big.py")  # a rebuild for another reason
    assert index.context_for(a) is first


def test_secret_files_are_never_context_nor_current(root: Path) -> None:
    (root / "app.py").write_text("import env\n" + APP)
    os.symlink(root / ".env", root / "env.py")
    index = ContextIndex(root, use_git=False)
    packed = index.context_for(root / "app.py")
    assert all("hunter2" not in text for _, text in packed.files)
    assert "env.py" not in [rel for rel, _ in packed.files]
    assert index.context_for(root / ".env") is EMPTY


@needs_git
def test_gitignored_dependencies_are_left_out_until_unignored(tmp_path: Path) -> None:
    root = make_workspace(
        tmp_path,
        {"app.py": "import gen\nimport util\n", "gen.py": "G = 1\n", "util.py": UTIL},
        git=True,
    )
    (root / ".gitignore").write_text("gen.py\n")
    index = ContextIndex(root)
    assert rels(index, root / "app.py") == ["util.py"]
    (root / ".gitignore").write_text("")
    index.notify_changed(root / ".gitignore")
    assert rels(index, root / "app.py") == ["gen.py", "util.py"]


def test_disabled_or_outside_gives_nothing(root: Path, tmp_path: Path) -> None:
    off = ContextIndex(root, settings=ContextSettings(enabled=False), use_git=False)
    assert off.context_for(root / "app.py") is EMPTY
    on = ContextIndex(root, use_git=False)
    assert on.context_for(tmp_path / "elsewhere.py") is EMPTY


def test_configure_rebuilds_only_when_settings_change(root: Path) -> None:
    index = ContextIndex(root, use_git=False)
    first = index.context_for(root / "app.py")
    index.configure(ContextSettings())
    assert index.context_for(root / "app.py") is first
    index.configure(ContextSettings(tests=False))
    assert rels(index, root / "app.py") == ["util.py"]


def test_notices_never_wait_for_a_build_on_another_thread(root: Path) -> None:
    editor = Editor()
    app = root / "app.py"
    editor.texts[app] = APP
    index = ContextIndex(root, open_text=editor, use_git=False)
    first = index.context_for(app)
    held, release = threading.Event(), threading.Event()

    def build_elsewhere() -> None:
        with index._lock:  # what a cold build on the inference thread does
            held.set()
            release.wait(10)

    builder = threading.Thread(target=build_elsewhere)
    builder.start()
    try:
        held.wait(10)
        editor.texts[app] = "import other\n" + APP
        index.notify_changed(app)
        index.forget(root / "util.py")
        # Had either waited for the lock, the builder would have given up and ended.
        assert builder.is_alive()
    finally:
        release.set()
        builder.join()
    # The notice waited for the lock and is taken before the next pack is chosen.
    changed = index.context_for(app)
    assert changed is not first
    assert "other.py" in [rel for rel, _ in changed.files]


class CountingParser:
    """A parser that notes what it parsed (wrapping the real one)."""

    def __init__(self, real: object, parsed: list[bytes]) -> None:
        self.real = real
        self.parsed = parsed

    def parse(self, source: object, *args: object, **kwargs: object) -> object:
        if isinstance(source, bytes | bytearray):
            self.parsed.append(bytes(source))
        return self.real.parse(source, *args, **kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_the_current_file_is_never_parsed_again_given_its_tree(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codegemma_lsp.documents import Document
    from codegemma_lsp.syntax.languages import LanguageSpec, default_registry

    spec = default_registry().by_name("python")
    assert spec is not None
    edited = APP + "\n\ndef more(y):\n    return run(y)\n"
    document = Document((root / "app.py").as_uri(), edited, language=spec)
    parsed: list[bytes] = []
    real_parser = LanguageSpec.parser
    monkeypatch.setattr(
        LanguageSpec, "parser", lambda self: CountingParser(real_parser(self), parsed)
    )
    index = ContextIndex(root, use_git=False)
    packed = index.context_for(root / "app.py", text=document.text, tree=document.tree)
    assert [path for path, _ in packed.files][:1] == ["util.py"]
    assert edited.encode() not in parsed  # the other files were parsed, not this one
    assert parsed  # (the counting did see parses)


def test_without_a_tree_only_the_head_of_a_long_file_is_parsed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codegemma_lsp.syntax.languages import LanguageSpec

    long_text = APP + "x = 1\n" * 2000
    parsed: list[bytes] = []
    real_parser = LanguageSpec.parser
    monkeypatch.setattr(
        LanguageSpec, "parser", lambda self: CountingParser(real_parser(self), parsed)
    )
    index = ContextIndex(root, settings=ContextSettings(max_file_bytes=2048), use_git=False)
    packed = index.context_for(root / "app.py", text=long_text)
    assert [path for path, _ in packed.files][:1] == ["util.py"]
    assert max(len(source) for source in parsed) <= 2048
