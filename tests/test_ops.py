"""Shared box and mask operations against slow references."""

from __future__ import annotations

import numpy as np
import pytest

from humanparse.errors import HumanParseError
from humanparse.ops import CroppedMask, cropped_iou, mask_boxes, mask_iou, person_boxes, person_regions


def brute_force_person_boxes(id_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids, boxes = [], []
    for pid in sorted(set(id_map.ravel().tolist()) - {0}):
        ys, xs = np.nonzero(id_map == pid)
        ids.append(pid)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(ids, np.int64), np.array(boxes, np.float32).reshape(-1, 4)


def random_id_map(rng: np.random.Generator, height: int, width: int, dtype) -> np.ndarray:
    """Scattered ids drawn from a few that skip numbers, over a mostly empty background."""
    palette = np.sort(rng.choice(np.arange(1, 40), size=int(rng.integers(1, 6)), replace=False))
    id_map = np.where(rng.random((height, width)) < 0.15, rng.choice(palette, (height, width)), 0)
    return id_map.astype(dtype)


def assert_same_as_brute_force(id_map: np.ndarray) -> None:
    ids, boxes = person_boxes(id_map)
    want_ids, want_boxes = brute_force_person_boxes(id_map)
    assert ids.dtype == np.int64 and boxes.dtype == np.float32
    assert ids.shape == (len(want_ids),) and boxes.shape == (len(want_ids), 4)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(boxes, want_boxes)


@pytest.mark.parametrize(
    "id_map",
    [
        np.zeros((0, 0), np.uint8),
        np.zeros((0, 5), np.int64),
        np.zeros((4, 6), np.uint8),
        np.zeros((1, 1), np.uint8),
        np.full((1, 1), 3, np.uint8),
        np.array([[0, 0, 0], [0, 7, 0]], np.int32),
        np.array([[2, 0, 0, 9], [0, 0, 0, 0], [0, 0, 0, 2]], np.uint8),
        np.full((3, 4), 255, np.uint8),
    ],
    ids=["empty", "no rows", "all background", "1x1 background", "1x1 person", "one pixel", "skipping ids", "id 255 everywhere"],
)
def test_person_boxes_edge_cases(id_map: np.ndarray) -> None:
    assert_same_as_brute_force(id_map)


@pytest.mark.parametrize("seed", range(20))
def test_person_boxes_match_a_per_id_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 40, 2))
    assert_same_as_brute_force(random_id_map(rng, height, width, [np.uint8, np.int32, np.int64][seed % 3]))


def test_person_boxes_are_pixel_edges() -> None:
    id_map = np.zeros((5, 6), np.uint8)
    id_map[2, 3] = 1
    id_map[1:4, 0:2] = 4
    ids, boxes = person_boxes(id_map)
    assert ids.tolist() == [1, 4]
    assert boxes.tolist() == [[3, 2, 4, 3], [0, 1, 2, 4]]


@pytest.mark.parametrize(
    "id_map, message",
    [
        (np.zeros((2, 2), np.float32), "integer array"),
        (np.zeros((2, 2, 1), np.uint8), "integer array"),
        (np.array([[0, -1]], np.int64), "must not be negative"),
    ],
)
def test_person_boxes_reject_what_is_not_an_id_map(id_map: np.ndarray, message: str) -> None:
    with pytest.raises(HumanParseError, match=message):
        person_boxes(id_map)


def slow_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def test_mask_iou_matches_slow_reference() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((4, 9, 7)) < 0.4
    b = rng.random((3, 9, 7)) < 0.6
    a[1] = False
    b[2] = False
    iou = mask_iou(a, b)
    assert iou.shape == (4, 3)
    expected = np.array([[slow_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(iou, expected, rtol=0, atol=1e-12)
    assert mask_iou(a[:0], b).shape == (0, 3)
    with pytest.raises(HumanParseError, match="masks"):
        mask_iou(a, b[:, :8])


def test_mask_iou_of_exact_fractions_is_their_float() -> None:
    """k of 10 pixels shared is float(k / 10) exactly: the evaluators' strict ``> t`` rests on it."""
    truth = np.ones((1, 1, 10), bool)
    guesses = np.arange(10)[None, None, :] < np.arange(1, 10)[:, None, None]  # (9, 1, 10)
    assert mask_iou(guesses, truth)[:, 0].tolist() == [k / 10 for k in range(1, 10)]


def test_mask_boxes_agree_with_person_boxes() -> None:
    rng = np.random.default_rng(3)
    id_map = rng.integers(0, 4, (12, 17))
    id_map[:, :5] = 0
    ids, boxes = person_boxes(id_map)
    got, areas = mask_boxes(np.stack([id_map == i for i in range(1, 5)]))
    present = [i - 1 for i in ids]
    assert np.array_equal(got[present], boxes.astype(np.int64))
    assert areas.tolist() == [int((id_map == i).sum()) for i in range(1, 5)]


def test_cropped_masks_keep_their_place_and_area_and_give_the_whole_masks_iou() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        shape = tuple(int(v) for v in rng.integers(1, 12, 2))
        a = rng.random((int(rng.integers(0, 4)), *shape)) < rng.choice([0.0, 0.1, 0.6])
        b = rng.random((int(rng.integers(0, 4)), *shape)) < rng.choice([0.0, 0.1, 0.6])
        crops_a, crops_b = [CroppedMask.of(m) for m in a], [CroppedMask.of(m) for m in b]
        for mask, crop in zip(a, crops_a):
            placed = np.zeros(shape, bool)
            placed[crop.top : crop.top + crop.mask.shape[0], crop.left : crop.left + crop.mask.shape[1]] = crop.mask
            assert np.array_equal(placed, mask) and crop.area == int(mask.sum())
        brute = np.array([[(p & q).sum() / (p | q).sum() if p.any() and q.any() else 0.0 for q in b] for p in a]).reshape(len(a), len(b))
        assert np.array_equal(cropped_iou(crops_a, crops_b), brute)


def test_person_regions_are_the_boxes_of_each_id() -> None:
    ids = np.zeros((6, 8), np.uint16)
    ids[1:3, 2:5] = 4
    ids[5, 7] = 300
    assert person_regions(ids) == {4: (slice(1, 3), slice(2, 5)), 300: (slice(5, 6), slice(7, 8))}
    assert person_regions(np.zeros((3, 3), np.int32)) == {}
    with pytest.raises(HumanParseError):
        person_regions(-np.ones((2, 2), np.int64))
