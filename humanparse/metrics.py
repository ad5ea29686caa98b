"""Evaluation metrics, each stated precisely enough to agree with the published evaluators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

COCO_IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2).tolist())


@dataclass(frozen=True)
class BoxAP:
    ap: float  # mean over COCO_IOU_THRESHOLDS, AP@[.5:.95]
    ap50: float
    ap75: float
    per_threshold: tuple[float, ...]


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) x1 y1 x2 y2 -> (N, M) IoU, as COCO computes it (no +1 on sides)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_ap(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    ground_truths: Sequence[np.ndarray],
    max_detections: int = 100,
) -> BoxAP:
    """COCO box AP of one class (person), as pycocotools' COCOeval computes it.

    Args:
        predictions: per image, (boxes (D, 4), scores (D,)).
        ground_truths: per image, (G, 4) boxes.

    Per image the ``max_detections`` best predictions are matched greedily in score order,
    each to the unmatched ground truth of highest IoU >= t; duplicates are false
    positives. Predictions of all images are then ranked by score (stable), precision is
    made non-increasing, and AP is its mean at the 101 recall points 0, 0.01, …, 1.
    NaN where there is no ground truth.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} predicted images but {len(ground_truths)} ground-truth images")
    total_gt = sum(len(g) for g in ground_truths)
    per_threshold = []
    for t in COCO_IOU_THRESHOLDS:
        scores, hits = [], []
        for (boxes, det_scores), gt in zip(predictions, ground_truths):
            order = np.argsort(-np.asarray(det_scores), kind="mergesort")[:max_detections]
            iou = box_iou_np(np.asarray(boxes, float)[order], np.asarray(gt, float).reshape(-1, 4))
            taken = np.zeros(len(gt), bool)
            for k in range(len(order)):
                best, best_iou = -1, min(t, 1 - 1e-10)
                for g in range(len(gt)):
                    if not taken[g] and iou[k, g] >= best_iou:
                        best, best_iou = g, iou[k, g]
                if best >= 0:
                    taken[best] = True
                hits.append(best >= 0)
                scores.append(float(det_scores[order[k]]))
        per_threshold.append(_average_precision(np.array(scores), np.array(hits, bool), total_gt))
    values = tuple(per_threshold)
    return BoxAP(float(np.mean(values)), values[0], values[5], values)


def _average_precision(scores: np.ndarray, hits: np.ndarray, total_gt: int) -> float:
    """COCO's 101-point interpolated AP from pooled, scored hits."""
    if total_gt == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / total_gt
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    points = np.linspace(0, 1, 101)
    index = np.searchsorted(recall, points, side="left")
    sampled = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(sampled.mean())
