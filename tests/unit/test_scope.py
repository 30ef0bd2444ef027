"""Completion scope per language: NONE, LINE or BLOCK from the syntax at the cursor."""

from __future__ import annotations

from typing import Any

import pytest

from codegemma_lsp.syntax.languages import LanguageSpec, default_registry
from codegemma_lsp.syntax.scope import Scope, completion_scope
from tests.unit.syntax_samples import CURSOR, LANGUAGES, SAMPLES, split_cursor

# One snippet per situation and language; "█" is the cursor.
SNIPPETS: dict[str, dict[str, str]] = {
    "python": {
        "before-code": "def f(a):\n    y = 1\n█    return y\n",
        "before-code-after-indent": "def f(a):\n    y = 1\n    █return y\n",
        "before-closer": "d = {\n    'a': 1,\n█}\n",
        "before-argument": "x = g(a,\n█      b)\n",
        "empty-block": "def f(a):█\n\nx = 1\n",
        "empty-block-next-line": "def f(a):\n    █\n\nx = 1\n",
        "filled-block": "def f(a):█\n    return a\n",
        "arguments": "x = g(a, █)\n",
        "arguments-next-line": "x = g(a,\n      █\n)\n",
        "collection": "x = {1: █}\n",
        "mid-identifier": "x = val█ue + 1\n",
        "before-call": "x = value█(1)\n",
        "expression": "x = a + █\n",
        "new-line": "def f(a):\n    y = 1\n    █\n    return y\n",
        "string": "x = 'ab█c'\n",
        "interpolation": 'x = f"a{b█}"\n',
        "comment": "x = 1  # ab█c\n",
        "comment-end": "x = 1  # abc█\n",
    },
    "javascript": {
        "before-code": "function f(a) {\n  const y = 1;\n█  return y;\n}\n",
        "before-closer": "const d = [\n  1,\n█];\n",
        "empty-block": "function f(a) {█}\n",
        "empty-block-next-line": "function f(a) {\n  █\n}\n",
        "filled-block": "function f(a) {█\n  return a;\n}\n",
        "arguments": "const x = g(a, █);\n",
        "arguments-next-line": "const x = g(a,\n  █\n);\n",
        "collection": "const x = {a: █};\n",
        "mid-identifier": "const x = val█ue + 1;\n",
        "before-call": "const x = value█(1);\n",
        "expression": "const x = a + █\n",
        "new-line": "function f(a) {\n  const y = 1;\n  █\n  return y;\n}\n",
        "string": "const x = 'ab█c';\n",
        "interpolation": "const x = `a${b█}`;\n",
        "comment": "const x = 1; // ab█c\n",
        "comment-end": "const x = 1; // abc█\n",
        "block-comment": "/* ab█c */\nconst x = 1;\n",
        "after-block-comment": "/* abc */█\nconst x = 1;\n",
        "callback": "g(function () {█});\n",
        "unclosed-block": "function f(a) {█\n\nconst z = 1;\n",
    },
    "typescript": {
        "before-code": "function f(a: number) {\n  const y = 1;\n█  return y;\n}\n",
        "empty-block": "function f(a: number): void {█}\n",
        "empty-block-next-line": "class A {\n  m(): void {\n    █\n  }\n}\n",
        "filled-block": "function f(a: number): number {█\n  return a;\n}\n",
        "arguments": "const x: number = g(a, █);\n",
        "arguments-next-line": "const x = g(a,\n  █\n);\n",
        "collection": "const x = [1, █];\n",
        "mid-identifier": "const x: number = val█ue + 1;\n",
        "before-call": "const x = value█(1);\n",
        "expression": "const x = a + █\n",
        "new-line": "function f(a: number) {\n  const y = 1;\n  █\n  return y;\n}\n",
        "string": "const x: string = 'ab█c';\n",
        "interpolation": "const x = `a${b█}`;\n",
        "comment": "const x = 1; // ab█c\n",
        "comment-end": "const x = 1; // abc█\n",
        "interface": "interface Shape {█}\n",
    },
    "tsx": {
        "before-code": "function App() {\n  const y = 1;\n█  return <div>{y}</div>;\n}\n",
        "empty-block": "function App(): JSX.Element {█}\n",
        "empty-block-next-line": "function App() {\n  █\n}\n",
        "filled-block": "function App() {█\n  return <div />;\n}\n",
        "arguments": "const [n, setN] = useState(a, █);\n",
        "arguments-next-line": "const x = g(a,\n  █\n);\n",
        "collection": "const x = [1, █];\n",
        "mid-identifier": "const x = val█ue + 1;\n",
        "before-call": "const x = value█(1);\n",
        "expression": "const x = a + █\n",
        "new-line": "function App() {\n  const y = 1;\n  █\n  return <div>{y}</div>;\n}\n",
        "string": 'const x = "ab█c";\n',
        "interpolation": "const x = `a${b█}`;\n",
        "comment": "const x = 1; // ab█c\n",
        "comment-end": "const x = 1; // abc█\n",
        "jsx-text": "function App() {\n  return <div>█</div>;\n}\n",
    },
    "go": {
        "before-code": "package p\n\nfunc f() int {\n\ty := 1\n█\treturn y\n}\n",
        "empty-block": "package p\n\nfunc f(a int) {█}\n",
        "empty-block-next-line": "package p\n\nfunc f(a int) {\n\t█\n}\n",
        "filled-block": "package p\n\nfunc f(a int) int {█\n\treturn a\n}\n",
        "arguments": "package p\n\nfunc f() {\n\tx := g(a, █)\n}\n",
        "arguments-next-line": "package p\n\nfunc f() {\n\tx := g(a,\n\t\t█\n\t)\n}\n",
        "collection": "package p\n\nvar x = []int{1, █}\n",
        "mid-identifier": "package p\n\nfunc f() {\n\tx := val█ue + 1\n}\n",
        "before-call": "package p\n\nfunc f() {\n\tx := value█(1)\n}\n",
        "expression": "package p\n\nfunc f() {\n\tx := a + █\n}\n",
        "new-line": "package p\n\nfunc f() int {\n\ty := 1\n\t█\n\treturn y\n}\n",
        "string": 'package p\n\nvar x = "ab█c"\n',
        "comment": "package p\n\nvar x = 1 // ab█c\n",
        "comment-end": "package p\n\nvar x = 1 // abc█\n",
        "case": "package p\n\nfunc f() {\n\tswitch x {\n\tcase 1:█\n\t}\n}\n",
    },
    "java": {
        "before-code": "class A {\n  int f() {\n    int y = 1;\n█    return y;\n  }\n}\n",
        "empty-block": "class A {\n  void f(int a) {█}\n}\n",
        "empty-block-next-line": "class A {\n  void f(int a) {\n    █\n  }\n}\n",
        "filled-block": "class A {\n  int f(int a) {█\n    return a;\n  }\n}\n",
        "arguments": "class A {\n  void f() {\n    int x = g(a, █);\n  }\n}\n",
        "arguments-next-line": "class A {\n  void f() {\n    g(a,\n      █\n    );\n  }\n}\n",
        "collection": "class A {\n  int[] x = {1, █};\n}\n",
        "mid-identifier": "class A {\n  void f() {\n    int x = val█ue + 1;\n  }\n}\n",
        "before-call": "class A {\n  void f() {\n    int x = value█(1);\n  }\n}\n",
        "expression": "class A {\n  void f() {\n    int x = a + █\n  }\n}\n",
        "new-line": "class A {\n  int f() {\n    int y = 1;\n    █\n    return y;\n  }\n}\n",
        "string": 'class A {\n  String x = "ab█c";\n}\n',
        "comment": "class A {\n  int x = 1; // ab█c\n}\n",
        "comment-end": "class A {\n  int x = 1; // abc█\n}\n",
        "class-body": "class A {█}\n",
    },
    "c": {
        "before-code": "int f(void) {\n    int y = 1;\n█    return y;\n}\n",
        "empty-block": "int f(int a) {█}\n",
        "empty-block-next-line": "int f(int a) {\n    █\n}\n",
        "filled-block": "int f(int a) {█\n    return a;\n}\n",
        "arguments": "int f(void) {\n    int x = g(a, █);\n}\n",
        "arguments-next-line": "int f(void) {\n    g(a,\n      █\n    );\n}\n",
        "collection": "int x[] = {1, █};\n",
        "mid-identifier": "int f(void) {\n    int x = val█ue + 1;\n}\n",
        "before-call": "int f(void) {\n    int x = value█(1);\n}\n",
        "expression": "int f(void) {\n    int x = a + █\n}\n",
        "new-line": "int f(void) {\n    int y = 1;\n    █\n    return y;\n}\n",
        "string": 'const char *x = "ab█c";\n',
        "comment": "int x = 1; // ab█c\n",
        "comment-end": "int x = 1; // abc█\n",
        "block-comment": "/* ab█c */\nint x = 1;\n",
        "struct": "struct point {█};\n",
    },
    "cpp": {
        "before-code": "int f() {\n    int y = 1;\n█    return y;\n}\n",
        "empty-block": "int f(int a) {█}\n",
        "empty-block-next-line": "namespace n {\nint f(int a) {\n    █\n}\n}\n",
        "filled-block": "int f(int a) {█\n    return a;\n}\n",
        "arguments": "int f() {\n    auto x = g(a, █);\n}\n",
        "arguments-next-line": "int f() {\n    g(a,\n      █\n    );\n}\n",
        "collection": "std::vector<int> x = {1, █};\n",
        "mid-identifier": "int f() {\n    auto x = val█ue + 1;\n}\n",
        "before-call": "int f() {\n    auto x = value█(1);\n}\n",
        "expression": "int f() {\n    auto x = a + █\n}\n",
        "new-line": "int f() {\n    int y = 1;\n    █\n    return y;\n}\n",
        "string": 'std::string x = "ab█c";\n',
        "comment": "int x = 1; // ab█c\n",
        "comment-end": "int x = 1; // abc█\n",
        "lambda": "auto f = [](int a) {█};\n",
    },
    "csharp": {
        "before-code": (
            "class A\n{\n    int F()\n    {\n        var y = 1;\n█        return y;\n    }\n}\n"
        ),
        "empty-block": "class A\n{\n    void F(int a) {█}\n}\n",
        "empty-block-next-line": "class A\n{\n    void F(int a)\n    {\n        █\n    }\n}\n",
        "filled-block": "class A\n{\n    int F(int a) {█\n        return a;\n    }\n}\n",
        "arguments": "class A\n{\n    void F()\n    {\n        var x = G(a, █);\n    }\n}\n",
        "arguments-next-line": (
            "class A\n{\n    void F()\n    {\n        G(a,\n          █\n        );\n    }\n}\n"
        ),
        "collection": "class A\n{\n    int[] x = {1, █};\n}\n",
        "mid-identifier": (
            "class A\n{\n    void F()\n    {\n        var x = val█ue + 1;\n    }\n}\n"
        ),
        "before-call": "class A\n{\n    void F()\n    {\n        var x = Value█(1);\n    }\n}\n",
        "expression": "class A\n{\n    void F()\n    {\n        var x = a + █\n    }\n}\n",
        "new-line": (
            "class A\n{\n    int F()\n    {\n        var y = 1;\n        █\n"
            "        return y;\n    }\n}\n"
        ),
        "string": 'class A\n{\n    string x = "ab█c";\n}\n',
        "interpolation": 'class A\n{\n    string x = $"a{b█}";\n}\n',
        "comment": "class A\n{\n    int x = 1; // ab█c\n}\n",
        "comment-end": "class A\n{\n    int x = 1; // abc█\n}\n",
        "allman": "class A\n{\n    void F()\n    {█\n    }\n}\n",
    },
    "kotlin": {
        "before-code": "fun f(): Int {\n    val y = 1\n█    return y\n}\n",
        "empty-block": "fun f(a: Int) {█}\n",
        "empty-block-next-line": "fun f(a: Int) {\n    █\n}\n",
        "filled-block": "fun f(a: Int): Int {█\n    return a\n}\n",
        "arguments": "fun f() {\n    val x = g(a, █)\n}\n",
        "arguments-next-line": "fun f() {\n    g(a,\n      █\n    )\n}\n",
        "collection": "val x = listOf(1, █)\n",
        "mid-identifier": "fun f() {\n    val x = val█ue + 1\n}\n",
        "before-call": "fun f() {\n    val x = value█(1)\n}\n",
        "expression": "fun f() {\n    val x = a + █\n}\n",
        "new-line": "fun f(): Int {\n    val y = 1\n    █\n    return y\n}\n",
        "string": 'val x = "ab█c"\n',
        "interpolation": 'val x = "a${b█}"\n',
        "comment": "val x = 1 // ab█c\n",
        "comment-end": "val x = 1 // abc█\n",
        "lambda": "fun f() {\n    xs.map { x ->█ }\n}\n",
    },
    "rust": {
        "before-code": "fn f() -> i32 {\n    let y = 1;\n█    y\n}\n",
        "empty-block": "fn f(a: i32) {█}\n",
        "empty-block-next-line": "impl A {\n    fn f(a: i32) {\n        █\n    }\n}\n",
        "filled-block": "fn f(a: i32) -> i32 {█\n    a\n}\n",
        "arguments": "fn f() {\n    let x = g(a, █);\n}\n",
        "arguments-next-line": "fn f() {\n    g(a,\n      █\n    );\n}\n",
        "collection": "fn f() {\n    let x = [1, █];\n}\n",
        "mid-identifier": "fn f() {\n    let x = val█ue + 1;\n}\n",
        "before-call": "fn f() {\n    let x = value█(1);\n}\n",
        "expression": "fn f() {\n    let x = a + █\n}\n",
        "new-line": "fn f() -> i32 {\n    let y = 1;\n    █\n    y\n}\n",
        "string": 'const X: &str = "ab█c";\n',
        "comment": "const X: i32 = 1; // ab█c\n",
        "comment-end": "const X: i32 = 1; // abc█\n",
        "match": "fn f() {\n    match x {█}\n}\n",
    },
}

