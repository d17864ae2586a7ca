"""The statistical engine (spec/statistical_oracle.md): goodness of fit, teacher-forced
calibration and the verifier's own law, each with a stated false-fail probability and power."""

from .check import ReferenceLaw, StatisticalVerdict, judge, reference_law, statistical_check
from .counts import CountTables, count_samples, teacher_forced_probs
from .power import PowerReport, compute_min_detectable_shift, compute_min_detectable_tv, power
from .tests import TestResult

__all__ = [
    "CountTables",
    "PowerReport",
    "ReferenceLaw",
    "StatisticalVerdict",
    "TestResult",
    "compute_min_detectable_shift",
    "compute_min_detectable_tv",
    "count_samples",
    "judge",
    "power",
    "reference_law",
    "statistical_check",
    "teacher_forced_probs",
]
