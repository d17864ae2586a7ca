"""`python -m jacobi_oracle.train`: the command recorded inside the shipped checkpoints
(jacobi_oracle/assets/*.safetensors metadata). The trainer lives in experiments/train.py; this
name stays so those recorded commands still run."""

from __future__ import annotations

from .experiments.train import main

if __name__ == "__main__":
    raise SystemExit(main())
