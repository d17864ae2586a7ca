"""The exact engine's fast merge key (`JacobiState.exact_key`, `merge_key`) is the generic
`freeze` key, so it merges exactly the states the generic key merges and the laws do not move."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given

from jacobi_oracle.models.registry import build_model
from jacobi_oracle.oracle.exact import exact_output_law, merge_key
from jacobi_oracle.reference.composed import ComposedStrategy
from jacobi_oracle.reference.pjd_exact import PJDExact, PJDExactState
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.reference.state import Draft, JacobiState, Window
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import freeze

from .strategies import MAX_CELLS, jacobi_states


def copy_state(state: JacobiState) -> JacobiState:
    """An equal state sharing no tensor with `state`."""

    def copy(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach().clone().requires_grad_(t.requires_grad)

    new_drafts = tuple(
        None if d is None else Draft(d.token, d.draft_probs.clone(), copy(d.last_target)) for d in state.drafts
    )
    targets = None if state.targets is None else tuple(copy(t) for t in state.targets)
    return JacobiState(tuple(state.committed), new_drafts, state.iteration, targets)


def flip_bit(probs: torch.Tensor, index: int, bit: int) -> torch.Tensor:
    """`probs` with one bit of one entry's float representation flipped."""
    flipped = probs.detach().clone().contiguous()
    as_int = flipped.view(torch.int64 if flipped.dtype == torch.float64 else torch.int32)
    as_int[index] ^= 1 << (bit % (8 * flipped.element_size() - 1))
    return flipped


def merging(values: Sequence[object], key: Callable[[Any], Hashable]) -> list[int]:
    """For each value, the index of the first value it is merged with."""
    first: dict[Hashable, int] = {}
    return [first.setdefault(key(v), i) for i, v in enumerate(values)]


def assert_same_merging(values: Sequence[object], key: Callable[[Any], Hashable]) -> None:
    got, generic = merging(values, key), merging(values, freeze)
    assert got == generic, f"merging by {key.__name__}={got}, but the generic key merges {generic}"


def test_exact_key_encodes_every_field() -> None:
    # a field added to a state class must be added to its exact_key (else states would merge wrongly)
    assert [f.name for f in fields(JacobiState)] == ["committed", "drafts", "iteration", "targets"]
    assert [f.name for f in fields(Draft)] == ["token", "draft_probs", "last_target"]


@given(jacobi_states(), st.lists(st.tuples(st.integers(0, MAX_CELLS), st.booleans()), max_size=3))
def test_fast_key_equals_the_generic_key(state: JacobiState, windows: list[tuple[int, bool]]) -> None:
    plan = (state, tuple(Window(tuple(range(n + 1)), bonus) for n, bonus in windows))
    pjd_state = PJDExactState(state, tuple(c is not None for c in state.committed))
    assert state.exact_key() == freeze(state)
    assert merge_key(state) == freeze(state)
    assert merge_key(plan) == freeze(plan)
    assert merge_key(pjd_state) == freeze(pjd_state)


@given(jacobi_states(), st.data())
def test_fast_key_merges_equal_states_and_separates_a_one_bit_change_of_q(
    state: JacobiState, data: st.DataObject
) -> None:
    values: list[object] = [state, copy_state(state)]
    drafted = [c for c, d in enumerate(state.drafts) if d is not None]
    if drafted:
        cell = data.draw(st.sampled_from(drafted))
        draft = state.drafts[cell]
        assert draft is not None
        index = data.draw(st.integers(0, draft.draft_probs.numel() - 1))
        changed = flip_bit(draft.draft_probs, index, data.draw(st.integers(0, 63)))
        values.append(state.with_drafts({cell: replace(draft, draft_probs=changed)}))
    keys = [merge_key(v) for v in values]
    assert keys[0] == keys[1], "equal states got different keys"
    assert all(k != keys[0] for k in keys[2:]), "a state whose q differs in one bit got the same key"
    assert_same_merging(values, merge_key)


def rounded_key(state: JacobiState) -> Hashable:
    """A broken key: q rounded to 6 decimals (merges states whose q differ in a low bit)."""
    return tuple(
        None if d is None else (d.token, tuple(round(x, 6) for x in d.draft_probs.tolist())) for d in state.drafts
    )


