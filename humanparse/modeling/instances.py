"""Other granularities of the Instance CRF output (paper Sec. 3.4).

The argmax label (i, j) — part j of person i, channel ``(i-1)·P + j``, 0 = background —
gives the category-level part map (→ j), the person instance map (→ i), and the part and
person instances that AP^r ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import HumanParseError

__all__ = ["InstanceStatistics", "PartInstance", "PersonInstance", "extract_instances", "instance_statistics", "part_map", "person_map"]


def _check_mask(mask: np.ndarray) -> None:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.bool_:
        raise HumanParseError("an instance mask must be an (H, W) bool numpy array")


# eq=False: the generated __eq__ would compare masks with ``==``, which is ambiguous for
# arrays and raises; instances compare by identity instead.
@dataclass(frozen=True, eq=False)
class PartInstance:
    """Part ``part`` (1..P) of person ``person`` (1..D, the detection's 1-based index).

    ``mask``: (H, W) bool numpy array. ``score`` = detection score × the mean over the mask
    of the probability of the label (person, part) (DESIGN.md §2, Evaluation).
    """

    person: int
    part: int
    mask: np.ndarray
    score: float

    def __post_init__(self) -> None:
        if self.person < 1 or self.part < 1:
            raise HumanParseError(f"person and part are 1-based, got person {self.person}, part {self.part}")
        _check_mask(self.mask)


@dataclass(frozen=True, eq=False)
class PersonInstance:
    """Person ``person`` (1..D, the detection's 1-based index).

    ``mask``: (H, W) bool numpy array, the pixels of any of its part labels. ``box``: the
    detection's (x1, y1, x2, y2) in pixels. ``score`` = detection score × the mean over
    the mask of the winning (argmax) label's probability, so a detection the CRF gives
    only uncertain pixels ranks below a confident one; it is the part scores' definition
    applied to the union of the person's part masks.
    """

    person: int
    mask: np.ndarray
    box: tuple[float, float, float, float]
    score: float

    def __post_init__(self) -> None:
        if self.person < 1:
            raise HumanParseError(f"person is 1-based, got {self.person}")
        if len(self.box) != 4:
            raise HumanParseError(f"box must be (x1, y1, x2, y2), got {self.box}")
        _check_mask(self.mask)


def _check_labels(labels: Tensor, num_parts: int) -> None:
    if labels.dim() != 2 or labels.is_floating_point() or labels.is_complex():
        raise HumanParseError(f"label map must be an (H, W) integer tensor, got {tuple(labels.shape)} {labels.dtype}")
    if num_parts < 1:
        raise HumanParseError(f"num_parts must be positive, got {num_parts}")


def part_map(labels: Tensor, num_parts: int) -> Tensor:
    """Category-level part map: label (i, j) → j.

    Args:
        labels: (H, W) integer Instance CRF labels (argmax over channels).
        num_parts: P.

    Returns:
        (H, W) long part labels 1..P, 0 = background, on the device of ``labels``.
    """
    _check_labels(labels, num_parts)
    labels = labels.long()
    return torch.where(labels > 0, (labels - 1) % num_parts + 1, 0)


def person_map(labels: Tensor, num_parts: int) -> Tensor:
    """Person instance map: label (i, j) → i.

    Args:
        labels: (H, W) integer Instance CRF labels (argmax over channels).
        num_parts: P.

    Returns:
        (H, W) long 1-based detection indices, 0 = background, on the device of ``labels``.
    """
    _check_labels(labels, num_parts)
    labels = labels.long()
    return torch.where(labels > 0, (labels - 1) // num_parts + 1, 0)


@dataclass(frozen=True)
class InstanceStatistics:
    """Pixel counts and scores of every (person, part) label of one CRF labelling.

    counts, part_scores: (D, P); person_counts, person_scores: (D,); float64 scores, long
    counts, on the device of the labels. Scores as defined on :class:`PartInstance` and
    :class:`PersonInstance`; a label without pixels has count 0 and score 0.
    """

    counts: Tensor
    part_scores: Tensor
    person_counts: Tensor
    person_scores: Tensor


def instance_statistics(confidence: Tensor, labels: Tensor, scores: Tensor, num_parts: int) -> InstanceStatistics:
    """Counts and scores from the argmax ``labels`` (H, W) and its probability ``confidence``
    (H, W), for ``scores`` (D,) detection scores."""
    d, p = scores.shape[0], num_parts
    # The max is the argmax label's probability, so one bincount of it per label gives the
    # sum of each label's probability over its own mask.
    flat = labels.reshape(-1)
    counts = torch.bincount(flat, minlength=p * d + 1)[1 : p * d + 1].reshape(d, p)
    sums = torch.bincount(flat, weights=confidence.reshape(-1).double(), minlength=p * d + 1)[1 : p * d + 1].reshape(d, p)
    det_scores = scores.detach().double().to(sums.device)
    person_counts = counts.sum(1)
    return InstanceStatistics(
        counts,
        det_scores[:, None] * sums / counts.clamp_min(1),
        person_counts,
        det_scores * sums.sum(1) / person_counts.clamp_min(1),
    )


def extract_instances(
    probs: Tensor, boxes: Tensor, scores: Tensor, num_parts: int
) -> tuple[list[PersonInstance], list[PartInstance]]:
    """Person and part instances from the Instance CRF probabilities.

    Every pixel goes to its argmax label. A part instance is the mask of one label (i, j)
    with at least one pixel, a person instance the union of detection i's part masks when
    not empty; see :class:`PartInstance` and :class:`PersonInstance` for their scores.

    Args:
        probs: (P·D+1, H, W) float probabilities, CPU or CUDA.
        boxes: (D, 4) float detection boxes x1 y1 x2 y2 in pixels; D may be 0.
        scores: (D,) float detection scores in [0, 1].
        num_parts: P.

    Returns:
        Persons in detection order and parts in (person, part) order, with numpy masks.
    """
    if num_parts < 1:
        raise HumanParseError(f"num_parts must be positive, got {num_parts}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise HumanParseError(f"boxes must be (D, 4), got {tuple(boxes.shape)}")
    d, p = boxes.shape[0], num_parts
    if probs.dim() != 3 or probs.shape[0] != p * d + 1:
        raise HumanParseError(f"expected ({p * d + 1}, H, W) probabilities for {d} detections, got {tuple(probs.shape)}")
    if tuple(scores.shape) != (d,):
        raise HumanParseError(f"scores must be ({d},), got {tuple(scores.shape)}")
    if d == 0:
        return [], []

    confidence, labels = probs.detach().max(0)
    stats = instance_statistics(confidence, labels, scores, p)
    counts, part_scores, person_counts, person_scores = stats.counts, stats.part_scores, stats.person_counts, stats.person_scores

    labels_np = labels.cpu().numpy()
    persons_np = person_map(labels, p).cpu().numpy()
    counts_l, part_scores_l = counts.tolist(), part_scores.tolist()
    person_counts_l, person_scores_l = person_counts.tolist(), person_scores.tolist()
    boxes_l = boxes.detach().double().cpu().tolist()
    # One comparison per instance rather than one broadcast (K, H, W) stack: each mask is
    # then its own array, and keeping one alive does not keep the whole stack.
    persons = [
        PersonInstance(i + 1, persons_np == i + 1, tuple(boxes_l[i]), person_scores_l[i])
        for i in range(d)
        if person_counts_l[i]
    ]
    parts = [
        PartInstance(i + 1, j + 1, labels_np == i * p + j + 1, part_scores_l[i][j])
        for i in range(d)
        for j in range(p)
        if counts_l[i][j]
    ]
    return persons, parts
