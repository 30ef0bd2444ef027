"""A language is a folder: Lua came in as ``grammars/lua/`` plus the ``tree-sitter-lua``
wheel, with no Python edit. Here it goes through everything a language gets: scope,
cut points, the completion pipeline with its truncation, and repository context.

And the other half of the promise: no module of the product names a language.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from codegemma_lsp.completion import CompletionQuery, run_completion
from codegemma_lsp.config import Settings
from codegemma_lsp.context.index import ContextIndex
from codegemma_lsp.context.tests_link import PairingIndex, find_tests, subject_of
from codegemma_lsp.documents import Document, DocumentStore
from codegemma_lsp.engine.base import CancelToken
from codegemma_lsp.engine.fake import FakeBackend
from codegemma_lsp.syntax.cutpoints import WindowBudget, choose_window
from codegemma_lsp.syntax.languages import LanguageSpec, default_registry, grammars_dir
from codegemma_lsp.syntax.scope import Scope, completion_scope
from tests.unit.context_workspaces import make_workspace

PACKAGE = Path(__file__).resolve().parents[2] / "codegemma_lsp"

MAIN = (
    'local util = require("util")\n'
    'local shapes = require("geo.shapes")\n'
    "\n"
    "local M = {}\n"
    "\n"
    "function M.area(r)\n"
    "  return shapes.circle(util.square(r))\n"
    "end\n"
    "\n"
    "local function total(values)\n"
    "  local sum = 0\n"
    "  for _, v in ipairs(values) do\n"
    "    \n"
    "  end\n"
    "  return sum\n"
    "end\n"
    "\n"
    "return M\n"
)


@pytest.fixture(scope="module")
def lua() -> LanguageSpec:
    spec = default_registry().by_name("lua")
    if spec is None:
        pytest.fail("grammars/lua is not loaded: is the tree-sitter-lua wheel installed?")
    return spec


def test_the_folder_is_all_it_takes(lua: LanguageSpec) -> None:
    assert lua.folder == grammars_dir() / "lua"
    assert default_registry().lookup("lua") is lua
    assert default_registry().lookup(None, "init.lua") is lua
    document = DocumentStore().open("file:///w/main.lua", MAIN, language_id="lua")
    assert document.tree is not None and not document.tree.root_node.has_error


@pytest.mark.parametrize(
    ("marked", "scope", "reason"),
    [
        pytest.param(
            "for _, v in ipairs(values) do\n    █", Scope.BLOCK, "new-line", id="in-a-loop"
        ),
        pytest.param("local function f()█", Scope.BLOCK, "empty-block", id="empty-function"),
        pytest.param('local s = "ab█c"', Scope.LINE, "string", id="in-a-string"),
        pytest.param("-- a comm█ent", Scope.LINE, "comment", id="in-a-comment"),
        pytest.param("local su█m = 0", Scope.NONE, "mid-identifier", id="mid-word"),
        pytest.param("print(█)", Scope.LINE, "inside-brackets", id="in-a-call"),
    ],
)
def test_scope(lua: LanguageSpec, marked: str, scope: Scope, reason: str) -> None:
    text = marked.replace("█", "") + "\nend\n"
    cursor = marked.index("█")
    source = text.encode()
    decision = completion_scope(lua.parser().parse(source), source, cursor, lua)
    assert (decision.scope, decision.reason) == (scope, reason)


def test_windows_start_at_a_definition(lua: LanguageSpec) -> None:
    source = MAIN.encode()
    cursor = source.index(b"    \n  end") + 4
    budget = WindowBudget(prefix_tokens=40, suffix_tokens=16)
    window = choose_window(lua.parser().parse(source), source, cursor, budget, language=lua)
    assert source[window.prefix_start :].startswith(b"local function total(values)")


def test_completion_runs_the_whole_pipeline(lua: LanguageSpec) -> None:
    # The model runs on past the loop's end into a new function: truncation stops it.
    fake = FakeBackend("sum = sum + v\n  end\n  return sum\nend\n\nlocal function other()\n")
    fake.load()
    document = Document("file:///w/main.lua", MAIN, language=lua)
    cursor = MAIN.index("    \n  end") + 4
    query = CompletionQuery(document.snapshot(), cursor, "main.lua")
    outcome = run_completion(query, fake, Settings(), CancelToken())
    assert outcome.text == "sum = sum + v"
    assert fake.prompts[0].startswith("<bos>main.lua\n<|fim_prefix|>")


def test_context_follows_requires_and_pairs_specs(tmp_path: Path) -> None:
    root = make_workspace(
        tmp_path,
        {
            "main.lua": MAIN,
            "util.lua": "local M = {}\nfunction M.square(x) return x * x end\nreturn M\n",
            "geo/shapes/init.lua": "return { circle = function(r) return 3 * r end }\n",
            "spec/util_spec.lua": 'local util = require("util")\nassert(util.square(2) == 4)\n',
        },
    )
    index = ContextIndex(root, use_git=False)
    packed = index.context_for(root / "main.lua")
    assert [path for path, _ in packed.files] == ["util.lua", "geo/shapes/init.lua"]
    assert "spec/util_spec.lua" in [path for path, _ in index.context_for(root / "util.lua").files]
    assert subject_of("spec/util_spec.lua") == "util"
    pairs = PairingIndex.build(["util.lua", "spec/util_spec.lua", "test_util.lua"])
    assert find_tests("util.lua", pairs) == ["spec/util_spec.lua", "test_util.lua"]


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_product_module_names_a_language() -> None:
    """Language names, language ids and file extensions live in grammars/, not in code.

    The evals are left out: HumanEval-Infilling is a Python benchmark by definition.
    """
    registry = default_registry()
    words = {spec.name for spec in registry.specs}
    words |= {lid for spec in registry.specs for lid in spec.language_ids}
    words |= {ext for spec in registry.specs for ext in spec.extensions}
    # A one-letter string says nothing of a language: "c" is also libc's name.
    words = {word for word in words if len(word) > 1}
    found = [
        f"{path.relative_to(PACKAGE)}:{line}: {value!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "evals" not in path.relative_to(PACKAGE).parts
        for line, value in _string_constants(path)
        if value in words
    ]
    assert found == []
