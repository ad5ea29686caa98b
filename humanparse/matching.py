"""The permutation-matched loss (paper Sec. 3.3): Hungarian matching, relabelling, OHEM.

Instance labels are arbitrary, so before the loss the ground-truth persons are matched to
the detections by maximising the total IoU of their segments, where segments of different
part labels have IoU 0. Persons are permuted as a whole (their parts follow), so the
matching is between ground-truth persons g and detections i with the score
``Σ_j IoU(gt segment (g, j), predicted segment (i, j))``, solved by the Hungarian
algorithm. The ground truth is relabelled with the matched labels and the loss is the
cross-entropy of the Instance CRF output, over the K hardest pixels only (OHEM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchvision.ops import box_iou

from .errors import HumanParseError

IGNORE_INDEX = 255
# The paper trains at full resolution with K = 2^15 at 521×521, about 12% of the pixels.
PAPER_OHEM_FRACTION = 2**15 / 521**2


@dataclass(frozen=True)
class Assignment:
    """Ground-truth persons (in row order) and the detection each was matched to.

    ``det_for_gt[k]`` is the 1-based detection index of person ``gt_ids[k]``, or None.
    """

    gt_ids: tuple[int, ...]
    det_for_gt: tuple[int | None, ...]


@dataclass(frozen=True)
class MatchedLoss:
    loss: Tensor  # scalar
    assignment: Assignment
    target: Tensor  # (H, W) long, the relabelled ground truth


def ohem_k(height: int, width: int, fraction: float = PAPER_OHEM_FRACTION) -> int:
    """The number of pixels OHEM keeps for an image of this size (at least 1)."""
    return max(1, round(fraction * height * width))


def _check_ground_truth(gt_parts: Tensor, gt_persons: Tensor, shape: tuple[int, int], num_parts: int) -> None:
    if gt_parts.shape != shape or gt_persons.shape != shape:
        raise HumanParseError(
            f"ground truth of shape {tuple(gt_parts.shape)} / {tuple(gt_persons.shape)} does not match the prediction {shape}"
        )
    valid = gt_parts[gt_parts != IGNORE_INDEX]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) > num_parts):
        raise HumanParseError(f"ground-truth part labels must be 0..{num_parts} or {IGNORE_INDEX}")


def person_iou_matrix(
    pred_labels: Tensor, gt_parts: Tensor, gt_persons: Tensor, num_parts: int, num_detections: int
) -> tuple[np.ndarray, list[int]]:
    """Summed per-part IoU between every ground-truth person and every detection.

    Args:
        pred_labels: (H, W) long Instance CRF labels (0 background, (i-1)·P + j).
        gt_parts: (H, W) long part labels (0 background, 255 ignored).
        gt_persons: (H, W) long person ids (0 background, any positive ids).

    Returns:
        (G, D) float64 matrix, entry (g, i) = Σ_j IoU(gt (g, j), predicted (i, j)), and the
        ground-truth person ids in row order.
    """
    _check_ground_truth(gt_parts, gt_persons, tuple(pred_labels.shape), num_parts)
    keep = gt_parts != IGNORE_INDEX
    parts = gt_parts[keep].long()
    persons = gt_persons[keep].long()
    pred = pred_labels[keep].long()
    gt_ids = sorted(int(v) for v in torch.unique(persons[(persons > 0) & (parts > 0)]).tolist())
    g, d, p = len(gt_ids), num_detections, num_parts
    if g == 0 or d == 0:
        return np.zeros((g, d)), gt_ids
    # Segment indices: ground truth (g, j) -> g·P + j - 1, prediction (i, j) -> its label - 1.
    row = torch.full_like(persons, -1)
    for k, pid in enumerate(gt_ids):
        row[persons == pid] = k
    gt_seg = torch.where((row >= 0) & (parts > 0), row * p + parts - 1, torch.full_like(row, -1))
    pred_seg = torch.where(pred > 0, pred - 1, torch.full_like(pred, -1))
    gt_area = torch.bincount(gt_seg[gt_seg >= 0], minlength=g * p).double()
    pred_area = torch.bincount(pred_seg[pred_seg >= 0], minlength=d * p).double()
    both = (gt_seg >= 0) & (pred_seg >= 0)
    # Only equal part labels intersect: count (g, i, j) triples.
    same_part = both & (gt_seg % p == pred_seg % p)
    gs, ps = gt_seg[same_part], pred_seg[same_part]
    inter = torch.bincount((gs // p * d + ps // p) * p + gs % p, minlength=g * d * p).double().reshape(g, d, p)
    union = gt_area.reshape(g, 1, p) + pred_area.reshape(1, d, p) - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
    return iou.sum(2).cpu().numpy(), gt_ids


def match_persons(
    pred_labels: Tensor,
    gt_parts: Tensor,
    gt_persons: Tensor,
    num_parts: int,
    num_detections: int,
    boxes: Tensor | None = None,
) -> Assignment:
    """Hungarian matching of ground-truth persons to detections, maximising total IoU.

    Args:
        boxes: (D, 4) detection boxes. When given, the IoU of each detection box with the
            ground-truth person's box is added with a weight of 1e-3, which only decides
            between pairs the masks do not separate: a person the prediction misses
            entirely is still matched to the detection that covers it. Without it, an
            all-background prediction would leave every person unmatched, hence ignored,
            and be a zero-loss fixed point of training.

    A pair with no overlap at all is left unmatched rather than forced together.
    """
    iou, gt_ids = person_iou_matrix(pred_labels, gt_parts, gt_persons, num_parts, num_detections)
    if boxes is not None and iou.size:
        iou = iou + 1e-3 * box_iou(_person_boxes(gt_persons, gt_ids).to(boxes), boxes.detach()).double().cpu().numpy()
    det_for_gt: list[int | None] = [None] * len(gt_ids)
    if iou.size:
        rows, cols = linear_sum_assignment(iou, maximize=True)
        for r, c in zip(rows, cols):
            if iou[r, c] > 0:
                det_for_gt[r] = int(c) + 1
    return Assignment(tuple(gt_ids), tuple(det_for_gt))


def _person_boxes(gt_persons: Tensor, gt_ids: list[int]) -> Tensor:
    """(G, 4) float boxes x1 y1 x2 y2 enclosing each listed person's pixels."""
    out = []
    for pid in gt_ids:
        ys, xs = torch.nonzero(gt_persons == pid, as_tuple=True)
        out.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 4)


