"""Properties of the raster-window family's parts (reference/drafters.py, verifiers.py):
the laws drafts are stored with are the laws they are drawn from, the relaxed rules relax
exactly what their spec says, and bad parameters raise typed errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.oracle.exact import enumerate_outcomes, exact_output_law
from jacobi_oracle.reference.composed import ComposedStrategy
from jacobi_oracle.reference.drafters import (
    ReuseRefresher,
    SpatialDrafter,
    compute_keep_mask,
    compute_reuse_law,
    neighbour_cell,
)
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.reference.schedules import RasterWindow
from jacobi_oracle.reference.state import Draft, JacobiState
from jacobi_oracle.reference.verifiers import (
    ExactRule,
    GreedyRule,
    GroupedRule,
    LatentNeighbourRule,
    compute_probability_ranks,
    compute_unit_distances,
)
from jacobi_oracle.spec import (
    EventKey,
    InvalidParameterError,
    KeyedRandomness,
    Layout,
    ProbabilityError,
    Problem,
    Randomness,
    Sampling,
    ShapeMismatchError,
    UnsupportedStrategyError,
)

from .strategies import distributions

VOCAB = 4
PROBLEM = Problem(HashModel(vocab_size=VOCAB, num_positions=6, row_stride=3), 0, Layout(2, 3), Sampling())
LAW_TOLERANCE = 1e-12


def exact_token_law(run: Callable[[Randomness], int]) -> torch.Tensor:
    """The exact law of the int `run(randomness)` returns, by enumerating its random choices."""
    law = torch.zeros(VOCAB, dtype=torch.float64)
    for prob, token in enumerate_outcomes(run):
        law[token] += prob
    return law


def state_with_draft(cell: int, draft: Draft | None) -> JacobiState:
    state = JacobiState.empty(PROBLEM.layout.num_cells)
    return state.with_drafts({cell: draft})


# --- SJD++ reuse (spec/sjdpp.md) --------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(distributions(VOCAB), distributions(VOCAB), distributions(VOCAB), st.floats(0.0, 3.0))
def test_reuse_law_is_a_distribution(
    draft_probs: torch.Tensor, previous: torch.Tensor, target: torch.Tensor, threshold: float
) -> None:
    law = compute_reuse_law(draft_probs, compute_keep_mask(previous, target, threshold), target)
    assert bool((law >= 0).all()), law
    assert abs(float(law.sum()) - 1.0) < 1e-12, float(law.sum())


@settings(max_examples=40, deadline=None)
@given(distributions(VOCAB, allow_zeros=False), distributions(VOCAB), st.floats(0.0, 3.0), st.data())
def test_reuse_law_is_the_law_of_keep_or_resample(
    previous: torch.Tensor, target: torch.Tensor, threshold: float, data: st.DataObject
) -> None:
    """Draw the old draft from q_old, run the refresher; the token's exact law is q_next."""
    draft_probs = data.draw(distributions(VOCAB, allow_zeros=False))
    refresher = ReuseRefresher(threshold, kept_law="mixture")
    stored: dict[int, torch.Tensor] = {}

    def run(randomness: Randomness) -> int:
        old = randomness.categorical(draft_probs, EventKey("init", 0, 1))
        state = state_with_draft(1, Draft(old, draft_probs, last_target=previous))
        new = refresher.refresh(PROBLEM, state, 1, target, randomness)
        assert new is not None
        stored[new.token] = new.draft_probs
        return new.token

    law = exact_token_law(run)
    expected = compute_reuse_law(draft_probs, compute_keep_mask(previous, target, threshold), target)
    assert torch.allclose(law, expected, atol=LAW_TOLERANCE, rtol=0), (law, expected)
    for draft_q in stored.values():  # every outcome carries the same, true, q
        assert torch.allclose(draft_q, expected, atol=LAW_TOLERANCE, rtol=0)


