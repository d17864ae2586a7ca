"""Readable pure-PyTorch decoders written from spec/, no KV cache."""

from .ar import AutoRegressive
from .composed import ComposedStrategy
from .presets import PRESETS, build_preset, sjd

__all__ = ["PRESETS", "AutoRegressive", "ComposedStrategy", "build_preset", "sjd"]
