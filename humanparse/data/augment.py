"""Training augmentation (paper appendix B.2.1), applied alike to image, labels and boxes.

Random mirror (swapping left/right labels where the label set has pairs), scale 0.5–2,
rotation ±10°, HSV jitter and Gaussian blur. The geometric part is one affine map: the
image is resampled bilinearly, the label maps by nearest neighbour, and the boxes by their
corners. Pixels that come from outside the source image are ignored (255) in the part map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..labels import IGNORE, LabelSet


@dataclass(frozen=True)
class AugmentConfig:
    mirror: bool = True
    scale: tuple[float, float] = (0.5, 2.0)
    rotation: float = 10.0  # degrees, either way
    hue: float = 8.0  # degrees of hue shift, either way
    saturation: float = 0.3  # relative, either way
    value: float = 0.3
    blur_rate: float = 0.3
    blur_sigma: tuple[float, float] = (0.5, 1.5)


@dataclass(frozen=True)
class Augmented:
    image: np.ndarray  # (H', W', 3) uint8 RGB
    parts: np.ndarray  # (H', W') uint8, 255 where the source had no pixel
    persons: np.ndarray | None  # (H', W') uint8
    boxes: np.ndarray  # (n, 4) float32, clipped to the new image


def augment(
    rng: np.random.Generator,
    image: np.ndarray,
    parts: np.ndarray,
    persons: np.ndarray | None,
    boxes: np.ndarray,
    labels: LabelSet,
    config: AugmentConfig = AugmentConfig(),
) -> Augmented:
    """One random augmentation of an annotated image.

    Args:
        image: (H, W, 3) uint8 RGB. parts: (H, W) uint8. persons: (H, W) uint8 or None.
        boxes: (n, 4) float x1 y1 x2 y2 (ground truth or detections).
    """
    h, w = parts.shape
    flip = config.mirror and rng.random() < 0.5
    scale = float(math.exp(rng.uniform(math.log(config.scale[0]), math.log(config.scale[1]))))
    angle = float(rng.uniform(-config.rotation, config.rotation))
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    # Source pixel centre (x + ½) -> mirrored -> rotated about the image centre and scaled.
    matrix = cv2.getRotationMatrix2D((out_w / 2, out_h / 2), angle, 1.0) @ np.array(
        [[scale * (-1 if flip else 1), 0, out_w / 2 - scale * (-w / 2 if flip else w / 2)], [0, scale, out_h / 2 - scale * h / 2], [0, 0, 1]]
    )
    # warpAffine maps pixel indices, not centres: shift by ½ on both sides.
    to_index = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    from_index = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    pixel_matrix = (to_index @ np.vstack([matrix, [0, 0, 1]]) @ from_index)[:2]
    size = (out_w, out_h)
    new_image = cv2.warpAffine(image, pixel_matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    new_parts = cv2.warpAffine(parts, pixel_matrix, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE)
    if flip:
        new_parts = np.asarray(labels.mirror_table() + list(range(len(labels.names), 256)), np.uint8)[new_parts]
    new_persons = None
    if persons is not None:
        new_persons = cv2.warpAffine(persons, pixel_matrix, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    new_boxes = _transform_boxes(boxes, matrix, out_w, out_h)
    return Augmented(_photometric(rng, new_image, config), new_parts, new_persons, new_boxes)


def _transform_boxes(boxes: np.ndarray, matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack([x1, y1]), np.stack([x2, y1]), np.stack([x1, y2]), np.stack([x2, y2])])  # (4, 2, n)
    moved = np.einsum("ij,cjn->cin", matrix[:, :2], corners) + matrix[:, 2][None, :, None]
    out = np.stack([moved[:, 0].min(0), moved[:, 1].min(0), moved[:, 0].max(0), moved[:, 1].max(0)], 1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out.astype(np.float32)


def _photometric(rng: np.random.Generator, image: np.ndarray, config: AugmentConfig) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-config.hue, config.hue) / 2) % 180  # OpenCV hue is 0..179
    hsv[..., 1] *= 1 + rng.uniform(-config.saturation, config.saturation)
    hsv[..., 2] *= 1 + rng.uniform(-config.value, config.value)
    image = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    if rng.random() < config.blur_rate:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(*config.blur_sigma))
    return image
