"""Evaluation metrics, each stated precisely enough to agree with the published evaluators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .labels import IGNORE
from .ops import mask_iou

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
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / total_gt
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    index = np.searchsorted(recall, points, side="left")
    sampled = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(sampled.mean())


SDS_THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))


@dataclass(frozen=True)
class InstanceAP:
    """AP^r per class at each threshold, its class mean, and AP^r_vol (mean over thresholds)."""

    thresholds: tuple[float, ...]
    per_class: dict[int, tuple[float, ...]]
    mean: tuple[float, ...]
    vol: float

    def at(self, threshold: float) -> float:
        return self.mean[self.thresholds.index(round(threshold, 2))]


def _all_point_ap(scores: np.ndarray, hits: np.ndarray, total_gt: int) -> float:
    """Area under the precision–recall curve made non-increasing (VOC 2010 on, SDS)."""
    if total_gt == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = np.concatenate([[0.0], tp / total_gt])
    precision = np.concatenate([[0.0], tp / (tp + fp)])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


def instance_ap(
    images: Sequence[tuple[Sequence[tuple[int, np.ndarray, float]], Sequence[tuple[int, np.ndarray]]]],
    thresholds: Sequence[float] = SDS_THRESHOLDS,
) -> InstanceAP:
    """AP^r of Hariharan et al. (SDS), per class and over classes.

    Args:
        images: per image, (predictions [(class, (H, W) bool mask, score)], ground truth
            [(class, mask)]).

    Per class, within an image each prediction in score order is paired with the
    highest-IoU ground truth of its class not yet used; it is a true positive if that IoU
    is strictly above t, and the ground truth is then used up; otherwise (duplicates
    included) a false positive. Predictions of all images are ranked by score (stable);
    AP is the area under the precision curve made non-increasing. Classes without ground
    truth are left out of the mean. Image by image: :class:`InstanceAPAccumulator`.
    """
    accumulator = InstanceAPAccumulator(thresholds)
    for preds, gts in images:
        accumulator.add(preds, gts)
    return accumulator.result()


class InstanceAPAccumulator:
    """:func:`instance_ap` gathered one image at a time, keeping no masks: the matching is
    within an image, so each image leaves per class only its predictions' scores (in rank
    order), whether each is a hit at every threshold, and its number of ground truths. They
    are kept in growing lists of Python numbers, not an array per image: thousands of small
    arrays, allocated between each image's large buffers, fragment the heap."""

    def __init__(self, thresholds: Sequence[float] = SDS_THRESHOLDS) -> None:
        self.thresholds = tuple(thresholds)
        self._scores: dict[int, list[float]] = {}  # per class, every prediction's score
        self._hits: dict[int, list[list[bool]]] = {}  # per class and threshold, every prediction's hit
        self._truths: dict[int, int] = {}

    def add(self, preds: Sequence[tuple[int, np.ndarray, float]], gts: Sequence[tuple[int, np.ndarray]]) -> None:
        """One image: predictions [(class, (H, W) bool mask, score)], ground truth [(class, mask)]."""
        for cls in sorted({c for c, _ in gts} | {c for c, _, _ in preds}):
            mine = sorted((p for p in preds if p[0] == cls), key=lambda p: -p[2])
            truth = [m for c, m in gts if c == cls]
            iou = mask_iou(np.stack([m for _, m, _ in mine]), np.stack(truth)) if mine and truth else np.zeros((len(mine), len(truth)))
            self._truths[cls] = self._truths.get(cls, 0) + len(truth)
            self._scores.setdefault(cls, []).extend(float(s) for _, _, s in mine)
            for hits, t in zip(self._hits.setdefault(cls, [[] for _ in self.thresholds]), self.thresholds):
                hits.extend(_greedy_hits(iou, t))

    def result(self) -> InstanceAP:
        per_class: dict[int, tuple[float, ...]] = {}
        for cls in sorted(self._truths):
            scores = np.array(self._scores[cls], float)
            per_class[cls] = tuple(_all_point_ap(scores, np.array(hits, bool), self._truths[cls]) for hits in self._hits[cls])
        scored = {c: v for c, v in per_class.items() if not np.isnan(v[0])}
        mean = tuple(float(np.mean([v[i] for v in scored.values()])) if scored else float("nan") for i in range(len(self.thresholds)))
        return InstanceAP(self.thresholds, scored, mean, float(np.mean(mean)))


