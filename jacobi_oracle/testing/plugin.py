"""pytest plugin (registered through the `pytest11` entry point, so it loads with no config).

    def test_my_decoder_is_lossless(lossless_oracle):
        lossless_oracle(my_decoder)                      # defaults: model "hash-tiny", engine "auto"

    @pytest.mark.lossless(model="transformer-16", engine="stat", budget=4000)
    def test_on_a_bigger_model(lossless_oracle):
        lossless_oracle(my_decoder)                      # the marker's keywords become defaults

Options: --lossless-budget N, --lossless-seconds S, --lossless-alpha A, --lossless-engine
auto|exact|stat override every call. Importing this module is cheap: the oracle (and torch) load on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .assertions import LosslessReport

MARKER = "lossless"
OPTIONS = {
    "budget": "--lossless-budget",
    "seconds": "--lossless-seconds",
    "alpha": "--lossless-alpha",
    "engine": "--lossless-engine",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jacobi-oracle", "jacobi-oracle lossless decoding checks")
    group.addoption(OPTIONS["budget"], type=int, default=None, help="most samples per statistical check")
    group.addoption(OPTIONS["seconds"], type=float, default=None, help="time budget per statistical check")
    group.addoption(OPTIONS["alpha"], type=float, default=None, help="false-fail probability per check")
    group.addoption(OPTIONS["engine"], choices=["auto", "exact", "stat"], default=None, help="force an engine")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**kwargs): defaults for the lossless_oracle fixture "
        "(model, layout, condition, sampling, budget, seconds, alpha, engine, seed, workers)",
    )


@pytest.fixture
def lossless_oracle(request: pytest.FixtureRequest) -> Callable[..., LosslessReport]:
    """`lossless_oracle(decoder, **kwargs)`: assert_lossless with the marker's and the command
    line's settings applied (keywords given in the call win over the marker; options win over both)."""
    from .assertions import assert_lossless

    marker = request.node.get_closest_marker(MARKER)
    defaults: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    overrides = {name: request.config.getoption(flag) for name, flag in OPTIONS.items()}

    def check(decoder: Any, **kwargs: Any) -> LosslessReport:
        settings = {**defaults, **kwargs, **{k: v for k, v in overrides.items() if v is not None}}
        return assert_lossless(decoder, **settings)

    return check
