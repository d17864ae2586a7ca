"""Fast decoders behind the same Strategy interface as reference/.

build_accelerated("sjd", window=16).decode(model, condition, layout, sampling, KeyedRandomness(seed))

* raster-window presets (ar, sjd, sjd-uniform, jacobi, sjdpp, sjdpp-exact, mc-sjd, mc-sjd-official,
  scd-gumbel, gumbel-jacobi, gumbel-jacobi-above, mc-sjd-above, sjd-sample-above):
  accelerated/jacobi.py,
  static KV cache, device-side verification, batched;
* every other preset (pjd, pjd-causal, pjd-exact, zipar, gsd, lantern, the spatial SJD
  initialisations): accelerated/prefix_cache.py, the reference engine on a model that caches the
  committed raster prefix (spec/model.md) and feeds only the rest.
Both give reference/'s tokens under the same keyed noise.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from jacobi_oracle.reference.presets import PRESETS
from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.strategy import BatchStrategy

from .jacobi import (
    AcceleratedWindowDecoder,
    accelerated_ar,
    accelerated_gumbel_jacobi,
    accelerated_jacobi,
    accelerated_mc_sjd,
    accelerated_scd_gumbel,
    accelerated_sjd,
    accelerated_sjd_sample_above,
    accelerated_sjdpp,
)
from .prefix_cache import PrefixCachedDecoder

AcceleratedDecoder = BatchStrategy  # every accelerated decoder decodes batches (spec/strategy.py)


ACCELERATED: dict[str, Callable[..., AcceleratedDecoder]] = {
    "ar": accelerated_ar,
    "sjd": accelerated_sjd,
    "sjd-uniform": lambda window=3, use_cache=True: accelerated_sjd(window, "uniform", use_cache),
    "jacobi": accelerated_jacobi,
    "sjdpp": accelerated_sjdpp,
    "sjdpp-exact": lambda window=3, threshold=1.0, use_cache=True: accelerated_sjdpp(
        window, threshold, True, use_cache
    ),
    "mc-sjd": accelerated_mc_sjd,
    "mc-sjd-official": lambda window=3, use_cache=True: accelerated_mc_sjd(window, True, use_cache=use_cache),
    "mc-sjd-above": lambda window=3, use_cache=True: accelerated_mc_sjd(window, above=True, use_cache=use_cache),
    "sjd-sample-above": accelerated_sjd_sample_above,
    "scd-gumbel": accelerated_scd_gumbel,
    "gumbel-jacobi": accelerated_gumbel_jacobi,
    "gumbel-jacobi-above": lambda window=3, use_cache=True: accelerated_gumbel_jacobi(window, True, use_cache),
}
WINDOW_DECODERS = tuple(ACCELERATED)  # accelerated/jacobi.py
PREFIX_CACHED = tuple(n for n in PRESETS if n not in ACCELERATED and n != "lpd")  # lpd: its own model
ACCELERATED |= {n: partial(PrefixCachedDecoder, n) for n in PREFIX_CACHED}


def build_accelerated(name: str, **params: Any) -> AcceleratedDecoder:
    """The accelerated twin of reference preset `name` (same parameters, plus use_cache)."""
    if name not in ACCELERATED:
        raise InvalidParameterError(f"no accelerated decoder for {name!r}; accelerated: {', '.join(ACCELERATED)}")
    try:
        return ACCELERATED[name](**params)
    except TypeError as error:
        raise InvalidParameterError(f"bad parameters {params} for accelerated {name!r}: {error}") from error


__all__ = [
    "ACCELERATED",
    "PREFIX_CACHED",
    "WINDOW_DECODERS",
    "AcceleratedDecoder",
    "AcceleratedWindowDecoder",
    "build_accelerated",
]
