"""The pose-guided parser on real photos: each visible person found, with keypoints, and a
mask split into head, torso, arms and legs in the right places and order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from humanparse.io.images import read_image
from humanparse.labels import PASCAL_PERSON_PART
from humanparse.modeling.parser import ParseOptions
from humanparse.modeling.pose_guided import PoseGuidedParser, plausible
from humanparse.modeling.skeleton import HEAD, TORSO
from humanparse.predictor import Predictor
from humanparse.structures import Detections

PHOTOS = Path(__file__).resolve().parents[1] / "fixtures" / "photos"
PEOPLE = json.loads((PHOTOS / "people.json").read_text())["boxes"]


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_checkpoint("pose-guided", device="cpu")


@pytest.mark.parametrize("photo", sorted(PEOPLE))
def test_each_person_gets_a_mask_split_into_parts_in_the_right_order(predictor, photo) -> None:
    image = read_image(PHOTOS / photo)
    result = predictor(image)
    assert result.labels == PASCAL_PERSON_PART
    assert len(result.ids) == len(PEOPLE[photo])  # the pose drops NanoDet's cones, post and flag
    assert result.keypoints.shape == (len(result.ids), 17, 3)
    rows = np.arange(image.shape[0])[:, None]
    for person in PEOPLE[photo]:
        k = int(np.argmax([box_iou(person, box) for box in result.boxes]))
        assert box_iou(person, result.boxes[k]) >= 0.5
        mask = result.persons == result.ids[k]
        x1, y1, x2, y2 = person
        inside = mask[int(y1) : int(y2), int(x1) : int(x2)].sum() / mask.sum()
        assert mask.sum() > 0.2 * (x2 - x1) * (y2 - y1) and inside > 0.9
        head, torso = mask & (result.parts == HEAD), mask & (result.parts == TORSO)
        assert head.sum() and torso.sum()
        assert np.broadcast_to(rows, mask.shape)[head].mean() < np.broadcast_to(rows, mask.shape)[torso].mean()


def test_whole_bodies_get_legs_below_the_torso(predictor) -> None:
    result = predictor(read_image(PHOTOS / "vtest_frame0.jpg"))
    rows = np.arange(result.size[0])[:, None]
    for pid in result.ids:
        mask = result.persons == pid
        centres = {part: np.broadcast_to(rows, mask.shape)[mask & (result.parts == part)].mean() for part in (1, 2, 5, 6) if (mask & (result.parts == part)).any()}
        assert set(centres) == {1, 2, 5, 6}
        assert centres[1] < centres[2] < centres[5] < centres[6]


def test_given_detections_are_parsed_and_unconfirmed_ones_dropped() -> None:
    parser = PoseGuidedParser()
    image = read_image(PHOTOS / "astronaut.jpg")
    person, sky = [20, 15, 365, 512], [400, 0, 500, 60]  # the sky above the rocket: no pose there
    [result] = parser.parse([image], [Detections(np.array([person, sky], np.float32), np.array([0.9, 0.9], np.float32))], ParseOptions())
    assert len(result.ids) == 1 and box_iou(person, result.boxes[0]) > 0.99


def test_plausible_keeps_confirmed_and_sure_detections() -> None:
    keypoints = np.zeros((4, 17, 3), np.float32)
    keypoints[0, :8, 2] = 0.9  # 8 keypoints: kept whatever the score
    keypoints[1, :4, 2] = 0.9  # 4 keypoints and a sure detector: kept
    keypoints[2, :4, 2] = 0.9  # 4 keypoints, an unsure detector: dropped
    keypoints[3, :, 2] = 0.1  # nothing seen: dropped
    assert plausible(np.array([0.3, 0.6, 0.3, 0.9], np.float32), keypoints).tolist() == [True, True, False, False]
    assert plausible(np.zeros(0, np.float32), np.zeros((0, 17, 3), np.float32)).tolist() == []


def test_distinct_drops_the_lower_scoring_of_two_masks_of_one_person() -> None:
    import torch

    from humanparse.modeling.pose_guided import distinct

    masks = torch.zeros(4, 10, 10)
    masks[0, 2:8, 2:8] = 1.0
    masks[1, 2:8, 3:8] = 0.9  # the same person again, a box cut short
    masks[2, 0:4, 6:10] = 1.0  # someone else, touching the first
    masks[3, 2:8, 2:8] = 1.0  # the first once more, but with the better score
    assert distinct(masks, np.array([0.8, 0.7, 0.9, 0.85], np.float32)).tolist() == [False, False, True, True]
    assert distinct(torch.zeros(0, 10, 10), np.zeros(0, np.float32)).tolist() == []


def test_pedestrians_keep_their_ids_through_the_real_clip(predictor) -> None:
    """examples/pedestrians.mp4 (OpenCV's vtest.avi, cut by tools/make_demo_clip.py): over its
    first two seconds the three pedestrians of the first frame keep their ids, each with a
    head, a torso and keypoints, although their small masks overlap by as little as 0.11
    between frames (the tracker links them by their skeletons)."""
    clip = Path(__file__).resolve().parents[2] / "examples" / "pedestrians.mp4"
    with predictor.stream(clip, end=2.0) as frames:
        seen = [frame.result for frame in frames]
    assert len(seen) == 20
    first = set(seen[0].ids.tolist())
    assert len(first) == 3
    for pid in first:  # found in nearly every frame (NanoDet misses one now and then), never renamed
        assert sum(pid in result.ids for result in seen) >= 18
    assert len({pid for result in seen for pid in result.ids.tolist()}) <= 4  # one newcomer walks in
    whole = []
    for result in seen:
        assert result.keypoints.shape == (len(result.ids), 17, 3)
        whole += [{HEAD, TORSO} <= {p.part for p in result.part_instances if p.person == pid} for pid in first & set(result.ids.tolist())]
    assert np.mean(whole) >= 0.9  # a head and a torso on nearly every pedestrian in every frame


def test_people_window_is_the_box_around_the_masks_with_its_margin() -> None:
    import torch

    from humanparse.modeling.pose_guided import people_window

    masks = torch.zeros(2, 40, 60)
    masks[0, 10:20, 5:15] = 0.5
    masks[1, 25:30, 40:44] = 0.02
    masks[1, 0, 59] = 0.005  # below the threshold: no one there
    assert people_window(masks, 0) == (10, 30, 5, 44)
    assert people_window(masks, 8) == (2, 38, 0, 52)  # cut to the frame
    assert people_window(torch.zeros(2, 40, 60), 8) is None
    assert people_window(torch.zeros(0, 40, 60), 8) is None


def test_the_crf_on_the_peoples_window_labels_as_on_the_whole_frame() -> None:
    """The CRF runs on the box around the persons' masks (and a margin): on the real frame it
    gives the whole frame's labels on at least 98 % of the persons' pixels."""
    whole = PoseGuidedParser(crf_margin=None)
    windowed = PoseGuidedParser()
    windowed.load_state_dict(whole.state_dict())
    image = read_image(PHOTOS / "vtest_frame0.jpg")
    [a], [b] = whole.parse([image]), windowed.parse([image])
    assert a.ids.tolist() == b.ids.tolist() and len(a.ids) >= 3
    persons = (a.persons > 0) | (b.persons > 0)
    assert ((a.parts == b.parts) & (a.persons == b.persons))[persons].mean() >= 0.98