def test_stale_reuse_q_is_not_the_draft_law() -> None:
    """Negative control: the published rule's stored q differs from the draft's law."""
    draft_probs = previous = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    target = torch.tensor([0.1, 0.5, 0.2, 0.2], dtype=torch.float64)  # tokens 1, 3 rose: kept
    refresher = ReuseRefresher(1.0, kept_law="stale")
    law = torch.zeros(VOCAB, dtype=torch.float64)
    stored: dict[int, torch.Tensor] = {}

    def run(randomness: Randomness) -> int:
        old = randomness.categorical(draft_probs, EventKey("init", 0, 1))
        new = refresher.refresh(PROBLEM, state_with_draft(1, Draft(old, draft_probs, previous)), 1, target, randomness)
        assert new is not None
        stored[new.token] = new.draft_probs
        return new.token

    for prob, token in enumerate_outcomes(run):
        law[token] += prob
    assert not torch.allclose(stored[1], law), (stored[1], law)


def test_reuse_without_previous_target_is_plain_refinement() -> None:
    keep = compute_keep_mask(None, torch.full((VOCAB,), 0.25, dtype=torch.float64), 0.0)
    assert not bool(keep.any())


# --- spatial initialisation (spec/sjd-spatial.md) ---------------------------------------------


@given(st.integers(1, 4), st.integers(1, 4), st.booleans(), st.data())
def test_neighbours_are_cells_left_and_above(height: int, width: int, eor: bool, data: st.DataObject) -> None:
    layout = Layout(height, width, 0 if eor else None)
    cell = data.draw(st.integers(0, layout.num_cells - 1))
    row, col = layout.row_col(cell)
    left, above = neighbour_cell(layout, cell, "left"), neighbour_cell(layout, cell, "above")
    assert left == (None if col == 0 else cell - 1)
    assert above == (None if row == 0 else cell - width)


@settings(max_examples=30, deadline=None)
@given(distributions(VOCAB), st.sampled_from(["left", "above"]))
def test_sampled_spatial_draft_is_drawn_from_its_q(source_probs: torch.Tensor, neighbour: str) -> None:
    drafter = SpatialDrafter(neighbour, "sample")  # type: ignore[arg-type]
    cell = 4  # (1, 1): has both neighbours
    source = neighbour_cell(PROBLEM.layout, cell, neighbour)  # type: ignore[arg-type]
    assert source is not None
    state = JacobiState.empty(6)
    targets: list[torch.Tensor | None] = [None] * 6
    targets[source] = source_probs
    state = JacobiState(state.committed, state.drafts, 0, tuple(targets))
    drafts: list[Draft] = []

    def run(randomness: Randomness) -> int:
        drafts.append(drafter.initial_draft(PROBLEM, state, cell, randomness))
        return drafts[-1].token

    law = exact_token_law(run)
    assert torch.allclose(law, source_probs, atol=LAW_TOLERANCE, rtol=0)
    assert all(torch.equal(d.draft_probs, source_probs) for d in drafts)


@given(st.integers(0, VOCAB - 1), st.sampled_from(["left", "above"]))
def test_repeated_spatial_draft_is_a_point_mass_on_the_neighbour(token: int, neighbour: str) -> None:
    drafter = SpatialDrafter(neighbour, "repeat")  # type: ignore[arg-type]
    source = 3 if neighbour == "left" else 1
    state = JacobiState.empty(6)
    state = JacobiState(tuple(token if c == source else None for c in range(6)), state.drafts, 0)
    draft = drafter.initial_draft(PROBLEM, state, 4, _NoRandomness())
    assert draft.token == token
    assert float(draft.draft_probs[token]) == 1.0 and float(draft.draft_probs.sum()) == 1.0


class _NoRandomness:
    """Fails the test if a deterministic part draws."""

    def bernoulli(self, p: float, key: EventKey) -> bool:
        raise AssertionError(f"unexpected draw {key}")

    def categorical(self, probs: torch.Tensor, key: EventKey) -> int:
        raise AssertionError(f"unexpected draw {key}")

    def gumbel_argmax(self, probs: torch.Tensor, key: EventKey) -> int:
        raise AssertionError(f"unexpected draw {key}")


# --- acceptance rules (spec/jacobi.md, gsd.md, lantern.md) ------------------------------------


