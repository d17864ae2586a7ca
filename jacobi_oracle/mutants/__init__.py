"""Deliberately broken decoders (negative controls): SJD with one part swapped for a broken one."""

from .catalogue import MUTANTS, PRESET_SETTINGS, Mutant, get_mutant, mutant_problem

__all__ = ["MUTANTS", "PRESET_SETTINGS", "Mutant", "get_mutant", "mutant_problem"]
