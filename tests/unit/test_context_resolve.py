"""Import extraction and resolution to workspace files, one table per language."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegemma_lsp.context.imports import ImportRef, extract_imports
from codegemma_lsp.context.resolve import expand_use_tree, go_declarations
from codegemma_lsp.syntax.languages import default_registry
from tests.unit.context_workspaces import make_workspace, neighbours, resolved

Case = tuple[dict[str, str], str, list[str]]


def _check(tmp_path: Path, files: dict[str, str], importer: str, expected: list[str]) -> None:
    make_workspace(tmp_path, files)
    assert resolved(tmp_path, importer) == expected


def test_python_extraction_groups_names_with_their_module() -> None:
    spec = default_registry().by_name("python")
    assert spec is not None
    source = b"import os, a.b as c\nfrom . import sib, other as o\nfrom ..pkg.mod import (x, y)\n"
    assert extract_imports(spec, source) == (
        ImportRef("os"),
        ImportRef("a.b"),
        ImportRef(".", ("sib", "other")),
        ImportRef("..pkg.mod", ("x", "y")),
    )


def test_javascript_extraction_keeps_the_names_taken() -> None:
    spec = default_registry().by_name("typescript")
    assert spec is not None
    source = (
        b'import D, { a as b, c } from "./x";\nimport * as ns from "./y";\n'
        b'export { q } from "./z";\nimport type { T } from "./t";\nconst m = require("./m");\n'
    )
    assert extract_imports(spec, source) == (
        ImportRef("./x", ("D", "a", "c")),
        ImportRef("./y"),
        ImportRef("./z", ("q",)),
        ImportRef("./t", ("T",)),
        ImportRef("./m"),
    )


PYTHON: list[Case] = [
    ({"app.py": "import util\n", "util.py": "X = 1\n"}, "app.py", ["util.py"]),
    (
        {"app.py": "from pkg import mod\n", "pkg/__init__.py": "", "pkg/mod.py": "X = 1\n"},
        "app.py",
        ["pkg/mod.py"],
    ),
    ({"app.py": "import pkg\n", "pkg/__init__.py": "X = 1\n"}, "app.py", ["pkg/__init__.py"]),
    (
        {"app.py": "import pkg.sub.mod\n", "pkg/__init__.py": "", "pkg/sub/mod.py": "X = 1\n"},
        "app.py",
        ["pkg/sub/mod.py"],
    ),
    (
        {"pkg/a.py": "from . import sibling\n", "pkg/__init__.py": "", "pkg/sibling.py": "X=1\n"},
        "pkg/a.py",
        ["pkg/sibling.py"],
    ),
    (
        {"pkg/sub/a.py": "from ..core import run\n", "pkg/core.py": "def run(): ...\n"},
        "pkg/sub/a.py",
        ["pkg/core.py"],
    ),
    (
        {"pkg/a.py": "from .models import User\n", "pkg/models.py": "class User: ...\n"},
        "pkg/a.py",
        ["pkg/models.py"],
    ),
    (
        {"pkg/a.py": "from .m import *\n", "pkg/m.py": "X = 1\n"},
        "pkg/a.py",
        ["pkg/m.py"],
    ),
    (
        {"tests/test_core.py": "import mylib.core\n", "src/mylib/core.py": "X = 1\n"},
        "tests/test_core.py",
        ["src/mylib/core.py"],
    ),
    (
        {"tests/test_app.py": "from app import run\n", "app.py": "def run(): ...\n"},
        "tests/test_app.py",
        ["app.py"],
    ),
    ({"app.py": "import os\nimport numpy as np\n"}, "app.py", []),
    ({"app.py": "import stubbed\n", "stubbed.pyi": "X: int\n"}, "app.py", ["stubbed.pyi"]),
]


@pytest.mark.parametrize(
    ("files", "importer", "expected"),
    [
        pytest.param(*case, id=name)
        for case, name in zip(
            PYTHON,
            [
                "sibling-module",
                "submodule-from-package",
                "package-init",
                "dotted-module",
                "relative-sibling",
                "relative-parent",
                "relative-names-not-modules",
                "relative-star",
                "src-layout",
                "test-imports-root-module",
                "stdlib-and-third-party",
                "stub-file",
            ],
            strict=True,
        )
    ],
)
def test_python(tmp_path: Path, files: dict[str, str], importer: str, expected: list[str]) -> None:
    _check(tmp_path, files, importer, expected)


@pytest.mark.parametrize(
    ("files", "importer", "expected"),
    [
        pytest.param(
            {"app.js": 'import { a } from "./util";\n', "util.js": "export const a = 1;\n"},
            "app.js",
            ["util.js"],
            id="js-extensionless",
        ),
        pytest.param(
            {"app.ts": 'import { a } from "./util.js";\n', "util.ts": "export const a = 1;\n"},
            "app.ts",
            ["util.ts"],
            id="ts-esm-js-extension-names-ts-source",
        ),
        pytest.param(
            {"src/app.ts": 'import { a } from "../lib";\n', "lib/index.ts": "export const a=1;\n"},
            "src/app.ts",
            ["lib/index.ts"],
            id="ts-folder-index",
        ),
        pytest.param(
            {"App.tsx": 'import Button from "./Button";\n', "Button.tsx": "export default 1;\n"},
            "App.tsx",
            ["Button.tsx"],
            id="tsx-component",
        ),
        pytest.param(
            {"main.js": 'const cfg = require("./cfg");\n', "cfg.js": "module.exports = {};\n"},
            "main.js",
            ["cfg.js"],
            id="require",
        ),
        pytest.param(
            {"main.js": 'const m = import("./lazy");\n', "lazy.mjs": "export default 1;\n"},
            "main.js",
            ["lazy.mjs"],
            id="dynamic-import-mjs",
        ),
        pytest.param(
            {"index.ts": 'export * from "./re";\n', "re.ts": "export const r = 1;\n"},
            "index.ts",
            ["re.ts"],
            id="re-export",
        ),
        pytest.param(
            {"a.ts": 'import React from "react";\nimport x from "@/alias";\n'},
            "a.ts",
            [],
            id="bare-and-alias-specifiers",
        ),
        pytest.param(
            {"a.ts": 'import { T } from "./types";\n', "types.d.ts": "export type T = 1;\n"},
            "a.ts",
            ["types.d.ts"],
            id="declaration-file",
        ),
    ],
)
def test_javascript_typescript(
    tmp_path: Path, files: dict[str, str], importer: str, expected: list[str]
) -> None:
    _check(tmp_path, files, importer, expected)


GO_MOD = "module example.com/demo\n\ngo 1.22\n"


@pytest.mark.parametrize(
    ("files", "importer", "expected"),
    [
        pytest.param(
            {
                "go.mod": GO_MOD,
                "main.go": 'package main\n\nimport (\n\t"fmt"\n\t"example.com/demo/util"\n)\n',
                "util/util.go": "package util\n",
                "util/more.go": "package util\n",
                "util/util_test.go": "package util\n",
            },
            "main.go",
            ["util/more.go", "util/util.go"],
            id="package-in-module-without-tests",
        ),
        pytest.param(
            {
                "go.mod": GO_MOD,
                "cmd/tool/main.go": 'package main\n\nimport "example.com/demo/internal/db"\n',
                "internal/db/db.go": "package db\n",
            },
            "cmd/tool/main.go",
            ["internal/db/db.go"],
            id="go-mod-found-above",
        ),
        pytest.param(
            {
                "go.mod": GO_MOD,
                "main.go": 'package main\n\nimport "github.com/other/util"\n',
                "util/util.go": "package util\n",
            },
            "main.go",
            [],
            id="other-module",
        ),
        pytest.param(
            {"main.go": 'package main\n\nimport "example.com/demo/util"\n', "util/u.go": ""},
            "main.go",
            [],
            id="no-go-mod",
        ),
    ],
)
def test_go(tmp_path: Path, files: dict[str, str], importer: str, expected: list[str]) -> None:
    _check(tmp_path, files, importer, expected)


def test_go_neighbours_are_same_package_files_whose_names_are_used(tmp_path: Path) -> None:
    make_workspace(
        tmp_path,
        {
            "go.mod": GO_MOD,
            "main.go": "package main\n\nfunc main() {\n\tfmt.Println(helper(limit))\n}\n",
            "helper.go": "package main\n\nfunc helper(n int) int { return n }\n",
            "consts.go": "package main\n\nconst (\n\tlimit = 3\n)\n",
            "unused.go": "package main\n\nfunc other() {}\n",
            "main_test.go": "package main\n\nfunc helperForTests() {}\n",
        },
    )
    assert neighbours(tmp_path, "main.go") == ["consts.go", "helper.go"]


def test_go_declarations() -> None:
    text = "package p\n\nfunc A() {}\nfunc (s *S) M() {}\ntype S struct{}\nvar (\n\tx = 1\n)\n"
    assert go_declarations(text) == {"A", "M", "S", "x"}


JAVA_MAIN = "src/main/java/com/ex"


@pytest.mark.parametrize(
    ("files", "importer", "expected"),
    [
        pytest.param(
            {
                f"{JAVA_MAIN}/app/App.java": "package com.ex.app;\n\nimport com.ex.util.Strings;\n",
                f"{JAVA_MAIN}/util/Strings.java": "package com.ex.util;\n",
            },
            f"{JAVA_MAIN}/app/App.java",
            [f"{JAVA_MAIN}/util/Strings.java"],
            id="java-class",
        ),
        pytest.param(
            {
                f"{JAVA_MAIN}/app/App.java": (
                    "package com.ex.app;\n\nimport static com.ex.util.Strings.join;\n"
                ),
                f"{JAVA_MAIN}/util/Strings.java": "package com.ex.util;\n",
            },
            f"{JAVA_MAIN}/app/App.java",
            [f"{JAVA_MAIN}/util/Strings.java"],
            id="java-static-import",
        ),
        pytest.param(
            {
                f"{JAVA_MAIN}/app/App.java": "package com.ex.app;\n\nimport com.ex.util.*;\n",
                f"{JAVA_MAIN}/util/A.java": "package com.ex.util;\n",
                f"{JAVA_MAIN}/util/B.java": "package com.ex.util;\n",
            },
            f"{JAVA_MAIN}/app/App.java",
            [f"{JAVA_MAIN}/util/A.java", f"{JAVA_MAIN}/util/B.java"],
            id="java-package-import",
        ),
        pytest.param(
            {
                "src/test/java/com/ex/app/AppTest.java": (
                    "package com.ex.app;\n\nimport com.ex.util.Strings;\n"
                ),
                f"{JAVA_MAIN}/util/Strings.java": "package com.ex.util;\n",
            },
            "src/test/java/com/ex/app/AppTest.java",
            [f"{JAVA_MAIN}/util/Strings.java"],
            id="java-test-root-to-main-root",
        ),
        pytest.param(
            {
                "src/main/kotlin/com/ex/App.kt": "package com.ex\n\nimport com.ex.util.Strings\n",
                "src/main/kotlin/com/ex/util/Strings.kt": "package com.ex.util\n",
            },
            "src/main/kotlin/com/ex/App.kt",
            ["src/main/kotlin/com/ex/util/Strings.kt"],
            id="kotlin-class",
        ),
        pytest.param(
            {f"{JAVA_MAIN}/App.java": "package com.ex;\n\nimport java.util.List;\n"},
            f"{JAVA_MAIN}/App.java",
            [],
            id="jdk-class",
        ),
    ],
)
def test_java_kotlin(
    tmp_path: Path, files: dict[str, str], importer: str, expected: list[str]
) -> None:
    _check(tmp_path, files, importer, expected)


def test_java_neighbours_are_same_package_classes_named_in_the_file(tmp_path: Path) -> None:
    make_workspace(
        tmp_path,
        {
            f"{JAVA_MAIN}/App.java": "package com.ex;\n\nclass App { Config c; }\n",
            f"{JAVA_MAIN}/Config.java": "package com.ex;\n\nclass Config {}\n",
            f"{JAVA_MAIN}/Other.java": "package com.ex;\n\nclass Other {}\n",
        },
    )
    assert neighbours(tmp_path, f"{JAVA_MAIN}/App.java") == [f"{JAVA_MAIN}/Config.java"]


CARGO = '[package]\nname = "my-crate"\nversion = "0.1.0"\n'


@pytest.mark.parametrize(
    ("files", "importer", "expected"),
    [
        pytest.param(
            {"Cargo.toml": CARGO, "src/main.rs": "mod util;\n", "src/util.rs": ""},
            "src/main.rs",
            ["src/util.rs"],
            id="mod-file",
        ),
        pytest.param(
            {"Cargo.toml": CARGO, "src/main.rs": "mod net;\n", "src/net/mod.rs": ""},
            "src/main.rs",
            ["src/net/mod.rs"],
            id="mod-folder",
        ),
        pytest.param(
            {"Cargo.toml": CARGO, "src/net/mod.rs": "mod tcp;\n", "src/net/tcp.rs": ""},
            "src/net/mod.rs",
            ["src/net/tcp.rs"],
            id="mod-inside-mod-rs",
        ),
        pytest.param(
            {"Cargo.toml": CARGO, "src/a.rs": "mod b;\n", "src/a/b.rs": ""},
            "src/a.rs",
            ["src/a/b.rs"],
            id="mod-inside-named-file",
        ),
        pytest.param(
            {
                "Cargo.toml": CARGO,
                "src/main.rs": "use crate::util::helper;\n",
                "src/util.rs": "",
            },
            "src/main.rs",
            ["src/util.rs"],
            id="use-crate",
        ),
        pytest.param(
            {
                "Cargo.toml": CARGO,
                "src/net/tcp.rs": "use super::addr::Addr;\n",
                "src/net/addr.rs": "",
                "src/net/mod.rs": "",
            },
            "src/net/tcp.rs",
            ["src/net/addr.rs"],
            id="use-super",
        ),
        pytest.param(
            {
                "Cargo.toml": CARGO,
                "src/lib.rs": "use crate::{a::X, b::{self, Y as Z}};\n",
                "src/a.rs": "",
                "src/b.rs": "",
            },
            "src/lib.rs",
            ["src/a.rs", "src/b.rs"],
            id="use-tree",
        ),
        pytest.param(
            {"Cargo.toml": CARGO, "tests/it.rs": "use my_crate::util;\n", "src/util.rs": ""},
            "tests/it.rs",
            ["src/util.rs"],
            id="integration-test-uses-crate-name",
        ),
        pytest.param(
            {"Cargo.toml": CARGO, "src/main.rs": "use std::io::{self, Read};\nuse serde::X;\n"},
            "src/main.rs",
            [],
            id="std-and-external-crates",
        ),
    ],
)
def test_rust(tmp_path: Path, files: dict[str, str], importer: str, expected: list[str]) -> None:
    _check(tmp_path, files, importer, expected)


@pytest.mark.parametrize(
    ("tree", "paths"),
    [
        pytest.param("std::io", ["std::io"], id="plain"),
        pytest.param("a::{b, c::{d as e, self}}", ["a::b", "a::c::d", "a::c"], id="nested"),
        pytest.param("super::x::*", ["super::x"], id="glob"),
    ],
)
def test_expand_use_tree(tree: str, paths: list[str]) -> None:
    assert expand_use_tree(tree) == paths


@pytest.mark.parametrize(
    ("files", "importer", "expected"),
    [
        pytest.param(
            {"src/main.c": '#include "util.h"\n', "src/util.h": ""},
            "src/main.c",
            ["src/util.h"],
            id="c-next-to-importer",
        ),
        pytest.param(
            {"src/main.c": '#include "lib/x.h"\n', "lib/x.h": ""},
            "src/main.c",
            ["lib/x.h"],
            id="c-from-folder-above",
        ),
        pytest.param(
            {"src/main.c": "#include <stdio.h>\n#include <proj/api.h>\n", "include/proj/api.h": ""},
            "src/main.c",
            ["include/proj/api.h"],
            id="c-angle-include-in-include-dir",
        ),
        pytest.param(
            {"src/w.cpp": '#include "widget.hpp"\n#include <vector>\n', "include/widget.hpp": ""},
            "src/w.cpp",
            ["include/widget.hpp"],
            id="cpp-include-dir",
        ),
    ],
)
def test_c_cpp(tmp_path: Path, files: dict[str, str], importer: str, expected: list[str]) -> None:
    _check(tmp_path, files, importer, expected)


CS_FILES = {
    "App/Program.cs": (
        "using System;\nusing MyApp.Services;\n\nnamespace MyApp;\n\n"
        "class Program { Greeter g; Config c; }\n"
    ),
    "Services/Greeter.cs": "namespace MyApp.Services\n{\n    public class Greeter {}\n}\n",
    "Services/Mailer.cs": "namespace MyApp.Services\n{\n    public class Mailer {}\n}\n",
    "Config.cs": "namespace MyApp;\n\npublic record Config(int X);\n",
    "Other.cs": "namespace Elsewhere;\n\npublic class Config {}\n",
}


def test_csharp_using_gives_the_namespace_files_whose_types_are_used(tmp_path: Path) -> None:
    make_workspace(tmp_path, CS_FILES)
    assert resolved(tmp_path, "App/Program.cs") == ["Services/Greeter.cs"]


def test_csharp_neighbours_are_types_of_the_own_namespace(tmp_path: Path) -> None:
    make_workspace(tmp_path, CS_FILES)
    assert neighbours(tmp_path, "App/Program.cs") == ["Config.cs"]
