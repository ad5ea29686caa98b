"""The permutation-matched loss (paper Sec. 3.3): Hungarian matching, relabelling, OHEM.

Instance labels are arbitrary, so before the loss the ground-truth persons are matched to
the detections by maximising the total IoU of their segments (paper eq. 4), where segments
of different part labels have IoU 0. Persons are permuted as a whole (their parts follow
them), so the matching is between ground-truth persons g and detections i, scored by
``Σ_j IoU(gt segment (g, j), predicted segment (i, j))`` and solved by the Hungarian
algorithm. The ground truth is relabelled with the matched labels, and the loss is the
cross-entropy of the Instance CRF output over the K hardest pixels only (OHEM).

Label convention (the Instance CRF's): channel 0 is background and channel ``(i-1)·P + j``
is part j (1..P) of detection i (1..D). Ground truth is two (H, W) integer maps: ``parts``
(0 background, 1..P, 255 ignored) and ``persons`` (0 background, any positive ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchvision.ops import box_iou

from .errors import HumanParseError
from .labels import IGNORE
from .ops import person_boxes

__all__ = [
    "PAPER_OHEM_FRACTION",
    "Assignment",
    "MatchedLoss",
    "match_persons",
    "matched_instance_loss",
    "matched_target",
    "ohem_cross_entropy",
    "ohem_k",
    "person_iou_matrix",
]

# The paper keeps K = 2^15 pixels at its 521×521 training size, about 12% of them; the
# fraction, not K, carries over to other image sizes.
PAPER_OHEM_FRACTION = 2**15 / 521**2
# Weight of the box-IoU tie-break in match_persons: summed mask IoUs differ by far more
# than this whenever the prediction separates two pairs at all.
_BOX_TIE_BREAK = 1e-3


@dataclass(frozen=True)
class Assignment:
    """Ground-truth persons and the detection each was matched to.

    ``gt_ids[k]`` is a ground-truth person id; ``det_for_gt[k]`` is the 1-based index of
    its detection, or None when no detection was matched to it.
    """

    gt_ids: tuple[int, ...]
    det_for_gt: tuple[int | None, ...]

    def __post_init__(self) -> None:
        if len(self.gt_ids) != len(self.det_for_gt):
            raise HumanParseError(f"{len(self.gt_ids)} ground-truth ids but {len(self.det_for_gt)} matches")
        if len(set(self.gt_ids)) != len(self.gt_ids) or any(pid <= 0 for pid in self.gt_ids):
            raise HumanParseError(f"ground-truth person ids must be distinct and positive, got {self.gt_ids}")
        matched = [det for det in self.det_for_gt if det is not None]
        if len(set(matched)) != len(matched) or any(det < 1 for det in matched):
            raise HumanParseError(f"detections must be distinct 1-based indices, got {self.det_for_gt}")


@dataclass(frozen=True)
class MatchedLoss:
    """The loss of one image with what it was computed from.

    ``loss``: scalar float tensor, differentiable w.r.t. the probabilities.
    ``target``: (H, W) long matched ground truth (Instance CRF labels, ignore = 255).
    """

    loss: Tensor
    assignment: Assignment
    target: Tensor


def ohem_k(height: int, width: int, fraction: float) -> int:
    """The number of pixels OHEM keeps in a ``height`` × ``width`` image (at least 1).

    ``ohem_k(521, 521, PAPER_OHEM_FRACTION) == 2**15``, the paper's K.
    """
    if not 0.0 < fraction <= 1.0:
        raise HumanParseError(f"the OHEM fraction must be in (0, 1], got {fraction}")
    return max(1, round(fraction * height * width))


def _check_integer_map(name: str, value: Tensor) -> None:
    if value.dim() != 2 or value.is_floating_point() or value.is_complex():
        raise HumanParseError(f"{name} must be an (H, W) integer map, got {tuple(value.shape)} {value.dtype}")


def _check_ground_truth(gt_parts: Tensor, gt_persons: Tensor, shape: tuple[int, ...], num_parts: int) -> None:
    """Raise HumanParseError unless the ground truth is two (H, W) maps of ``shape`` in range."""
    if num_parts < 1:
        raise HumanParseError(f"num_parts must be positive, got {num_parts}")
    _check_integer_map("gt_parts", gt_parts)
    _check_integer_map("gt_persons", gt_persons)
    if tuple(gt_parts.shape) != shape or tuple(gt_persons.shape) != shape:
        raise HumanParseError(
            f"ground truth of shape {tuple(gt_parts.shape)} / {tuple(gt_persons.shape)} does not match the prediction {shape}"
        )
    valid = gt_parts[gt_parts != IGNORE]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) > num_parts):
        raise HumanParseError(f"ground-truth part labels must be 0..{num_parts} or {IGNORE}")
    if gt_persons.numel() and int(gt_persons.min()) < 0:
        raise HumanParseError("ground-truth person ids must be 0 (background) or positive")


def person_iou_matrix(
    pred_labels: Tensor, gt_parts: Tensor, gt_persons: Tensor, num_parts: int, num_detections: int
) -> tuple[np.ndarray, list[int]]:
    """Summed per-part IoU between every ground-truth person and every detection.

    Args:
        pred_labels: (H, W) integer Instance CRF labels in 0..P·D.
        gt_parts: (H, W) integer part labels (0 background, 1..P, 255 ignored).
        gt_persons: (H, W) integer person ids (0 background, any positive ids).
        num_parts: P.
        num_detections: D (0 allowed).

    Returns:
        A (G, D) float64 matrix with entry (g, i-1) = Σ_j IoU(gt (g, j), predicted (i, j)),
        and the G ground-truth person ids in row order (ascending). A ground-truth person is
        a positive id with at least one pixel of part 1..P; pixels whose part is 255 count
        for neither the ground truth nor the prediction.
    """
    _check_integer_map("pred_labels", pred_labels)
    _check_ground_truth(gt_parts, gt_persons, tuple(pred_labels.shape), num_parts)
    if num_detections < 0:
        raise HumanParseError(f"num_detections must be 0 or more, got {num_detections}")
    p, d = num_parts, num_detections
    if pred_labels.numel() and (int(pred_labels.min()) < 0 or int(pred_labels.max()) > p * d):
        raise HumanParseError(f"predicted labels must be 0..{p * d} for {d} detections of {p} parts")
    device = pred_labels.device
    keep = gt_parts.to(device) != IGNORE
    parts = gt_parts.to(device)[keep].long()
    persons = gt_persons.to(device)[keep].long()
    pred = pred_labels[keep].long()

    on_person = (persons > 0) & (parts > 0)
    ids, row = torch.unique(persons[on_person], return_inverse=True)
    gt_ids = [int(v) for v in ids.tolist()]
    g = len(gt_ids)
    if g == 0 or d == 0:
        return np.zeros((g, d)), gt_ids

    # Flat segment indices: ground truth (g, j) -> g·P + j-1; prediction (i, j) -> label-1.
    person_parts = parts[on_person]
    gt_area = torch.bincount(row * p + person_parts - 1, minlength=g * p).double()
    pred_area = torch.bincount(pred[pred > 0] - 1, minlength=d * p).double()
    # Intersections exist only between equal part labels, so count (g, i, j) triples on the
    # person pixels whose predicted part equals the ground-truth part.
    pred_here = pred[on_person]
    same_part = (pred_here > 0) & ((pred_here - 1) % p + 1 == person_parts)
    det = (pred_here[same_part] - 1) // p
    triple = (row[same_part] * d + det) * p + person_parts[same_part] - 1
    inter = torch.bincount(triple, minlength=g * d * p).double().reshape(g, d, p)
    union = gt_area.reshape(g, 1, p) + pred_area.reshape(1, d, p) - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1.0), torch.zeros_like(inter))
    return iou.sum(2).cpu().numpy(), gt_ids


def match_persons(
    pred_labels: Tensor,
    gt_parts: Tensor,
    gt_persons: Tensor,
    num_parts: int,
    num_detections: int,
    *,
    boxes: Tensor | None = None,
) -> Assignment:
    """Hungarian matching of ground-truth persons to detections, maximising the total IoU.

    Args:
        pred_labels, gt_parts, gt_persons, num_parts, num_detections: as for
            :func:`person_iou_matrix`.
        boxes: optional (D, 4) float detection boxes x1 y1 x2 y2 in pixels. When given,
            ``1e-3 × IoU(detection box, box of the person's pixels)`` is added to the
            score, which only decides between pairs the masks do not tell apart: a person
            the prediction misses entirely is still matched to the detection covering it.
            Without it an all-background prediction leaves every person unmatched, hence
            ignored, and is a zero-loss fixed point of training.

    Returns:
        The assignment, rows in ascending person id. A pair whose score is 0 (no
        overlapping segment of the same part, and no box overlap) is left unmatched
        rather than forced together, so G ≠ D leaves persons or detections over.
    """
    score, gt_ids = person_iou_matrix(pred_labels, gt_parts, gt_persons, num_parts, num_detections)
    if boxes is not None:
        if tuple(boxes.shape) != (num_detections, 4):
            raise HumanParseError(f"boxes must be ({num_detections}, 4), got {tuple(boxes.shape)}")
        if score.size:
            ids, all_boxes = person_boxes(gt_persons.cpu().numpy())
            truth = torch.from_numpy(all_boxes[np.searchsorted(ids, gt_ids)]).to(boxes.device)
            score = score + _BOX_TIE_BREAK * box_iou(truth, boxes.detach().float()).double().cpu().numpy()
    det_for_gt: list[int | None] = [None] * len(gt_ids)
    if score.size:
        rows, cols = linear_sum_assignment(score, maximize=True)
        for r, c in zip(rows.tolist(), cols.tolist()):
            if score[r, c] > 0:
                det_for_gt[r] = c + 1
    return Assignment(tuple(gt_ids), tuple(det_for_gt))


def matched_target(
    gt_parts: Tensor,
    gt_persons: Tensor,
    assignment: Assignment,
    num_parts: int,
    ignore_unmatched: bool = True,
    ignore_index: int = IGNORE,
) -> Tensor:
    """Relabel the ground truth with the matched Instance CRF labels.

    Args:
        gt_parts, gt_persons: (H, W) integer ground truth (see :func:`person_iou_matrix`).
        assignment: from :func:`match_persons`.
        num_parts: P.
        ignore_unmatched: the pixels of ground-truth persons no detection was matched to
            become ``ignore_index`` (True) or background 0 (False).
        ignore_index: the label written for ignored pixels.

    Returns:
        (H, W) long on the device of ``gt_parts``: part j of a person matched to detection i
        becomes ``(i-1)·P + j``; background stays 0; part 255 becomes ``ignore_index``. A
        pixel with a part label but no person id (inconsistent ground truth) cannot be given
        an instance label and is ignored too.
    """
    _check_ground_truth(gt_parts, gt_persons, tuple(gt_parts.shape), num_parts)
    parts = gt_parts.long()
    persons = gt_persons.to(parts.device).long()
    ignored = parts == IGNORE
    has_part = (parts > 0) & ~ignored
    on_person = has_part & (persons > 0)

    # Look every person pixel's id up in the assignment (sorted ids + searchsorted) instead
    # of one pass over the image per person.
    det = torch.zeros_like(persons)
    if assignment.gt_ids:
        order = sorted(range(len(assignment.gt_ids)), key=lambda k: assignment.gt_ids[k])
        ids = torch.tensor([assignment.gt_ids[k] for k in order], dtype=torch.long, device=parts.device)
        dets = torch.tensor([assignment.det_for_gt[k] or 0 for k in order], dtype=torch.long, device=parts.device)
        row = torch.searchsorted(ids, persons).clamp(max=len(order) - 1)
        det = torch.where(ids[row] == persons, dets[row], det)

    unmatched_label = ignore_index if ignore_unmatched else 0
    person_label = torch.where(det > 0, (det - 1) * num_parts + parts, unmatched_label)
    target = torch.where(on_person, person_label, 0)
    return torch.where(ignored | (has_part & (persons == 0)), ignore_index, target)


def ohem_cross_entropy(log_probs: Tensor, target: Tensor, top_k: int | None, ignore_index: int = IGNORE) -> Tensor:
    """Mean negative log-likelihood over the ``top_k`` hardest valid pixels (OHEM).

    Args:
        log_probs: (L, H, W) or (N, L) float log-probabilities.
        target: (H, W) or (N,) integer labels in 0..L-1, or ``ignore_index``.
        top_k: the number of pixels kept, those with the largest loss; fewer when fewer are
            valid. None keeps every valid pixel (plain cross-entropy).
        ignore_index: the label of pixels that never count.

    Returns:
        Scalar tensor. With no valid pixel, a zero still connected to ``log_probs`` so that
        ``backward()`` works on every image.
    """
    if log_probs.dim() == 3:
        flat = log_probs.reshape(log_probs.shape[0], -1).t()
    elif log_probs.dim() == 2:
        flat = log_probs
    else:
        raise HumanParseError(f"log-probabilities must be (L, H, W) or (N, L), got {tuple(log_probs.shape)}")
    if target.is_floating_point() or target.is_complex():
        raise HumanParseError(f"target must hold integer labels, got {target.dtype}")
    if tuple(target.shape) != (tuple(log_probs.shape[1:]) if log_probs.dim() == 3 else (log_probs.shape[0],)):
        raise HumanParseError(f"target of shape {tuple(target.shape)} does not fit log-probabilities {tuple(log_probs.shape)}")
    if top_k is not None and top_k < 1:
        raise HumanParseError(f"top_k must be positive or None, got {top_k}")
    labels = target.reshape(-1).to(flat.device).long()
    valid = labels != ignore_index
    if not bool(valid.any()):
        return log_probs.sum() * 0.0
    labels = labels[valid]
    if int(labels.min()) < 0 or int(labels.max()) >= flat.shape[1]:
        raise HumanParseError(f"target labels must be 0..{flat.shape[1] - 1} or {ignore_index}")
    losses = -flat[valid].gather(1, labels[:, None]).squeeze(1)
    if top_k is not None and top_k < losses.numel():
        losses = torch.topk(losses, top_k, sorted=False).values
    return losses.mean()


def matched_instance_loss(
    probs: Tensor,
    gt_parts: Tensor,
    gt_persons: Tensor,
    num_parts: int,
    ohem_fraction: float | None = PAPER_OHEM_FRACTION,
    ignore_unmatched: bool = True,
    *,
    boxes: Tensor | None = None,
) -> MatchedLoss:
    """The paper's loss on one image: match, relabel, cross-entropy with OHEM.

    The matching uses the argmax of ``probs`` and is not differentiated (a permutation has
    no gradient); the cross-entropy is. OHEM ranks the pixels of this image, the paper's
    mini-batch of one.

    Args:
        probs: (P·D+1, H, W) float Instance CRF probabilities; D may be 0 (one channel),
            which leaves every person unmatched.
        gt_parts, gt_persons: (H, W) integer ground truth (see :func:`person_iou_matrix`).
        num_parts: P.
        ohem_fraction: share of the pixels OHEM keeps (K = :func:`ohem_k`); None disables
            OHEM.
        ignore_unmatched: see :func:`matched_target`.
        boxes: optional (D, 4) detection boxes the CRF was given; see :func:`match_persons`.

    Returns:
        The scalar loss, the assignment and the (H, W) long matched target.
    """
    if num_parts < 1:
        raise HumanParseError(f"num_parts must be positive, got {num_parts}")
    if probs.dim() != 3 or probs.shape[0] < 1 or (probs.shape[0] - 1) % num_parts != 0:
        raise HumanParseError(f"Instance CRF output must be (P·D+1, H, W) with P={num_parts}, got {tuple(probs.shape)}")
    num_detections = (probs.shape[0] - 1) // num_parts
    height, width = probs.shape[1:]
    gt_parts, gt_persons = gt_parts.to(probs.device), gt_persons.to(probs.device)
    with torch.no_grad():
        pred_labels = probs.argmax(0)
    assignment = match_persons(pred_labels, gt_parts, gt_persons, num_parts, num_detections, boxes=boxes)
    target = matched_target(gt_parts, gt_persons, assignment, num_parts, ignore_unmatched)
    top_k = None if ohem_fraction is None else ohem_k(height, width, ohem_fraction)
    # The clamp keeps log finite where the CRF gives a label (numerically) zero probability.
    loss = ohem_cross_entropy(torch.log(probs.clamp_min(1e-8)), target, top_k)
    return MatchedLoss(loss, assignment, target)
