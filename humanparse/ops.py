"""Box and mask operations shared by the data, the loss, the tracker, the detectors and the
evaluation metrics.

Boxes are float ``(x1, y1, x2, y2)`` in pixels with **pixel-edge** coordinates: pixel
column ``c`` covers ``[c, c + 1)``, so the box of a mask spans from its first column to
its last column + 1 (a one-pixel mask at (x, y) has the box (x, y, x + 1, y + 1), width
and height 1). Masks are boolean (H, W) arrays, or (N, H, W) stacks of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import ndimage

from .errors import HumanParseError
from .labels import MIN_KEYPOINT_SCORE

__all__ = ["CroppedMask", "cropped_iou", "keypoint_boxes", "mask_boxes", "mask_iou", "person_boxes", "person_regions", "scaled_size"]


def person_regions(id_map: np.ndarray) -> dict[int, tuple[slice, slice]]:
    """Where each person of an id map lies: id -> (rows, columns), the slices of its
    bounding box, for the ids present (increasing), in one pass over the pixels.

    Args:
        id_map: (H, W) non-negative integer ids, 0 = background.
    """
    if id_map.ndim != 2 or not np.issubdtype(id_map.dtype, np.integer):
        raise HumanParseError(f"an id map must be an (H, W) integer array, got {id_map.shape} {id_map.dtype}")
    if id_map.size and id_map.min() < 0:
        raise HumanParseError("person ids must not be negative")
    # One pass for all ids, where a comparison per id would be one pass each. find_objects
    # takes native ints as they are; others (uint64, int8...) are widened first.
    if id_map.dtype not in (np.int32, np.int64):
        id_map = id_map.astype(np.int64)
    slices = ndimage.find_objects(id_map) if id_map.size else []
    return {k + 1: (s[0], s[1]) for k, s in enumerate(slices) if s is not None}


def person_boxes(id_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box of every person in an id map.

    Args:
        id_map: (H, W) non-negative integer ids, 0 = background.

    Returns:
        ids: (N,) int64, the ids present, increasing. boxes: (N, 4) float32 x1 y1 x2 y2,
        pixel edges (see the module docstring), in the order of ``ids``.
    """
    regions = person_regions(id_map)
    ids = np.array(list(regions), np.int64)
    boxes = np.array([(c.start, r.start, c.stop, r.stop) for r, c in regions.values()], np.float32).reshape(-1, 4)
    return ids, boxes


def mask_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes and areas of a stack of masks.

    Args:
        masks: (N, H, W) bool.

    Returns:
        boxes: (N, 4) int64 x1 y1 x2 y2, pixel edges; all zero for an empty mask.
        areas: (N,) int64 pixel counts.
    """
    if masks.ndim != 3:
        raise HumanParseError(f"masks must be an (N, H, W) stack, got {masks.shape}")
    rows, cols = masks.any(2), masks.any(1)
    height, width = masks.shape[1:]
    present = rows.any(1)
    boxes = np.stack(
        [cols.argmax(1), rows.argmax(1), width - cols[:, ::-1].argmax(1), height - rows[:, ::-1].argmax(1)], axis=1
    ).astype(np.int64)
    boxes[~present] = 0
    # Counting inside the box is cheaper than over the whole frame.
    areas = np.array([np.count_nonzero(m[y0:y1, x0:x1]) for m, (x0, y0, x1, y1) in zip(masks, boxes)], np.int64)
    return boxes, areas


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of masks: (N, H, W) and (M, H, W) bool -> (N, M) float64.

    Pairs with an empty mask get 0. N or M may be 0. Pixel counts are exact integers and
    only their quotient is rounded, so an IoU of exactly t equals float(t) and is no hit
    under the evaluators' strict ``> t`` (:func:`~humanparse.metrics.instance_ap`), whatever
    numpy's promotion rules: float32 counted wrong past 2**24 pixels and, under numpy 1.x,
    float32(0.1) > 0.1 made IoUs of exactly 0.1, 0.2, ... count as hits.
    """
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise HumanParseError(f"mask_iou needs (N, H, W) and (M, H, W) masks, got {a.shape} and {b.shape}")
    return cropped_iou([CroppedMask.of(mask) for mask in a], [CroppedMask.of(mask) for mask in b])


