"""Detectors behind one interface: files, torchvision, ground truth, simulated."""

from __future__ import annotations

import json
import urllib.error
from dataclasses import replace

import numpy as np
import pytest
import torch

from humanparse.data.cihp import load_sample
from humanparse.data.synth import DetectionNoise, write_image_dataset
from humanparse.detectors import (
    CocoResultsDetector,
    GroundTruthDetector,
    MotDetector,
    SimulatedDetector,
    TorchvisionDetector,
    parse_detector_spec,
    person_detections,
)
from humanparse.errors import HumanParseError
from humanparse.structures import Detections

IMAGE = np.zeros((48, 64, 3), np.uint8)


def test_detections_are_validated_and_ranked() -> None:
    d = Detections(np.array([[0, 0, 5, 5], [1, 1, 9, 9], [2, 2, 3, 3]]), np.array([0.2, 0.9, 0.5]))
    top = d.top(0.3, 1)
    assert top.scores.tolist() == [pytest.approx(0.9)] and top.boxes.tolist() == [[1, 1, 9, 9]]
    assert len(Detections.empty()) == 0 and Detections(np.zeros((0, 4)), np.zeros(0)).boxes.shape == (0, 4)
    assert Detections(np.array([[-5, -5, 80, 10]]), np.array([1.0])).clipped(48, 64).boxes.tolist() == [[0, 0, 64, 10]]
    for boxes, scores in (([[0, 0, -1, 5]], [0.5]), ([[0, 0, 1, 1]], [1.5]), ([[0, 0, np.nan, 1]], [0.5]), ([[0, 0, 1, 1]], [0.5, 0.5])):
        with pytest.raises(HumanParseError):
            Detections(np.array(boxes, float), np.array(scores))


def write_json(tmp_path, rows) -> str:
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(rows))
    return path


def test_coco_results_file(tmp_path) -> None:
    rows = [
        {"image_id": 12, "bbox": [10, 5, 20, 30], "score": 0.9, "category_id": 1},
        {"image_id": 12, "bbox": [0, 0, 5, 5], "score": 0.8, "category_id": 3},  # a car: dropped
        {"file_name": "street.jpg", "bbox": [1, 2, 3, 4], "score": 0.4, "category_id": 1},
    ]
    det = CocoResultsDetector(write_json(tmp_path, rows))
    assert det(IMAGE, key="000012.jpg").boxes.tolist() == [[10, 5, 30, 35]]
    assert det(IMAGE, key="photos/street.jpg").scores.tolist() == [pytest.approx(0.4)]
    assert len(det(IMAGE, key="other.jpg")) == 0  # an image with no detections
    det.check_known(["000012.jpg", "street.jpg"])
    with pytest.raises(HumanParseError, match="unknown images, e.g. street.jpg"):
        det.check_known(["000012.jpg"])
    assert len(CocoResultsDetector(write_json(tmp_path, []))(IMAGE, key="a.jpg")) == 0


@pytest.mark.parametrize(
    "row, message",
    [
        ({"bbox": [0, 0, 1, 1], "score": 0.5}, "no image_id"),
        ({"image_id": 1, "bbox": [0, 0, 1], "score": 0.5}, r"bbox must be \[x, y, w, h\]"),
        ({"image_id": 1, "bbox": [0, 0, -2, 1], "score": 0.5}, "negative box size"),
        ({"image_id": 1, "bbox": [0, 0, 1, 1], "score": float("nan")}, r"not in \[0, 1\]"),
        ({"image_id": 1, "bbox": [0, 0, 1, 1], "score": 3.0}, r"not in \[0, 1\]"),
        ({"image_id": 1, "bbox": ["a", 0, 1, 1], "score": 0.5}, "must be numbers"),
    ],
)
def test_malformed_coco_rows_name_the_row(tmp_path, row, message) -> None:
    with pytest.raises(HumanParseError, match=rf"dets.json: detection 1.*{message}|dets.json: detection 1 {message}"):
        CocoResultsDetector(write_json(tmp_path, [{"image_id": 0, "bbox": [0, 0, 1, 1], "score": 0.5}, row]))


def test_coco_file_that_is_not_a_list(tmp_path) -> None:
    with pytest.raises(HumanParseError, match="JSON list"):
        CocoResultsDetector(write_json(tmp_path, {"annotations": []}))
    bad = tmp_path / "broken.json"
    bad.write_text("[{")
    with pytest.raises(HumanParseError, match="cannot read detections"):
        CocoResultsDetector(bad)


def test_mot_det_file(tmp_path) -> None:
    path = tmp_path / "det.txt"
    path.write_text("1,-1,10,20,30,40,0.9,-1,-1,-1\n1,-1,0,0,5,5,0.3,-1,-1,-1\n\n3,-1,1,1,2,2,1.0\n")
    det = MotDetector(path)
    assert det(IMAGE, key=1).boxes.tolist() == [[10, 20, 40, 60], [0, 0, 5, 5]]
    assert len(det(IMAGE, key=2)) == 0 and len(det(IMAGE, key=3)) == 1
    det.check_frames(3)
    with pytest.raises(HumanParseError, match="frame 3, but the video has 2 frames"):
        det.check_frames(2)
    with pytest.raises(HumanParseError, match="frame number"):
        det(IMAGE, key="a.jpg")


