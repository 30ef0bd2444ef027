from __future__ import annotations

from typing import Any

import pytest

from codegemma_lsp.config import Settings, SettingsSources, client_layer, env_layer, parse_settings


@pytest.mark.parametrize(
    ("layers", "check", "problem"),
    [
        pytest.param([], lambda s: s == Settings(), None, id="defaults"),
        pytest.param(
            [{"model": {"path": "/m.gguf", "nCtx": 2048}}],
            lambda s: s.model.path == "/m.gguf" and s.model.n_ctx == 2048,
            None,
            id="camel-case",
        ),
        pytest.param(
            [{"fim": {"prefix_tokens": "512"}}],
            lambda s: s.fim.prefix_tokens == 512,
            None,
            id="snake-case-and-string-number",
        ),
        pytest.param(
            [{"completion": {"maxNewTokens": 0}}],
            lambda s: s.completion.max_new_tokens == 64,
            "completion.maxNewTokens",
            id="out-of-range-falls-back",
        ),
        pytest.param(
            [{"fim": {"mode": "zigzag"}}],
            lambda s: s.fim.mode == "psm-line",
            "must be one of psm, psm-line, spm, spm2",
            id="bad-literal",
        ),
        pytest.param(
            [{"log": {"code": "yes"}}],
            lambda s: s.log.code is True,
            None,
            id="bool-from-string",
        ),
        pytest.param(
            [{"model": {"nCtx": True}}],
            lambda s: s.model.n_ctx == 4096,
            "whole number",
            id="bool-is-not-int",
        ),
        pytest.param(
            [{"model": {"nCtx": 1024}}, {"model": {"nCtx": 8192}}],
            lambda s: s.model.n_ctx == 8192,
            None,
            id="later-layer-wins",
        ),
        pytest.param(
            [{"model": {"nCtx": 1024}}, {"model": {"nCtx": "x"}}],
            lambda s: s.model.n_ctx == 1024,
            "using 1024",
            id="bad-later-value-keeps-earlier-good-one",
        ),
        pytest.param(
            [{"nonsense": {}, "model": {"unknownKey": 1}}],
            lambda s: s == Settings(),
            None,
            id="unknown-sections-and-keys-are-ignored-quietly",
        ),
        pytest.param(
            [{"model": {"path": ""}}], lambda s: s.model.path is None, None, id="empty-path-is-none"
        ),
    ],
)
def test_parse_settings(layers: list[dict[str, Any]], check: Any, problem: str | None) -> None:
    settings, problems = parse_settings(layers)
    assert check(settings), settings
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_env_layer_reads_prefixed_variables() -> None:
    layer = env_layer(
        {
            "CODEGEMMA_LSP_MODEL_PATH": "/x.gguf",
            "CODEGEMMA_LSP_FIM_SUFFIX_TOKENS": "99",
            "OTHER": "1",
        }
    )
    assert layer == {"model": {"path": "/x.gguf"}, "fim": {"suffix_tokens": "99"}}


@pytest.mark.parametrize(
    ("value", "layer", "problems"),
    [
        pytest.param(None, {}, 0, id="none"),
        pytest.param([], {}, 0, id="empty-lua-table"),
        pytest.param(
            {"codegemma": {"model": {"nCtx": 1}}}, {"model": {"nCtx": 1}}, 0, id="wrapped"
        ),
        pytest.param({"model": {"nCtx": 1}}, {"model": {"nCtx": 1}}, 0, id="bare"),
        pytest.param([1, 2], {}, 1, id="not-an-object"),
        pytest.param({"codegemma": 3}, {}, 1, id="section-not-an-object"),
    ],
)
def test_client_layer(value: Any, layer: dict[str, Any], problems: int) -> None:
    got, messages = client_layer(value)
    assert got == layer
    assert len(messages) == problems


def test_precedence_order() -> None:
    sources = SettingsSources(
        environment={"model": {"nCtx": 1000, "threads": 1, "batch": 16, "path": "/env"}},
        initialization={"model": {"nCtx": 2000, "threads": 2, "batch": 32}},
        workspace={"model": {"nCtx": 3000, "threads": 3}},
        command_line={"model": {"nCtx": 4000}},
    )
    settings, _ = sources.resolve()
    assert (
        settings.model.path,
        settings.model.batch,
        settings.model.threads,
        settings.model.n_ctx,
    ) == (
        "/env",
        32,
        3,
        4000,
    )
