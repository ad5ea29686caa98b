"""Metrics against hand-computed cases and against the published evaluators."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from humanparse.metrics import box_ap


def coco_reference(predictions, ground_truths) -> tuple[float, float]:
    """AP@[.5:.95] and AP50 from pycocotools' COCOeval on the same boxes."""
    images, annotations, results = [], [], []
    for image_id, ((boxes, scores), gt) in enumerate(zip(predictions, ground_truths), start=1):
        images.append({"id": image_id, "width": 640, "height": 480})
        for box in gt:
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
        for box, score in zip(boxes, scores):
            results.append({"image_id": image_id, "category_id": 1, "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0]), float(evaluator.stats[1])


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    predictions, ground_truths = [], []
    for _ in range(rng.integers(1, 6)):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 400, (n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(20, 150, (n, 2))], 1)
        keep = rng.random(n) > 0.2  # some people missed
        boxes = gt[keep] + rng.normal(0, 6, (int(keep.sum()), 4))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        duplicates = boxes[: int(rng.integers(0, 2))] + 2.0  # and some found twice
        fp_xy = rng.uniform(0, 400, (int(rng.integers(0, 3)), 2))
        fps = np.concatenate([fp_xy, fp_xy + 40], 1)
        all_boxes = np.concatenate([boxes, duplicates, fps])
        predictions.append((all_boxes, rng.permutation(len(all_boxes)) / max(len(all_boxes), 1) * 0.9 + rng.uniform(0, 0.05)))
        ground_truths.append(gt)
    return predictions, ground_truths


@pytest.mark.parametrize("seed", range(8))
def test_box_ap_agrees_with_pycocotools(seed: int) -> None:
    predictions, ground_truths = random_case(seed)
    if sum(len(g) for g in ground_truths) == 0:
        pytest.skip("no ground truth in this draw")
    ours = box_ap(predictions, ground_truths)
    ap, ap50 = coco_reference(predictions, ground_truths)
    assert ours.ap == pytest.approx(ap, abs=1e-9) and ours.ap50 == pytest.approx(ap50, abs=1e-9)


def test_box_ap_hand_cases() -> None:
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)]
    perfect = [(gt[0].copy(), np.array([0.9, 0.8]))]
    assert box_ap(perfect, gt).ap == pytest.approx(1.0)
    one_missed = [(gt[0][:1].copy(), np.array([0.9]))]
    assert box_ap(one_missed, gt).ap50 == pytest.approx(51 / 101)  # precision 1 up to recall 0.5
    duplicate = [(np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8, 0.7]))]
    # ranks: TP, FP, TP -> precision 1 until recall 0.5, then 2/3
    assert box_ap(duplicate, gt).ap50 == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)
    assert np.isnan(box_ap([(np.zeros((0, 4)), np.zeros(0))], [np.zeros((0, 4))]).ap)
