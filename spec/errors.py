"""Typed errors for bad input. Every message names the offending value.

Internal invariants are `assert`s; these exceptions are for what a *user* passed in
(a parameter, a model's output, a distribution). All derive from `JacobiOracleError`,
itself a `ValueError`, so `except ValueError` keeps working for callers that do not care.
"""

from __future__ import annotations


class JacobiOracleError(ValueError):
    """Base class of every error this package raises for bad input."""


class InvalidParameterError(JacobiOracleError):
    """A strategy / sampling / layout parameter is out of its documented range."""


class ShapeMismatchError(JacobiOracleError):
    """Grid, vocabulary, position or tensor shapes do not agree."""


class ConditionError(JacobiOracleError):
    """The condition (class label) does not fit the model, or CFG needs a null class it lacks."""


class InvalidLogitsError(JacobiOracleError):
    """A model returned logits with NaN / inf entries or the wrong shape."""


class ProbabilityError(JacobiOracleError):
    """A vector passed as a distribution is negative somewhere or does not sum to 1."""


class UnsupportedStrategyError(JacobiOracleError):
    """A strategy cannot be run by the requested engine (e.g. not step-wise for the exact engine)."""


class QueryContextError(JacobiOracleError):
    """A query's visible keys cannot be answered by the model (e.g. a next-token model whose
    query for position t sees no key at t - 1)."""


# --- the one home of the parameter checks every decoder shares --------------------------------


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """`value` as an int >= `minimum` (a window, a lag, a neighbour count); bools are refused."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidParameterError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_reuse_threshold(value: object, at_most: float = float("inf")) -> float:
    """A keep threshold on the ratio p_t(x) / p_{t-1}(x) (SJD++ reuse, PJD's confident reuse):
    a finite number in [0, at_most]."""
    in_range = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= at_most
    if not in_range or value == float("inf"):
        bound = "a finite number >= 0" if at_most == float("inf") else f"in [0, {at_most:g}]"
        raise InvalidParameterError(f"reuse threshold must be {bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]
