"""The default parser: Q from BodyPix's logits, the persons' shares, the persons found from
the pose maps, the Instance CRF's truncated-box behaviour, the marginal readout, and the
whole parser on real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from humanparse.io.images import read_image
from humanparse.modeling.bodypix_parser import (
    CROP_SIZE,
    PART_GROUPS,
    SMALL_HEIGHT,
    BodyPixParser,
    associate,
    find_persons,
    instance_crf,
    marginal_readout,
    part_probabilities,
    paste_crop_maps,
    person_shares,
    small_person_crops,
)
from humanparse.pretrained.posenet import DecodedPoses
from humanparse.structures import Detections

PHOTOS = Path(__file__).resolve().parents[1] / "fixtures" / "photos"
PEOPLE: dict[str, list[list[float]]] = json.loads((PHOTOS / "people.json").read_text())["boxes"]


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_q_is_person_probability_times_grouped_part_probabilities() -> None:
    gen = torch.Generator().manual_seed(0)
    segments, parts = torch.randn(5, 6, generator=gen) * 3, torch.randn(24, 5, 6, generator=gen) * 3
    q = part_probabilities(segments, parts)
    person = torch.sigmoid(segments)
    torch.testing.assert_close(q[0], 1 - person)
    fine = torch.softmax(parts, 0)
    for j, group in enumerate(PART_GROUPS):
        torch.testing.assert_close(q[1 + j], person * sum(fine[k] for k in group))
    torch.testing.assert_close(q.sum(0), torch.ones(5, 6))
    assert sorted(k for group in PART_GROUPS for k in group) == list(range(24))


def test_q_averages_the_selfie_probability_by_its_weight() -> None:
    segments, parts = torch.zeros(2, 3), torch.zeros(24, 2, 3)  # BodyPix: 0.5 everywhere
    selfie = torch.ones(2, 3)
    weight = torch.tensor([[0.0, 0.25, 0.5], [0.5, 0.5, 0.5]])
    q = part_probabilities(segments, parts, selfie, weight)
    torch.testing.assert_close(1 - q[0], 0.5 + 0.5 * weight)
    torch.testing.assert_close(part_probabilities(segments, parts, selfie, 0.0), part_probabilities(segments, parts))


def test_shares_sum_to_one_reach_is_one_inside_and_falls_off_outside() -> None:
    boxes = torch.tensor([[2.0, 2.0, 12.0, 22.0], [8.0, 4.0, 18.0, 24.0]])
    shares, reach = person_shares(boxes, torch.tensor([0.9, 0.3]), 30, 30)
    torch.testing.assert_close(shares.sum(0), torch.ones(30, 30))
    assert bool((reach[2:22, 2:12] == 1).all()) and bool((reach[4:24, 8:18] == 1).all())
    # Outside: exp(-d^2 / 2 sigma^2) with sigma = 0.1 * 20 px, from the nearer box.
    assert reach[26, 15].item() == pytest.approx(np.exp(-(26.5 - 24) ** 2 / (2 * 2.0**2)), rel=1e-5)
    # Where the boxes overlap the better-scoring person has the larger share, 0.9 : 0.3.
    assert shares[0, 10, 10].item() == pytest.approx(0.75, rel=1e-5)
    # Inside one box only, that person has nearly everything, even beside a better-scoring box.
    assert shares[0, 10, 2].item() > 0.99 and shares[1, 10, 17].item() > 0.9


def test_marginal_readout_equals_brute_force_and_keeps_split_persons() -> None:
    gen = torch.Generator().manual_seed(1)
    p, d = 3, 2
    probs = torch.softmax(torch.randn(p * d + 1, 4, 5, generator=gen), 0)
    # A pixel whose person mass is split: background is the largest single label, yet the
    # persons together hold 0.7 of it.
    probs[:, 0, 0] = torch.tensor([0.3, 0.12, 0.11, 0.12, 0.12, 0.11, 0.12])
    confidence, labels = marginal_readout(probs, p, (4, 5))
    for y in range(4):
        for x in range(5):
            column = probs[:, y, x]
            by_person = column[1:].reshape(d, p)
            if column[0] >= 0.5:
                assert labels[y, x] == 0 and confidence[y, x] == column[0]
            else:
                part, person = int(by_person.sum(0).argmax()), int(by_person.sum(1).argmax())
                assert labels[y, x] == person * p + part + 1
                torch.testing.assert_close(confidence[y, x], by_person.sum(0)[part])
    assert labels[0, 0] != 0 and int(probs[:, 0, 0].argmax()) == 0


def person_scene(h: int = 40, w: int = 30):
    """A standing person over columns 10..19: head rows 0..9, torso 10..24, legs 25..39;
    Q sure of them, background elsewhere; the image shows the person darker."""
    q = torch.full((7, h, w), 0.01)
    q[0] = 0.94
    for rows, part in ((slice(0, 10), 1), (slice(10, 25), 2), (slice(25, 40), 6)):
        q[:, rows, 10:20] = 0.01
        q[part, rows, 10:20] = 0.94
    image = torch.full((3, h, w), 200.0)
    image[:, :, 10:20] = 60.0
    return q, image


def test_a_box_cut_short_keeps_the_parts_outside_it() -> None:
    q, image = person_scene()
    cut = torch.tensor([[8.0, 0.0, 22.0, 24.0]])  # the box ends at the waist
    probs, _ = associate(instance_crf(), q, image, cut, torch.tensor([0.8]))
    _, labels = marginal_readout(probs, 6, (40, 30))
    legs = labels[28:40, 10:20]
    assert bool((legs == 6).all()), "the legs below the box went to background"
    assert bool((labels[:, :8] == 0).all()) and bool((labels[:, 22:] == 0).all())


def test_two_persons_side_by_side_each_keep_their_own_pixels() -> None:
    q, image = person_scene(w=60)
    q2, _ = person_scene()
    q[:, :, 40:50] = q2[:, :, 10:20]
    image[:, :, 40:50] = 60.0
    boxes = torch.tensor([[8.0, 0.0, 22.0, 40.0], [38.0, 0.0, 52.0, 40.0]])
    probs, masks = associate(instance_crf(), q, image, boxes, torch.tensor([0.9, 0.6]))
    _, labels = marginal_readout(probs, 6, (40, 60))
    person = torch.where(labels > 0, (labels - 1) // 6 + 1, 0)
    assert bool((person[:, 10:20] == 1).all()) and bool((person[:, 40:50] == 2).all())
    assert masks.shape == (2, 40, 60)


def test_small_persons_get_crops_of_the_second_pass_smallest_first() -> None:
    boxes = np.array([[10, 10, 40, 90], [100, 20, 180, 300], [200, 50, 215, 90], [300, 0, 301, 2]], np.float32)
    crops = small_person_crops(boxes, (400, 600), input_scale=1.0)
    # 80 and 40 px tall are small; 280 is not; a 2-px box is no person to look at again.
    assert crops.shape == (2, 4)
    tall, wide = crops[:, 3] - crops[:, 1], crops[:, 2] - crops[:, 0]
    np.testing.assert_allclose(tall, [60, 120])  # 1.5 x the box, the smallest first
    np.testing.assert_allclose(wide / tall, CROP_SIZE[1] / CROP_SIZE[0], rtol=1e-6)
    np.testing.assert_allclose((crops[:, :2] + crops[:, 2:]) / 2, [[207.5, 70], [25, 50]])
    # At a smaller input scale the 280-px person is small too.
    assert len(small_person_crops(boxes, (400, 600), input_scale=SMALL_HEIGHT / 300)) == 3


def test_crop_maps_are_pasted_where_the_crop_lies_with_bodypixs_alignment() -> None:
    h, w = (CROP_SIZE[0] - 1) // 16 + 1, (CROP_SIZE[1] - 1) // 16 + 1
    # Crop cell (r, c) sits on crop pixel (16 r, 16 c): a map holding that row coordinate.
    ramp = (torch.arange(h, dtype=torch.float32) * 16)[:, None].expand(h, w)[None, None]
    crop = np.array([[50.0, 40.0, 50.0 + 97 / 2, 40.0 + 161 / 2]], np.float32)  # two crop pixels an image pixel
    full = torch.full((1, 100, 120), -7.0)  # a grid of 100 x 120 over a 200 x 240 image
    out = paste_crop_maps(full, ramp, crop, (200, 240))
    assert out[0, 10, 10].item() == -7.0 and out[0, 99, 119].item() == -7.0  # outside: untouched
    for row in (25, 40, 55):
        y = (row + 0.5) * 2  # the grid pixel's centre, image pixels
        expected = min(max((y - 40.0) * 2 - 0.5, 0.0), 16.0 * (h - 1))
        assert out[0, row, 40].item() == pytest.approx(expected, abs=1e-3)


def pose(x: float, y: float, height: float, score: float = 0.8) -> np.ndarray:
    """17 COCO keypoints of a standing person with the nose at (x, y)."""
    rows = np.array([0, -0.02, -0.02, 0, 0, 0.15, 0.15, 0.3, 0.3, 0.42, 0.42, 0.5, 0.5, 0.7, 0.7, 0.9, 0.9])
    cols = np.array([0, 0.02, -0.02, 0.04, -0.04, 0.1, -0.1, 0.12, -0.12, 0.12, -0.12, 0.06, -0.06, 0.06, -0.06, 0.06, -0.06])
    return np.stack([x + cols * height, y + rows * height, np.full(17, score)], 1).astype(np.float32)


def test_persons_from_the_pose_maps_join_where_no_box_is_and_spurious_boxes_go() -> None:
    person = torch.zeros(100, 200)  # grid of a 200 x 400 image, half scale
    person[10:60, 20:35] = 0.9      # someone NanoDet found
    person[10:60, 120:135] = 0.9    # someone it missed, with a pose
    found = Detections(
        np.array([[38, 15, 72, 125], [300, 20, 340, 120], [200, 150, 260, 190]], np.float32),  # person; a sign post; a cloth
        np.array([0.8, 0.7, 0.35], np.float32),
    )
    poses = DecodedPoses(np.stack([pose(55, 25, 95), pose(255, 25, 95), pose(350, 25, 95, score=0.9)]), np.array([0.8, 0.7, 0.9], np.float32))
    persons, keypoints = find_persons(found, poses, person, (200, 400))
    assert len(persons) == 2
    np.testing.assert_allclose(persons.boxes[0], found.boxes[0])
    box = persons.boxes[1]  # the missed person, from their keypoints, scored as the pose
    assert box[0] < 250 < 260 < box[2] and box[1] < 25 and box[3] > 105
    assert persons.scores[1] == pytest.approx(0.7)
    np.testing.assert_allclose(keypoints[0], poses.keypoints[0])
    np.testing.assert_allclose(keypoints[1], poses.keypoints[1])
    # The pose at x = 350 has no person pixels: no one; nor the post's box, nor the cloth's.


def test_a_confident_detection_without_a_pose_stays_a_weak_one_goes() -> None:
    person = torch.zeros(50, 50)
    person[5:45, 5:20] = 0.9
    person[5:45, 30:45] = 0.9
    found = Detections(np.array([[10, 10, 40, 90], [60, 10, 90, 90]], np.float32), np.array([0.6, 0.4], np.float32))
    persons, keypoints = find_persons(found, DecodedPoses(np.zeros((0, 17, 3)), np.zeros(0)), person, (100, 100))
    assert len(persons) == 1 and persons.scores[0] == pytest.approx(0.6)
    assert keypoints.shape == (1, 17, 3) and not keypoints.any()


def test_no_persons_at_all() -> None:
    persons, keypoints = find_persons(Detections.empty(), DecodedPoses(np.zeros((0, 17, 3)), np.zeros(0)), torch.zeros(8, 8), (16, 16))
    assert len(persons) == 0 and keypoints.shape == (0, 17, 3)
    q, image = person_scene()
    probs, masks = associate(instance_crf(), q, image, torch.zeros(0, 4), torch.zeros(0))
    assert probs.shape == (1, 40, 30) and masks.shape == (0, 40, 30)


@pytest.fixture(scope="module")
def parser() -> BodyPixParser:
    return BodyPixParser()


@pytest.mark.parametrize("photo", sorted(PEOPLE))
def test_every_person_in_the_photos_is_found_once_with_parts_in_order(parser: BodyPixParser, photo: str) -> None:
    image = read_image(PHOTOS / photo)
    result = parser.parse([image])[0]
    assert len(result.ids) == len(PEOPLE[photo])
    for marked in PEOPLE[photo]:
        assert max(box_iou(marked, box) for box in result.boxes) >= 0.5
    assert result.keypoints is not None and result.keypoints.shape == (len(result.ids), 17, 3)
    for person_id in result.ids:
        mine = result.persons == person_id
        rows = {part: np.nonzero(mine & (result.parts == part))[0] for part in (1, 2)}
        assert len(rows[1]) and len(rows[2]), f"person {person_id} has no head or no torso"
        assert rows[1].mean() < rows[2].mean(), "the head is below the torso"
    # Keypoints lie on their person: the nose inside the person's box.
    for box, points in zip(result.boxes, result.keypoints):
        nose = points[0]
        if nose[2] >= 0.3:
            assert box[0] - 5 <= nose[0] <= box[2] + 5 and box[1] - 5 <= nose[1] <= box[3] + 5


def test_pedestrians_get_legs_below_their_torsos(parser: BodyPixParser) -> None:
    result = parser.parse([read_image(PHOTOS / "vtest_frame0.jpg")])[0]
    for person_id in result.ids:
        mine = result.persons == person_id
        torso, legs = np.nonzero(mine & (result.parts == 2))[0], np.nonzero(mine & (result.parts >= 5))[0]
        assert len(legs) and torso.mean() < legs.mean()
