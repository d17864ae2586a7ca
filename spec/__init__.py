"""The formal specification: typed interfaces beside the math (the *.md files here)."""

from .acceptance import compute_acceptance_probability, compute_residual
from .errors import (
    ConditionError,
    InvalidLogitsError,
    InvalidParameterError,
    JacobiOracleError,
    ProbabilityError,
    ShapeMismatchError,
    UnsupportedStrategyError,
)
from .layout import Layout
from .model import Model, Problem, forward_pass
from .randomness import EventKey, GeneratorRandomness, KeyedRandomness, Randomness
from .sampling import Sampling
from .strategy import Decoded, IterationTrace, SteppedDecoder, Strategy

__all__ = [
    "ConditionError",
    "Decoded",
    "EventKey",
    "GeneratorRandomness",
    "InvalidLogitsError",
    "InvalidParameterError",
    "IterationTrace",
    "JacobiOracleError",
    "KeyedRandomness",
    "Layout",
    "Model",
    "ProbabilityError",
    "Problem",
    "Randomness",
    "Sampling",
    "ShapeMismatchError",
    "SteppedDecoder",
    "Strategy",
    "UnsupportedStrategyError",
    "compute_acceptance_probability",
    "compute_residual",
    "forward_pass",
]
