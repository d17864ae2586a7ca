"""PJD-exact (spec/pjd_exact.md, proofs/pjd_exact.md): PJD's 2D drafting, exact commits.

Two processes share ONE forward pass:

* the *shadow*: PJD itself, run on a shadow grid where a cell is "done" once it is committed
  or *settled*. Rows below the frontier get PJD windows (context c, window w, lag 1), are
  queried under the Row-Causal Mask and verified against those partial-context p's. A cell
  that PJD would commit is only *settled*: it keeps the token, with q = the p it was settled
  against (the law of a speculative verifier's output). Nothing the shadow does is final.
* the *verifier*: one raster window V = frontier .. frontier + L - 1 under the causal mask,
  verified exactly (SJD), bonus at its end. Settled tokens and shadow drafts inside V are
  V's drafts; a cell in V and in a shadow window is queried twice (two query slots, one key).

One pass:
    1. V = raster window; shadow windows = PJD rows on the shadow grid
    2. initial drafts for window cells that have none
    3. p_causal (V queries), p_row (shadow queries) = ONE forward pass
    4. commit V exactly; if its rejected draft was visible to the shadow, unsettle every
       settled cell after it and stop the shadow's verification there
    5. settle the shadow windows (RowLagVerifier, own random keys), refresh their other cells
       from p_row; refresh V's other unsettled cells from p_causal (SJD)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from jacobi_oracle.spec.errors import check_count
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import PrefixedRandomness, Randomness
from jacobi_oracle.spec.strategy import IterationTrace, PhasedDecoder

from .drafters import FreshSampleRefresher, InitialDrafter, RandomDrafter
from .keys import Key, committed_keys, run_queries
from .masks import CausalMask, Mask, RowCausalMask
from .schedules import ParallelRows, RasterWindow
from .state import Draft, JacobiState, Window
from .verifiers import RowLagVerifier, SpeculativeVerifier, WindowOutcome

SHADOW_PREFIX = "shadow-"  # the shadow's random events get their own keys


@dataclass(frozen=True, eq=False)
class PJDExactState:
    jacobi: JacobiState  # committed tokens; drafts (a settled cell's draft is its settled token)
    settled: tuple[bool, ...]  # per cell: the shadow settled it

    def shadow(self) -> JacobiState:
        """The shadow grid: settled cells count as committed and carry no draft."""
        js = self.jacobi
        committed = tuple(
            d.token if s and d is not None else c for c, d, s in zip(js.committed, js.drafts, self.settled, strict=True)
        )
        drafts = tuple(None if s else d for d, s in zip(js.drafts, self.settled, strict=True))
        return replace(js, committed=committed, drafts=drafts)


@dataclass(frozen=True)
class Query:
    cell: int
    window: int  # index into the pass's windows: shadow windows first, V last
    mask: Mask


Plan = tuple[PJDExactState, tuple[Window, ...], Window]  # drafts filled; shadow windows; V
Output = tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]  # p_row, p_causal


@dataclass
class PJDExact(PhasedDecoder[PJDExactState, Plan, Output]):
    name: str
    rows: ParallelRows  # the shadow's schedule (context c, window w)
    verification: RasterWindow  # V (length L)
    initial_drafter: InitialDrafter
    row_mask: Mask
    verify_mask: Mask = field(default_factory=CausalMask)  # only the causal mask makes V exact

    def start(self, problem: Problem) -> PJDExactState:
        n = problem.layout.num_cells
        return PJDExactState(JacobiState.empty(n), (False,) * n)

    def finished(self, problem: Problem, state: PJDExactState) -> bool:
        return all(token is not None for token in state.jacobi.committed)

    def result(self, problem: Problem, state: PJDExactState) -> tuple[int, ...]:
        return tuple(t for t in state.jacobi.committed if t is not None)

    def propose(self, problem: Problem, state: PJDExactState, randomness: Randomness) -> Plan:
        """Steps 1 and 2."""
        rows = self.rows.windows(problem, state.shadow())
        (window_v,) = self.verification.windows(problem, state.jacobi)
        return self.fill_drafts(problem, state, (*rows, window_v), randomness), rows, window_v

    def forward(self, problem: Problem, plan: Plan) -> Output:
        """Step 3."""
        return self.query(problem, *plan)

    def conclude(
        self, problem: Problem, plan: Plan, output: Output, randomness: Randomness
    ) -> tuple[PJDExactState, IterationTrace]:
        """Steps 4 and 5."""
        return self.commit_and_refresh(problem, *plan, *output, randomness)

    def fill_drafts(
        self, problem: Problem, state: PJDExactState, windows: tuple[Window, ...], randomness: Randomness
    ) -> PJDExactState:
        """Step 2: an initial draft for every drafted window cell that has none."""
        js = state.jacobi
        for window in windows:
            for cell in window.drafted_cells():
                if js.drafts[cell] is None:
                    js = js.with_drafts({cell: self.initial_drafter.initial_draft(problem, js, cell, randomness)})
        return replace(state, jacobi=js)

    def query(
        self, problem: Problem, state: PJDExactState, rows: tuple[Window, ...], window_v: Window
    ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """Step 3: one forward pass; shadow queries under the row mask, V's under the causal mask."""
        js = state.jacobi
        v_index = len(rows)
        keys, key_window = self.keys(problem, state, rows, window_v)
        queries = [Query(cell, w, self.row_mask) for w, window in enumerate(rows) for cell in window.cells]
        queries += [Query(cell, v_index, self.verify_mask) for cell in window_v.cells]
        visible = [self.visibility(problem.layout.position(q.cell), q, keys, key_window) for q in queries]
        assert all(js.committed[q.cell] is None for q in queries)
        probs = run_queries(problem, keys, [q.cell for q in queries], visible)
        p_row = {q.cell: probs[i] for i, q in enumerate(queries) if q.window != v_index}
        p_causal = {q.cell: probs[i] for i, q in enumerate(queries) if q.window == v_index}
        return p_row, p_causal

    @staticmethod
    def visibility(position: int, query: Query, keys: list[Key], key_window: list[int | None]) -> list[bool]:
        return [
            query.mask.is_visible(position, query.window, key, kw) for key, kw in zip(keys, key_window, strict=True)
        ]

    def keys(
        self, problem: Problem, state: PJDExactState, rows: tuple[Window, ...], window_v: Window
    ) -> tuple[list[Key], list[int | None]]:
        """One key per cell: committed and settled tokens as context (window None), the drafts
        of window cells tagged with their shadow row's window (V's if in no shadow window)."""
        js = state.jacobi
        committed = {c: t for c, t in enumerate(js.committed) if t is not None}
        keys = committed_keys(problem, committed)
        key_window: list[int | None] = [None] * len(keys)
        owner = {cell: w for w, window in enumerate(rows) for cell in window.cells}
        for cell in window_v.cells:
            owner.setdefault(cell, len(rows))
        for cell, draft in enumerate(js.drafts):
            if draft is None:
                continue
            position = problem.layout.position(cell)
            if state.settled[cell]:
                keys.append(Key(position, draft.token, cell, False))
                key_window.append(None)
            elif cell in owner:
                keys.append(Key(position, draft.token, cell, True))
                key_window.append(owner[cell])
        return keys, key_window

    def commit_and_refresh(
        self,
        problem: Problem,
        state: PJDExactState,
        rows: tuple[Window, ...],
        window_v: Window,
        p_row: dict[int, torch.Tensor],
        p_causal: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> tuple[PJDExactState, IterationTrace]:
        """Steps 4 and 5."""
        js = state.jacobi
        outcome = SpeculativeVerifier().verify(problem, js, window_v, p_causal, randomness)
        cut = self.shadow_cut(state, rows, outcome)
        committed = list(js.committed)
        drafts = list(js.drafts)
        settled = list(state.settled)
        for cell, token in outcome.committed.items():
            committed[cell], drafts[cell], settled[cell] = token, None, False
        for cell in range(cut, len(settled)):
            settled[cell] = False  # keeps its token and q: a plain draft again
        shadow_cells = self.settle_rows(problem, state, rows, outcome, cut, p_row, randomness, drafts, settled)
        refresher = FreshSampleRefresher()
        for cell in outcome.unresolved:
            if cell not in shadow_cells and not state.settled[cell]:
                drafts[cell] = refresher.refresh(problem, js, cell, p_causal[cell], randomness)
        new_js = replace(js, committed=tuple(committed), drafts=tuple(drafts), iteration=js.iteration + 1)
        trace = IterationTrace(outcome.proposed, outcome.accepted, tuple(sorted(outcome.committed)))
        return PJDExactState(new_js, tuple(settled)), trace

    def shadow_cut(self, state: PJDExactState, rows: tuple[Window, ...], outcome: WindowOutcome) -> int:
        """The first cell whose committed token differs from a key the shadow saw (V's rejected
        draft, when settled or in a shadow window); num_cells when there is none."""
        num_cells = len(state.settled)
        if not outcome.unresolved:
            return num_cells
        rejected = max(outcome.committed)
        in_rows = any(rejected in window.cells for window in rows)
        return rejected if in_rows or state.settled[rejected] else num_cells

    def settle_rows(
        self,
        problem: Problem,
        state: PJDExactState,
        rows: tuple[Window, ...],
        outcome: WindowOutcome,
        cut: int,
        p_row: dict[int, torch.Tensor],
        randomness: Randomness,
        drafts: list[Draft | None],
        settled: list[bool],
    ) -> set[int]:
        """PJD's verification on the shadow grid, before `cut` and after V's commits; settled
        cells keep q = p_row; the other shadow cells are refreshed from p_row. Returns the
        cells the shadow handled."""
        shadow = state.shadow()
        shadow_randomness = PrefixedRandomness(randomness, SHADOW_PREFIX)
        verifier = RowLagVerifier(SpeculativeVerifier())
        refresher = FreshSampleRefresher()
        handled: set[int] = set()
        for window in rows:
            cells = tuple(c for c in window.cells if c not in outcome.committed)
            if not cells:
                continue
            handled.update(cells)
            head = tuple(c for c in cells if c < cut)
            result = WindowOutcome({}, (), (), ())
            if head:
                bonus = window.bonus and head[-1] == window.cells[-1]
                result = verifier.verify(problem, shadow, Window(head, bonus), p_row, shadow_randomness)
            for cell, token in result.committed.items():
                drafts[cell], settled[cell] = Draft(token, p_row[cell]), True
            for cell in (*result.unresolved, *cells[len(head) :]):
                drafts[cell] = refresher.refresh(problem, shadow, cell, p_row[cell], shadow_randomness)
        return handled


def pjd_exact(context: int = 2, window: int = 3, verify: int | None = None) -> PJDExact:
    """PJD-exact: PJD's 2D drafting (context c, row window w) as a shadow, exact raster
    verification over `verify` cells (default: `window`, SJD's window; spec/pjd_exact.md)."""
    verify = window if verify is None else verify
    check_count("verify (raster verification window)", verify)
    return PJDExact(
        name="pjd-exact",
        rows=ParallelRows(context, window),
        verification=RasterWindow(verify),
        initial_drafter=RandomDrafter(),
        row_mask=RowCausalMask(),
    )
