"""Detections from the ground truth: exact, or with a simulated detector's errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from humanparse.data.cihp import load_sample
from humanparse.data.synth import write_image_dataset
from humanparse.detectors import DetectionNoise, GroundTruthDetector, SimulatedDetector, simulate_detections
from humanparse.errors import HumanParseError

GT = np.array([[10, 10, 50, 90], [np.nan] * 4, [60, 20, 100, 100]], np.float32)


def test_noise_free_detections_are_the_visible_ground_truth_boxes() -> None:
    clean = DetectionNoise(jitter=0, truncation_rate=0, miss_rate=0, false_positives=0)
    det = simulate_detections(np.random.default_rng(0), GT, 120, 120, clean)
    assert sorted(det.person.tolist()) == [1, 3]
    for box, pid in zip(det.boxes, det.person):
        np.testing.assert_allclose(box, GT[pid - 1])
    assert bool(np.all(np.diff(det.scores) <= 0))


def test_each_kind_of_detector_error() -> None:
    rng = np.random.default_rng(1)
    missed = simulate_detections(rng, GT, 120, 120, DetectionNoise(miss_rate=1.0, false_positives=0))
    assert len(missed.boxes) == 0 and missed.boxes.shape == (0, 4)
    cut = simulate_detections(rng, GT, 120, 120, DetectionNoise(jitter=0, truncation_rate=1.0, miss_rate=0, false_positives=0))
    for box, pid in zip(cut.boxes, cut.person):
        gt = GT[pid - 1]
        assert box[0] >= gt[0] and box[1] >= gt[1] and box[2] <= gt[2] and box[3] <= gt[3]
        assert (box[2] - box[0]) * (box[3] - box[1]) <= 0.8 * (gt[2] - gt[0]) * (gt[3] - gt[1])
    fps = [simulate_detections(rng, GT, 120, 120, DetectionNoise(false_positives=3.0)) for _ in range(200)]
    counts = [int((d.person == 0).sum()) for d in fps]
    assert 2.5 < np.mean(counts) < 3.5
    for d in fps:
        assert bool((d.boxes >= 0).all() and (d.boxes[:, [0, 2]] <= 120).all() and (d.boxes[:, 2:] > d.boxes[:, :2]).all())
        assert bool((d.scores[d.person == 0] <= 0.7).all() and (d.scores[d.person > 0] >= 0.5).all())


def test_ground_truth_and_simulated_detectors(tmp_path) -> None:
    root = write_image_dataset(tmp_path / "d", 2, seed=4, size=(96, 80))
    sample = load_sample(root, "000001", 7)
    gt = GroundTruthDetector(root)(sample.image, key="000001")
    np.testing.assert_array_equal(gt.boxes, sample.boxes)
    assert (gt.scores == 1).all()
    sim = SimulatedDetector(root, seed=3)
    assert np.array_equal(sim(sample.image, key="000001").boxes, sim(sample.image, key="000001").boxes)


def test_simulated_detections_follow_the_image_not_the_order(tmp_path) -> None:
    root = write_image_dataset(tmp_path / "d", 3, seed=4, size=(96, 80))
    images = {sid: load_sample(root, sid, 7).image for sid in ("000000", "000001", "000002")}
    first, second = SimulatedDetector(root, seed=3), SimulatedDetector(root, seed=3)
    forward = {sid: first(image, key=sid) for sid, image in images.items()}
    backward = {sid: second(image, key=sid) for sid, image in reversed(images.items())}
    for sid in images:
        np.testing.assert_array_equal(forward[sid].boxes, backward[sid].boxes)
        np.testing.assert_array_equal(forward[sid].scores, backward[sid].scores)
    other = SimulatedDetector(root, seed=4)
    assert any(not np.array_equal(other(image, key=sid).boxes, forward[sid].boxes) for sid, image in images.items())


def test_ground_truth_boxes_of_ids_that_skip_numbers(tmp_path) -> None:
    (tmp_path / "Human_ids").mkdir()
    persons = np.zeros((10, 12), np.uint8)
    persons[1:4, 2:5] = 7
    persons[6, 0] = 2
    cv2.imwrite(str(tmp_path / "Human_ids" / "a.png"), persons)
    det = GroundTruthDetector(tmp_path)(np.zeros((10, 12, 3), np.uint8), key="photos/a.jpg")
    assert det.boxes.tolist() == [[0, 6, 1, 7], [2, 1, 5, 4]] and det.scores.tolist() == [1, 1]
    with pytest.raises(HumanParseError, match="need the image's id"):
        GroundTruthDetector(tmp_path)(np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(HumanParseError, match=r"need person ids \(Human_ids/\)"):
        GroundTruthDetector(tmp_path / "Human_ids")