# What each situation gives, with the settings it runs under.
EXPECTED: dict[str, list[tuple[dict[str, Any], Scope]]] = {
    "empty-block": [({}, Scope.BLOCK)],
    "empty-block-next-line": [({}, Scope.BLOCK)],
    "unclosed-block": [({}, Scope.BLOCK)],
    "callback": [({}, Scope.BLOCK)],
    "interface": [({}, Scope.BLOCK)],
    "class-body": [({}, Scope.BLOCK)],
    "struct": [({}, Scope.BLOCK)],
    "lambda": [({}, Scope.BLOCK)],
    "match": [({}, Scope.BLOCK)],
    "case": [({}, Scope.BLOCK)],
    "allman": [({}, Scope.BLOCK)],
    "new-line": [({}, Scope.BLOCK)],
    # Text to the right of a cursor in the indentation goes down a line, so the
    # completion must be free to end with a newline: a LINE completion cannot.
    "before-code": [({}, Scope.BLOCK)],
    "before-code-after-indent": [({}, Scope.BLOCK)],
    "before-closer": [({}, Scope.BLOCK)],
    "before-argument": [({}, Scope.BLOCK)],
    "filled-block": [({}, Scope.LINE)],
    "arguments": [({}, Scope.LINE)],
    "arguments-next-line": [({}, Scope.LINE)],
    "collection": [({}, Scope.LINE)],
    "expression": [({}, Scope.LINE)],
    "before-call": [({}, Scope.LINE)],
    "jsx-text": [({}, Scope.LINE)],
    "mid-identifier": [({}, Scope.NONE)],
    "interpolation": [({"in_strings": "off"}, Scope.LINE)],
    "after-block-comment": [({"in_comments": "off"}, Scope.LINE)],
    "string": [
        ({"in_strings": "off"}, Scope.NONE),
        ({"in_strings": "line"}, Scope.LINE),
        ({"in_strings": "block"}, Scope.BLOCK),
    ],
    "comment": [
        ({"in_comments": "off"}, Scope.NONE),
        ({"in_comments": "line"}, Scope.LINE),
        ({"in_comments": "block"}, Scope.BLOCK),
    ],
    "comment-end": [({"in_comments": "off"}, Scope.NONE), ({"in_comments": "block"}, Scope.BLOCK)],
    "block-comment": [
        ({"in_comments": "off"}, Scope.NONE),
        ({"in_comments": "block"}, Scope.BLOCK),
    ],
}


