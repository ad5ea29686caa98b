"""Other granularities of the Instance CRF output (paper Sec. 3.4), and its readout.

The argmax label (i, j) — part j of person i, channel ``(i-1)·P + j``, 0 = background —
found at the image's size from the CRF's grid (:func:`upsampled_max`), gives the
category-level part map (→ j), the person instance map (→ i), and the part and person
instances that AP^r ranks, read out as a :class:`~humanparse.structures.ParsingResult`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import HumanParseError
from ..labels import LabelSet
from ..structures import ParsingResult, PartScore

__all__ = ["InstanceStatistics", "instance_statistics", "part_map", "parsing_result", "person_map", "upsampled_max"]


def _check_labels(labels: Tensor, num_parts: int) -> None:
    if labels.dim() != 2 or labels.is_floating_point() or labels.is_complex():
        raise HumanParseError(f"label map must be an (H, W) integer tensor, got {tuple(labels.shape)} {labels.dtype}")
    if num_parts < 1:
        raise HumanParseError(f"num_parts must be positive, got {num_parts}")


def upsampled_max(probs: Tensor, size: tuple[int, int], chunk: int = 16) -> tuple[Tensor, Tensor]:
    """Max and argmax over channels at the image's size, for a CRF that ran on a smaller grid.

    Upsampling the probabilities rather than the labels keeps edges smooth where labels
    would make them blocky; a few channels at a time, so that the full (L, H, W) stack
    never exists. At the grid's own size it is the plain max.

    Args:
        probs: (L, h, w) float probabilities per channel (the Instance CRF's, or sums of
            them), on the CRF's grid.
        size: (H, W) the image's size; probs are upsampled bilinearly to it.
        chunk: the channels upsampled at once.

    Returns:
        (H, W) float the largest probability and (H, W) long its channel (the first of
        equal ones), on the device of ``probs``; -1 and 0 without channels (L = 0).
    """
    if tuple(probs.shape[-2:]) == tuple(size) and len(probs):
        value, index = probs.max(0)
        return value, index
    best = torch.full(size, -1.0, device=probs.device)
    labels = torch.zeros(size, dtype=torch.long, device=probs.device)
    for start in range(0, probs.shape[0], chunk):
        up = F.interpolate(probs[None, start : start + chunk], size, mode="bilinear", align_corners=False)[0]
        value, index = up.max(0)
        better = value > best
        best = torch.where(better, value, best)
        labels = torch.where(better, index + start, labels)
    return best, labels


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
    counts, on the device of the labels; a label without pixels has count 0 and score 0.

    A part instance's score is the detection score × the mean over its mask of the
    probability of its label (person, part) (DESIGN.md §2, Evaluation). A person's score
    is the detection score × the mean over its mask of the winning (argmax) label's
    probability, so a detection the CRF gives only uncertain pixels ranks below a
    confident one: the part scores' definition applied to the union of its part masks.
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


def parsing_result(confidence: Tensor, labels: Tensor, boxes: Tensor, scores: Tensor, label_set: LabelSet, keypoints: np.ndarray | None = None) -> ParsingResult:
    """Read a CRF labelling out as a result: the persons that got pixels are numbered 1..N
    by decreasing score (see :class:`InstanceStatistics`), each with its detection box.

    Args:
        confidence: (H, W) float probability of the argmax label.
        labels: (H, W) integer argmax labels of the (P·D+1)-channel Instance CRF output.
        boxes: (D, 4) float x1 y1 x2 y2 pixels and scores: (D,) float, the detections.
        label_set: the P part labels.
        keypoints: (D, K, 3) float per detection, kept with their persons (None: K = 0).
    """
    p = label_set.num_parts
    if boxes.dim() != 2 or boxes.shape[1] != 4 or tuple(scores.shape) != (boxes.shape[0],):
        raise HumanParseError(f"boxes must be (D, 4) and scores (D,), got {tuple(boxes.shape)} and {tuple(scores.shape)}")
    _check_labels(labels, p)
    d = len(scores)
    stats = instance_statistics(confidence, labels, scores, p)
    # Everything is found where the labels are (the GPU on CUDA) and comes to the host in
    # two copies, the statistics and the two maps, with no synchronisation in between.
    # New ids 1..N by decreasing score for the detections that got pixels, 0 for the others.
    present = stats.person_counts > 0
    order = torch.argsort(torch.where(present, -stats.person_scores, torch.inf), stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(d, device=order.device)
    new_id = torch.where(present, rank + 1, 0)
    # Label (i, j) -> (new id of i, j), through two lookup tables; uint8 maps while ids fit.
    dtype = torch.uint8 if d < 256 else torch.int32
    zero = new_id.new_zeros(1)
    person_of = torch.cat((zero, new_id.repeat_interleave(p))).to(dtype)
    part_of = torch.cat((zero, torch.arange(1, p + 1, device=zero.device).repeat(d))).to(dtype)
    top = labels.max().reshape(1).double() if labels.numel() else zero.double()
    summary = torch.cat((top, new_id.double(), stats.person_scores, stats.counts.double().reshape(-1), stats.part_scores.reshape(-1),
                         boxes.detach().to(top).reshape(-1))).cpu().numpy()
    if summary[0] > p * d:
        raise HumanParseError(f"labels up to {int(summary[0])} for {d} detections of {p} parts (at most {p * d})")
    indices = labels.long()  # within the tables: checked above
    maps = torch.stack((person_of[indices], part_of[indices])).cpu().numpy()
    new_ids = summary[1 : d + 1].astype(np.int64)
    person_scores = summary[d + 1 : 2 * d + 1]
    counts = summary[2 * d + 1 : 2 * d + 1 + d * p].reshape(d, p).astype(np.int64)
    part_scores = summary[2 * d + 1 + d * p : 2 * d + 1 + 2 * d * p].reshape(d, p)
    box_values = summary[2 * d + 1 + 2 * d * p :].reshape(d, 4)
    kept = np.argsort(np.where(new_ids > 0, new_ids, d + 1), kind="stable")[: int((new_ids > 0).sum())]
    part_instances = tuple(
        PartScore(new_id, j + 1, float(part_scores[det, j]), int(counts[det, j]))
        for new_id, det in enumerate(kept.tolist(), start=1)
        for j in range(p)
        if counts[det, j]
    )
    return ParsingResult(
        maps[1].astype(np.uint8, copy=False),
        maps[0].astype(np.int32),
        np.arange(1, len(kept) + 1, dtype=np.int64),
        box_values[kept].astype(np.float32).reshape(-1, 4),
        person_scores[kept].astype(np.float32),
        part_instances,
        label_set,
        None if keypoints is None else np.asarray(keypoints, np.float32)[kept],
    )
