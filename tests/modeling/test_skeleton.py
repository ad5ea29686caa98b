"""Part evidence from a skeleton: a person's mask split into the six parts."""

from __future__ import annotations

import numpy as np
import torch

from humanparse.modeling.skeleton import HEAD, LOWER_ARMS, LOWER_LEGS, TORSO, UPPER_ARMS, UPPER_LEGS, category_q, part_evidence

# A person 100 px tall facing the camera, arms hanging, centred at x = 50 (COCO-17 order).
STANDING = {0: (50, 10), 1: (47, 8), 2: (53, 8), 3: (44, 9), 4: (56, 9), 5: (40, 22), 6: (60, 22), 7: (36, 38), 8: (64, 38),
            9: (34, 52), 10: (66, 52), 11: (44, 55), 12: (56, 55), 13: (44, 75), 14: (56, 75), 15: (44, 95), 16: (56, 95)}
PLACES = {HEAD: (50, 8), TORSO: (50, 40), UPPER_ARMS: (37, 30), LOWER_ARMS: (35, 46), UPPER_LEGS: (44, 65), LOWER_LEGS: (44, 88)}


def standing(score: float = 0.9, hidden: tuple[int, ...] = ()) -> tuple[np.ndarray, torch.Tensor]:
    keypoints = np.zeros((1, 17, 3), np.float32)
    for k, (x, y) in STANDING.items():
        keypoints[0, k] = (x, y, 0.0 if k in hidden else score)
    mask = torch.zeros(1, 104, 100)
    mask[0, 2:100, 30:70] = 1
    return keypoints, mask


def test_each_part_lies_on_its_piece_of_the_skeleton_and_the_parts_sum_to_the_mask() -> None:
    keypoints, mask = standing()
    parts = part_evidence(keypoints, mask, np.array([100.0]))
    assert parts.shape == (1, 6, 104, 100)
    torch.testing.assert_close(parts.sum(1), mask)
    labels = parts[0].argmax(0) + 1
    for part, (x, y) in PLACES.items():
        assert int(labels[y, x]) == part, (part, int(labels[y, x]))


def test_parts_come_in_the_right_vertical_order() -> None:
    keypoints, mask = standing()
    labels = part_evidence(keypoints, mask, np.array([100.0]))[0].argmax(0) + 1
    rows = torch.arange(104, dtype=torch.float32)[:, None].expand(104, 100)
    centre = {part: float(rows[(labels == part) & (mask[0] > 0)].mean()) for part in (HEAD, TORSO, UPPER_LEGS, LOWER_LEGS)}
    assert centre[HEAD] < centre[TORSO] < centre[UPPER_LEGS] < centre[LOWER_LEGS]


def test_parts_whose_keypoints_are_missing_stay_uncertain_rather_than_wrong() -> None:
    keypoints, mask = standing(hidden=(11, 12, 13, 14, 15, 16))  # a portrait: no hips, no legs
    parts = part_evidence(keypoints, mask, np.array([100.0]))[0]
    share = parts / mask[0].clamp(min=1e-6)
    # below the shoulders the torso still runs (1.6 shoulder widths), less surely than seen
    assert int(share[:, 45, 50].argmax()) + 1 == TORSO
    # far below, nothing is known: every part equally likely, none above 1/6 by much
    assert float(share[:, 95, 50].max()) < 0.2
    seen_keypoints, _ = standing()
    assert float(part_evidence(seen_keypoints, mask, np.array([100.0]))[0, LOWER_LEGS - 1, 95, 44]) > 0.5


def test_lower_confidence_gives_flatter_evidence() -> None:
    sure, mask = standing(score=1.0)
    unsure, _ = standing(score=0.4)
    x, y = PLACES[UPPER_ARMS]
    assert float(part_evidence(sure, mask, np.array([100.0]))[0, UPPER_ARMS - 1, y, x]) > float(part_evidence(unsure, mask, np.array([100.0]))[0, UPPER_ARMS - 1, y, x])


def test_category_q_is_a_distribution_with_background_where_no_mask_covers() -> None:
    keypoints, mask = standing()
    two = torch.cat([mask, torch.roll(mask, 20, dims=2) * 0.5])
    both = np.concatenate([keypoints, keypoints + np.array([20, 0, 0], np.float32)])
    q = category_q(part_evidence(both, two, np.array([100.0, 100.0])), two)
    assert q.shape == (7, 104, 100)
    torch.testing.assert_close(q.sum(0), torch.ones(104, 100))
    assert float(q[0, 50, 5]) == 1.0 and float(q[0, 50, 50]) == 0.0
    assert abs(float(q[0, 50, 80]) - 0.5) < 1e-6  # only the half-sure second person here
