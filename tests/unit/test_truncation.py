"""Truncation of generated middles, table-driven per language.

A document is written with ``█`` at the cursor; the text before it is the
prefix and the text after it the suffix.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegemma_lsp.syntax import trunc_window, truncation
from codegemma_lsp.syntax.languages import LanguageSpec, default_registry
from codegemma_lsp.syntax.truncation import Scope, truncate, truncate_explained

CURSOR = "█"


def spec(name: str | None) -> LanguageSpec | None:
    if name is None:
        return None
    found = default_registry().by_name(name)
    assert found is not None, f"grammar for {name} is not installed"
    return found


def split(document: str) -> tuple[str, str]:
    assert document.count(CURSOR) == 1, document
    prefix, suffix = document.split(CURSOR)
    return prefix, suffix


def run(language: str | None, document: str, generated: str, scope: Scope | None = None) -> str:
    prefix, suffix = split(document)
    return truncate(prefix, generated, suffix, spec(language), scope=scope)


@dataclass(frozen=True)
class Case:
    id: str
    language: str | None
    document: str
    generated: str
    expected: str
    scope: Scope | None = None


case = Case
FIELDS = ("language", "document", "generated", "expected", "scope")


def params(cases: list[Case]) -> list[object]:
    return [
        pytest.param(c.language, c.document, c.generated, c.expected, c.scope, id=c.id)
        for c in cases
    ]


# Per language: (a) a run-on past the end of the block, (b) a repeated closing
# line, (c) a whole completion kept as it is, (d) a mid-line completion that
# repeats the suffix's ")", (e) single-line scope, (f) a document broken elsewhere.
PER_LANGUAGE = [
    # Python
    case(
        "python-a-run-on",
        "python",
        "def add(a, b):\n    █\n",
        "return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
        "return a + b",
    ),
    case(
        "python-b-repeated-line",
        "python",
        "def add(a, b):\n    total = a + b\n    █\n    return total\n",
        "total *= 2\n    return total\n",
        "total *= 2",
    ),
    case(
        "python-c-whole",
        "python",
        "def pick(a, b):\n    █\n",
        "if a > b:\n        return a\n    return b",
        "if a > b:\n        return a\n    return b",
    ),
    case(
        "python-d-call-parens",
        "python",
        "def longest(xs):\n    return max(█)\n",
        "xs, key=len)\n",
        "xs, key=len",
    ),
    case(
        "python-e-line",
        "python",
        "def total(xs):\n    result = █\n    return result\n",
        "sum(xs)\n    result += 1\n",
        "sum(xs)",
        "line",
    ),
    case(
        "python-f-broken-elsewhere",
        "python",
        "def broken(:\n    pass\n\n\ndef add(a, b):\n    █\n",
        "return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
        "return a + b",
    ),
    # JavaScript
    case(
        "javascript-a-run-on",
        "javascript",
        "function add(a, b) {\n  █",
        "return a + b;\n}\n\nfunction sub(a, b) {\n  return a - b;\n}\n",
        "return a + b;\n}",
    ),
    case(
        "javascript-b-repeated-brace",
        "javascript",
        "function add(a, b) {\n  █\n}\n",
        "return a + b;\n}\n",
        "return a + b;",
    ),
    case(
        "javascript-c-whole",
        "javascript",
        "function max(a, b) {\n  █\n}\n",
        "if (a > b) {\n    return a;\n  } else {\n    return b;\n  }",
        "if (a > b) {\n    return a;\n  } else {\n    return b;\n  }",
    ),
    case(
        "javascript-d-call-parens",
        "javascript",
        "console.log(Math.max(█));\n",
        "a, b));\n",
        "a, b",
    ),
    case(
        "javascript-e-line",
        "javascript",
        "const total = █;\n",
        "a + b;\nconsole.log(total);\n",
        "a + b",
        "line",
    ),
    case(
        "javascript-f-broken-elsewhere",
        "javascript",
        "function broken( {\n}\n\nfunction add(a, b) {\n  █",
        "return a + b;\n}\n\nfunction sub(a, b) {\n  return a - b;\n}\n",
        "return a + b;\n}",
    ),
    # TypeScript
    case(
        "typescript-a-run-on",
        "typescript",
        "function add(a: number, b: number): number {\n  █",
        "return a + b;\n}\n\nfunction sub(a: number, b: number): number {\n  return a - b;\n}\n",
        "return a + b;\n}",
    ),
    case(
        "typescript-b-repeated-brace",
        "typescript",
        "class Calc {\n  add(a: number, b: number): number {\n    █\n  }\n}\n",
        "return a + b;\n  }\n",
        "return a + b;",
    ),
    case(
        "typescript-c-whole",
        "typescript",
        "function clamp(x: number): number {\n  █\n}\n",
        "if (x < 0) {\n    return 0;\n  }\n  return x;",
        "if (x < 0) {\n    return 0;\n  }\n  return x;",
    ),
    case(
        "typescript-d-call-parens",
        "typescript",
        "const n: number = Math.min(█);\n",
        "a, b);\n",
        "a, b",
    ),
    case(
        "typescript-e-line",
        "typescript",
        "let label: string = █;\n",
        "`${count}`;\nconsole.log(label);\n",
        "`${count}`",
        "line",
    ),
    case(
        "typescript-f-broken-elsewhere",
        "typescript",
        "interface Broken {\n  x: number\n  y: \n}\n\n"
        "function add(a: number, b: number): number {\n  █",
        "return a + b;\n}\n\nfunction sub(a: number, b: number): number {\n  return a - b;\n}\n",
        "return a + b;\n}",
    ),
    # TSX
    case(
        "tsx-a-run-on",
        "tsx",
        "export function Title() {\n  █",
        "return <h1>Hello</h1>;\n}\n\nexport function Footer() {\n  return <footer />;\n}\n",
        "return <h1>Hello</h1>;\n}",
    ),
    case(
        "tsx-b-repeated-brace",
        "tsx",
        "export function Title() {\n  █\n}\n",
        "return <h1>Hello</h1>;\n}\n",
        "return <h1>Hello</h1>;",
    ),
    case(
        "tsx-c-whole",
        "tsx",
        "export function List({ items }: { items: string[] }) {\n  █\n}\n",
        "return (\n    <ul>\n      {items.map((item) => (\n        <li key={item}>{item}</li>\n"
        "      ))}\n    </ul>\n  );",
        "return (\n    <ul>\n      {items.map((item) => (\n        <li key={item}>{item}</li>\n"
        "      ))}\n    </ul>\n  );",
    ),
    case(
        "tsx-d-call-parens",
        "tsx",
        "export const App = () => <div>{format(█)}</div>;\n",
        "name)}</div>;\n",
        "name",
    ),
    case(
        "tsx-e-line",
        "tsx",
        "const title = █;\n",
        "<h1>{name}</h1>;\nexport default title;\n",
        "<h1>{name}</h1>",
        "line",
    ),
    case(
        "tsx-f-broken-elsewhere",
        "tsx",
        "const broken = <div></span>;\n\nexport function Title() {\n  █",
        "return <h1>Hello</h1>;\n}\n\nexport function Footer() {\n  return <footer />;\n}\n",
        "return <h1>Hello</h1>;\n}",
    ),
    # Go
    case(
        "go-a-run-on",
        "go",
        "package main\n\nfunc add(a, b int) int {\n\t█",
        "return a + b\n}\n\nfunc sub(a, b int) int {\n\treturn a - b\n}\n",
        "return a + b\n}",
    ),
    case(
        "go-b-repeated-brace",
        "go",
        "package main\n\nfunc add(a, b int) int {\n\t█\n}\n",
        "return a + b\n}\n",
        "return a + b",
    ),
    case(
        "go-c-whole",
        "go",
        "package main\n\nfunc max(a, b int) int {\n\t█\n}\n",
        "if a > b {\n\t\treturn a\n\t}\n\treturn b",
        "if a > b {\n\t\treturn a\n\t}\n\treturn b",
    ),
    case(
        "go-d-call-parens",
        "go",
        'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println(max(█))\n}\n',
        "1, 2))\n",
        "1, 2",
    ),
    case(
        "go-e-line",
        "go",
        "package main\n\nfunc main() {\n\ttotal := █\n\tprintln(total)\n}\n",
        "add(1, 2)\n\tprintln(total)\n",
        "add(1, 2)",
        "line",
    ),
    case(
        "go-f-broken-elsewhere",
        "go",
        "package main\n\nfunc broken( {\n}\n\nfunc add(a, b int) int {\n\t█",
        "return a + b\n}\n\nfunc sub(a, b int) int {\n\treturn a - b\n}\n",
        "return a + b\n}",
    ),
    # Java
    case(
        "java-a-run-on",
        "java",
        "class Calc {\n    int add(int a, int b) {\n        █",
        "return a + b;\n    }\n\n    int sub(int a, int b) {\n        return a - b;\n    }\n}\n",
        "return a + b;\n    }",
    ),
    case(
        "java-b-repeated-brace",
        "java",
        "class Calc {\n    int add(int a, int b) {\n        █\n    }\n}\n",
        "return a + b;\n    }\n",
        "return a + b;",
    ),
    case(
        "java-c-whole",
        "java",
        "class Calc {\n    int max(int a, int b) {\n        █\n    }\n}\n",
        "if (a > b) {\n            return a;\n        }\n        return b;",
        "if (a > b) {\n            return a;\n        }\n        return b;",
    ),
    case(
        "java-d-call-parens",
        "java",
        "class Main {\n    void run() {\n        System.out.println(Math.max(█));\n    }\n}\n",
        "a, b));\n",
        "a, b",
    ),
    case(
        "java-e-line",
        "java",
        "class Main {\n    void run() {\n        int total = █;\n    }\n}\n",
        "a + b;\n        System.out.println(total);\n",
        "a + b",
        "line",
    ),
    case(
        "java-f-broken-elsewhere",
        "java",
        "class Broken {\n    void f( {\n    }\n}\n\n"
        "class Calc {\n    int add(int a, int b) {\n        █",
        "return a + b;\n    }\n\n    int sub(int a, int b) {\n        return a - b;\n    }\n}\n",
        "return a + b;\n    }",
    ),
    # C
    case(
        "c-a-run-on",
        "c",
        "int add(int a, int b) {\n    █",
        "return a + b;\n}\n\nint sub(int a, int b) {\n    return a - b;\n}\n",
        "return a + b;\n}",
    ),
    case(
        "c-b-repeated-brace",
        "c",
        "int add(int a, int b) {\n    █\n}\n",
        "return a + b;\n}\n",
        "return a + b;",
    ),
    case(
        "c-c-whole",
        "c",
        "int max(int a, int b) {\n    █\n}\n",
        "if (a > b) {\n        return a;\n    }\n    return b;",
        "if (a > b) {\n        return a;\n    }\n    return b;",
    ),
    case(
        "c-d-call-parens",
        "c",
        '#include <stdio.h>\n\nint main(void) {\n    printf("%d\\n", max(█));\n}\n',
        "1, 2));\n",
        "1, 2",
    ),
    case(
        "c-e-line",
        "c",
        "int main(void) {\n    int total = █;\n    return total;\n}\n",
        "add(1, 2);\n    return total;\n",
        "add(1, 2)",
        "line",
    ),
    case(
        "c-f-broken-elsewhere",
        "c",
        "int broken( {\n}\n\nint add(int a, int b) {\n    █",
        "return a + b;\n}\n\nint sub(int a, int b) {\n    return a - b;\n}\n",
        "return a + b;\n}",
    ),
    # C++
    case(
        "cpp-a-run-on",
        "cpp",
        "namespace calc {\n\nint add(int a, int b) {\n    █",
        "return a + b;\n}\n\nint sub(int a, int b) {\n"
        "    return a - b;\n}\n\n}  // namespace calc\n",
        "return a + b;\n}",
    ),
    case(
        "cpp-b-repeated-brace",
        "cpp",
        "class Calc {\n public:\n  int add(int a, int b) {\n    █\n  }\n};\n",
        "return a + b;\n  }\n",
        "return a + b;",
    ),
    case(
        "cpp-c-whole",
        "cpp",
        "template <typename T>\nT max(T a, T b) {\n    █\n}\n",
        "if (a > b) {\n        return a;\n    }\n    return b;",
        "if (a > b) {\n        return a;\n    }\n    return b;",
    ),
    case(
        "cpp-d-call-parens",
        "cpp",
        "#include <iostream>\n\nint main() {\n    std::cout << std::max(█) << std::endl;\n}\n",
        "1, 2) << std::endl;\n",
        "1, 2",
    ),
    case(
        "cpp-e-line",
        "cpp",
        "int main() {\n    auto total = █;\n    return total;\n}\n",
        "add(1, 2);\n    return total;\n",
        "add(1, 2)",
        "line",
    ),
    case(
        "cpp-f-broken-elsewhere",
        "cpp",
        "int broken( {\n}\n\nint add(int a, int b) {\n    █",
        "return a + b;\n}\n\nint sub(int a, int b) {\n    return a - b;\n}\n",
        "return a + b;\n}",
    ),
    # C#
    case(
        "csharp-a-run-on",
        "csharp",
        "class Calc\n{\n    int Add(int a, int b)\n    {\n        █",
        "return a + b;\n    }\n\n    int Sub(int a, int b)\n"
        "    {\n        return a - b;\n    }\n}\n",
        "return a + b;\n    }",
    ),
    case(
        "csharp-b-repeated-brace",
        "csharp",
        "class Calc\n{\n    int Add(int a, int b)\n    {\n        █\n    }\n}\n",
        "return a + b;\n    }\n",
        "return a + b;",
    ),
    case(
        "csharp-c-whole",
        "csharp",
        "class Calc\n{\n    int Max(int a, int b)\n    {\n        █\n    }\n}\n",
        "if (a > b)\n        {\n            return a;\n        }\n        return b;",
        "if (a > b)\n        {\n            return a;\n        }\n        return b;",
    ),
    case(
        "csharp-d-call-parens",
        "csharp",
        "class Program\n{\n    static void Main()\n    {\n        Console.WriteLine(Math.Max(█));\n"
        "    }\n}\n",
        "a, b));\n",
        "a, b",
    ),
    case(
        "csharp-e-line",
        "csharp",
        "class Program\n{\n    static void Main()\n    {\n        var total = █;\n    }\n}\n",
        "Add(1, 2);\n        Console.WriteLine(total);\n",
        "Add(1, 2)",
        "line",
    ),
    case(
        "csharp-f-broken-elsewhere",
        "csharp",
        "class Broken\n{\n    void F(\n}\n\nclass Calc\n"
        "{\n    int Add(int a, int b)\n    {\n        █",
        "return a + b;\n    }\n\n    int Sub(int a, int b)\n"
        "    {\n        return a - b;\n    }\n}\n",
        "return a + b;\n    }",
    ),
    # Kotlin
    case(
        "kotlin-a-run-on",
        "kotlin",
        "fun add(a: Int, b: Int): Int {\n    █",
        "return a + b\n}\n\nfun sub(a: Int, b: Int): Int {\n    return a - b\n}\n",
        "return a + b\n}",
    ),
    case(
        "kotlin-b-repeated-brace",
        "kotlin",
        "class Calc {\n    fun add(a: Int, b: Int): Int {\n        █\n    }\n}\n",
        "return a + b\n    }\n",
        "return a + b",
    ),
    case(
        "kotlin-c-whole",
        "kotlin",
        "fun max(a: Int, b: Int): Int {\n    █\n}\n",
        "if (a > b) {\n        return a\n    }\n    return b",
        "if (a > b) {\n        return a\n    }\n    return b",
    ),
    case(
        "kotlin-d-call-parens",
        "kotlin",
        "fun main() {\n    println(maxOf(█))\n}\n",
        "1, 2))\n",
        "1, 2",
    ),
    case(
        "kotlin-e-line",
        "kotlin",
        "fun main() {\n    val total = █\n    println(total)\n}\n",
        "add(1, 2)\n    println(total)\n",
        "add(1, 2)",
        "line",
    ),
    case(
        "kotlin-f-broken-elsewhere",
        "kotlin",
        "fun broken( {\n}\n\nfun add(a: Int, b: Int): Int {\n    █",
        "return a + b\n}\n\nfun sub(a: Int, b: Int): Int {\n    return a - b\n}\n",
        "return a + b\n}",
    ),
    # Rust
    case(
        "rust-a-run-on",
        "rust",
        "fn add(a: i32, b: i32) -> i32 {\n    █",
        "a + b\n}\n\nfn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n",
        "a + b\n}",
    ),
    case(
        "rust-b-repeated-brace",
        "rust",
        "impl Calc {\n    fn add(&self, a: i32, b: i32) -> i32 {\n        █\n    }\n}\n",
        "a + b\n    }\n",
        "a + b",
    ),
    case(
        "rust-c-whole",
        "rust",
        "fn longest<'a>(x: &'a str, y: &'a str) -> &'a str {\n    █\n}\n",
        "if x.len() > y.len() {\n        x\n    } else {\n        y\n    }",
        "if x.len() > y.len() {\n        x\n    } else {\n        y\n    }",
    ),
    case(
        "rust-d-call-parens",
        "rust",
        'fn main() {\n    println!("{}", max(█));\n}\n',
        "1, 2));\n",
        "1, 2",
    ),
    case(
        "rust-e-line",
        "rust",
        'fn main() {\n    let total = █;\n    println!("{}", total);\n}\n',
        'add(1, 2);\n    println!("{}", total);\n',
        "add(1, 2)",
        "line",
    ),
    case(
        "rust-f-broken-elsewhere",
        "rust",
        "fn broken( {\n}\n\nfn add(a: i32, b: i32) -> i32 {\n    █",
        "a + b\n}\n\nfn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n",
        "a + b\n}",
    ),
    # Lua: blocks close with the keyword "end" ([headers] closers in its language.toml)
    case(
        "lua-a-run-on",
        "lua",
        "local function add(a, b)\n  █",
        "return a + b\nend\n\nlocal function sub(a, b)\n  return a - b\nend\n",
        "return a + b\nend",
    ),
    case(
        "lua-b-repeated-end",
        "lua",
        "local function add(a, b)\n  █\nend\n",
        "return a + b\nend\n",
        "return a + b",
    ),
    case(
        "lua-c-whole",
        "lua",
        "local function max(a, b)\n  █\nend\n",
        "if a > b then\n    return a\n  end\n  return b\nend\n",
        "if a > b then\n    return a\n  end\n  return b",
    ),
    case(
        "lua-d-call-parens",
        "lua",
        "local function main()\n  print(max(█))\nend\n",
        "1, 2))\n",
        "1, 2",
    ),
    case(
        "lua-e-line",
        "lua",
        "local function main()\n  local total = █\n  print(total)\nend\n",
        "add(1, 2)\n  print(total)\n",
        "add(1, 2)",
        "line",
    ),
    case(
        "lua-f-header-line",
        "lua",
        "local function add(a, b)█\n\nreturn M\n",
        "\n  return a + b\nend\n\nlocal function sub(a, b)\n  return a - b\nend\n",
        "\n  return a + b\nend",
    ),
]


@pytest.mark.parametrize(FIELDS, params(PER_LANGUAGE))
def test_per_language(
    language: str, document: str, generated: str, expected: str, scope: Scope | None
) -> None:
    assert run(language, document, generated, scope) == expected


def test_every_language_has_a_table() -> None:
    covered = {c.language for c in PER_LANGUAGE}
    assert covered >= set(default_registry().names)


# (g) Without a grammar only the line rules apply, and nothing is parsed.
UNKNOWN_LANGUAGE = [
    case("unknown-call-parens", None, "foo(█)\n", "a, b)\nbar()\n", "a, b"),
    case(
        "unknown-dedent-ends-block",
        None,
        "proc f {\n    █\n}\n",
        "set x 1\n    return $x\n}\n\nproc g {}\n",
        "set x 1\n    return $x",
    ),
    case("unknown-line-scope", None, "x = █\n", "1\ny = 2\n", "1", "line"),
    case("unknown-suffix-lines", None, "begin█\nend\n", "\nmiddle\nend\n", "\nmiddle"),
    case("unknown-whole", None, "begin█\n", "\n  middle\n", "\n  middle"),
]


@pytest.mark.parametrize(FIELDS, params(UNKNOWN_LANGUAGE))
def test_unknown_language_falls_back_to_lines(
    language: None, document: str, generated: str, expected: str, scope: Scope | None
) -> None:
    prefix, suffix = split(document)
    result = truncate_explained(prefix, generated, suffix, None, scope=scope)
    assert result.text == expected
    assert result.parses == 0


BEHAVIOUR = [
    case(
        "python-top-level-definition-ends",
        "python",
        "import os\n\n█",
        "def main():\n    print(os.getcwd())\n\n\ndef other():\n    pass\n",
        "def main():\n    print(os.getcwd())\n",
    ),
    case(
        "python-new-method-in-class-body",
        "python",
        "class A:\n    █\n",
        "def a(self):\n        return 1\n\n    def b(self):\n        return 2\n",
        "def a(self):\n        return 1",
    ),
    case(
        "python-method-body-ends-at-next-method",
        "python",
        "class A:\n    def add(self, a, b):\n        █\n",
        "return a + b\n\n    def sub(self, a, b):\n        return a - b\n",
        "return a + b",
    ),
    case(
        "python-nested-function-returns-to-outer",
        "python",
        "def outer(xs):\n    def key(x):\n        █\n",
        "return -x\n\n    return sorted(xs, key=key)\n\n\nprint(outer([1]))\n",
        "return -x\n\n    return sorted(xs, key=key)",
    ),
    case(
        "python-else-clause-kept",
        "python",
        "def f(x):\n    if x:\n        █\n",
        "return 1\n    else:\n        return 2\n\n\nprint(f(1))\n",
        "return 1\n    else:\n        return 2",
    ),
    case(
        "python-body-after-header-on-cursor-line",
        "python",
        "def add(a, b):█",
        "\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
        "\n    return a + b",
    ),
    case(
        "python-duplicated-return",
        "python",
        "def f(x):\n    █\n",
        "y = x * 2\n    return y\n    return y\n",
        "y = x * 2\n    return y",
    ),
    case(
        "python-rest-of-line-keeps-its-indentation",
        "python",
        "def add(a, b):\n    total = a + b\n    █return total\n",
        "total *= 2\n    return total\n",
        "total *= 2\n    ",
    ),
    case(
        "python-only-repeats-the-suffix",
        "python",
        "def f():\n    x = 1\n█    return x\n",
        "    return x\n",
        "",
    ),
    case(
        "python-repeated-closing-bracket-line",
        "python",
        "def f():\n    xs = [\n        1,\n█    ]\n    return xs\n",
        "        2,\n    ]\n    ]\n",
        "        2,\n",
    ),
    case(
        "python-for-header-mid-line",
        "python",
        "def f(xs):\n    for x in range(█):\n        print(x)\n",
        "len(xs)):\n        print(x)\n",
        "len(xs)",
    ),
    case(
        "python-error-right-before-the-cursor",
        "python",
        "def f(x):\n    y = = 1\n    █\n",
        "return x\n\n\ndef g():\n    pass\n",
        "return x",
    ),
    case(
        "python-unicode",
        "python",
        "def greet():\n    █\n",
        "s = '日本語 🎉'\n    return s +\n",
        "s = '日本語 🎉'",
    ),
    case(
        "python-crlf",
        "python",
        "def f():\r\n    █\r\n",
        "return 1\r\n\r\n\r\ndef g():\r\n    pass\r\n",
        "return 1",
    ),
    case(
        "go-top-level-function-ends",
        "go",
        "package main\n\n█",
        "func sub(a, b int) int {\n\treturn a - b\n}\n"
        "\nfunc mul(a, b int) int {\n\treturn a * b\n}\n",
        "func sub(a, b int) int {\n\treturn a - b\n}\n",
    ),
    case(
        "go-inner-block-then-function-end",
        "go",
        "package main\n\nfunc f(a, b int) int {\n\tif a > b {\n\t\t█",
        "return a\n\t}\n\treturn b\n}\n\nfunc mul(a, b int) int {\n\treturn a * b\n}\n",
        "return a\n\t}\n\treturn b\n}",
    ),
    case(
        "javascript-else-clause-kept",
        "javascript",
        "function max(a, b) {\n  █\n}\n",
        "if (a > b) {\n    return a;\n  } else {\n    return b;\n  }\n}\n\nfunction min() {}\n",
        "if (a > b) {\n    return a;\n  } else {\n    return b;\n  }",
    ),
    case(
        "javascript-test-callback",
        "javascript",
        "describe('calc', () => {\n  █\n});\n",
        "it('adds', () => {\n    expect(add(1, 2)).toBe(3);\n  });\n});\n",
        "it('adds', () => {\n    expect(add(1, 2)).toBe(3);\n  });",
    ),
    case(
        "javascript-if-condition-mid-line",
        "javascript",
        "function f(x) {\n  if (█) {\n    return 1;\n  }\n}\n",
        "x > 0) {\n    return 1;\n  }\n",
        "x > 0",
    ),
    case(
        "javascript-unfinished-last-line",
        "javascript",
        "function f() {\n  █\n}\n",
        "const x = 1;\n  if (x) {\n    foo(",
        "const x = 1;",
    ),
    case(
        "java-new-method-in-class-body",
        "java",
        "class Calc {\n    █\n}\n",
        "int add(int a, int b) {\n        return a + b;\n    }\n\n"
        "    int sub(int a, int b) {\n        return a - b;\n    }\n",
        "int add(int a, int b) {\n        return a + b;\n    }",
    ),
    case(
        "rust-lifetimes-are-not-quotes",
        "rust",
        "fn first<'a>(xs: &'a [i32]) -> &'a i32 {\n    █\n}\n",
        "&xs[0]\n}\n\nfn main() {}\n",
        "&xs[0]",
    ),
    case(
        "c-brace-in-a-string",
        "c",
        "int main(void) {\n    █\n}\n",
        'puts("}");\n    return 0;\n}\n\nint other(void) { return 1; }\n',
        'puts("}");\n    return 0;',
    ),
    case(
        "kotlin-lambda-body",
        "kotlin",
        "fun main() {\n    listOf(1, 2).forEach { x ->\n        █\n    }\n}\n",
        "println(x)\n    }\n}\n",
        "println(x)",
    ),
    case("whitespace-only", "python", "def f():\n    █\n", "\n\n   \n", ""),
    case(
        "same-words-deeper-indent-is-not-the-suffix",
        "python",
        "def f(x):\n    if x:\n        if x > 1:\n            return True\n█    return False\n",
        "        return False\n",
        "        return False\n",
    ),
]


@pytest.mark.parametrize(FIELDS, params(BEHAVIOUR))
def test_behaviour(
    language: str, document: str, generated: str, expected: str, scope: Scope | None
) -> None:
    assert run(language, document, generated, scope) == expected


@pytest.mark.parametrize(
    ("language", "document", "generated", "reason"),
    [
        pytest.param("python", "def f():\n    █\n", "return 1", "complete", id="complete"),
        pytest.param(
            "python", "def f():\n    █\n", "return 1\n\n\nx = f()\n", "block_end", id="block-end"
        ),
        pytest.param(
            "python",
            "def f():\n    █\n    return x\n",
            "x = 1\n    return x\n",
            "suffix_overlap",
            id="suffix-overlap",
        ),
        pytest.param("go", "func f() {\n\t█\n}\n", "g()\n}\n", "closer_in_suffix", id="closer"),
        pytest.param(
            "python", "def f():\n    █\n", "return 1\n    return 1\n", "dead_code", id="dead-code"
        ),
        pytest.param(
            "python", "def f():\n    █\n", "x = 1\n    return x +\n", "not_whole", id="not-whole"
        ),
        pytest.param("python", "def f():\n    █\n", " \n", "empty", id="empty"),
    ],
)
def test_reasons(language: str, document: str, generated: str, reason: str) -> None:
    prefix, suffix = split(document)
    assert truncate_explained(prefix, generated, suffix, spec(language)).reason == reason


def test_line_scope_reason() -> None:
    result = truncate_explained("x = ", "1\ny = 2\n", "\n", spec("python"), scope="line")
    assert (result.text, result.reason) == ("1", "line_scope")


# HumanEval-like tasks: a middle of whole lines between a prompt and a suffix.
SOLUTIONS = [
    (
        'def add_all(xs):\n    """Sum of xs."""\n',
        "    total = 0\n    for x in xs:\n        total += x\n    return total\n",
    ),
    (
        'def sign(x):\n    """-1, 0 or 1."""\n',
        "    if x > 0:\n        return 1\n    elif x < 0:\n        return -1\n    else:\n"
        "        return 0\n",
    ),
    (
        'def digits():\n    """Digit names."""\n',
        "    names = [\n        'zero',\n        'one',\n    ]\n    return {n: i for i, n in "
        "enumerate(names)}\n",
    ),
    (
        'def sort_by_key(xs):\n    """Sort by absolute value."""\n',
        "    def key(x):\n        return abs(x)\n\n    return sorted(xs, key=key)\n",
    ),
    (
        'def parse(s):\n    """An int, or None."""\n',
        "    try:\n        return int(s)\n    except ValueError:\n        return None\n",
    ),
]
EXTRAS = [
    "\n\ndef helper(x):\n    return x * 2\n",
    '\n\nif __name__ == "__main__":\n    main()\n',
    "\n\n# Example usage:\nprint(f(1))\n",
    "\n\nclass Node:\n    def __init__(self, value):\n        self.value = value\n",
]


def humaneval_like() -> list[object]:
    found: list[object] = []
    for prompt, solution in SOLUTIONS:
        lines = solution.splitlines(keepends=True)
        spans = [(i, j) for i in range(len(lines)) for j in range(i, len(lines))]
        for n, (i, j) in enumerate(spans):
            if not lines[i].strip() or not lines[j].strip():
                continue
            before, middle, after = (
                prompt + "".join(lines[:i]),
                "".join(lines[i : j + 1]),
                "".join(lines[j + 1 :]),
            )
            name = prompt.split("(")[0][4:]
            following = [line for line in after.splitlines(keepends=True) if line.strip()]
            closing = following[0] if following else lines[j]
            runs = {
                "suffix-lines": middle + "".join(after.splitlines(keepends=True)[:3]),
                "extra-function": middle + EXTRAS[n % len(EXTRAS)],
                "duplicate-closing": middle + closing,
            }
            for kind, generated in runs.items():
                if generated != middle:
                    found.append(
                        pytest.param(before, generated, after, middle, id=f"{name}-{i}-{j}-{kind}")
                    )
    return found


@pytest.mark.parametrize(("prefix", "generated", "suffix", "middle"), humaneval_like())
def test_humaneval_like_over_generation_is_cut_back(
    prefix: str, generated: str, suffix: str, middle: str
) -> None:
    assert truncate(prefix, generated, suffix, spec("python")) == middle


def _python_file(functions: int) -> str:
    return "import os\n\n\n" + "".join(
        f"def f{i}(a, b):\n    x = a + b * {i}\n    if x > 10:\n        return [y for y in "
        f"range(x)]\n    for k in range(3):\n        x += k\n    return x\n\n\n"
        for i in range(functions)
    )


def _java_file(methods: int) -> str:
    return (
        "package demo;\n\npublic class Big {\n"
        + "".join(
            f"    public int m{i}(int a, int b) {{\n        int x = a + b * {i};\n"
            f"        if (x > 10) {{\n            return x;\n"
            f"        }}\n        return x;\n    }}\n\n"
            for i in range(methods)
        )
        + "}\n"
    )


BIG_FILES = {
    "python": (
        _python_file(250),
        "    x = a + b",
        [
            "y = a * b\n    return y\n\n\ndef helper(x):\n    return x * 2\n",
            "y = a * b\n    x = a + b * 3\n",
            "if a:\n        return (\n",
        ],
    ),
    "java": (
        _java_file(250),
        "        int x = a + b",
        [
            "int y = a * b;\n        return y;\n    }\n\n"
            "    int helper() {\n        return 0;\n    }\n",
            "int y = a * b;\n        if (y > 3) {\n            y--;\n        }\n",
            "int y = foo(a,\n",
        ],
    ),
}


@pytest.mark.parametrize("language", sorted(BIG_FILES))
def test_window_judges_like_the_whole_document(
    language: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, marker, generations = BIG_FILES[language]
    assert text.count("\n") > 2000
    # The whole-document run parses ~100 kB per cut; on a loaded machine that can pass the
    # real deadline, and an unjudged cut is another answer. The comparison is of judgements.
    monkeypatch.setattr(truncation, "PARSE_DEADLINE_S", 3600.0)
    cursors = [text.find(marker, len(text) * k // 7) for k in range(1, 7)]
    results = []
    for budget in (trunc_window.WINDOW_BUDGET, 10**9):
        monkeypatch.setattr(trunc_window, "WINDOW_BUDGET", budget)
        results.append(
            [
                truncate(text[:c], generated, "\n" + text[c:], spec(language))
                for c in cursors
                for generated in generations
            ]
        )
    assert results[0] == results[1]


@pytest.mark.parametrize("language", sorted(BIG_FILES))
def test_window_stays_small_in_a_big_file(language: str) -> None:
    from codegemma_lsp.syntax.trunc_context import cursor_context, indentation
    from codegemma_lsp.syntax.truncation import _syntax

    text, marker, _ = BIG_FILES[language]
    language_spec = spec(language)
    assert language_spec is not None
    syntax = _syntax(language_spec)
    cursor = text.find(marker, len(text) // 2)
    ctx = cursor_context(text[:cursor], "\n" + text[cursor:], indentation(marker), syntax)
    window = trunc_window.choose_parse_window(ctx, syntax)
    assert len(window.head) + len(window.tail) < trunc_window.WINDOW_BUDGET + 200


def test_only_repeating_the_suffix_says_so() -> None:
    result = truncate_explained(
        "def f():\n    x = 1\n", "    return x\n", "    return x\n", spec("python")
    )
    assert (result.text, result.reason) == ("", "suffix_overlap")


_CODE = st.text(alphabet="ab1 (){}[]:;,.=\"'#/*\n\t", max_size=60)


@settings(max_examples=60, deadline=None)
@given(
    language=st.sampled_from([None, *sorted(default_registry().names)]),
    prefix=_CODE,
    generated=_CODE,
    suffix=_CODE,
    scope=st.sampled_from([None, "line", "block"]),
)
def test_any_text_gives_a_prefix_of_the_generated_text(
    language: str | None, prefix: str, generated: str, suffix: str, scope: Scope | None
) -> None:
    result = truncate(prefix, generated, suffix, spec(language), scope=scope)
    assert generated.startswith(result)


def test_a_parse_past_the_deadline_leaves_the_rules_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    # Some grammars take minutes on odd text; every parse is cut off at a deadline.
    monkeypatch.setattr(truncation, "PARSE_DEADLINE_S", -1.0)
    prefix = "def f():\n    "
    suffix = "\n" + "x = 1\n" * 20
    result = truncate_explained(
        prefix, "return 1\n\n\ndef g():\n    pass\n", suffix, spec("python")
    )
    assert (result.text, result.reason) == ("return 1", "unjudged")


# How the kept text ends depends on where the cursor is.
FINISHING = [
    case(
        "column-0-keeps-the-last-newline",
        "python",
        "def f():\n█    return x\n",
        "    x = 1\n\n\ndef g():\n    pass\n",
        "    x = 1\n",
    ),
    case(
        "blank-rest-of-line-ends-at-the-last-character",
        "python",
        "def f():\n    █\n    return x\n",
        "x = 1\n\n\ndef g():\n    pass\n",
        "x = 1",
    ),
    case(
        "rest-of-line-joins-the-last-line",
        "python",
        "def f(a):\n    return g(█)\n",
        "a,\n             b\n\n\ndef h():\n    pass\n",
        "a,\n             b",
    ),
    case(
        "rest-of-line-keeps-the-indentation-it-needs",
        "python",
        "def f(a):\n    █return a\n",
        "a += 1\n    return a\n\n\ndef h():\n    pass\n",
        "a += 1\n    ",
    ),
    case(
        "rest-of-line-is-not-moved-out-of-its-block",
        "python",
        "def f(a):\n    █return a\n",
        "a += 1\n\n\ndef h():\n    pass\n",
        "",
    ),
    case(
        "repeated-suffix-mid-line",
        "python",
        "def f(a):\n    total = a +█\n    return total\n",
        " 1\n    return total\n",
        " 1",
    ),
]


@pytest.mark.parametrize(FIELDS, params(FINISHING))
def test_finishing(
    language: str, document: str, generated: str, expected: str, scope: Scope | None
) -> None:
    assert run(language, document, generated, scope) == expected
