"""The shipped networks on real photos: each person found (box IoU >= 0.5 with a box drawn
by eye), keypoints on the person, masks on the person.

Photos (tests/fixtures/photos, licenses in docs/pretrained.md): scikit-image's astronaut
(NASA, public domain) and camera (CC0), matplotlib's grace_hopper (US Navy, public domain),
and frame 0 of OpenCV's vtest.avi (Apache-2.0 / BSD-3-Clause), three pedestrians.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from humanparse.io.images import read_image
from humanparse.ops import mask_iou
from humanparse.pretrained import BlazePose, MoveNetMultiPose, MoveNetThunder, NanoDet, SelfieMasks
from humanparse.pretrained.crops import paste_masks

PHOTOS = Path(__file__).resolve().parents[1] / "fixtures" / "photos"
# Persons drawn by eye (boxes; the nose on the portraits): tests/fixtures/photos/people.json
_MARKED = json.loads((PHOTOS / "people.json").read_text())
PEOPLE: dict[str, list[list[float]]] = _MARKED["boxes"]
NOSES: dict[str, list[float]] = _MARKED["noses"]


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def nanodet():
    return NanoDet(threshold=0.5)


@pytest.fixture(scope="module")
def thunder():
    return MoveNetThunder()


@pytest.mark.parametrize("photo", sorted(PEOPLE))
def test_nanodet_finds_each_person_and_nothing_else(nanodet, photo):
    found = nanodet(read_image(PHOTOS / photo))
    assert len(found) == len(PEOPLE[photo])
    for person in PEOPLE[photo]:
        assert max(box_iou(person, box) for box in found.boxes) >= 0.5


def test_nanodet_honours_threshold_and_max_people():
    image = read_image(PHOTOS / "vtest_frame0.jpg")
    low = NanoDet(threshold=0.2)(image)
    assert len(low) > 3 and (low.scores >= 0.2).all() and (np.diff(low.scores) <= 0).all()
    assert len(NanoDet(threshold=0.2, max_people=2)(image)) == 2
    # A looser NMS keeps more overlapping boxes, never fewer.
    assert len(NanoDet(threshold=0.2, nms_iou=0.95)(image)) >= len(low)


@pytest.mark.parametrize("photo", sorted(PEOPLE))
def test_thunder_keypoints_lie_on_the_person(nanodet, thunder, photo):
    image = read_image(PHOTOS / photo)
    boxes = np.array(PEOPLE[photo], np.float32)
    poses = thunder(image, boxes)
    assert poses.keypoints.shape == (len(boxes), 17, 3) and poses.masks is None
    for box, keypoints in zip(boxes, poses.keypoints):
        seen = keypoints[keypoints[:, 2] >= 0.3]
        assert len(seen) >= 5  # at least the face and shoulders
        margin = 0.05 * (box[3] - box[1])
        assert (seen[:, 0] >= box[0] - margin).all() and (seen[:, 0] <= box[2] + margin).all()
        assert (seen[:, 1] >= box[1] - margin).all() and (seen[:, 1] <= box[3] + margin).all()
        # Head above shoulders above hips, where seen.
        head, shoulders, hips = keypoints[0:5], keypoints[5:7], keypoints[11:13]
        assert head[head[:, 2] >= 0.3, 1].mean() < shoulders[shoulders[:, 2] >= 0.3, 1].mean()
        if (hips[:, 2] >= 0.3).any():
            assert shoulders[shoulders[:, 2] >= 0.3, 1].mean() < hips[hips[:, 2] >= 0.3, 1].mean()
    if photo in NOSES:
        nose = poses.keypoints[0, 0]
        assert nose[2] >= 0.3 and np.hypot(*(nose[:2] - NOSES[photo])) <= 0.05 * (boxes[0, 3] - boxes[0, 1])


@pytest.mark.parametrize("photo", ["grace_hopper.jpg", "vtest_frame0.jpg"])
def test_selfie_masks_cover_each_person_and_little_else(photo):
    image = read_image(PHOTOS / photo)
    boxes = np.array(PEOPLE[photo], np.float32)
    crops = SelfieMasks()(image, boxes)
    assert crops.keypoints.shape == (len(boxes), 0, 3)
    for box, mask in zip(boxes, paste_masks(crops.masks, crops.regions, *image.shape[:2])):
        x1, y1, x2, y2 = box.astype(int)
        inside = np.zeros(mask.shape, bool)
        inside[y1:y2, x1:x2] = True
        assert mask[inside].mean() > 0.3
        if photo == "vtest_frame0.jpg":  # Grace Hopper's jacket runs out of her box, to the image's edge
            assert mask[~inside].mean() < 0.01


def test_blazepose_keypoints_and_masks_cover_the_pedestrians():
    image = read_image(PHOTOS / "vtest_frame0.jpg")
    boxes = np.array(PEOPLE["vtest_frame0.jpg"], np.float32)
    poses = BlazePose()(image, boxes)
    masks = paste_masks(poses.masks, poses.regions, *image.shape[:2])
    for box, keypoints, mask in zip(boxes, poses.keypoints, masks):
        seen = keypoints[keypoints[:, 2] >= 0.5]
        assert len(seen) >= 12  # whole bodies, upright crops: BlazePose's case
        assert (seen[:, 0] >= box[0] - 4).all() and (seen[:, 0] <= box[2] + 4).all()
        assert (seen[:, 1] >= box[1] - 4).all() and (seen[:, 1] <= box[3] + 4).all()
        x1, y1, x2, y2 = box.astype(int)
        inside = np.zeros(mask.shape, bool)
        inside[y1:y2, x1:x2] = True
        assert mask[inside].mean() > 0.3 and mask[~inside].mean() < 0.01
        # the mask is the person's shape, not the box: about as tall, narrower
        person = mask > 0.5
        assert mask_iou(person[None], inside[None])[0, 0] > 0.3


@pytest.mark.parametrize("photo", ["astronaut.jpg", "grace_hopper.jpg", "vtest_frame0.jpg"])
def test_movenet_multipose_finds_portraits_and_small_pedestrians_with_their_keypoints(photo):
    """Portraits at MoveNet's 256 px, the 80-px pedestrians at 512 (camera.jpg's bent profile
    it misses: NanoDet finds that one)."""
    detector = MoveNetMultiPose(threshold=0.3)
    image = read_image(PHOTOS / photo)
    detections, poses = detector.detect_with_poses(image)
    assert len(detections) == len(PEOPLE[photo]) and len(poses) == len(detections)
    for person in PEOPLE[photo]:
        k = int(np.argmax([box_iou(person, box) for box in detections.boxes]))
        assert box_iou(person, detections.boxes[k]) >= 0.5
        seen = poses.keypoints[k][poses.keypoints[k, :, 2] >= 0.3]
        assert len(seen) and (seen[:, 0] >= person[0] - 10).all() and (seen[:, 0] <= person[2] + 10).all()
    if photo in NOSES:
        nose = poses.keypoints[0, 0]
        assert np.hypot(*(nose[:2] - NOSES[photo])) <= 0.05 * (PEOPLE[photo][0][3] - PEOPLE[photo][0][1])
    assert len(detector(image)) == len(detections)  # the Detector protocol
    assert len(MoveNetMultiPose(threshold=0.3, max_people=1)(image)) == 1
