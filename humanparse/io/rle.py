"""COCO run-length encoding of binary masks, through pycocotools (the reference encoder
that COCO tools and TrackEval decode)."""

from __future__ import annotations

import warnings

import numpy as np
from pycocotools import mask as coco_mask


def encode(mask: np.ndarray) -> dict[str, object]:
    """(H, W) bool mask -> {"size": [H, W], "counts": str}, COCO compressed RLE."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode(rle: dict[str, object]) -> np.ndarray:
    """The inverse of :func:`encode`: (H, W) bool mask.

    Raises ValueError for counts that are not a valid encoding of an H×W mask (pycocotools
    itself would silently pad or cut them).
    """
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")  # an invalid byte fails in run_lengths
    if not isinstance(counts, str):  # bytes(5) would be five zero bytes, a list of runs COCO's uncompressed form
        raise ValueError(f"RLE counts must be COCO's compressed string, got {type(counts).__name__}")
    text = counts
    runs = run_lengths(text)
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise ValueError(f"RLE counts do not describe a {height}x{width} mask")
    with warnings.catch_warnings():
        # pycocotools' Cython decoder trips NumPy 2's copy-keyword deprecation; harmless.
        warnings.simplefilter("ignore", DeprecationWarning)
        return coco_mask.decode({"size": [height, width], "counts": text.encode("ascii")}).astype(bool)


def run_lengths(counts: str) -> list[int]:
    """The run lengths in a COCO compressed counts string (maskApi.c's rleFrString)."""
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                raise ValueError("RLE counts end in the middle of a number")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"RLE counts hold an invalid character {counts[p]!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs
