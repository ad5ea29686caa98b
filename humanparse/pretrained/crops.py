"""Square crops for top-down networks, and back: :func:`square_regions`, :func:`crop_square`,
:func:`paste_masks`, :func:`resize_image`, :func:`drop_borrowed_keypoints`.

A top-down pose network sees one person at a time, in a square crop of fixed size around the
person's box. A region is (x1, y1, x2, y2) in image pixels (pixel edges), square, and may
reach outside the image, where the crop is black, as MediaPipe's and MoveNet's crops are.
"""

from __future__ import annotations

import cv2
import numpy as np


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (H, W, C) uint8 at (height, width): area averaging when shrinking (no
    aliasing), bilinear when enlarging."""
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def square_regions(boxes: np.ndarray, scale: float) -> np.ndarray:
    """(D, 4) float32 square regions centred on ``boxes`` (D, 4) x1 y1 x2 y2 pixels, each
    side ``scale`` times the box's longer side (at least one pixel)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = np.maximum((boxes[:, 2:] - boxes[:, :2]).max(axis=1) * scale, 1.0)[:, None] / 2
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def crop_square(image: np.ndarray, region: np.ndarray, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 crop of ``image`` (H, W, 3) over the square ``region``
    (4,), black outside the image; pixel centres map linearly onto the region."""
    x1, y1, x2, _ = (float(v) for v in region)
    s = size / (x2 - x1)
    # Output pixel centre u + 0.5 looks at x1 + (u + 0.5) / s, i.e. x = u / s + x1 + 0.5 / s - 0.5.
    matrix = np.array([[1 / s, 0, x1 + 0.5 / s - 0.5], [0, 1 / s, y1 + 0.5 / s - 0.5]], np.float64)
    factor = int(1 / s)
    if factor >= 2:
        # warpAffine samples bilinearly, which aliases a strong shrink: average the source
        # down by an integer factor first, and warp from there.
        small = cv2.resize(image, (max(1, image.shape[1] // factor), max(1, image.shape[0] // factor)), interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]
        matrix = np.array([[fx / s, 0, (x1 + 0.5 / s) * fx - 0.5], [0, fy / s, (y1 + 0.5 / s) * fy - 0.5]], np.float64)
        image = small
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def to_image_coordinates(points: np.ndarray, region: np.ndarray, size: int) -> np.ndarray:
    """Points (..., 2) x, y in a ``size``-pixel crop's coordinates (pixel edges) mapped into
    the image over ``region``."""
    x1, y1, x2, _ = (float(v) for v in region)
    return np.asarray(points, np.float32) * ((x2 - x1) / size) + np.array([x1, y1], np.float32)


def paste_masks(masks: np.ndarray, regions: np.ndarray, height: int, width: int) -> np.ndarray:
    """Per-person crop masks (D, S, S) float in [0, 1] over ``regions`` (D, 4), pasted into
    a (D, height, width) float32 image frame (0 outside each region)."""
    out = np.zeros((len(masks), height, width), np.float32)
    for k, (mask, region) in enumerate(zip(masks, regions)):
        x1, y1, x2, _ = (float(v) for v in region)
        s = mask.shape[0] / (x2 - x1)
        # Image pixel centre x + 0.5 lies at (x + 0.5 - x1) * s in the mask: u = s x + s (0.5 - x1) - 0.5.
        matrix = np.array([[s, 0, s * (0.5 - x1) - 0.5], [0, s, s * (0.5 - y1) - 0.5]], np.float64)
        out[k] = cv2.warpAffine(mask.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


# How far outside its own box (a share of the box's width, or height) a keypoint may lie and
# still be the box's own when it lies inside another person's box.
OWN_BOX_MARGIN = 0.1


def drop_borrowed_keypoints(keypoints: np.ndarray, boxes: np.ndarray, margin: float = OWN_BOX_MARGIN) -> np.ndarray:
    """Keypoints a top-down network found for each box, without those it took from a
    neighbour: the square crop of a thin box (a half-seen person at the frame's edge, a false
    detection on a flag) takes in the person beside it, and the network finds that person's
    joints. A keypoint is borrowed, and gets score 0, where it lies outside its own box
    widened by ``margin`` of the box's width and height, and inside another person's box
    (a raised hand outside every box stays).

    Args:
        keypoints: (D, K, 3) float x, y (image pixels) and score, per box.
        boxes: (D, 4) float x1 y1 x2 y2 image pixels.
    Returns:
        (D, K, 3) float32, a copy.
    """
    out = np.array(keypoints, np.float32, copy=True).reshape(len(boxes), -1, 3)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) < 2:
        return out
    x, y = out[..., 0:1], out[..., 1:2]  # (D, K, 1), against every box (1, 1, D)

    def inside(pad: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = ((boxes[:, j] + pad[:, j])[None, None, :] for j in range(4))
        return (x >= x1) & (x <= x2) & (y >= y1) & (y <= y2)  # (D, K, D)

    size = boxes[:, 2:] - boxes[:, :2]
    widened = inside(np.concatenate([-margin * size, margin * size], 1))
    plain = inside(np.zeros_like(boxes))
    own = np.arange(len(boxes))
    in_own = widened[own, :, own]  # (D, K)
    plain[own, :, own] = False
    out[..., 2] = np.where(~in_own & plain.any(2), 0.0, out[..., 2])
    return out
