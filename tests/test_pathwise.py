"""The pathwise engine (jacobi_oracle/oracle/pathwise.py) and the fixed-noise decoders it judges.

Pathwise checks are deterministic: a mismatch is a certain counterexample, and a pass means
equal tokens on every noise draw tried. The statistical check of the Gumbel-max law runs at
ALPHA = 1e-6 with a negative control (a biased argmax) that it must reject.
"""

from __future__ import annotations

import json
from collections import Counter

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from scipy import stats

from jacobi_oracle.accelerated import build_accelerated
from jacobi_oracle.accelerated.noise import EventNoise, keyed_gumbel_argmax, sample_streams
from jacobi_oracle.cli import main
from jacobi_oracle.models.llamagen import LlamaGen, llamagen_config
from jacobi_oracle.models.trained import load_trained
from jacobi_oracle.mutants.catalogue import gumbel_jacobi_wrong_cell, mutant_problem
from jacobi_oracle.oracle.pathwise import check_pathwise
from jacobi_oracle.reference.presets import build_preset, gumbel_jacobi
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import EventKey, KeyedRandomness, Randomness, gumbel_max
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.testing import assert_pathwise_equal

ALPHA = 1e-6


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 5), st.integers(1, 3), st.integers(2, 3), st.integers(0, 1000), st.booleans())
def test_gumbel_jacobi_is_gumbel_ar_token_for_token(
    window: int, height: int, width: int, seed: int, above: bool
) -> None:
    problem = mutant_problem(height=height, width=width)
    verdict = check_pathwise(gumbel_jacobi(window, above), problem, samples=10, seed=seed)
    assert verdict.equal, verdict.counterexample


def test_negative_control_one_wrong_cell_is_caught_with_its_seed_and_cell() -> None:
    verdict = check_pathwise(gumbel_jacobi_wrong_cell(), mutant_problem(), samples=50)
    assert not verdict.equal and verdict.counterexample is not None
    example = verdict.counterexample
    assert example.decoder_tokens[example.cell] != example.ar_tokens[example.cell]
    assert example.decoder_tokens[: example.cell] == example.ar_tokens[: example.cell]
    with pytest.raises(AssertionError, match=r"KeyedRandomness\(0, \d+\): cell \d+"):
        assert_pathwise_equal(gumbel_jacobi_wrong_cell(), mutant_problem(), samples=50)


def _tiny_llamagen() -> LlamaGen:
    torch.manual_seed(0)
    model = LlamaGen(llamagen_config("tiny", vocab_size=16, grid_size=4)).double()
    torch.nn.init.normal_(model.output.weight, std=0.3)
    return model.eval().requires_grad_(False)


def test_gumbel_jacobi_equals_gumbel_ar_on_a_llamagen() -> None:
    problem = Problem(_tiny_llamagen(), 1, Layout(4, 4), Sampling(temperature=1.5, cfg_scale=2.0))
    assert_pathwise_equal(gumbel_jacobi(4), problem, samples=5)


def test_gumbel_jacobi_equals_gumbel_ar_on_the_trained_model() -> None:
    trained = load_trained()
    problem = Problem(trained.for_grid(8), 0, Layout(8, 8), Sampling(cfg_scale=2.0))
    verdict = assert_pathwise_equal(gumbel_jacobi(16), problem, samples=3)
    assert verdict.step_compression > 1.0


@pytest.mark.parametrize("window", [16, 64])
def test_the_accelerated_spatial_twin_equals_gumbel_ar_on_the_trained_model(window: int) -> None:
    trained = load_trained()
    problem = Problem(trained.for_grid(8), 3, Layout(8, 8), Sampling(cfg_scale=2.0))
    assert_pathwise_equal(build_accelerated("gumbel-jacobi-above", window=window), problem, samples=3)


