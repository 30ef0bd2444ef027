"""The speed probe: a short timed prompt and a few generated tokens, on a real model.

The clock is injected, so the figures are the test's, never the machine's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codegemma_lsp.engine.fake import FakeBackend
from codegemma_lsp.engine.llama_backend import LlamaBackend
from codegemma_lsp.engine.speed import MachineSpeed, measure_backend, probe_llama


@pytest.fixture(scope="module")
def backend(tiny_model_path: Path) -> Iterator[LlamaBackend]:
    loaded = LlamaBackend(model_path=tiny_model_path, n_ctx=512, n_threads=1)
    loaded.load()
    yield loaded
    loaded.close()


def test_the_probe_times_a_prompt_and_generation(backend: LlamaBackend) -> None:
    # The prompt takes 2 s; the steps 0.5 s each, but for one slowed by a neighbour.
    steps = [0.5, 0.5, 0.5, 3.0, 0.5, 0.5, 0.5, 0.5]
    times = [10.0, 12.0]
    for step in steps:
        times.append(times[-1] + step)
    ticks = iter(times)
    speed = probe_llama(
        backend.llama, prompt_tokens=32, generated_tokens=8, clock=lambda: next(ticks)
    )
    assert (speed.prompt_tps, speed.generate_tps) == (16.0, 2.0)
    assert backend.llama.n_tokens == 0  # the cache is left empty for the first request


def test_a_loaded_model_is_measured(backend: LlamaBackend) -> None:
    speed = measure_backend(backend)
    assert speed is not None and speed.prompt_tps > 0 and speed.generate_tps > 0


def test_a_fake_states_its_speed_or_has_none() -> None:
    fake = FakeBackend()
    assert measure_backend(fake) is None
    fake.declared_speed = MachineSpeed(50.0, 5.0)  # type: ignore[attr-defined]
    assert measure_backend(fake) == MachineSpeed(50.0, 5.0)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {"prompt_tokens_per_s": 27.0, "generated_tokens_per_s": 10.0},
            MachineSpeed(27.0, 10.0),
            id="both",
        ),
        pytest.param({"prompt_tokens_per_s": 27.0}, None, id="half"),
        pytest.param(None, None, id="none"),
    ],
)
def test_speed_round_trips_through_json(data: object, expected: MachineSpeed | None) -> None:
    assert MachineSpeed.from_json(data) == expected
    if expected is not None:
        assert MachineSpeed.from_json(expected.to_json()) == expected