@pytest.mark.parametrize(
    "line, message",
    [("1,-1,0,0,5", "at least 7"), ("1,-1,0,0,x,5,0.5", "must be numbers"), ("1,-1,0,0,-5,5,0.5", "negative box size"),
     ("1,-1,0,0,5,5,nan", r"not in \[0, 1\]"), ("1,-1,0,0,5,5,7", r"not in \[0, 1\]"), ("0,-1,0,0,5,5,0.5", "frames count from 1")],
)
def test_malformed_mot_lines_name_the_line(tmp_path, line, message) -> None:
    path = tmp_path / "det.txt"
    path.write_text("1,-1,0,0,5,5,0.5\n" + line + "\n")
    with pytest.raises(HumanParseError, match=rf"det.txt:2: .*{message}"):
        MotDetector(path)


def test_person_detections_keep_persons_above_threshold() -> None:
    output = {
        "boxes": torch.tensor([[0.0, 0, 5, 5], [1, 1, 6, 6], [2, 2, 7, 7], [3, 3, 8, 8]]),
        "labels": torch.tensor([1, 3, 1, 1]),
        "scores": torch.tensor([0.6, 0.99, 0.3, 0.8]),
    }
    det = person_detections(output, threshold=0.5, max_people=None)
    assert det.scores.tolist() == pytest.approx([0.8, 0.6])
    assert det.boxes.tolist() == [[3, 3, 8, 8], [0, 0, 5, 5]]
    assert len(person_detections(output, threshold=0.0, max_people=1)) == 1


@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2"])
def test_torchvision_adapter_with_random_weights(name: str) -> None:
    torch.manual_seed(0)
    det = TorchvisionDetector(name, weights=None, threshold=0.0, max_people=5, min_size=96, max_size=128)
    out = det(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    assert isinstance(out, Detections) and len(out) <= 5
    assert bool(np.all(np.diff(out.scores) <= 0))


def test_torchvision_weights_offline_or_missing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(HumanParseError, match="cannot load COCO weights.*checkpoints"):
        TorchvisionDetector("fcos_resnet50_fpn", weights="default", min_size=96, max_size=128)
    with pytest.raises(HumanParseError, match="do not exist"):
        TorchvisionDetector("fcos_resnet50_fpn", weights=tmp_path / "nope.pth")
    with pytest.raises(HumanParseError, match="unknown torchvision detector"):
        TorchvisionDetector("yolo")


def test_ground_truth_and_simulated_detectors(tmp_path) -> None:
    root = write_image_dataset(tmp_path / "d", 2, seed=4, size=(96, 80))
    sample = load_sample(root, "000001", 7)
    gt = GroundTruthDetector(root)(sample.image, key="000001")
    np.testing.assert_array_equal(gt.boxes, sample.boxes)
    assert (gt.scores == 1).all()
    sim = SimulatedDetector(root, seed=3)
    assert np.array_equal(sim(sample.image, key="000001").boxes, sim(sample.image, key="000001").boxes)


def test_detector_specs(tmp_path) -> None:
    root = write_image_dataset(tmp_path / "d", 1, seed=4, size=(32, 32))
    assert isinstance(parse_detector_spec("gt", data_root=root), GroundTruthDetector)
    assert isinstance(parse_detector_spec("sim:5", data_root=root), SimulatedDetector)
    assert isinstance(parse_detector_spec(f"file:{write_json(tmp_path, [])}"), CocoResultsDetector)
    mot = tmp_path / "det.txt"
    mot.write_text("")
    assert isinstance(parse_detector_spec(f"file:{mot}"), MotDetector)
    for spec, message in (("gt", "annotated data set"), ("file:", "needs a path"), ("file:/nope.json", "does not exist"), ("magic", "unknown detector")):
        with pytest.raises(HumanParseError, match=message):
            parse_detector_spec(spec)
    with pytest.raises(HumanParseError, match="integer seed"):
        parse_detector_spec("sim:x", data_root=root)


def test_sim_spec_sets_the_truncation_rate(tmp_path) -> None:
    root = write_image_dataset(tmp_path / "d", 1, seed=4, size=(32, 32))
    default = parse_detector_spec("sim:5", data_root=root)
    heavy = parse_detector_spec("sim:5:0.75", data_root=root)
    assert isinstance(default, SimulatedDetector) and isinstance(heavy, SimulatedDetector)
    assert default.noise == DetectionNoise() and heavy.seed == 5
    assert heavy.noise == replace(DetectionNoise(), truncation_rate=0.75)
    assert parse_detector_spec("sim::1", data_root=root).noise.truncation_rate == 1.0
    for bad in ("sim:1:x", "sim:1:1.5", "sim:1:-0.1", "sim:1:nan"):
        with pytest.raises(HumanParseError, match="truncation rate"):
            parse_detector_spec(bad, data_root=root)
