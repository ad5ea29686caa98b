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
    assert box_ap([(np.zeros((0, 4)), np.zeros(0))], gt).ap == 0.0  # nothing detected


from humanparse.metrics import confusion_matrix, instance_ap, mean_iou, parsing_ap  # noqa: E402


def square(y: int, x: int, size: int = 4, shape: tuple[int, int] = (16, 16)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y : y + size, x : x + size] = True
    return m


A, B, C = square(0, 0), square(8, 8), square(0, 8)


def test_instance_ap_hand_cases() -> None:
    truth = [(1, A), (1, B), (2, C)]
    perfect = instance_ap([([(1, A, 0.9), (1, B, 0.8), (2, C, 0.7)], truth)])
    assert perfect.mean == tuple([1.0] * 9) and perfect.vol == 1.0
    missed = instance_ap([([(1, A, 0.9), (2, C, 0.7)], truth)])
    assert missed.per_class[1][4] == pytest.approx(0.5) and missed.per_class[2][4] == 1.0
    assert missed.at(0.5) == pytest.approx(0.75)
    # A duplicate of A ranks second: TP, FP, TP -> precision 1 to recall .5, then 2/3.
    dup = instance_ap([([(1, A, 0.9), (1, A, 0.85), (1, B, 0.8)], truth[:2])])
    assert dup.at(0.5) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # A wrong class is a false positive of its class and a miss of the right one.
    wrong = instance_ap([([(2, A, 0.9), (1, B, 0.8)], truth[:2])])
    assert wrong.per_class[1][4] == pytest.approx(0.5) and 2 not in wrong.per_class  # class 2 has no truth here
    # A low-scoring false positive after all true positives costs nothing.
    low_fp = instance_ap([([(1, A, 0.9), (1, B, 0.8), (1, C, 0.1)], truth[:2])])
    assert low_fp.at(0.5) == 1.0
    # Strictly above t: a half-overlapping prediction (IoU 1/3) misses at t = 0.4 but hits at 0.3.
    half = square(0, 2)
    shifted = instance_ap([([(1, half, 0.9)], [(1, A)])])
    assert shifted.per_class[1][2] == 1.0 and shifted.per_class[1][3] == 0.0
    # Images with no people at all, with and without predictions.
    empty = instance_ap([([], []), ([(1, A, 0.5)], [(1, A)])])
    assert empty.at(0.5) == 1.0


def test_mean_iou_against_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 4, (20, 20)) for _ in range(3)]
    truths = [rng.integers(0, 4, (20, 20)) for _ in range(3)]
    truths[0][0:3] = 255
    conf = sum(confusion_matrix(p, t, 4) for p, t in zip(preds, truths))
    miou, per_class = mean_iou(conf)
    for c in range(4):
        inter = sum(((p == c) & (t == c)).sum() for p, t in zip(preds, truths))
        union = sum((((p == c) & (t != 255)) | (t == c)).sum() for p, t in zip(preds, truths))
        assert per_class[c] == pytest.approx(inter / union)
    assert miou == pytest.approx(np.mean(per_class))


def person(parts: dict[int, np.ndarray]) -> np.ndarray:
    out = np.zeros((16, 16), np.int64)
    for label, mask in parts.items():
        out[mask] = label
    return out


def test_parsing_ap_and_pcp() -> None:
    p1 = person({1: square(0, 0, 2), 2: square(2, 0, 2)})
    p2 = person({1: square(8, 8, 2), 2: square(10, 8, 2)})
    perfect = parsing_ap([([(p1, 0.9), (p2, 0.8)], [p1, p2])], num_labels=3)
    assert perfect.ap == tuple([1.0] * 9) and perfect.pcp50 == 1.0
    # Torso wrong for the second person: its overlap is (bg 244/252 + head 1 + torso 0) / 3 ≈ 0.66.
    bad_torso = person({1: square(8, 8, 2), 2: square(12, 12, 2)})
    result = parsing_ap([([(p1, 0.9), (bad_torso, 0.8)], [p1, p2])], num_labels=3)
    assert result.at(0.5) == 1.0 and result.at(0.9) == pytest.approx(0.5)
    assert result.pcp50 == pytest.approx((1.0 + 0.5) / 2)
    # A duplicate of p1 is a false positive; a missed person lowers recall and PCP.
    dup = parsing_ap([([(p1, 0.9), (p1, 0.85)], [p1, p2])], num_labels=3)
    assert dup.at(0.5) == pytest.approx(0.5) and dup.pcp50 == pytest.approx(0.5)


def test_an_iou_of_exactly_the_threshold_is_no_hit() -> None:
    """AP^r's hit is IoU strictly above t: IoUs of exactly 0.1 ... 0.9 (k of 10 pixels
    shared) are hits at the thresholds below them only."""
    truth = np.zeros((1, 10), bool)
    truth[0, :10] = True
    for k in range(1, 10):
        guess = np.zeros((1, 10), bool)
        guess[0, :k] = True  # IoU k / 10
        ap = instance_ap([([(1, guess, 0.9)], [(1, truth)])])
        expected = [1.0 if t < k / 10 - 1e-12 else 0.0 for t in ap.thresholds]
        assert list(ap.per_class[1]) == expected, k