def test_check_cli_pathwise_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--strategy", "gumbel-jacobi", "--engine", "pathwise", "--samples", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["equal"] and out["engine"] == "pathwise" and out["samples"] == 20
    assert main(["check", "--strategy", "sjd", "--engine", "pathwise", "--samples", "20", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["counterexample"] is not None
    assert main(["check", "--strategy", "gumbel-jacobi", "--engine", "pathwise", "--samples", "0"]) == 2
    assert main(["check", "--strategy", "no-such", "--engine", "pathwise"]) == 2
    assert main(["check", "--strategy", "gumbel-jacobi", "--model", "trained"]) == 2  # exact engine: too large
    capsys.readouterr()


def test_check_cli_pathwise_on_the_trained_model_with_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "--strategy", "gumbel-jacobi", "--engine", "pathwise", "--model", "trained", "--grid", "4"]
    assert main([*args, "--seeds", "2", "--window", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["equal"] and out["samples"] == 2 and out["model"] == "trained" and out["ar_forward_passes"] == 16


# --- the noise vector itself --------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 64) - 1),
    st.sampled_from(["gumbel", "fresh", "sample", "draft"]),
    st.integers(0, 1 << 20),
    st.integers(1, 40),
)
def test_device_side_gumbel_is_bit_identical_over_many_keys(
    seed: int, sample: int, purpose: str, iteration: int, vocab: int
) -> None:
    """Any seed / sample in uint64, any purpose, iteration and 64 cells: equal float64 bits, equal argmax."""
    noise = KeyedRandomness(seed, sample)
    streams = sample_streams([noise], torch.device("cpu"))
    cells = torch.arange(64)[None] * 7919
    device = EventNoise(streams, (purpose,)).gumbels(iteration, cells, vocab)[purpose][0]
    probs = torch.softmax(torch.randn(1, 64, vocab, generator=torch.Generator().manual_seed(seed % 1000)).double(), -1)
    fast = keyed_gumbel_argmax(streams, purpose, iteration, cells, probs)[0]
    for w in range(64):
        key = EventKey(purpose, iteration, int(cells[0, w]))
        spec = noise.gumbel(key, vocab)
        assert spec.numpy().tobytes() == device[w].numpy().tobytes()
        assert int(fast[w]) == noise.gumbel_argmax(probs[0, w], key)


def test_device_side_gumbel_argmax_is_bit_identical_to_the_spec() -> None:
    noises = [KeyedRandomness(seed, sample) for seed, sample in ((0, 0), (7, 3), (2024, 11))]
    as_randomness: list[Randomness] = list(noises)
    streams = sample_streams(as_randomness, torch.device("cpu"))
    cells = torch.arange(12).repeat(len(noises), 1)
    probs = torch.softmax(torch.randn(len(noises), 12, 9, generator=torch.Generator().manual_seed(0)).double(), -1)
    for iteration in (0, 5):
        fast = keyed_gumbel_argmax(streams, "gumbel", iteration, cells, probs)
        for b, noise in enumerate(noises):
            for w in range(12):
                key = EventKey("gumbel", iteration, w)
                assert torch.equal(noise.gumbel(key, 9), _device_vector(streams[b : b + 1], iteration, w))
                assert int(fast[b, w]) == noise.gumbel_argmax(probs[b, w], key)


def _device_vector(stream: torch.Tensor, iteration: int, cell: int) -> torch.Tensor:
    return EventNoise(stream, ("gumbel",)).gumbels(iteration, torch.tensor([[cell]]), 9)["gumbel"][0, 0]


def _chi_square_p(counts: Counter[int], probs: torch.Tensor, samples: int) -> float:
    observed = [counts.get(t, 0) for t in range(probs.numel())]
    return float(stats.chisquare(observed, (probs * samples).tolist()).pvalue)


def test_gumbel_argmax_samples_the_categorical_law_and_a_biased_argmax_is_rejected() -> None:
    """Chi-square goodness of fit of 20000 keyed gumbel_argmax draws against categorical(probs):
    the test fails falsely (a correct sampler rejected) with probability ALPHA = 1e-6. Negative
    control: argmax(probs + G) (probabilities where log probabilities belong) must be rejected
    at the same ALPHA; the draws are deterministic (keyed noise), so neither outcome is flaky."""
    probs = torch.tensor([0.05, 0.15, 0.3, 0.5], dtype=torch.float64)
    key, samples = EventKey("gumbel", 0, 3), 20000
    vectors = [KeyedRandomness(5, s).gumbel(key, 4) for s in range(samples)]
    right = Counter(int(gumbel_max(probs, g)) for g in vectors)
    biased = Counter(int((probs + g).argmax()) for g in vectors)  # probs, not log probs: a real bug
    assert _chi_square_p(right, probs, samples) > ALPHA
    assert _chi_square_p(biased, probs, samples) < ALPHA


def test_ar_gumbel_is_lossless_by_the_exact_engine() -> None:
    from jacobi_oracle.oracle.exact import check_exact

    assert check_exact(build_preset("ar-gumbel"), mutant_problem()).lossless
