"""Detections other detectors wrote: COCO results JSON and MOT det.txt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from humanparse.detectors import CocoResultsDetector, MotDetector
from humanparse.errors import HumanParseError

IMAGE = np.zeros((48, 64, 3), np.uint8)


def write_json(tmp_path, rows) -> Path:
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
    det.check_known(["000012.jpg"])  # a file for more images than are parsed
    with pytest.raises(HumanParseError, match="unknown images only, e.g. 12, street.jpg"):
        det.check_known(["000013.jpg", "road.jpg"])
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


def test_files_that_are_not_text_are_one_line_errors(tmp_path) -> None:
    coco = tmp_path / "dets.json"
    coco.write_bytes(b'[{"image_id": "caf\xe9", "bbox": [0, 0, 1, 1], "score": 0.5}]')
    with pytest.raises(HumanParseError, match=r"dets.json: cannot read detections \(not UTF-8 text: byte 0xe9 at offset 18\)"):
        CocoResultsDetector(coco)
    coco.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(HumanParseError, match=r"dets.json: cannot read detections \(JSON nested too deeply\)"):
        CocoResultsDetector(coco)
    coco.write_text(json.dumps([{"image_id": "a", "bbox": [0, 0, 1, 1], "score": 0.5}]), encoding="utf-16")  # JSON may be UTF-16
    assert len(CocoResultsDetector(coco)(IMAGE, key="a.jpg")) == 1
    mot = tmp_path / "det.txt"
    mot.write_bytes(b"1,-1,0,0,5,5,0.5\n2,-1,0,0,5,5,0.5 \xff\n")
    with pytest.raises(HumanParseError, match=r"det.txt:2: not UTF-8 text \(byte 0xff\)"):
        MotDetector(mot)


@pytest.mark.parametrize("frame, message", [("inf", "whole number"), ("1e400", "whole number"), ("1.5", "whole number"), ("nan", "whole number")])
def test_mot_frame_numbers_that_are_no_whole_numbers(tmp_path, frame, message) -> None:
    path = tmp_path / "det.txt"
    path.write_text(f"1,-1,0,0,5,5,0.5\n{frame},-1,0,0,5,5,0.5\n")
    with pytest.raises(HumanParseError, match=rf"det.txt:2: the frame number must be a {message}, got {frame}"):
        MotDetector(path)