@dataclass(frozen=True)
class CroppedMask:
    """A mask held as the box of its pixels: ``mask`` (h, w) bool whose top-left pixel is
    (``top``, ``left``) of the frame, with ``area`` pixels set; a person in a 1080p frame
    costs their own pixels, not the frame's. ``CroppedMask.EMPTY`` is the empty mask."""

    top: int
    left: int
    mask: np.ndarray
    area: int

    EMPTY: ClassVar["CroppedMask"]

    @property
    def region(self) -> tuple[slice, slice]:
        """(rows, columns) of the frame the crop covers: ``frame[crop.region]`` is its box."""
        return slice(self.top, self.top + self.mask.shape[0]), slice(self.left, self.left + self.mask.shape[1])

    @staticmethod
    def of(mask: np.ndarray) -> "CroppedMask":
        """The crop of a whole-frame (H, W) bool mask (an empty one is 0 x 0)."""
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if not rows.size:
            return CroppedMask.EMPTY
        crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
        return CroppedMask(int(rows[0]), int(cols[0]), crop, int(np.count_nonzero(crop)))


CroppedMask.EMPTY = CroppedMask(0, 0, np.zeros((0, 0), bool), 0)


def cropped_iou(a: Sequence[CroppedMask], b: Sequence[CroppedMask]) -> np.ndarray:
    """IoU of every pair of cropped masks: (N, M) float64, 0 for pairs with an empty mask;
    :func:`mask_iou` of the whole-frame masks, counted in the overlap of the two boxes."""
    iou = np.zeros((len(a), len(b)), np.float64)
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            if not p.area or not q.area:
                continue
            y0, x0 = max(p.top, q.top), max(p.left, q.left)
            y1 = min(p.top + p.mask.shape[0], q.top + q.mask.shape[0])
            x1 = min(p.left + p.mask.shape[1], q.left + q.mask.shape[1])
            if y0 < y1 and x0 < x1:
                overlap_p = p.mask[y0 - p.top : y1 - p.top, x0 - p.left : x1 - p.left]
                overlap_q = q.mask[y0 - q.top : y1 - q.top, x0 - q.left : x1 - q.left]
                inter = np.count_nonzero(overlap_p & overlap_q)
                iou[i, j] = inter / (p.area + q.area - inter)
    return iou


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(height, width) times ``scale``, rounded, at least one pixel each."""
    return (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))


# A box from keypoints reaches past them by these fractions of the keypoints' span (their
# box's longer side): the top of the head lies above the eyes and ears, the soles below the
# ankles, the hands beyond the wrists.
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_SIDE = 0.2, 0.1, 0.1
# The fewest keypoints at MIN_KEYPOINT_SCORE that place a person's box.
MIN_KEYPOINTS = 4


def keypoint_boxes(keypoints: np.ndarray, min_score: float = MIN_KEYPOINT_SCORE) -> tuple[np.ndarray, np.ndarray]:
    """Boxes around each person's confident keypoints.

    Args:
        keypoints: (N, K, 3) float x, y (pixels), score.
    Returns:
        (N, 4) float32 x1 y1 x2 y2 boxes (pixel edges), the keypoints' span widened by the
        margins above, and (N,) bool: which persons have ``MIN_KEYPOINTS`` keypoints scoring
        ``min_score`` (the others' boxes are zeros).
    """
    keypoints = np.asarray(keypoints, np.float32)
    seen = keypoints[..., 2] >= min_score
    placed = seen.sum(1) >= MIN_KEYPOINTS
    boxes = np.zeros((len(keypoints), 4), np.float32)
    for k in np.flatnonzero(placed):
        x, y = keypoints[k, seen[k], 0], keypoints[k, seen[k], 1]
        span = max(float(x.max() - x.min()), float(y.max() - y.min()), 1.0)
        boxes[k] = (x.min() - MARGIN_SIDE * span, y.min() - MARGIN_TOP * span, x.max() + MARGIN_SIDE * span, y.max() + MARGIN_BOTTOM * span)
    return boxes, placed
