"""Properties of the masks (spec/masks.md) and the 2D schedules (spec/pjd.md, spec/zipar.md,
spec/pjd_exact.md), over random grids, committed sets and KeyedRandomness seeds."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.reference.composed import ComposedStrategy
from jacobi_oracle.reference.keys import Key, committed_keys
from jacobi_oracle.reference.masks import CausalMask, RowCausalMask
from jacobi_oracle.reference.pjd_exact import PJDExact, PJDExactState
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.reference.schedules import ParallelRows, StaggeredRows
from jacobi_oracle.reference.state import JacobiState
from jacobi_oracle.spec import InvalidParameterError, KeyedRandomness, Layout, Problem, Sampling
from jacobi_oracle.spec.strategy import SteppedDecoder

from .strategies import MAX_PASS_SIDE, PassKeys, passes_with_row_windows


@given(passes_with_row_windows())
def test_row_causal_query_never_sees_another_rows_uncommitted_draft(case: PassKeys) -> None:
    mask = RowCausalMask()
    for cell, window in case.queries:
        position = case.layout.position(cell)
        for key, kw in zip(case.keys, case.key_window, strict=True):
            if key.is_draft and kw != window:
                assert not mask.is_visible(position, window, key, kw), f"query {cell} sees draft {key}"


@given(passes_with_row_windows())
def test_every_query_sees_every_committed_raster_earlier_key(case: PassKeys) -> None:
    for mask in (RowCausalMask(), CausalMask()):
        for cell, window in case.queries:
            position = case.layout.position(cell)
            for key in (k for k in case.keys if not k.is_draft and k.position < position):
                assert mask.is_visible(position, window, key, None), f"{type(mask).__name__}: {cell} misses {key}"


@given(passes_with_row_windows())
def test_row_causal_mask_is_causal_within_a_row(case: PassKeys) -> None:
    """Own-row drafts: visible iff raster-earlier. No key at or after the query is ever seen."""
    mask = RowCausalMask()
    for cell, window in case.queries:
        position = case.layout.position(cell)
        for key, kw in zip(case.keys, case.key_window, strict=True):
            visible = mask.is_visible(position, window, key, kw)
            if key.position >= position:
                assert not visible
            elif kw == window:
                assert visible


@given(st.integers(1, MAX_PASS_SIDE), st.integers(1, MAX_PASS_SIDE), st.data())
def test_causal_mask_equals_the_ar_visibility(height: int, width: int, data: st.DataObject) -> None:
    """Drafts that continue the committed prefix: the causal mask shows a query at cell t the
    same (position, token) pairs as the AR query for the prefix x_<t."""
    layout = Layout(height, width)
    model = HashModel(vocab_size=2, num_positions=layout.length, row_stride=width)
    problem = Problem(model, 0, layout, Sampling())
    tokens = data.draw(st.lists(st.integers(0, 1), min_size=layout.num_cells, max_size=layout.num_cells))
    frontier = data.draw(st.integers(0, layout.num_cells - 1))
    keys = committed_keys(problem, dict(enumerate(tokens[:frontier])))
    keys += [Key(layout.position(c), tokens[c], c, True) for c in range(frontier, layout.num_cells)]
    for t in range(frontier, layout.num_cells):
        position = layout.position(t)
        seen = {
            (k.position, k.token) for k in keys if CausalMask().is_visible(position, 0, k, 0 if k.is_draft else None)
        }
        ar = {(k.position, k.token) for k in committed_keys(problem, dict(enumerate(tokens[:t])))}
        assert seen == ar


# --- schedules -------------------------------------------------------------------------------


def build(name: str, width: int, data: st.DataObject) -> SteppedDecoder[Any]:
    context = data.draw(st.integers(1, width + 1), label="context")
    window = data.draw(st.integers(1, width + 1), label="window")
    if name == "zipar":
        return build_preset("zipar", window=context)
    if name == "pjd-exact":
        verify = data.draw(st.integers(1, 2 * width), label="verify")
        return build_preset(name, context=context, window=window, verify=verify)
    return build_preset(name, context=context, window=window)


def committed_of(state: Any) -> tuple[int | None, ...]:
    return state.jacobi.committed if isinstance(state, PJDExactState) else state.committed


def capacity(decoder: SteppedDecoder[Any], problem: Problem, state: Any) -> int:
    """Cells the pass may commit: the cells of its committing windows."""
    if isinstance(decoder, PJDExact):
        return len(decoder.verification.windows(problem, state.jacobi)[0].cells)
    assert isinstance(decoder, ComposedStrategy)
    return sum(len(w.cells) for w in decoder.schedule.windows(problem, state))


def row_prefix(committed: tuple[int | None, ...], layout: Layout, row: int) -> int:
    cells = committed[row * layout.width : (row + 1) * layout.width]
    return next((i for i, t in enumerate(cells) if t is None), layout.width)


class Run(NamedTuple):
    problem: Problem
    decoder: SteppedDecoder[Any]
    states: list[Any]  # before every pass, and the final state
    committed: list[tuple[int, ...]]  # cells committed by each pass


def run_steps(name: str, data: st.DataObject) -> Run:
    height = data.draw(st.integers(1, 3), label="height")
    width = data.draw(st.integers(1, 3), label="width")
    layout = Layout(height, width)
    model = HashModel(vocab_size=2, num_positions=layout.length, row_stride=width)
    problem = Problem(model, 0, layout, Sampling())
    decoder = build(name, width, data)
    randomness = KeyedRandomness(data.draw(st.integers(0, 2**20), label="seed"))
    state = decoder.start(problem)
    states, committed = [state], []
    while not decoder.finished(problem, state):
        state, trace = decoder.step(problem, state, randomness)
        states.append(state)
        committed.append(trace.committed)
        assert len(committed) <= layout.num_cells, f"{name} still running after {layout.num_cells} passes"
    return Run(problem, decoder, states, committed)


FAMILY_2D = ["pjd", "pjd-causal", "zipar", "pjd-exact"]


@pytest.mark.parametrize("name", FAMILY_2D)
@given(data=st.data())
def test_every_cell_is_committed_exactly_once(name: str, data: st.DataObject) -> None:
    run = run_steps(name, data)
    cells = sorted(c for pass_cells in run.committed for c in pass_cells)
    assert cells == list(range(run.problem.layout.num_cells))
    assert all(t is not None for t in committed_of(run.states[-1]))


@pytest.mark.parametrize("name", FAMILY_2D)
@given(data=st.data())
def test_tokens_committed_per_pass_never_exceed_the_window_capacity(name: str, data: st.DataObject) -> None:
    run = run_steps(name, data)
    for state, cells in zip(run.states, run.committed, strict=False):
        assert 1 <= len(cells) <= capacity(run.decoder, run.problem, state)


@pytest.mark.parametrize("name", ["pjd", "pjd-causal", "zipar"])
@given(data=st.data())
def test_a_lower_row_never_overtakes_the_row_above(name: str, data: st.DataObject) -> None:
    """PJD: (r, j) committed => (r-1, j+1) committed (or row r-1 complete). ZipAR: row r+1
    stays exactly w cells behind row r until row r is complete."""
    run = run_steps(name, data)
    layout = run.problem.layout
    for before, after in zip(run.states, run.states[1:], strict=False):
        for row in range(1, layout.height):
            above, below = row_prefix(after.committed, layout, row - 1), row_prefix(after.committed, layout, row)
            assert below == 0 or above == layout.width or below <= above - 1, (row, above, below)
            if name == "zipar":
                assert isinstance(run.decoder, ComposedStrategy)
                assert isinstance(run.decoder.schedule, StaggeredRows)
                lag = run.decoder.schedule.window
                above_before = row_prefix(before.committed, layout, row - 1)
                for cell in range(row * layout.width, (row + 1) * layout.width):
                    if before.committed[cell] is None and after.committed[cell] is not None:
                        col = cell - row * layout.width
                        assert above_before == min(layout.width, col + lag)


@given(data=st.data())
def test_pjd_exact_shadow_rows_never_overtake_the_row_above(data: st.DataObject) -> None:
    """The shadow's settled cells obey PJD's lag on the shadow grid (committed or settled)."""
    run = run_steps("pjd-exact", data)
    layout = run.problem.layout
    for state in run.states:
        done = state.shadow().committed
        for row in range(1, layout.height):
            above, below = row_prefix(done, layout, row - 1), row_prefix(done, layout, row)
            assert below == 0 or above == layout.width or below <= above - 1, (row, above, below)


@pytest.mark.parametrize("name", FAMILY_2D)
@given(data=st.data())
def test_decoding_terminates_within_h_times_w_passes(name: str, data: st.DataObject) -> None:
    run = run_steps(name, data)
    assert len(run.committed) <= run.problem.layout.num_cells


@pytest.mark.parametrize(
    "make",
    [
        lambda: ParallelRows(0, 2),
        lambda: ParallelRows(2, 0),
        lambda: ParallelRows(2, 1.5),  # type: ignore[arg-type]
        lambda: StaggeredRows(0),
        lambda: build_preset("pjd-exact", verify=0),
        lambda: build_preset("pjd", mask="diagonal"),
        lambda: build_preset("pjd", reuse_threshold=1.5),
    ],
)
def test_invalid_2d_parameters_raise_a_typed_error(make: Any) -> None:
    with pytest.raises(InvalidParameterError):
        make()


def test_pjd_windows_follow_the_context_count() -> None:
    """2x3 grid, c=2: row 1 waits for two committed cells in row 0; the top window has the bonus."""
    layout = Layout(2, 3)
    problem = Problem(HashModel(vocab_size=2, num_positions=6, row_stride=3), 0, layout, Sampling())
    schedule = ParallelRows(2, 3)
    one = JacobiState((0, None, None, None, None, None), (None,) * 6, 1)
    two = JacobiState((0, 1, None, None, None, None), (None,) * 6, 2)
    assert [(w.cells, w.bonus) for w in schedule.windows(problem, one)] == [((1, 2), True)]
    assert [(w.cells, w.bonus) for w in schedule.windows(problem, two)] == [((2,), True), ((3, 4, 5), False)]
