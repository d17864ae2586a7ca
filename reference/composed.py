"""A Jacobi-family decoder composed of parts (spec/composition.md).

One pass (= one step):
    1. windows  = schedule.windows(state)                     which cells are queried
    2. drafts   = initial_drafter for drafted cells lacking one
    3. p        = forward_pass(committed + drafts, mask)       ONE model call
    4. verdicts = verifier.verify(window, p) for each window, top to bottom
    5. commits, and drafts = refresher.refresh(cell, p) for cells after each window's rejection
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from jacobi_oracle.spec.errors import UnsupportedStrategyError
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import Randomness
from jacobi_oracle.spec.strategy import IterationTrace, VerifyRefreshDecoder

from .drafters import InitialDrafter, Refresher
from .keys import Key, committed_keys, run_queries
from .masks import Mask
from .schedules import Schedule
from .state import Draft, JacobiState, Window
from .verifiers import Verifier, WindowOutcome

Plan = tuple[JacobiState, tuple[Window, ...]]  # the state with its drafts filled, and the windows


@dataclass(frozen=True)
class Verified:
    """Step 4's outcome: the state the pass saw, p at every window cell, each window's verdict."""

    state: JacobiState
    target_probs: dict[int, torch.Tensor]
    outcomes: tuple[WindowOutcome, ...]


@dataclass
class ComposedStrategy(VerifyRefreshDecoder[JacobiState, Plan, dict[int, torch.Tensor], Verified]):
    name: str
    schedule: Schedule
    initial_drafter: InitialDrafter | None  # None: the schedule's windows never carry drafts (ZipAR)
    verifier: Verifier
    refresher: Refresher | None  # None: the verifier never leaves a cell unresolved (ZipAR)
    mask: Mask
    remember_targets: bool = False  # keep each cell's latest p in the state (spatial drafters)

    def __post_init__(self) -> None:
        # A drafter that reads remembered p (`reads_targets`) gets them: derived from the part,
        # never left to the caller (left off, a spatial drafter would silently draft at random)
        if getattr(self.initial_drafter, "reads_targets", False):
            self.remember_targets = True

    def start(self, problem: Problem) -> JacobiState:
        state = JacobiState.empty(problem.layout.num_cells)
        return replace(state, targets=(None,) * len(state.drafts)) if self.remember_targets else state

    def finished(self, problem: Problem, state: JacobiState) -> bool:
        return all(token is not None for token in state.committed)

    def result(self, problem: Problem, state: JacobiState) -> tuple[int, ...]:
        assert self.finished(problem, state)
        return tuple(t for t in state.committed if t is not None)

    def propose(self, problem: Problem, state: JacobiState, randomness: Randomness) -> Plan:
        """Steps 1 and 2."""
        windows = self.schedule.windows(problem, state)
        return self.fill_drafts(problem, state, windows, randomness), windows

    def forward(self, problem: Problem, plan: Plan) -> dict[int, torch.Tensor]:
        """Step 3."""
        return self.query_windows(problem, *plan)

    def verify(self, problem: Problem, plan: Plan, output: dict[int, torch.Tensor], randomness: Randomness) -> Verified:
        """Step 4: verify each window, top to bottom (on the state as the pass saw it)."""
        state, windows = plan
        outcomes = tuple(self.verifier.verify(problem, state, w, output, randomness) for w in windows)
        return Verified(state, output, outcomes)

    def refresh(
        self, problem: Problem, verified: Verified, randomness: Randomness
    ) -> tuple[JacobiState, IterationTrace]:
        """Step 5: commit each window's tokens and redraft the cells after its rejection."""
        state, target_probs = verified.state, verified.target_probs
        committed = list(state.committed)
        drafts: dict[int, Draft | None] = {}
        proposed: list[int] = []
        accepted: list[int] = []
        for outcome in verified.outcomes:
            for cell, token in outcome.committed.items():
                committed[cell] = token
                drafts[cell] = None
            if outcome.unresolved:
                refresher = self.refresher
                if refresher is None:
                    raise UnsupportedStrategyError(
                        f"{self.name}: cells {outcome.unresolved} are unresolved, but the strategy has no refresher"
                    )
                for cell in outcome.unresolved:
                    drafts[cell] = refresher.refresh(problem, state, cell, target_probs[cell], randomness)
            proposed += outcome.proposed
            accepted += outcome.accepted
        new_commits = tuple(
            sorted(c for c in range(len(committed)) if state.committed[c] is None and committed[c] is not None)
        )
        new_state = JacobiState(tuple(committed), state.with_drafts(drafts).drafts, state.iteration + 1, state.targets)
        if self.remember_targets:
            new_state = replace(new_state, targets=remembered_targets(problem, new_state, target_probs))
        return new_state, IterationTrace(tuple(proposed), tuple(accepted), new_commits)

    def fill_drafts(
        self, problem: Problem, state: JacobiState, windows: tuple[Window, ...], randomness: Randomness
    ) -> JacobiState:
        """Step 2: an initial draft for every drafted window cell that has none, in order
        (a drafter may read the draft it just gave the cell to the left)."""
        for window in windows:
            for cell in window.drafted_cells():
                if state.drafts[cell] is None:
                    if self.initial_drafter is None:
                        raise UnsupportedStrategyError(
                            f"{self.name}: window cell {cell} needs a draft, but the strategy has no initial drafter"
                        )
                    draft = self.initial_drafter.initial_draft(problem, state, cell, randomness)
                    state = state.with_drafts({cell: draft})
        return state

    def query_windows(
        self, problem: Problem, state: JacobiState, windows: tuple[Window, ...]
    ) -> dict[int, torch.Tensor]:
        """Step 3: one forward pass; the target distribution at every window cell."""
        committed = {c: t for c, t in enumerate(state.committed) if t is not None}
        keys = committed_keys(problem, committed)
        key_window: list[int | None] = [None] * len(keys)
        for w, window in enumerate(windows):
            for cell in window.cells:
                draft = state.drafts[cell]
                if draft is not None:
                    keys.append(Key(problem.layout.position(cell), draft.token, cell, True))
                    key_window.append(w)
        query_cells = [cell for window in windows for cell in window.cells]
        query_window = [w for w, window in enumerate(windows) for _ in window.cells]
        query_positions = [problem.layout.position(cell) for cell in query_cells]
        visible = [
            [self.mask.is_visible(position, qw, key, kw) for key, kw in zip(keys, key_window, strict=True)]
            for position, qw in zip(query_positions, query_window, strict=True)
        ]
        probs = run_queries(problem, keys, query_cells, visible)
        return {cell: probs[i] for i, cell in enumerate(query_cells)}


def remembered_targets(
    problem: Problem, state: JacobiState, target_probs: dict[int, torch.Tensor]
) -> tuple[torch.Tensor | None, ...]:
    """Each cell's latest p, forgetting cells no future draft can read: a new draft sits at or
    after the frontier and reads its left (cell - 1) or above (cell - W) neighbour."""
    assert state.targets is not None
    targets = list(state.targets)
    for cell, probs in target_probs.items():
        targets[cell] = probs
    oldest = state.first_uncommitted() - problem.layout.width
    return tuple(None if cell < oldest else probs for cell, probs in enumerate(targets))
