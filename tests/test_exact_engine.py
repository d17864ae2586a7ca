"""The exact engine: enumeration is complete, AR law is right, any Strategy object can be judged."""

from __future__ import annotations

import itertools
import math

import torch

from jacobi_oracle.models.toy import HashModel, MarkovGrid
from jacobi_oracle.oracle.exact import BranchingRandomness, check_exact, enumerate_outcomes, exact_ar_law
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Model, Problem, forward_pass
from jacobi_oracle.spec.randomness import EventKey, Randomness
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Decoded, IterationTrace


def test_enumeration_covers_every_outcome_with_its_probability() -> None:
    def run(r: BranchingRandomness) -> tuple[int, bool]:
        token = r.categorical(torch.tensor([0.5, 0.0, 0.25, 0.25], dtype=torch.float64), EventKey("a", 0, 0))
        return token, r.bernoulli(0.1 * (token + 1), EventKey("b", 0, 0))

    law = dict(((value, prob) for prob, value in enumerate_outcomes(run)))
    expected = {(0, True): 0.05, (0, False): 0.45, (2, True): 0.075, (2, False): 0.175}
    expected |= {(3, True): 0.1, (3, False): 0.15}
    assert law.keys() == expected.keys()
    assert all(math.isclose(law[k], v, abs_tol=1e-15) for k, v in expected.items())


def test_exact_ar_law_is_the_product_of_the_markov_tables() -> None:
    model = MarkovGrid(vocab_size=2, height=2, width=2, sharpness=1.5, seed=3)
    problem = Problem(model, 1, Layout(2, 2), Sampling())
    law = exact_ar_law(problem)
    absent = model.vocab_size
    for x in itertools.product(range(2), repeat=4):
        prob = 1.0
        for t, token in enumerate(x):
            r, c = divmod(t, 2)
            left = x[t - 1] if c else absent
            above = x[t - 2] if r else absent
            row = 1.5 * (model.table[left, above] + model.class_bias[1])
            prob *= float(torch.softmax(row, -1)[token])
        assert math.isclose(law[x], prob, rel_tol=1e-12)


class PlainAR:
    """A decoder that is not built from our parts: one query per cell, its own loop."""

    name = "plain-ar"

    def __init__(self, broken: bool = False) -> None:
        self.broken = broken

    def decode(
        self, model: Model, condition: int | None, layout: Layout, sampling: Sampling, randomness: Randomness
    ) -> Decoded:
        problem = Problem(model, condition, layout, sampling)
        tokens: list[int] = []
        for t in range(layout.num_cells):
            # the broken variant forgets the first token when predicting the last one
            seen = [i for i in range(t) if not (self.broken and i == 0 and t == layout.num_cells - 1)]
            visible = torch.zeros(1, t, dtype=torch.bool)
            visible[0, seen] = True
            keys = torch.tensor(tokens, dtype=torch.long).reshape(t)
            probs = forward_pass(problem, keys, torch.arange(t), torch.tensor([t]), visible)
            tokens.append(randomness.categorical(probs[0], EventKey("sample", t, t)))
        return Decoded(tuple(tokens), layout.num_cells, tuple(IterationTrace((), (), (t,)) for t in range(len(tokens))))


def test_a_plain_strategy_object_is_judged_by_whole_run_enumeration() -> None:
    problem = Problem(MarkovGrid(vocab_size=2, height=2, width=2, seed=1), 0, Layout(2, 2), Sampling())
    verdict = check_exact(PlainAR(), problem)
    assert verdict.lossless, verdict
    assert math.isclose(verdict.mean_forward_passes, 4.0)


def test_negative_control_a_plain_strategy_with_a_leaky_mask_is_lossy() -> None:
    problem = Problem(HashModel(vocab_size=2, num_positions=4, row_stride=2), 0, Layout(2, 2), Sampling())
    verdict = check_exact(PlainAR(broken=True), problem)
    assert verdict.total_variation > 1e-6
    assert not verdict.lossless


def test_a_probability_buffer_changed_in_place_is_read_anew() -> None:
    """The engine keeps each tensor's checked values for the other paths of an enumeration; a
    decoder that reuses one buffer for several laws must still branch on the law it holds now."""
    buffer = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)

    def run(r: BranchingRandomness) -> tuple[int, int]:
        buffer.copy_(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
        first = r.categorical(buffer, EventKey("a", 0, 0))
        buffer.copy_(torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64))  # the same tensor, a new law
        return first, r.categorical(buffer, EventKey("b", 0, 0))

    outcomes = {value: prob for prob, value in enumerate_outcomes(run)}
    assert outcomes == {(0, 1): 0.5, (0, 2): 0.5}
