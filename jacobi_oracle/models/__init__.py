"""Models behind the spec.Model protocol: exact toy models (and, later, real architectures)."""

from .registry import MODELS, build_model
from .toy import HashModel, MarkovGrid
from .transformer import TinyTransformer

__all__ = ["MODELS", "HashModel", "MarkovGrid", "TinyTransformer", "build_model"]
