"""Detections from an annotated data set's ground truth, exact or with a detector's errors.

:class:`GroundTruthDetector` gives each person's tight box; :class:`SimulatedDetector` the
same boxes through :func:`simulate_detections`, the noise model of an imperfect detector
(:class:`DetectionNoise`: jitter, truncation, misses, false positives) that training draws
its detections from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.cihp import read_label_png
from ..errors import HumanParseError
from ..ops import person_boxes
from ..structures import Detections


@dataclass(frozen=True)
class DetectionNoise:
    """How simulated detections differ from the true boxes, each effect with its own rate.

    jitter: each coordinate moves by N(0, jitter × box side). truncation_rate: share of
    boxes with one side cut in by a fraction in ``truncation`` (the bottom most often: the
    paper's boxes that miss the legs). miss_rate: share of people not detected.
    false_positives: mean number (Poisson) of boxes on no one.
    """

    jitter: float = 0.05
    truncation_rate: float = 0.15
    truncation: tuple[float, float] = (0.2, 0.5)
    miss_rate: float = 0.05
    false_positives: float = 0.3
    true_scores: tuple[float, float] = (0.5, 1.0)
    false_scores: tuple[float, float] = (0.05, 0.7)


@dataclass(frozen=True)
class SimulatedDetections:
    """boxes: (D, 4) float32 x1 y1 x2 y2 in the image; scores: (D,) float32, decreasing;
    person: (D,) int32, the ground-truth person a box came from, 0 for a false positive."""

    boxes: np.ndarray
    scores: np.ndarray
    person: np.ndarray


def simulate_detections(
    rng: np.random.Generator, gt_boxes: np.ndarray, height: int, width: int, noise: DetectionNoise = DetectionNoise()
) -> SimulatedDetections:
    """Detections as an imperfect detector would give them for these ground-truth boxes.

    Args:
        rng: draws every error; the same generator state gives the same detections.
        gt_boxes: (n, 4) float x1 y1 x2 y2 pixels, row k for person k + 1; a NaN row for a
            person not visible (never detected).
        height, width: the image's size in pixels; the boxes are clipped to it.
    """
    boxes, scores, person = [], [], []
    for pid, box in enumerate(gt_boxes, start=1):
        if np.isnan(box).any() or rng.random() < noise.miss_rate:
            continue
        w, h = box[2] - box[0], box[3] - box[1]
        b = box + rng.normal(0, noise.jitter, 4) * np.array([w, h, w, h])
        if rng.random() < noise.truncation_rate:
            side = int(rng.choice(4, p=[0.15, 0.15, 0.15, 0.55]))  # x1, y1, x2, y2
            cut = rng.uniform(*noise.truncation) * (w if side in (0, 2) else h)
            b[side] += cut if side < 2 else -cut
        boxes.append(b)
        scores.append(rng.uniform(*noise.true_scores))
        person.append(pid)
    for _ in range(int(rng.poisson(noise.false_positives))):
        w, h = rng.uniform(0.05, 0.4) * width, rng.uniform(0.1, 0.7) * height
        x, y = rng.uniform(-0.1 * w, width - 0.9 * w), rng.uniform(-0.1 * h, height - 0.9 * h)
        boxes.append(np.array([x, y, x + w, y + h]))
        scores.append(rng.uniform(*noise.false_scores))
        person.append(0)
    if not boxes:
        return SimulatedDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))
    out = np.stack(boxes).astype(np.float32)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2] + 1)  # never empty or inverted
    order = np.argsort(-np.asarray(scores), kind="stable")
    return SimulatedDetections(out[order], np.asarray(scores, np.float32)[order], np.asarray(person, np.int32)[order])


class GroundTruthDetector:
    """The tight boxes of each person in a CIHP-layout data set, with score 1."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / "Human_ids").is_dir():
            raise HumanParseError(f"{self.root}: ground-truth detections need person ids (Human_ids/)")

    def boxes(self, key: str | int | None, shape: tuple[int, int]) -> np.ndarray:
        """(N, 4) float32 x1 y1 x2 y2 pixel-edge boxes of the persons of image ``key``, whose
        (H, W) is ``shape``, in increasing id order."""
        if key is None:
            raise HumanParseError("ground-truth detections need the image's id")
        persons = read_label_png(self.root / "Human_ids" / f"{Path(str(key)).stem}.png", shape)
        return person_boxes(persons)[1]

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        boxes = self.boxes(key, image.shape[:2])
        return Detections(boxes, np.ones(len(boxes), np.float32))


class SimulatedDetector(GroundTruthDetector):
    """Ground-truth boxes with the errors of an imperfect detector (jitter, truncation,
    misses, false positives); the same image and seed always give the same detections."""

    def __init__(self, root: str | Path, noise: DetectionNoise = DetectionNoise(), seed: int = 0) -> None:
        super().__init__(root)
        self.noise = noise
        self.seed = seed

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        boxes = self.boxes(key, image.shape[:2])
        # A stream per image, keyed by its name, so that order and repetition do not matter.
        digest = int(hashlib.sha256(str(key).encode()).hexdigest()[:16], 16)
        rng = np.random.default_rng([self.seed, digest])
        sim = simulate_detections(rng, boxes, image.shape[0], image.shape[1], self.noise)
        return Detections(sim.boxes, sim.scores)
