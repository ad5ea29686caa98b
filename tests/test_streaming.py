"""Detect, then follow: detection frames on schedule and after a loss, boxes from keypoints,
detections merged with followed persons; and on the real clip, following gives the
persons that detecting on every frame gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from humanparse.errors import HumanParseError
from humanparse.labels import PASCAL_PERSON_PART
from humanparse.modeling.pose_guided import PoseGuidedParser
from humanparse.ops import MARGIN_BOTTOM, MARGIN_SIDE, MARGIN_TOP, keypoint_boxes
from humanparse.predictor import Predictor
from humanparse.pretrained import BlazePose
from humanparse.streaming import CropFollower
from humanparse.structures import Detections, ParsingResult

CLIP = Path(__file__).resolve().parents[1] / "examples" / "pedestrians.mp4"


def standing(x: float, y: float, height: float, score: float = 0.9) -> np.ndarray:
    """(17, 3) keypoints of an upright person whose eyes are at (x, y) and ankles ``height`` below."""
    rows = np.linspace(0, 1, 17)
    return np.stack([x + 0.1 * height * np.cos(np.arange(17)), y + rows * height, np.full(17, score)], 1).astype(np.float32)


def result_for(given: Detections, keep: list[int], keypoints: np.ndarray, size=(200, 300)) -> ParsingResult:
    """What a parser returns for the persons ``keep`` of ``given``: their boxes, new scores."""
    n = len(keep)
    return ParsingResult(
        np.zeros(size, np.uint8), np.zeros(size, np.int32), np.arange(1, n + 1), given.clipped(*size).boxes[keep],
        np.full(n, 0.5, np.float32), (), PASCAL_PERSON_PART, keypoints.reshape(n, 17, 3),
    )


def persons_of(follower: CropFollower, detect) -> Detections:
    """One frame's persons as the stream asks for them: the detector only when due."""
    return follower.persons(detect() if follower.due() else None)


def test_keypoint_boxes_span_the_confident_keypoints_and_the_margins() -> None:
    a = standing(50, 20, 100)
    b = standing(200, 40, 60, score=0.1)  # nothing confident
    c = standing(120, 10, 80)
    c[4:, 2] = 0.0  # only four confident keypoints: still placed
    boxes, placed = keypoint_boxes(np.stack([a, b, c]))
    assert placed.tolist() == [True, False, True]
    span = 100.0  # a's keypoints span 100 px down and 20 px across
    x0, x1 = a[:, 0].min(), a[:, 0].max()
    np.testing.assert_allclose(boxes[0], [x0 - MARGIN_SIDE * span, 20 - MARGIN_TOP * span, x1 + MARGIN_SIDE * span, 120 + MARGIN_BOTTOM * span], atol=1e-4)
    assert not boxes[1].any()
    seen = c[:4]
    assert boxes[2, 0] < seen[:, 0].min() and boxes[2, 2] > seen[:, 0].max() and boxes[2, 1] < seen[:, 1].min()


def test_a_frame_without_persons_calls_the_detector_again() -> None:
    assert keypoint_boxes(np.zeros((0, 17, 3), np.float32))[0].shape == (0, 4)
    follower = CropFollower(detect_every=10)
    calls: list[int] = []
    for frame in range(3):
        given = persons_of(follower, lambda: calls.append(frame) or Detections.empty())
        follower.update(result_for(given, [], np.zeros((0, 17, 3), np.float32)))
    assert calls == [0, 1, 2]  # no one to follow: look for newcomers on every frame


def test_the_detector_runs_on_schedule_and_followed_persons_keep_their_scores() -> None:
    follower = CropFollower(detect_every=3)
    calls: list[int] = []
    person = Detections(np.array([[40.0, 10, 70, 130]]), np.array([0.8]))

    def detect() -> Detections:
        calls.append(frame)
        return person

    for frame in range(7):
        given = persons_of(follower, detect)
        assert len(given) == 1 and given.scores[0] == pytest.approx(0.8)  # not the result's 0.5
        follower.update(result_for(given, [0], standing(55 + frame, 20, 100)))
        if frame % 3:
            assert not np.allclose(given.boxes, person.boxes)  # a box from the last keypoints
    assert calls == [0, 3, 6]
    assert follower.detections == 3


