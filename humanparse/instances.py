"""Other granularities of the Instance CRF output (paper Sec. 3.4).

The argmax label (i, j) — part j of person i — gives the category-level part map
(→ j), the person instance map (→ i), and the part and person instances themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .errors import HumanParseError


@dataclass(frozen=True)
class PartInstance:
    """Part ``part`` (1..P) of person ``person`` (1..D); ``mask`` (H, W) bool.

    ``score`` = detection score × mean probability of the label over its mask.
    """

    person: int
    part: int
    mask: np.ndarray
    score: float


@dataclass(frozen=True)
class PersonInstance:
    """Person ``person`` (1..D) with its (H, W) bool mask and detection box (x1, y1, x2, y2).

    ``score`` = detection score × mean over the mask of the winning label's probability,
    so a detection the CRF gives only uncertain pixels ranks below a confident one.
    """

    person: int
    mask: np.ndarray
    box: tuple[float, float, float, float]
    score: float


def _check_labels(labels: Tensor, num_parts: int) -> None:
    if labels.dim() != 2:
        raise HumanParseError(f"label map must be (H, W), got {tuple(labels.shape)}")
    if num_parts < 1:
        raise HumanParseError(f"num_parts must be positive, got {num_parts}")


def part_map(labels: Tensor, num_parts: int) -> Tensor:
    """(H, W) Instance CRF labels -> (H, W) long part labels, 0 = background."""
    _check_labels(labels, num_parts)
    labels = labels.long()
    return torch.where(labels > 0, (labels - 1) % num_parts + 1, torch.zeros_like(labels))


def person_map(labels: Tensor, num_parts: int) -> Tensor:
    """(H, W) Instance CRF labels -> (H, W) long person ids 1..D, 0 = background."""
    _check_labels(labels, num_parts)
    labels = labels.long()
    return torch.where(labels > 0, (labels - 1) // num_parts + 1, torch.zeros_like(labels))


def extract_instances(
    probs: Tensor, boxes: Tensor, scores: Tensor, num_parts: int
) -> tuple[list[PersonInstance], list[PartInstance]]:
    """Person and part instances from (P·D+1, H, W) Instance CRF probabilities.

    Args:
        probs: (P·D+1, H, W) float.
        boxes: (D, 4) float x1 y1 x2 y2 pixels; scores: (D,) float.

    Returns:
        Persons with at least one pixel (in detection order) and their parts with at least
        one pixel (in person, then part order); masks are numpy bool arrays.
    """
    d = boxes.shape[0]
    if probs.dim() != 3 or probs.shape[0] != num_parts * d + 1:
        raise HumanParseError(f"expected ({num_parts * d + 1}, H, W) probabilities for {d} detections, got {tuple(probs.shape)}")
    if scores.shape != (d,):
        raise HumanParseError(f"scores must be ({d},), got {tuple(scores.shape)}")
    if d == 0:
        return [], []
    confidence, labels = probs.max(0)
    flat_labels = labels.reshape(-1)
    counts = torch.bincount(flat_labels, minlength=probs.shape[0])
    sums = torch.bincount(flat_labels, weights=confidence.reshape(-1).double(), minlength=probs.shape[0])
    persons_of = person_map(labels, num_parts)
    labels_np = labels.cpu().numpy()
    persons_np = persons_of.cpu().numpy()
    counts_l, sums_l = counts.tolist(), sums.tolist()
    box_l, score_l = boxes.detach().double().cpu().tolist(), scores.detach().double().cpu().tolist()
    persons: list[PersonInstance] = []
    parts: list[PartInstance] = []
    for i in range(1, d + 1):
        first, last = (i - 1) * num_parts + 1, i * num_parts
        area = sum(counts_l[first : last + 1])
        if area == 0:
            continue
        mean_conf = sum(sums_l[first : last + 1]) / area
        persons.append(PersonInstance(i, persons_np == i, tuple(box_l[i - 1]), score_l[i - 1] * mean_conf))
        for label in range(first, last + 1):
            if counts_l[label]:
                # The mean probability of this label over its mask: the argmax confidence.
                parts.append(PartInstance(i, label - first + 1, labels_np == label, score_l[i - 1] * sums_l[label] / counts_l[label]))
    return persons, parts
