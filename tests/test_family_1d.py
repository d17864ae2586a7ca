"""Exact verdicts for the raster-window family (spec/jacobi.md, sjd-spatial.md, sjdpp.md,
gsd.md, lantern.md): every lossless preset has the AR law to 1e-12 on small toy cases, every
lossy one moves it on at least one case. Sizes keep each check to a few seconds."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from jacobi_oracle.models.toy import HashModel, MarkovGrid
from jacobi_oracle.oracle.exact import LOSSLESS_TOLERANCE, check_exact
from jacobi_oracle.reference.presets import PRESETS, build_preset
from jacobi_oracle.spec import Layout, Model, Problem, Sampling

LOSSY_TV_FLOOR = 1e-6  # a lossy preset must move the law by more than rounding could


class Case(NamedTuple):
    model: Model
    layout: Layout

    def problem(self, greedy: bool = False) -> Problem:
        return Problem(self.model, 0, self.layout, Sampling(greedy=greedy))


def hash_case(vocab: int, height: int, width: int, end_of_row: int | None = None) -> Case:
    stride = width + (end_of_row is not None)
    model = HashModel(vocab_size=vocab, num_positions=height * stride, row_stride=stride)
    return Case(model, Layout(height, width, end_of_row))


# 2x3, V=2, window 3: after the first pass new drafts enter row 1, so left / above neighbours
# with remembered targets are read, and reuse happens after rejections.
SMALL = hash_case(2, 2, 3)
LOSSLESS: dict[str, Case] = {
    "jacobi": SMALL,  # with greedy sampling (its greedy_only claim)
    "sjd-repeat-left": SMALL,
    "sjd-repeat-above": SMALL,
    "sjd-sample-left": SMALL,
    "sjd-sample-above": SMALL,
    "sjdpp-exact": SMALL,
}
LOSSY: dict[str, tuple[Case, dict[str, Any]]] = {
    "sjdpp": (hash_case(2, 1, 3), {}),
    "gsd": (hash_case(3, 1, 3), {}),  # toy defaults need V >= 3 for a non-singleton group
    "lantern": (hash_case(2, 1, 2), {"window": 2}),
}


@pytest.mark.parametrize("name", sorted(LOSSLESS))
def test_lossless_presets_have_exactly_the_ar_law(name: str) -> None:
    preset = PRESETS[name]
    assert preset.lossless
    case = LOSSLESS[name]
    verdict = check_exact(build_preset(name, window=3), case.problem(greedy=preset.greedy_only))
    print(f"{name}: TV = {verdict.total_variation:.3g}, mean passes {verdict.mean_forward_passes:.3f}")
    assert verdict.total_variation <= LOSSLESS_TOLERANCE, verdict


@pytest.mark.parametrize("name", sorted(LOSSY))
def test_lossy_presets_move_the_law(name: str) -> None:
    assert not PRESETS[name].lossless
    case, params = LOSSY[name]
    verdict = check_exact(build_preset(name, **params), case.problem())
    print(f"{name}: TV = {verdict.total_variation:.3g}")
    assert verdict.total_variation > LOSSY_TV_FLOOR, verdict


def test_jacobi_is_lossy_under_non_greedy_sampling() -> None:
    verdict = check_exact(build_preset("jacobi", window=2), hash_case(2, 1, 2).problem(greedy=False))
    print(f"jacobi, T=1 sampling: TV = {verdict.total_variation:.3g}")
    assert verdict.total_variation > LOSSY_TV_FLOOR


@pytest.mark.parametrize("name", ["sjd-repeat-above", "sjd-sample-above"])
def test_above_initialisations_index_cells_not_positions(name: str) -> None:
    """With end-of-row tokens a cell's position is row * (W + 1) + col: the above neighbour is
    cell - W. Indexing by position would read the wrong cell (or out of range)."""
    case = hash_case(2, 2, 2, end_of_row=1)
    verdict = check_exact(build_preset(name, window=3), case.problem())
    assert verdict.total_variation <= LOSSLESS_TOLERANCE, verdict


def test_sample_above_on_a_markov_grid_is_lossless_and_uses_the_above_cell() -> None:
    """On a strongly local grid, drafts sampled from the above cell's p differ from random
    drafts: the mean pass count changes (the drafter is really used), the law does not."""
    case = Case(MarkovGrid(vocab_size=2, height=2, width=3, sharpness=3.0), Layout(2, 3))
    spatial = check_exact(build_preset("sjd-sample-above", window=3), case.problem())
    plain = check_exact(build_preset("sjd", window=3), case.problem())
    assert spatial.total_variation <= LOSSLESS_TOLERANCE, spatial
    assert abs(spatial.mean_forward_passes - plain.mean_forward_passes) > 1e-9
