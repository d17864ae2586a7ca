"""Fast decoders behind the same Strategy interface as reference/ (see accelerated/jacobi.py).

build_accelerated("sjd", window=16).decode(model, condition, layout, sampling, KeyedRandomness(seed))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..spec.errors import InvalidParameterError
from .jacobi import AcceleratedWindowDecoder, accelerated_ar, accelerated_jacobi, accelerated_sjd, accelerated_sjdpp

ACCELERATED: dict[str, Callable[..., AcceleratedWindowDecoder]] = {
    "ar": accelerated_ar,
    "sjd": accelerated_sjd,
    "sjd-uniform": lambda window=3, use_cache=True: accelerated_sjd(window, "uniform", use_cache),
    "jacobi": accelerated_jacobi,
    "sjdpp": accelerated_sjdpp,
    "sjdpp-exact": lambda window=3, threshold=1.0, use_cache=True: accelerated_sjdpp(
        window, threshold, True, use_cache
    ),
}


def build_accelerated(name: str, **params: Any) -> AcceleratedWindowDecoder:
    """The accelerated twin of reference preset `name` (same parameters, plus use_cache)."""
    if name not in ACCELERATED:
        raise InvalidParameterError(f"no accelerated decoder for {name!r}; accelerated: {', '.join(ACCELERATED)}")
    try:
        return ACCELERATED[name](**params)
    except TypeError as error:
        raise InvalidParameterError(f"bad parameters {params} for accelerated {name!r}: {error}") from error


__all__ = ["ACCELERATED", "AcceleratedWindowDecoder", "build_accelerated"]
