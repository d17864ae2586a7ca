"""A broken SJD whose drafts are verified against a q they were not drawn from.

The drafter draws its initial draft uniformly at random but *records* a non-uniform q (here
q(0) = 1/2 and the rest shared equally). Verification with (A) then accepts token 0 too rarely
and the others too often: the precondition of spec/speculative.md is broken, and the exact
engine measures the damage. Run: `python -m jacobi_oracle.proofs.counterexample [--json]`
(exit code 1: lossy).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import torch

from jacobi_oracle.models.registry import build_model
from jacobi_oracle.oracle.exact import ExactVerdict, check_exact
from jacobi_oracle.reference.composed import ComposedStrategy
from jacobi_oracle.reference.drafters import FreshSampleRefresher
from jacobi_oracle.reference.masks import CausalMask
from jacobi_oracle.reference.schedules import RasterWindow
from jacobi_oracle.reference.state import Draft, JacobiState
from jacobi_oracle.reference.verifiers import SpeculativeVerifier
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import EventKey, Randomness
from jacobi_oracle.spec.sampling import Sampling


@dataclass(frozen=True)
class MislabelledDrafter:
    """Draws uniformly, records q = (m, (1-m)/(V-1), ...): the bug class 'q is not the law'."""

    claimed_first: float = 0.5  # m, the mass the recorded q puts on token 0

    def initial_draft(self, problem: Problem, state: JacobiState, cell: int, randomness: Randomness) -> Draft:
        vocab = problem.model.vocab_size
        uniform = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
        token = randomness.categorical(uniform, EventKey("init", state.iteration, cell))
        claimed = torch.full((vocab,), (1.0 - self.claimed_first) / (vocab - 1), dtype=torch.float64)
        claimed[0] = self.claimed_first
        return Draft(token, claimed)


def mislabelled_sjd(window: int = 3, claimed_first: float = 0.5) -> ComposedStrategy:
    return ComposedStrategy(
        "sjd-mislabelled-q",
        RasterWindow(window),
        MislabelledDrafter(claimed_first),
        SpeculativeVerifier(),
        FreshSampleRefresher(),
        CausalMask(),
    )


def counterexample_verdict() -> ExactVerdict:
    case = build_model("hash")
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    return check_exact(mislabelled_sjd(), problem, model_name="hash")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    verdict = counterexample_verdict()
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2))
    else:
        print(f"{verdict.strategy}: total variation {verdict.total_variation:.6g}, lossless={verdict.lossless}")
    return 0 if verdict.lossless else 1


if __name__ == "__main__":
    sys.exit(main())
