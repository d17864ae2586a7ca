"""The model trained here (jacobi_oracle/experiments/train.py): a small LlamaGen + patch tokenizer in one
safetensors file, and the Model it becomes for a given grid.

File layout: the LlamaGen state dict in the official key layout, plus `tokenizer.codebook`;
metadata (strings): `config` (LlamaGenConfig fields, JSON), `class_names` (JSON list),
`command` (the training command line), `recipe` (data recipe, JSON), `heldout_nll`.

The weights do not depend on the grid (2D RoPE is computed, not learned), so one file serves
16 x 16 and 24 x 24 grids: `TrainedModel.for_grid(24)` is the same weights with the 24 x 24
position table.

Committed models, by name (`load_named`, `--model NAME` on the command line):
* `trained`: photos-llamagen.safetensors, crops of the photographs (patch k-means tokenizer);
* `digits`: digits-llamagen.safetensors, scikit-learn's handwritten digits (16 grey levels).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from ..spec.errors import InvalidParameterError, ShapeMismatchError
from .llamagen import LlamaGen, LlamaGenConfig
from .tokenizer import PatchTokenizer

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_CHECKPOINT = ASSETS / "photos-llamagen.safetensors"
DIGITS_CHECKPOINT = ASSETS / "digits-llamagen.safetensors"
TRAINED_MODELS = {"trained": DEFAULT_CHECKPOINT, "digits": DIGITS_CHECKPOINT}  # name -> committed file
TOKENIZER_PREFIX = "tokenizer."


@dataclass
class TrainedModel:
    model: LlamaGen
    tokenizer: PatchTokenizer
    class_names: tuple[str, ...]
    metadata: dict[str, str]

    def for_grid(self, grid_size: int) -> LlamaGen:
        """The model for a grid_size x grid_size layout (same weights)."""
        return regrid(self.model, grid_size)


def regrid(model: LlamaGen, grid_size: int) -> LlamaGen:
    """A LlamaGen sharing `model`'s parameters, with the 2D RoPE table of another grid."""
    if grid_size == model.config.grid_size:
        return model
    config = replace(model.config, grid_size=grid_size)
    clone = LlamaGen(config).to(model.output.weight.dtype)
    clone.load_state_dict(model.state_dict())
    clone.train(model.training)
    return clone.requires_grad_(model.output.weight.requires_grad)


def save_trained(trained: TrainedModel, path: str | Path) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in trained.model.state_dict().items()}
    state.update(trained.tokenizer.tensors())
    metadata = dict(trained.metadata)
    metadata["config"] = json.dumps(asdict(trained.model.config))
    metadata["class_names"] = json.dumps(list(trained.class_names))
    save_file(state, str(path), metadata=metadata)


def load_trained(path: str | Path | None = None) -> TrainedModel:
    """The committed model (default) or another file written by `save_trained`."""
    path = Path(DEFAULT_CHECKPOINT if path is None else path)
    if not path.is_file():
        raise InvalidParameterError(f"checkpoint {str(path)!r} does not exist")
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    # Verify the file carries a config and class names
    if "config" not in metadata or "class_names" not in metadata:
        raise ShapeMismatchError(f"{str(path)!r} has no config / class_names metadata; not a trained-model file")
    config = LlamaGenConfig(**json.loads(metadata.pop("config")))
    class_names = tuple(json.loads(metadata.pop("class_names")))
    tokenizer = PatchTokenizer.from_tensors({k: v for k, v in tensors.items() if k.startswith(TOKENIZER_PREFIX)})
    model = LlamaGen(config)
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(TOKENIZER_PREFIX)})
    model = model.eval().requires_grad_(False)
    return TrainedModel(model, tokenizer, class_names, metadata)


def load_named(name: str) -> TrainedModel:
    """A committed model by name (TRAINED_MODELS)."""
    # Verify the name is a committed model
    if name not in TRAINED_MODELS:
        raise InvalidParameterError(f"unknown trained model {name!r}; committed models: {', '.join(TRAINED_MODELS)}")
    return load_trained(TRAINED_MODELS[name])
