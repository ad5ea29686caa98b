"""Validated data at module boundaries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .errors import HumanParseError


@dataclass(frozen=True)
class Detections:
    """Person detections of one image.

    boxes: (D, 4) float32 x1 y1 x2 y2 in pixels, x2 >= x1 and y2 >= y1; scores: (D,)
    float32 in [0, 1]. D may be 0. Checked on construction, so every detector's output,
    file-read or computed, obeys the same contract.
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4) if np.size(self.boxes) == 0 else np.asarray(self.boxes, np.float32)
        scores = np.asarray(self.scores, np.float32).reshape(-1)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
            raise HumanParseError(f"detections need (D, 4) boxes and (D,) scores, got {boxes.shape} and {scores.shape}")
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise HumanParseError("detection boxes and scores must be finite")
        if ((scores < 0) | (scores > 1)).any():
            raise HumanParseError(f"detection scores must lie in [0, 1], got {scores.min():.3g}..{scores.max():.3g}")
        if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            raise HumanParseError("detection boxes must have x2 >= x1 and y2 >= y1")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def top(self, threshold: float = 0.0, max_count: int | None = None) -> "Detections":
        """The detections scoring at least ``threshold``, best first, at most ``max_count``."""
        order = np.argsort(-self.scores, kind="stable")
        order = order[self.scores[order] >= threshold][:max_count]
        return Detections(self.boxes[order], self.scores[order])

    def scaled(self, sx: float, sy: float) -> "Detections":
        """Boxes of the same image resized by sx horizontally and sy vertically."""
        return Detections(self.boxes * np.array([sx, sy, sx, sy], np.float32), self.scores)

    def clipped(self, height: int, width: int) -> "Detections":
        """Boxes clipped to a height × width image."""
        boxes = self.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        return Detections(boxes, self.scores)

    def tensors(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(D, 4) and (D,) float32 tensors, as the Instance CRF takes them."""
        return torch.from_numpy(self.boxes).to(device), torch.from_numpy(self.scores).to(device)


class Detector(Protocol):
    """Any person detector: ``detector(image, key=None) -> Detections``.

    ``image`` is (H, W, 3) uint8 RGB; ``key`` names the image for detectors that look
    results up: a file name (or its stem) for images, the frame number from 1 for video.
    """

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections: ...
