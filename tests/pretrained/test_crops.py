"""Top-down crops: keypoints a box's square crop took from the person beside it."""

from __future__ import annotations

import numpy as np

from humanparse.pretrained.crops import drop_borrowed_keypoints


def test_a_thin_box_loses_the_keypoints_it_took_from_its_neighbour_and_keeps_its_own() -> None:
    boxes = np.array([[0, 0, 10, 100], [20, 0, 120, 100]], np.float32)
    keypoints = np.array([
        [[5, 50, 0.9], [60, 50, 0.8], [11, 50, 0.7], [-20, 50, 0.9]],  # own, the neighbour's, own within the margin, outside every box
        [[60, 50, 0.9], [5, 50, 0.9], [125, 10, 0.9], [21, 5, 0.5]],
    ], np.float32)
    kept = drop_borrowed_keypoints(keypoints, boxes)
    assert np.array_equal(kept[..., 2], np.array([[0.9, 0.0, 0.7, 0.9], [0.9, 0.0, 0.9, 0.5]], np.float32))
    assert np.array_equal(kept[..., :2], keypoints[..., :2])  # positions untouched
    assert keypoints[0, 1, 2] == np.float32(0.8)  # a copy: the input stands


def test_a_single_person_and_nested_boxes_keep_every_keypoint() -> None:
    lone = np.array([[[500, 500, 0.9]]], np.float32)
    assert drop_borrowed_keypoints(lone, np.array([[0, 0, 10, 10]], np.float32))[0, 0, 2] == np.float32(0.9)
    # A child in front of an adult: the child's joints lie in both boxes, so stay the child's.
    boxes = np.array([[0, 0, 100, 200], [40, 100, 70, 190]], np.float32)
    keypoints = np.array([[[50, 20, 0.9]], [[55, 150, 0.8]]], np.float32)
    assert np.array_equal(drop_borrowed_keypoints(keypoints, boxes), keypoints)
