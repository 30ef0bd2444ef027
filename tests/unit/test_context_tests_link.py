"""Pairing tests with the code they test."""

from __future__ import annotations

import pytest

from codegemma_lsp.context.tests_link import (
    PairingIndex,
    find_tests,
    implementation_of,
    proximity,
    subject_of,
)


@pytest.mark.parametrize(
    ("rel", "subject"),
    [
        pytest.param("tests/test_app.py", "app", id="py-test-prefix"),
        pytest.param("pkg/app_test.py", "app", id="py-test-suffix"),
        pytest.param("tests/conftest.py", None, id="py-conftest"),
        pytest.param("app.py", None, id="py-impl"),
        pytest.param("src/app.test.ts", "app", id="ts-test"),
        pytest.param("src/Button.spec.tsx", "button", id="tsx-spec"),
        pytest.param("src/__tests__/app.js", "app", id="js-tests-folder"),
        pytest.param("util/util_test.go", "util", id="go"),
        pytest.param("src/test/java/a/AppTest.java", "app", id="java-suffix"),
        pytest.param("src/test/java/a/TestApp.java", "app", id="java-prefix"),
        pytest.param("src/test/kotlin/a/AppTests.kt", "app", id="kotlin"),
        pytest.param("src/test/java/a/Test.java", None, id="java-bare-test-class"),
        pytest.param("tests/parser.rs", "parser", id="rust-integration"),
        pytest.param("tests/test_list.c", "list", id="c"),
        pytest.param("Tests/GreeterTests.cs", "greeter", id="csharp"),
        pytest.param("README.md", None, id="unknown-extension"),
    ],
)
def test_tested_name(rel: str, subject: str | None) -> None:
    assert subject_of(rel) == subject


LISTING = [
    "app.py",
    "tests/test_app.py",
    "tests/pkg/test_models.py",
    "pkg/models.py",
    "other/models.py",
    "src/app.ts",
    "src/app.test.ts",
    "main.go",
    "main_test.go",
]


def test_implementation_by_name_prefers_the_one_the_test_uses() -> None:
    index = PairingIndex.build(LISTING)
    texts = {"pkg/models.py": "class User: ...\n", "other/models.py": "class Order: ...\n"}
    test_text = "from pkg.models import User\n\ndef test_user():\n    User()\n"
    found = implementation_of("tests/pkg/test_models.py", test_text, index, texts.get)
    assert found == "pkg/models.py"


def test_implementation_by_name_falls_back_to_nearest_folder() -> None:
    index = PairingIndex.build(LISTING)
    found = implementation_of("tests/pkg/test_models.py", "", index, lambda rel: "")
    assert found == "pkg/models.py"


@pytest.mark.parametrize(
    ("impl", "tests"),
    [
        pytest.param("app.py", ["tests/test_app.py"], id="python"),
        pytest.param("src/app.ts", ["src/app.test.ts"], id="typescript-not-python"),
        pytest.param("main.go", ["main_test.go"], id="go"),
        pytest.param("tests/test_app.py", [], id="a-test-has-no-tests"),
    ],
)
def test_tests_of(impl: str, tests: list[str]) -> None:
    assert find_tests(impl, PairingIndex.build(LISTING)) == tests


def test_proximity_sets_test_and_source_folders_aside() -> None:
    assert proximity("tests/pkg/test_m.py", "src/pkg/m.py") > proximity(
        "tests/pkg/test_m.py", "other/m.py"
    )
