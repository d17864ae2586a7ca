"""Test-suite settings, in one place.

* One Hypothesis profile for CI (no deadline: CI machines are shared).
* One intra-op thread: the suite is made of tiny tensor ops, where a second thread only
  contends (25-30x slower softmax measured on a loaded 2-core runner). Tests that want more
  threads set them themselves.
"""

from collections.abc import Iterator

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
