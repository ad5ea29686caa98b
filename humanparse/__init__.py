"""humanparse: holistic, instance-level human parsing (Li, Arnab & Torr, BMVC 2017).

Every pixel gets a body-part label and the identity of the person it belongs to.

    from humanparse import Predictor
    result = Predictor.from_checkpoint()(image)   # (H, W, 3) uint8 RGB -> ParsingResult
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .version import __version__

# Intel MKL (torch's BLAS and sparse products: the lattice's splat and slice) sums in an order
# that depends on where its buffers happen to lie in memory, unless told otherwise: four
# training steps ended with other low bits from run to run in one process (5 of 6 exact-resume
# tests failed here), 0 of 6 with this. Read when MKL first runs; no measurable cost to the CRF.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__all__ = ["ParsingResult", "Predictor", "__version__"]

if TYPE_CHECKING:
    from .predictor import Predictor
    from .structures import ParsingResult


def __getattr__(name: str) -> Any:
    # Imported on first use: `import humanparse` (the CLI's start) stays free of torch.
    if name == "Predictor":
        from .predictor import Predictor

        return Predictor
    if name == "ParsingResult":
        from .structures import ParsingResult

        return ParsingResult
    raise AttributeError(f"module 'humanparse' has no attribute {name!r}")
