"""Test-suite settings: one Hypothesis profile for CI (no deadline: CI machines are shared)."""

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")
