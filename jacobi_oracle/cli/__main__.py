"""`python -m jacobi_oracle.cli ...` (what `torchrun -m jacobi_oracle.cli shard-audit` runs)."""

import sys

from . import main

sys.exit(main())