@given(st.integers(0, VOCAB - 1), st.integers(0, VOCAB - 1))
def test_greedy_rule_is_the_exact_rule_when_p_is_one_hot(best: int, token: int) -> None:
    target = torch.nn.functional.one_hot(torch.tensor(best), VOCAB).double()
    draft = Draft(token, torch.nn.functional.one_hot(torch.tensor(token), VOCAB).double())
    greedy, exact = GreedyRule(), ExactRule()
    assert greedy.acceptance_probability(PROBLEM, target, draft) == exact.acceptance_probability(PROBLEM, target, draft)
    if token != best:
        assert torch.equal(greedy.rejection_law(PROBLEM, target, draft), exact.rejection_law(PROBLEM, target, draft))


@settings(max_examples=40, deadline=None)
@given(distributions(VOCAB), distributions(VOCAB, allow_zeros=False), st.integers(0, VOCAB - 1), st.integers(0, 3))
def test_grouped_acceptance_is_the_group_mass_ratio_over_close_tokens(
    target: torch.Tensor, draft_probs: torch.Tensor, token: int, rank_window: int
) -> None:
    rule = GroupedRule(rank_window, 0.15, 1.5)
    members = rule.group(PROBLEM, target, token)
    ranks = compute_probability_ranks(target)
    distances = compute_unit_distances(PROBLEM.model.token_embeddings)[token]  # type: ignore[attr-defined]
    assert bool(members[token])
    for y in members.nonzero().flatten().tolist():
        if y != token:
            assert abs(int(ranks[y]) - int(ranks[token])) <= rank_window
            assert abs(float(target[y]) - float(target[token])) <= 0.15
            assert float(distances[y]) < 1.5
    expected = min(1.0, float(target[members].sum()) / float(draft_probs[members].sum()))
    assert rule.acceptance_probability(PROBLEM, target, Draft(token, draft_probs)) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(distributions(VOCAB), distributions(VOCAB, allow_zeros=False), st.integers(0, VOCAB - 1))
def test_singleton_groups_and_zero_budget_are_the_exact_rule(
    target: torch.Tensor, draft_probs: torch.Tensor, token: int
) -> None:
    draft = Draft(token, draft_probs)
    exact = ExactRule().acceptance_probability(PROBLEM, target, draft)
    assert GroupedRule(0, 0.15, 1.5).acceptance_probability(PROBLEM, target, draft) == pytest.approx(exact, abs=1e-12)
    assert LatentNeighbourRule(2, 0.0).acceptance_probability(PROBLEM, target, draft) == pytest.approx(exact, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(distributions(VOCAB), st.integers(0, VOCAB - 1), st.integers(1, VOCAB), st.floats(0.0, 1.0))
def test_lantern_moves_at_most_delta(target: torch.Tensor, token: int, k: int, delta: float) -> None:
    relaxed = LatentNeighbourRule(k, delta).relaxed_target(PROBLEM, target, token)
    assert float(target[token]) - 1e-15 <= relaxed <= float(target[token]) + delta + 1e-12


# --- typed errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sjdpp", {"threshold": -1.0}),
        ("sjdpp-exact", {"threshold": float("inf")}),
        ("gsd", {"rank_window": -1}),
        ("gsd", {"prob_window": -0.1}),
        ("gsd", {"embedding_radius": float("nan")}),
        ("lantern", {"neighbours": 0}),
        ("lantern", {"delta": 1.5}),
        ("jacobi", {"window": 0}),
        ("sjd-sample-left", {"window": -2}),
        ("sjd-repeat-above", {"colour": 1}),
    ],
)
def test_invalid_parameters_raise_typed_errors(name: str, params: dict[str, float]) -> None:
    with pytest.raises(InvalidParameterError, match=name if "colour" in params else str(next(iter(params.values())))):
        build_preset(name, **params)


def test_invalid_spatial_drafter_names_the_value() -> None:
    with pytest.raises(InvalidParameterError, match="below"):
        SpatialDrafter("below", "repeat")  # type: ignore[arg-type]


