"""COCO run-length encoding of binary masks, through pycocotools (the reference encoder
that COCO tools and TrackEval decode)."""

from __future__ import annotations

import warnings

import numpy as np
from pycocotools import mask as coco_mask


def encode(mask: np.ndarray, size: tuple[int, int] | None = None, offset: tuple[int, int] = (0, 0)) -> dict[str, object]:
    """COCO compressed RLE of a bool mask, {"size": [H, W], "counts": str}.

    Args:
        mask: (h, w) bool, the whole mask or the crop of it that holds every pixel set.
        size: (H, W) of the image the mask lies in (None: the mask's own size).
        offset: (top, left) of the crop in that image, in pixels.

    Only the crop is traversed: a person in a 1080p frame costs the pixels of their box,
    not of the frame (the runs outside it are zeros, added as numbers). The counts are
    exactly pycocotools' encoding of the whole mask.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be (H, W), got shape {mask.shape}")
    h, w = mask.shape
    height, width = (h, w) if size is None else (int(size[0]), int(size[1]))
    top, left = int(offset[0]), int(offset[1])
    if top < 0 or left < 0 or top + h > height or left + w > width:
        raise ValueError(f"a {h}x{w} mask at {offset} does not fit a {height}x{width} image")
    columns = np.flatnonzero(mask.any(0))
    if columns.size:
        mask, left = mask[:, columns[0] : columns[-1] + 1], left + int(columns[0])
        # The columns that hold the mask, at full height, column-major (COCO's order).
        strip = np.zeros((mask.shape[1], height), bool)
        strip[:, top : top + h] = mask.T
        flat = strip.reshape(-1)
        runs = np.diff(np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))).tolist()
        if flat[0]:
            runs.insert(0, 0)  # counts start with a run of zeros, possibly empty
        after = (width - left - mask.shape[1]) * height
        runs[0] += left * height
        if len(runs) % 2:  # ends on zeros
            runs[-1] += after
        elif after:
            runs.append(after)
    else:
        runs = [height * width]
    counts = coco_mask.frPyObjects({"counts": runs, "size": [height, width]}, height, width)["counts"]
    return {"size": [height, width], "counts": counts.decode("ascii")}


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