def test_negative_control_a_rounding_key_merges_differently() -> None:
    probs = torch.tensor([0.25, 0.75], dtype=torch.float64)
    state = JacobiState((None, None), (Draft(1, probs), None), 0)
    near = state.with_drafts({0: Draft(1, flip_bit(probs, 0, 0))})
    with pytest.raises(AssertionError, match="generic key merges"):
        assert_same_merging([state, near], rounded_key)


@dataclass
class GenericKeyedComposed(ComposedStrategy):
    """The same decoder, keyed by the generic `freeze` (the engine uses an overriding key)."""

    def state_key(self, state: JacobiState) -> Hashable:
        return freeze(state)

    def plan_key(self, plan: Any) -> Hashable:
        return freeze(plan)


@dataclass
class GenericKeyedPJDExact(PJDExact):
    def state_key(self, state: PJDExactState) -> Hashable:
        return freeze(state)

    def plan_key(self, plan: Any) -> Hashable:
        return freeze(plan)


@pytest.mark.parametrize("preset", ["sjd", "sjdpp-exact", "pjd", "pjd-exact"])
def test_fast_key_leaves_the_exact_law_unchanged_to_the_last_bit(preset: str) -> None:
    case = build_model("hash-tiny")
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    fast = build_preset(preset)
    generic_class = GenericKeyedPJDExact if isinstance(fast, PJDExact) else GenericKeyedComposed
    assert isinstance(fast, (PJDExact, ComposedStrategy))
    generic = generic_class(**{f.name: getattr(fast, f.name) for f in fields(fast)})
    with_fast, with_generic = exact_output_law(fast, problem), exact_output_law(generic, problem)
    assert with_fast.law == with_generic.law  # float equality: the same merges, summed in the same order
    assert with_fast.pass_distribution == with_generic.pass_distribution
    assert with_fast.states_explored == with_generic.states_explored


@dataclass
class OneRunComposed(ComposedStrategy):
    """The same decoder with `conclude` overridden (to the very same composition, counted), so
    the engine enumerates it as one run per path instead of a verify phase then a refresh phase."""

    verifications: int = 0

    def conclude(self, problem: Problem, plan: Any, output: Any, randomness: Any) -> Any:
        self.verifications += 1
        return self.refresh(problem, self.verify(problem, plan, output, randomness), randomness)


@dataclass
class CountedComposed(ComposedStrategy):
    verifications: int = 0

    def verify(self, problem: Problem, plan: Any, output: Any, randomness: Any) -> Any:
        self.verifications += 1
        return super().verify(problem, plan, output, randomness)


def as_class(strategy: ComposedStrategy, cls: type[ComposedStrategy]) -> Any:
    return cls(**{f.name: getattr(strategy, f.name) for f in fields(strategy) if f.name != "verifications"})


@pytest.mark.parametrize("name", ["sjd", "sjd-sample-above", "mc-sjd-official", "pjd", "accept-reads-draft-key"])
def test_verify_refresh_split_leaves_the_exact_law_unchanged_to_the_last_bit(name: str) -> None:
    # accept-reads-draft-key: a refresh that reads a key the verification read (memory across the phases)
    from jacobi_oracle.mutants.catalogue import MUTANTS, T_HIGH, mutant_problem

    strategy = MUTANTS[name].build() if name in MUTANTS else build_preset(name)
    assert isinstance(strategy, ComposedStrategy)
    problem = mutant_problem(MUTANTS[name].sampling if name in MUTANTS else T_HIGH)  # V = 3, 2x2
    split, whole = as_class(strategy, CountedComposed), as_class(strategy, OneRunComposed)
    with_split, with_whole = exact_output_law(split, problem), exact_output_law(whole, problem)
    assert with_split.law == with_whole.law  # float equality: the same products, in the same order
    assert with_split.pass_distribution == with_whole.pass_distribution
    assert with_split.reused_keys == with_whole.reused_keys
    # the two enumerations differ: the split one verifies once per verification path only
    assert split.verifications < whole.verifications, (split.verifications, whole.verifications)


def test_a_kept_tensor_key_follows_an_in_place_change() -> None:
    # tensor_key keeps a tensor's key on the tensor (a p is the q of many drafts): a change in
    # place must give the new bytes' key, as the generic key does, never the kept one
    q = torch.tensor([0.25, 0.75], dtype=torch.float64)
    draft = Draft(1, q)
    before = merge_key(draft)
    assert before == freeze(draft) and merge_key(draft) == before  # the kept key, unchanged
    q[0], q[1] = 0.5, 0.5
    after = merge_key(draft)
    assert after == freeze(draft) and after != before
