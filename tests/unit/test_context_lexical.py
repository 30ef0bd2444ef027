"""Names in code, comments and strings left out."""

from __future__ import annotations

import pytest

from codegemma_lsp.context.lexical import code_identifiers, identifiers
from codegemma_lsp.syntax.languages import default_registry


def test_identifiers_are_words() -> None:
    assert identifiers("a.b_c(1, _d) # e") == {"a", "b_c", "_d", "e"}


@pytest.mark.parametrize(
    ("language", "source", "expected"),
    [
        pytest.param("python", '# prose here\nx = f("words")\n', {"x", "f"}, id="python"),
        pytest.param(
            "typescript", "// prose\nconst y = g(`tpl`, 'str');\n", {"const", "y", "g"}, id="ts"
        ),
    ],
)
def test_code_identifiers_skip_comments_and_strings(
    language: str, source: str, expected: set[str]
) -> None:
    spec = default_registry().by_name(language)
    assert spec is not None
    assert code_identifiers(spec, source.encode()) == expected
