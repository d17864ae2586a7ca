"""Lossless-decoding assertions for other projects' test suites (spec/testing.md).

    from jacobi_oracle.testing import assert_lossless
    assert_lossless(my_decoder, model="hash-tiny")

`my_decoder` is a Strategy, a function `decode(target, rng) -> tokens` (see `wrap_decoder`), or
a step function over a hashable state (`wrap_stepped_decoder`: fast exact checks).
The pytest plugin (jacobi_oracle.testing.plugin, auto-loaded) adds the `lossless_oracle`
fixture and the `lossless` marker. Names load on first use, so the plugin stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapter import (
        CallableDecoder,
        CausalTarget,
        OracleRng,
        SteppedCallableDecoder,
        wrap_decoder,
        wrap_stepped_decoder,
    )
    from .assertions import DEFAULT_ALPHA, DEFAULT_BUDGET, LosslessReport, assert_lossless, assert_pathwise_equal

_HOMES = {
    "CallableDecoder": "adapter",
    "CausalTarget": "adapter",
    "OracleRng": "adapter",
    "wrap_decoder": "adapter",
    "SteppedCallableDecoder": "adapter",
    "wrap_stepped_decoder": "adapter",
    "DEFAULT_ALPHA": "assertions",
    "DEFAULT_BUDGET": "assertions",
    "LosslessReport": "assertions",
    "assert_lossless": "assertions",
    "assert_pathwise_equal": "assertions",
}

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_BUDGET",
    "CallableDecoder",
    "CausalTarget",
    "LosslessReport",
    "OracleRng",
    "SteppedCallableDecoder",
    "assert_lossless",
    "assert_pathwise_equal",
    "wrap_decoder",
    "wrap_stepped_decoder",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
