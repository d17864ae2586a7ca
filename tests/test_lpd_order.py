"""Properties of LPD's generation order and pass visibility (spec/lpd.md sections 1 and 3)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobi_oracle.models.transformer import TinyTransformer
from jacobi_oracle.reference.lpd import lpd
from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.lpd_order import (
    PUBLISHED_256_IN_20,
    chebyshev,
    compute_group_sizes,
    compute_locality_order,
)
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.position_query import QUERY_TOKEN, compute_slot_attention
from jacobi_oracle.spec.randomness import KeyedRandomness
from jacobi_oracle.spec.sampling import Sampling

from .strategies import OrderCase, order_cases


def order_of(case: OrderCase) -> tuple[tuple[int, ...], ...]:
    return compute_locality_order(case.height, case.width, case.group_sizes, case.repulsion, case.seed)


@given(order_cases())
@settings(max_examples=60, deadline=None)
def test_every_cell_is_generated_exactly_once(case: OrderCase) -> None:
    groups = order_of(case)
    cells = [c for g in groups for c in g]
    assert sorted(cells) == list(range(case.height * case.width)), f"order {groups} is not a permutation"
    assert tuple(len(g) for g in groups) == case.group_sizes


@given(st.integers(1, 2048), st.data())
@settings(max_examples=80, deadline=None)
def test_group_sizes_sum_to_the_grid(num_cells: int, data: st.DataObject) -> None:
    steps = data.draw(st.integers(1, min(num_cells, 200)))
    sizes = compute_group_sizes(num_cells, steps)
    assert len(sizes) == steps and all(g >= 1 for g in sizes), f"sizes={sizes}, but should be {steps} groups >= 1"
    assert sum(sizes) == num_cells, f"sum(sizes)={sum(sizes)}, but should be {num_cells}"


def test_published_schedules_are_reproduced() -> None:
    assert compute_group_sizes(256) == PUBLISHED_256_IN_20
    sizes_1024 = compute_group_sizes(1024)
    assert len(sizes_1024) == 48 and sum(sizes_1024) == 1024
    assert list(sizes_1024) == sorted(sizes_1024), "the cosine schedule's groups never shrink"


@given(order_cases())
@settings(max_examples=60, deadline=None)
def test_no_two_cells_of_a_group_are_within_the_repulsion_distance_where_the_schedule_allows(
    case: OrderCase,
) -> None:
    assert_repulsion_respected(case, order_of(case))


def assert_repulsion_respected(case: OrderCase, groups: tuple[tuple[int, ...], ...]) -> None:
    """Replay the picks: a pick within the repulsion distance of an earlier pick of its group is
    only allowed when every free cell at that moment was within that distance too."""
    rc = [divmod(c, case.width) for c in range(case.height * case.width)]
    selected: set[int] = set()
    for group in groups:
        for k, cell in enumerate(group):
            earlier = group[:k]
            if earlier and min(chebyshev(rc[cell], rc[e]) for e in earlier) <= case.repulsion:
                free = [c for c in range(len(rc)) if c not in selected and c not in earlier]
                spread = max(min(chebyshev(rc[c], rc[e]) for e in earlier) for c in free)
                assert spread <= case.repulsion, (
                    f"cell {cell} of group {group} is within {case.repulsion} of {earlier}, but a free cell "
                    f"{spread} away existed; repro: compute_locality_order{tuple(case)}"
                )
        selected.update(group)


def test_repulsion_check_rejects_a_crowded_group() -> None:
    """Negative control: two raster neighbours in one group on an open grid must be rejected."""
    case = OrderCase(4, 4, (2, 14), 1, 0)
    crowded = ((0, 1), tuple(range(2, 16)))
    with pytest.raises(AssertionError, match="within 1"):
        assert_repulsion_respected(case, crowded)


@given(order_cases())
@settings(max_examples=30, deadline=None)
def test_same_seed_gives_the_same_order(case: OrderCase) -> None:
    assert order_of(case) == order_of(case)


def test_order_depends_on_the_seed() -> None:
    orders = {compute_locality_order(16, 16, PUBLISHED_256_IN_20, 1, seed) for seed in range(4)}
    assert len(orders) > 1, "four seeds gave one order: the seed is ignored"


def test_invalid_group_sizes_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="sum to 5"):
        compute_locality_order(2, 3, (2, 3), 1, 0)
    with pytest.raises(InvalidParameterError, match="steps must be"):
        compute_group_sizes(6, 7)
    with pytest.raises(InvalidParameterError, match="repulsion"):
        compute_locality_order(2, 3, (3, 3), -1, 0)


# --- visibility ------------------------------------------------------------------------------------


@given(st.integers(0, 12), st.integers(1, 12))
@settings(max_examples=40, deadline=None)
def test_slot_attention_obeys_the_visibility_rule(num_context: int, num_queries: int) -> None:
    attend = compute_slot_attention(num_context, num_queries)
    context = slice(1, 1 + num_context)
    queries = slice(1 + num_context, None)
    assert bool(attend[:, 0].all()), "every slot reads the condition"
    assert not bool(attend[: 1 + num_context, queries].any()), "nothing attends to queries"
    assert bool(attend[queries, 1:].all()), "queries read the context and each other"
    assert bool(attend[context, context].all()), "the context reads the context"


class RecordingModel(TinyTransformer):
    """Records every call (keys as (position, token) and queries) the decoder makes."""

    def __init__(self, num_positions: int) -> None:
        super().__init__(3, num_positions, num_classes=0, dim=8, layers=1, heads=2, queries="lpd")
        self.calls: list[tuple[set[tuple[int, int]], list[int], bool]] = []

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        keys = set(zip(key_positions.tolist(), key_tokens.tolist(), strict=True))
        self.calls.append((keys, query_positions.tolist(), bool(visible.all())))
        return super().logits(condition, key_tokens, key_positions, query_positions, visible)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31), st.data())
@settings(max_examples=12, deadline=None)
def test_each_pass_shows_the_group_exactly_the_earlier_groups_and_its_own_queries(
    height: int, width: int, seed: int, data: st.DataObject
) -> None:
    n = height * width
    model = RecordingModel(n)
    decoder = lpd(steps=data.draw(st.integers(1, n)), order_seed=seed)
    decoded = decoder.decode(model, None, Layout(height, width), Sampling(), KeyedRandomness(seed))
    groups = decoder.compute_groups(Layout(height, width))
    assert decoded.forward_passes == len(groups) == len(model.calls)
    for i, (keys, queries, all_visible) in enumerate(model.calls):
        earlier = {(c, decoded.tokens[c]) for g in groups[:i] for c in g}
        own_queries = {(c, QUERY_TOKEN) for c in groups[i]}
        assert keys == earlier | own_queries, (
            f"pass {i}: keys {sorted(keys)}, but should be {sorted(earlier | own_queries)}"
        )
        assert sorted(queries) == sorted(groups[i]) and all_visible


def test_mutual_queries_need_a_position_query_model() -> None:
    from jacobi_oracle.models.toy import HashModel
    from jacobi_oracle.spec.errors import UnsupportedStrategyError

    problem = Problem(HashModel(vocab_size=2), 0, Layout(2, 3), Sampling())
    with pytest.raises(UnsupportedStrategyError, match="position-query model"):
        lpd(queries="mutual").decode_problem(problem, KeyedRandomness(0))