def matched_target(
    gt_parts: Tensor,
    gt_persons: Tensor,
    assignment: Assignment,
    num_parts: int,
    ignore_unmatched: bool = True,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Relabel the ground truth with the matched labels: (H, W) long.

    Part j of a person matched to detection i becomes ``(i-1)·P + j``; background stays 0;
    ignored pixels stay ``ignore_index``; the pixels of unmatched persons become
    ``ignore_index`` (default) or background.
    """
    target = torch.zeros_like(gt_parts, dtype=torch.long)
    person_pixels = (gt_persons > 0) & (gt_parts > 0) & (gt_parts != IGNORE_INDEX)
    unmatched_label = ignore_index if ignore_unmatched else 0
    target[person_pixels] = unmatched_label
    for pid, det in zip(assignment.gt_ids, assignment.det_for_gt):
        if det is not None:
            mine = person_pixels & (gt_persons == pid)
            target[mine] = (det - 1) * num_parts + gt_parts[mine].long()
    target[gt_parts == IGNORE_INDEX] = ignore_index
    return target


def ohem_cross_entropy(log_probs: Tensor, target: Tensor, top_k: int | None, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean negative log-likelihood over the ``top_k`` hardest valid pixels.

    Args:
        log_probs: (L, H, W) or (N, L) log-probabilities.
        target: (H, W) or (N,) long labels.
        top_k: pixels kept; None keeps every valid pixel.
    """
    flat = log_probs.reshape(log_probs.shape[0], -1).t() if log_probs.dim() == 3 else log_probs
    labels = target.reshape(-1)
    if flat.shape[0] != labels.shape[0]:
        raise HumanParseError(f"{flat.shape[0]} predicted pixels but {labels.shape[0]} target pixels")
    valid = labels != ignore_index
    if not bool(valid.any()):
        return log_probs.sum() * 0.0  # still part of the graph, so backward() works
    losses = -flat[valid].gather(1, labels[valid, None]).squeeze(1)
    if top_k is not None and top_k < losses.numel():
        losses = torch.topk(losses, top_k, sorted=False).values
    return losses.mean()


def matched_instance_loss(
    probs: Tensor,
    gt_parts: Tensor,
    gt_persons: Tensor,
    num_parts: int,
    boxes: Tensor | None = None,
    ohem_fraction: float | None = PAPER_OHEM_FRACTION,
    ignore_unmatched: bool = True,
) -> MatchedLoss:
    """The paper's loss on one image.

    Args:
        probs: (P·D+1, H, W) Instance CRF probabilities.
        gt_parts, gt_persons: (H, W) ground truth (see :func:`person_iou_matrix`).
        boxes: (D, 4) the detections the CRF was given (see :func:`match_persons`).
        ohem_fraction: share of the pixels kept by OHEM; None disables OHEM.
        ignore_unmatched: ignore (True) or call background (False) the pixels of ground-truth
            persons no detection was matched to.
    """
    if probs.dim() != 3 or (probs.shape[0] - 1) % num_parts != 0:
        raise HumanParseError(f"Instance CRF output must be (P·D+1, H, W) with P={num_parts}, got {tuple(probs.shape)}")
    num_detections = (probs.shape[0] - 1) // num_parts
    h, w = probs.shape[-2:]
    with torch.no_grad():
        assignment = match_persons(probs.argmax(0), gt_parts, gt_persons, num_parts, num_detections, boxes)
    target = matched_target(gt_parts.to(probs.device), gt_persons.to(probs.device), assignment, num_parts, ignore_unmatched)
    top_k = ohem_k(h, w, ohem_fraction) if ohem_fraction is not None else None
    loss = ohem_cross_entropy(torch.log(probs.clamp_min(1e-8)), target, top_k)
    return MatchedLoss(loss, assignment, target)