def test_a_lost_person_calls_the_detector_on_the_next_frame() -> None:
    follower = CropFollower(detect_every=100)
    two = Detections(np.array([[40.0, 10, 70, 130], [150, 20, 180, 120]]), np.array([0.9, 0.7]))
    calls: list[int] = []
    for frame in range(4):
        given = persons_of(follower, lambda: calls.append(frame) or two)
        keep = [0] if frame == 1 else list(range(len(given)))  # frame 1: the second is lost
        follower.update(result_for(given, keep, np.stack([standing(55, 20, 100), standing(165, 30, 90)])[keep]))
    assert calls == [0, 2]


def test_unconfirmed_detections_are_not_losses() -> None:
    follower = CropFollower(detect_every=100)
    person_and_cone = Detections(np.array([[40.0, 10, 70, 130], [250, 150, 260, 170]]), np.array([0.9, 0.35]))
    calls: list[int] = []
    for frame in range(4):
        given = persons_of(follower, lambda: calls.append(frame) or person_and_cone)
        follower.update(result_for(given, [0], standing(55, 20, 100)))  # the cone never is a person
    assert calls == [0]


def test_a_detection_frame_keeps_followed_persons_the_detector_misses() -> None:
    follower = CropFollower(detect_every=2)
    both = Detections(np.array([[40.0, 10, 70, 130], [150, 20, 180, 120]]), np.array([0.9, 0.7]))
    given = persons_of(follower, lambda: both)
    follower.update(result_for(given, [0, 1], np.stack([standing(55, 20, 100), standing(165, 30, 90)])))
    follower.update(result_for(persons_of(follower, lambda: both), [0, 1], np.stack([standing(56, 20, 100), standing(166, 30, 90)])))
    # Frame 2 detects again; the detector finds the first person only (the second walks behind a post).
    first_again = Detections(np.array([[42.0, 10, 72, 130]]), np.array([0.95]))
    merged = persons_of(follower, lambda: first_again)
    assert len(merged) == 2
    np.testing.assert_allclose(merged.boxes[0], first_again.boxes[0])  # found again: the detector's box
    assert merged.scores.tolist() == pytest.approx([0.95, 0.7])  # the missed one kept, with its score


def test_persons_refuses_detections_off_schedule() -> None:
    follower = CropFollower(detect_every=4)
    with pytest.raises(HumanParseError, match="detection frame"):
        follower.persons(None)  # the first frame is a detection frame
    person = Detections(np.array([[40.0, 10, 70, 130]]), np.array([0.8]))
    given = follower.persons(person)
    follower.update(result_for(given, [0], standing(55, 20, 100)))
    assert not follower.due()
    with pytest.raises(HumanParseError, match="detection frame"):
        follower.persons(person)


@pytest.fixture(scope="module")
def video_parser() -> Predictor:
    return Predictor(PoseGuidedParser(pose=BlazePose()), "cpu")


def test_following_finds_the_persons_that_detecting_every_frame_finds(video_parser) -> None:
    """On 10 frames of the real clip: the detector runs on 2 of them, and each frame has as
    many persons as with the detector on every frame, each overlapping its counterpart."""
    def parse(detect_every):
        with video_parser.stream(CLIP, end=1.0, tracker=None, detect_every=detect_every) as stream:
            return [frame.result for frame in stream], stream.follower

    followed, follower = parse(5)
    detected, none = parse(None)
    assert none is None and follower is not None and follower.detections == 2
    assert len(followed) == len(detected) == 10
    for a, b in zip(followed, detected):
        assert abs(len(a.ids) - len(b.ids)) <= 1 and len(a.ids) >= 3
        for pid in b.ids:
            mask = b.persons == pid
            best = max(((a.persons == q) & mask).sum() / ((a.persons == q) | mask).sum() for q in a.ids)
            assert best > 0.5