def _spec(name: str) -> LanguageSpec:
    spec = default_registry().by_name(name)
    assert spec is not None
    return spec


def _cases() -> list[Any]:
    cases = []
    for lang in LANGUAGES:
        for situation, snippet in SNIPPETS[lang].items():
            for kwargs, scope in EXPECTED[situation]:
                setting = "-".join(f"{v}" for v in kwargs.values())
                case_id = f"{lang}-{situation}" + (f"-{setting}" if setting else "")
                cases.append(pytest.param(lang, snippet, kwargs, scope, id=case_id))
    return cases


def test_every_language_covers_the_core_situations() -> None:
    core = {
        "empty-block",
        "empty-block-next-line",
        "filled-block",
        "arguments",
        "arguments-next-line",
        "mid-identifier",
        "new-line",
        "before-code",
        "string",
        "comment",
    }
    assert set(SNIPPETS) == set(SAMPLES)
    for lang, snippets in SNIPPETS.items():
        assert core <= set(snippets), lang


@pytest.mark.parametrize(("lang", "snippet", "kwargs", "expected"), _cases())
def test_scope(lang: str, snippet: str, kwargs: dict[str, Any], expected: Scope) -> None:
    spec = _spec(lang)
    source, cursor = split_cursor(snippet)
    tree = spec.parser().parse(source)
    decision = completion_scope(tree, source, cursor, spec, **kwargs)
    assert decision.scope is expected, decision.reason


