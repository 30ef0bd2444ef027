"""Outlines: signatures and docstrings kept, bodies left out, from the grammar queries."""

from __future__ import annotations

import pytest

from codegemma_lsp.context.outline import definition_name, outline
from codegemma_lsp.syntax.languages import default_registry

PYTHON = '''"""Module doc."""
# license header

import os

LIMIT = 3

# Runs things.
@decorator
def run(a: int,
        b: str) -> None:
    """Run it."""
    x = 1
    return None


class Greeter(Base):
    """Greets."""

    name: str = "x"

    def greet(self) -> str:
        return "hi " + self.name

if __name__ == "__main__":
    run(1, "a")
    run(2, "b")
    run(3, "c")
    run(4, "d")
'''

PYTHON_OUTLINE = '''"""Module doc."""

import os

LIMIT = 3

# Runs things.
@decorator
def run(a: int,
        b: str) -> None:
    """Run it."""

class Greeter(Base):
    """Greets."""

    name: str = "x"

    def greet(self) -> str:
        ...
'''

GO = """package util

import "fmt"

// Add adds.
func Add(a, b int) int {
\treturn a + b
}

type Point struct {
\tX int
\tY int
}
"""

GO_OUTLINE = """package util

import "fmt"

// Add adds.
func Add(a, b int) int { ... }

type Point struct {
\tX int
\tY int
}
"""

TYPESCRIPT = """import { x } from "./x";

/** Adds. */
export function add(a: number, b: number): number {
  return a + b;
}

export class Foo {
  private n = 1;
  method(): void {
    doIt();
  }
}
"""

TYPESCRIPT_OUTLINE = """import { x } from "./x";

/** Adds. */
export function add(a: number, b: number): number { ... }

export class Foo {
  private n = 1;
  method(): void { ... }
}
"""

RUST = """/// A point.
#[derive(Debug)]
pub struct P {
    x: i32,
}

impl P {
    pub fn new() -> Self {
        P { x: 0 }
    }
}
"""

RUST_OUTLINE = """/// A point.
#[derive(Debug)]
pub struct P {
    x: i32,
}

impl P {
    pub fn new() -> Self { ... }
}
"""


@pytest.mark.parametrize(
    ("language", "source", "expected"),
    [
        pytest.param("python", PYTHON, PYTHON_OUTLINE, id="python"),
        pytest.param("go", GO, GO_OUTLINE, id="go"),
        pytest.param("typescript", TYPESCRIPT, TYPESCRIPT_OUTLINE, id="typescript"),
        pytest.param("rust", RUST, RUST_OUTLINE, id="rust"),
    ],
)
def test_outline(language: str, source: str, expected: str) -> None:
    spec = default_registry().by_name(language)
    assert spec is not None
    assert outline(spec, source.encode()) == expected


@pytest.mark.parametrize(
    ("language", "source", "kept", "gone"),
    [
        pytest.param(
            "java",
            "package a;\n\npublic class Foo {\n    private int x;\n\n"
            "    /** M. */\n    public int m(int a) {\n        return a * 2;\n    }\n}\n",
            ["public class Foo {", "private int x;", "/** M. */", "public int m(int a) { ... }"],
            ["return a * 2"],
            id="java",
        ),
        pytest.param(
            "c",
            "typedef struct {\n    int a;\n} Pair;\n\nstatic int add(int a, int b)\n{\n"
            "    return a + b;\n}\n",
            ["typedef struct {", "} Pair;", "static int add(int a, int b)", "{ ... }"],
            ["return a + b"],
            id="c",
        ),
        pytest.param(
            "csharp",
            "namespace A;\n\npublic class Foo\n{\n    public void M()\n    {\n"
            "        Console.WriteLine();\n    }\n}\n",
            ["namespace A;", "public class Foo", "public void M()"],
            ["Console.WriteLine"],
            id="csharp-file-scoped-namespace",
        ),
        pytest.param(
            "kotlin",
            "class Foo {\n    fun m(a: Int): Int {\n        return a * 2\n    }\n}\n",
            ["class Foo {", "fun m(a: Int): Int { ... }"],
            ["return a * 2"],
            id="kotlin",
        ),
    ],
)
def test_outline_keeps_signatures_and_drops_bodies(
    language: str, source: str, kept: list[str], gone: list[str]
) -> None:
    spec = default_registry().by_name(language)
    assert spec is not None
    text = outline(spec, source.encode())
    for piece in kept:
        assert piece in text
    for piece in gone:
        assert piece not in text


def test_long_docstrings_keep_their_summary() -> None:
    body = "\n".join(f"    line {i}" for i in range(20))
    source = f'def f():\n    """Summary.\n\n{body}\n    """\n    return 1\n'
    spec = default_registry().by_name("python")
    assert spec is not None
    assert outline(spec, source.encode()) == 'def f():\n    """Summary.\n    """\n'


def test_a_file_without_definitions_has_no_outline() -> None:
    spec = default_registry().by_name("python")
    assert spec is not None
    assert outline(spec, b"x = 1\ny = 2\n") == ""


FOCUS_SOURCE = """import os

Limit = int
OTHER = 2


class Greeter:
    \"\"\"Greets.\"\"\"

    def greet(self) -> str:
        return "hi"

    def wave(self) -> None:
        pass


class Registry:
    def lookup(self, key: str) -> int:
        return 1

    def drop(self) -> None:
        pass


def helper(x: Limit) -> int:
    return x
"""


@pytest.mark.parametrize(
    ("focus", "expected"),
    [
        pytest.param(
            {"Greeter"},
            'class Greeter:\n    """Greets."""\n\n    def greet(self) -> str:\n        ...\n\n'
            "    def wave(self) -> None:\n        ...\n",
            id="a-class-by-name-keeps-all-members",
        ),
        pytest.param(
            {"lookup"},
            "class Registry:\n    def lookup(self, key: str) -> int:\n        ...\n",
            id="a-method-by-name-keeps-its-class-header",
        ),
        pytest.param(
            {"helper", "Limit"},
            "Limit = int\n\ndef helper(x: Limit) -> int:\n    ...\n",
            id="functions-and-short-statements-that-mention-a-name",
        ),
        pytest.param({"os", "nothing"}, "", id="imports-go"),
    ],
)
def test_focused_outline(focus: set[str], expected: str) -> None:
    spec = default_registry().by_name("python")
    assert spec is not None
    assert outline(spec, FOCUS_SOURCE.encode(), focus=frozenset(focus)) == expected


@pytest.mark.parametrize(
    ("language", "source", "name"),
    [
        pytest.param("c", "static int add(int a) { return a; }\n", "add", id="c-function"),
        pytest.param("c", "int *mk(void) { return 0; }\n", "mk", id="c-pointer-function"),
        pytest.param("c", "typedef struct { int a; } Pair;\n", "Pair", id="c-typedef"),
        pytest.param("rust", "impl Foo { }\n", "Foo", id="rust-impl"),
        pytest.param("go", "package p\ntype S struct{}\n", "S", id="go-type"),
        pytest.param("javascript", "const f = () => {};\n", "f", id="js-arrow"),
        pytest.param("javascript", "export function g() {}\n", "g", id="js-export"),
        pytest.param("python", "@d\ndef h():\n    pass\n", "h", id="python-decorated"),
    ],
)
def test_definition_name(language: str, source: str, name: str) -> None:
    spec = default_registry().by_name(language)
    assert spec is not None
    tree = spec.parser().parse(source.encode())
    node = tree.root_node.named_children[-1]
    assert definition_name(node) == name