def _greedy_hits(iou: np.ndarray, t: float) -> list[bool]:
    """AP^r's matching in one image: (N, M) IoUs of N predictions in score order with M
    ground truths -> each prediction's hit at threshold t."""
    used = np.zeros(iou.shape[1], bool)
    hits = []
    for k in range(iou.shape[0]):
        candidates = np.where(used, -1.0, iou[k])
        best = int(np.argmax(candidates)) if len(candidates) else -1
        hit = best >= 0 and candidates[best] > t
        if hit:
            used[best] = True
        hits.append(hit)
    return hits


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, num_labels: int, ignore: int = IGNORE) -> np.ndarray:
    """(L, L) int64 counts, rows ground truth, columns prediction; ``ignore`` and labels
    outside 0..L-1 in the ground truth are skipped."""
    valid = (truth != ignore) & (truth < num_labels)
    index = truth[valid].astype(np.int64) * num_labels + np.clip(pred[valid].astype(np.int64), 0, num_labels - 1)
    return np.bincount(index, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def mean_iou(confusion: np.ndarray) -> tuple[float, np.ndarray]:
    """Per-class IoU = diag / (row + col - diag) of a summed confusion matrix; the mean is
    over classes present in the ground truth or the prediction (NaN for the others)."""
    diag = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - diag
    iou = np.where(union > 0, diag / np.maximum(union, 1), np.nan)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"), iou


@dataclass(frozen=True)
class ParsingAP:
    """AP^p per threshold, AP^p_vol, and PCP at 0.5 (Parsing R-CNN / MHP definitions)."""

    thresholds: tuple[float, ...]
    ap: tuple[float, ...]
    vol: float
    pcp50: float

    def at(self, threshold: float) -> float:
        return self.ap[self.thresholds.index(round(threshold, 2))]


def _parsing_overlap(a: np.ndarray, b: np.ndarray, num_labels: int) -> tuple[float, np.ndarray]:
    """Mean over labels (background included, labels absent from both ignored) of the
    per-label IoU between two person parsings, and the per-label IoUs."""
    conf = confusion_matrix(a, b, num_labels)
    _, iou = mean_iou(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0, iou


def parsing_ap(
    images: Sequence[tuple[Sequence[tuple[np.ndarray, float]], Sequence[np.ndarray]]],
    num_labels: int,
    thresholds: Sequence[float] = SDS_THRESHOLDS,
) -> ParsingAP:
    """Person-level parsing AP (AP^p) and PCP.

    Args:
        images: per image, (predicted persons [((H, W) part map of that person alone,
            0 elsewhere; score)], ground-truth persons [(H, W) part map]).

    The overlap of two person parsings is the mean per-label IoU (background included,
    labels absent from both ignored). Matching is VOC's: each prediction, in score order,
    takes the ground truth it overlaps most; it is a true positive if the overlap exceeds t
    and that ground truth is not already taken. PCP@0.5: for each true positive at 0.5,
    the share of the ground truth's parts with IoU > 0.5; unmatched persons count 0; over
    the number of ground-truth persons. Image by image: :class:`ParsingAPAccumulator`.
    """
    accumulator = ParsingAPAccumulator(num_labels, thresholds)
    for preds, gts in images:
        accumulator.add(preds, gts)
    return accumulator.result()


class ParsingAPAccumulator:
    """:func:`parsing_ap` gathered one image at a time, keeping no part maps: the matching is
    within an image, so each image leaves its predictions' scores (in rank order), whether
    each is a hit at every threshold, its share of PCP and its number of ground truths (in
    growing lists, as :class:`InstanceAPAccumulator`)."""

    def __init__(self, num_labels: int, thresholds: Sequence[float] = SDS_THRESHOLDS) -> None:
        self.num_labels = num_labels
        self.thresholds = tuple(thresholds)
        self._scores: list[float] = []  # every prediction's score
        self._hits: list[list[bool]] = [[] for _ in self.thresholds]  # per threshold, every prediction's hit
        self._truths = 0
        self._pcp = 0.0

    def add(self, preds: Sequence[tuple[np.ndarray, float]], gts: Sequence[np.ndarray]) -> None:
        """One image: predicted persons [((H, W) part map, score)], ground-truth persons [(H, W) part map]."""
        order = sorted(range(len(preds)), key=lambda k: -preds[k][1])
        table = [[_parsing_overlap(preds[k][0], g, self.num_labels) for g in gts] for k in order]
        self._truths += len(gts)
        self._scores.extend(float(preds[k][1]) for k in order)
        for hits, t in zip(self._hits, self.thresholds):
            hits.extend(hit for hit, _ in _voc_matches(table, t))
        for (hit, best), row in zip(_voc_matches(table, 0.5), table):
            if hit:
                parts = [lab for lab in range(1, self.num_labels) if (gts[best] == lab).any()]
                self._pcp += float(np.mean([row[best][1][lab] > 0.5 for lab in parts])) if parts else 0.0

    def result(self) -> ParsingAP:
        scores = np.array(self._scores, float)
        aps = [_all_point_ap(scores, np.array(hits, bool), self._truths) for hits in self._hits]
        return ParsingAP(self.thresholds, tuple(aps), float(np.mean(aps)), self._pcp / self._truths if self._truths else float("nan"))


def _voc_matches(table: list[list[tuple[float, np.ndarray]]], t: float) -> list[tuple[bool, int]]:
    """AP^p's matching in one image: per prediction in score order, its row of (overlap,
    per-label IoUs) with every ground truth -> (hit at threshold t, the ground truth it took)."""
    taken = np.zeros(len(table[0]) if table else 0, bool)
    matches = []
    for row in table:
        best = int(np.argmax([overlap for overlap, _ in row])) if row else -1
        hit = best >= 0 and row[best][0] > t and not taken[best]
        if hit:
            taken[best] = True
        matches.append((hit, best))
    return matches
