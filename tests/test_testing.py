"""jacobi_oracle.testing: the adapter's contract and assert_lossless's engine choice and errors.
The exact engine is deterministic here (no false-fail probability); the negative controls for
both engines live in examples/external_decoder/test_external_decoder.py."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch

from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.oracle.exact import ExactVerdict
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec.errors import InvalidParameterError, ShapeMismatchError, UnsupportedStrategyError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.randomness import KeyedRandomness
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.testing import CausalTarget, assert_lossless, wrap_decoder, wrap_stepped_decoder
from jacobi_oracle.testing.assertions import choose_engine, resolve_problem

pytest_plugins = ["pytester"]


def ar_by_hand(target: CausalTarget, rng: Any) -> list[int]:
    tokens: list[int] = []
    for _ in range(target.num_cells):
        tokens.append(rng.categorical(target(tokens)[-1]))
    return tokens


def test_the_causal_target_answers_the_ar_conditionals_in_one_pass() -> None:
    problem = resolve_problem("hash-tiny", None, None, None)
    target = CausalTarget(problem)
    probs = target([1, 0])
    assert probs.shape == (3, 2) and target.forward_passes == 1
    assert torch.allclose(probs.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert target([1, 0, 1, 1]).shape == (4, 2)  # a full grid: no row past the last cell


def test_a_hand_written_ar_decoder_is_lossless_and_counts_its_passes() -> None:
    report = assert_lossless(ar_by_hand, model="hash-tiny")
    assert isinstance(report.verdict, ExactVerdict)
    assert report.engine == "exact" and report.verdict.mean_forward_passes == pytest.approx(4.0, abs=1e-9)


def ar_step(target: CausalTarget, rng: Any, state: tuple[int, ...]) -> tuple[int, ...]:
    return (*state, rng.categorical(target(list(state))[-1]))


def ar_output(target: CausalTarget, state: tuple[int, ...]) -> tuple[int, ...] | None:
    return state if len(state) == target.num_cells else None


def test_a_stepped_ar_decoder_is_lossless_counts_its_passes_and_merges_states() -> None:
    decoder = wrap_stepped_decoder(lambda target: (), ar_step, ar_output, name="stepped-ar")
    report = assert_lossless(decoder, model="hash", engine="exact")
    assert isinstance(report.verdict, ExactVerdict)
    assert report.verdict.mean_forward_passes == pytest.approx(6.0, abs=1e-9)
    # merged: one state per prefix (1 + 3 + ... + 3^6 = 1093), not one per path
    assert report.verdict.states_explored == sum(3**k for k in range(7))


def test_a_stepped_decoder_ignoring_the_model_is_rejected() -> None:
    def uniform_step(target: CausalTarget, rng: Any, state: tuple[int, ...]) -> tuple[int, ...]:
        target(list(state))
        return (*state, rng.categorical(torch.full((3,), 1 / 3, dtype=torch.float64)))

    with pytest.raises(AssertionError, match="NOT lossless"):
        assert_lossless(wrap_stepped_decoder(lambda target: (), uniform_step, ar_output), model="hash", engine="exact")


@pytest.mark.parametrize(
    ("step", "output", "match"),
    [
        (lambda target, rng, state: (*state, 0), ar_output, "exactly one forward pass.*made 0"),
        (lambda target, rng, state: [target([]), target([])] and (*state, 0), ar_output, "made 2"),
        (lambda target, rng, state: [target(list(state))] and list(state), ar_output, "unhashable state"),
    ],
)
def test_a_bad_stepped_decoder_raises_a_typed_error(step: Any, output: Any, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        assert_lossless(wrap_stepped_decoder(lambda target: (), step, output), model="hash-tiny", engine="exact")


def test_wrap_stepped_decoder_refuses_non_callables() -> None:
    with pytest.raises(InvalidParameterError, match="step must be a callable"):
        wrap_stepped_decoder(lambda target: (), 3, ar_output)  # type: ignore[arg-type]


def test_a_decoder_ignoring_the_model_is_rejected_with_a_repro() -> None:
    with pytest.raises(AssertionError, match=r"(?s)NOT lossless.*total variation.*repro:.*assert_lossless\("):
        assert_lossless(lambda target, rng: [rng.categorical(torch.tensor([0.5, 0.5])) for _ in range(4)])


@pytest.mark.parametrize(
    ("decoder", "error", "match"),
    [
        (lambda target, rng: [0, 1, 0], ShapeMismatchError, "3 tokens, expected exactly 4"),
        (lambda target, rng: [0, 1, 0, 7], ShapeMismatchError, "token 7 is outside"),
        (lambda target, rng: target([0] * 5), ShapeMismatchError, "at most 4"),
    ],
)
def test_bad_decoder_output_raises_a_typed_error_naming_the_value(decoder: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        problem = resolve_problem("hash-tiny", None, None, None)
        wrap_decoder(decoder).decode(
            problem.model, problem.condition, problem.layout, problem.sampling, KeyedRandomness(0)
        )


def test_bad_arguments_raise_typed_errors() -> None:
    with pytest.raises(InvalidParameterError, match="'nope'"):
        assert_lossless(ar_by_hand, model="nope")
    with pytest.raises(InvalidParameterError, match="'fast'"):
        assert_lossless(ar_by_hand, engine="fast")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="layout"):
        assert_lossless(ar_by_hand, model=HashModel(vocab_size=2, num_positions=4))
    with pytest.raises(InvalidParameterError, match="'numpy'"):
        wrap_decoder(ar_by_hand, randomness="numpy")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="callable"):
        wrap_decoder(42)  # type: ignore[arg-type]


def test_auto_enumerates_small_models_and_samples_large_ones() -> None:
    small = resolve_problem("hash-tiny", None, None, None)
    large = resolve_problem(HashModel(vocab_size=3, num_positions=8, row_stride=4), Layout(2, 4), 0, Sampling())
    assert choose_engine(build_preset("sjd"), small, "auto") == "exact"
    assert choose_engine(build_preset("sjd"), large, "auto") == "stat"
    torch_decoder = wrap_decoder(ar_by_hand, randomness="torch")
    assert choose_engine(torch_decoder, small, "auto") == "stat"
    with pytest.raises(UnsupportedStrategyError, match="exact engine"):
        choose_engine(torch_decoder, small, "exact")


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, jacobi_oracle.testing.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


EXTERNAL_TEST = """
import pytest

def decode(target, rng):
    tokens = []
    for _ in range(target.num_cells):
        tokens.append(rng.categorical(target(tokens)[-1]))
    return tokens

@pytest.mark.lossless(model="hash-tiny", engine="exact")
def test_engine(lossless_oracle):
    report = lossless_oracle(decode)
    print("ENGINE", report.engine, report.verdict.budget if report.engine == "stat" else "")
"""


def test_the_plugin_needs_no_config_and_the_command_line_overrides_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_external=EXTERNAL_TEST)
    marked = pytester.runpytest("-s", "--strict-markers")
    marked.assert_outcomes(passed=1)
    marked.stdout.fnmatch_lines(["*ENGINE exact*"])
    overridden = pytester.runpytest("-s", "--lossless-engine=stat", "--lossless-budget=40")
    overridden.assert_outcomes(passed=1)
    overridden.stdout.fnmatch_lines(["*ENGINE stat 40*"])