class _NoEmbeddings:
    """A model without token_embeddings (delegates everything else)."""

    def __init__(self, model: HashModel) -> None:
        self.model = model
        self.vocab_size, self.num_classes, self.num_positions = model.vocab_size, model.num_classes, model.num_positions

    def logits(self, *args: torch.Tensor | int | None) -> torch.Tensor:
        return self.model.logits(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", [GroupedRule(), LatentNeighbourRule()])
def test_relaxed_rules_need_token_embeddings(rule: GroupedRule | LatentNeighbourRule) -> None:
    bare = Problem(_NoEmbeddings(PROBLEM.model), 0, PROBLEM.layout, PROBLEM.sampling)  # type: ignore[arg-type]
    target = torch.full((VOCAB,), 0.25, dtype=torch.float64)
    with pytest.raises(UnsupportedStrategyError, match="token_embeddings"):
        rule.acceptance_probability(bare, target, Draft(0, target))


def test_relaxed_rules_check_the_embedding_shape() -> None:
    model = HashModel(vocab_size=VOCAB, num_positions=6, row_stride=3)
    model.token_embeddings = model.token_embeddings[:2]
    bad = Problem(model, 0, PROBLEM.layout, PROBLEM.sampling)
    target = torch.full((VOCAB,), 0.25, dtype=torch.float64)
    with pytest.raises(ShapeMismatchError, match=r"\(2, 4\)"):
        GroupedRule().acceptance_probability(bad, target, Draft(0, target))


def test_exact_engine_passes_embeddings_through() -> None:
    """The exact engine memoises the model; relaxed verifiers must still find the table."""
    verdict_problem = Problem(HashModel(vocab_size=2, num_positions=2, row_stride=2), 0, Layout(1, 2), Sampling())
    law = exact_output_law(build_preset("lantern", window=2), verdict_problem).law
    assert abs(sum(law.values()) - 1.0) < 1e-12


@pytest.mark.parametrize("rule", [GroupedRule(), LatentNeighbourRule()])
def test_relaxed_rules_refuse_a_draft_its_q_cannot_have_drawn(rule: GroupedRule | LatentNeighbourRule) -> None:
    target = torch.full((VOCAB,), 0.25, dtype=torch.float64)
    draft_probs = torch.tensor([0.0, 0.5, 0.5, 0.0], dtype=torch.float64)
    with pytest.raises(ProbabilityError, match="draft token 0"):
        rule.acceptance_probability(PROBLEM, target, Draft(0, draft_probs))


def test_a_drafter_that_reads_targets_gets_them_without_being_asked() -> None:
    """remember_targets is derived from the parts: SJD with the spatial sample drafter swapped
    in, remember_targets left at False, decodes exactly like the registered preset."""
    from dataclasses import replace

    from jacobi_oracle.models.registry import build_model
    from jacobi_oracle.reference.drafters import SpatialDrafter
    from jacobi_oracle.reference.presets import sjd
    from jacobi_oracle.spec.model import Problem
    from jacobi_oracle.spec.randomness import KeyedRandomness
    from jacobi_oracle.spec.sampling import Sampling

    swapped = replace(sjd(3), initial_drafter=SpatialDrafter("above", "sample"))
    assert swapped.remember_targets
    registered = build_preset("sjd-sample-above", window=3)
    case = build_model("transformer-16")
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    for sample in range(5):
        noise = KeyedRandomness(7, sample)
        assert swapped.decode_problem(problem, noise).trace == registered.decode_problem(problem, noise).trace


def test_a_strategy_without_a_drafter_refuses_a_window_that_needs_a_draft() -> None:
    """ZipAR has no drafter and no refresher; a schedule that asks for a draft is refused, not
    given a silent random one."""
    zipar = build_preset("zipar")
    assert isinstance(zipar, ComposedStrategy) and zipar.initial_drafter is None and zipar.refresher is None
    broken = replace(zipar, schedule=RasterWindow(3), name="zipar-with-windows")
    with pytest.raises(UnsupportedStrategyError, match="no initial drafter"):
        broken.decode_problem(PROBLEM, KeyedRandomness(0))