@pytest.mark.parametrize("lang", [pytest.param(n, id=n) for n in LANGUAGES])
def test_scope_at_the_sample_cursor_is_a_block(lang: str) -> None:
    # An empty line among a function's statements: room for a whole statement.
    spec = _spec(lang)
    source, cursor = split_cursor(SAMPLES[lang])
    decision = completion_scope(spec.parser().parse(source), source, cursor, spec)
    assert decision.scope is Scope.BLOCK


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        pytest.param("f() {█}\n", Scope.BLOCK, id="opener-closed"),
        pytest.param("f() {█\n}\n", Scope.BLOCK, id="opener-closer-below"),
        pytest.param("if x:█\n\ny\n", Scope.BLOCK, id="colon-opener"),
        pytest.param("if x:\n    █\n", Scope.BLOCK, id="line-below-opener"),
        pytest.param("f() {█\n    x\n}\n", Scope.LINE, id="opener-with-body"),
        pytest.param("g(a, █)\n", Scope.LINE, id="code-right"),
        pytest.param("x = val█ue\n", Scope.NONE, id="mid-identifier"),
        pytest.param("x = 1\n█\n", Scope.LINE, id="blank-line"),
        pytest.param("x = 1\n█y = 2\n", Scope.BLOCK, id="before-code"),
        pytest.param("x = 1\n  █  y = 2\n", Scope.BLOCK, id="in-indentation"),
        pytest.param("x = [\n  1,\n█]\n", Scope.BLOCK, id="before-closer"),
        pytest.param("x = █\n", Scope.LINE, id="statement"),
        pytest.param("█", Scope.LINE, id="empty-document"),
    ],
)
def test_unknown_language_uses_the_text(snippet: str, expected: Scope) -> None:
    source, cursor = split_cursor(snippet)
    assert completion_scope(None, source, cursor, None).scope is expected


def test_known_language_without_a_tree_still_sees_line_comments() -> None:
    source, cursor = split_cursor("x = 1  # ab█c\n")
    decision = completion_scope(None, source, cursor, _spec("python"), in_comments="off")
    assert decision.scope is Scope.NONE


@pytest.mark.parametrize("cursor", [-5, 10_000])
def test_cursor_out_of_range_is_clamped(cursor: int) -> None:
    spec = _spec("python")
    source = b"x = 1\n"
    decision = completion_scope(spec.parser().parse(source), source, cursor, spec)
    assert decision.scope in set(Scope)


def test_cursor_marker_is_not_left_in_snippets() -> None:
    for snippets in SNIPPETS.values():
        for snippet in snippets.values():
            assert snippet.count(CURSOR) == 1
