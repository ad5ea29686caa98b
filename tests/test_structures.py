"""The validated data at module boundaries: detections, and the results every parser gives."""

from __future__ import annotations

import numpy as np
import pytest

from humanparse.errors import HumanParseError
from humanparse.labels import COCO_KEYPOINTS, COCO_SKELETON, PASCAL_PERSON_PART
from humanparse.structures import Detections, ParsingResult, PartScore


def two_person_result(keypoints: np.ndarray | None = None) -> ParsingResult:
    persons = np.zeros((6, 8), np.int32)
    persons[:, :3], persons[:, 5:] = 1, 2
    parts = np.where(persons > 0, 2, 0).astype(np.uint8)
    boxes = np.array([[0, 0, 3, 6], [5, 0, 8, 6]], np.float32)
    part_instances = (PartScore(1, 2, 0.8, 18), PartScore(2, 2, 0.6, 18))
    return ParsingResult(parts, persons, np.array([1, 2]), boxes, np.array([0.9, 0.7], np.float32), part_instances, PASCAL_PERSON_PART, keypoints)


def test_results_without_a_pose_have_no_keypoints() -> None:
    result = two_person_result()
    assert result.keypoints.shape == (2, 0, 3) and result.keypoints.dtype == np.float32


def test_relabel_carries_keypoints_with_their_person() -> None:
    keypoints = np.zeros((2, 17, 3), np.float32)
    keypoints[0, :, 0], keypoints[1, :, 0] = 1.0, 6.0
    renamed = two_person_result(keypoints).relabel([9, 4])
    assert renamed.ids.tolist() == [4, 9]
    # Person 4 was person 2 (on the right), person 9 was person 1.
    assert (renamed.keypoints[0, :, 0] == 6.0).all() and (renamed.keypoints[1, :, 0] == 1.0).all()
    assert np.array_equal(renamed.persons == 4, two_person_result().persons == 2)


@pytest.mark.parametrize("shape", [(1, 17, 3), (2, 17), (2, 17, 2)])
def test_keypoints_of_the_wrong_shape_are_refused(shape) -> None:
    with pytest.raises(HumanParseError, match="keypoints"):
        two_person_result(np.zeros(shape, np.float32))


def test_maps_and_per_person_arrays_must_agree() -> None:
    good = two_person_result()
    with pytest.raises(HumanParseError, match="one"):
        ParsingResult(good.parts[:5], good.persons, good.ids, good.boxes, good.scores, good.part_instances, good.labels)
    with pytest.raises(HumanParseError, match="ids"):
        ParsingResult(good.parts, good.persons, good.ids, good.boxes[:1], good.scores, good.part_instances, good.labels)


def test_coco_skeleton_joins_coco_keypoints() -> None:
    assert len(COCO_KEYPOINTS) == 17 and len(COCO_SKELETON) == 19
    assert all(0 <= a < 17 and 0 <= b < 17 and a != b for a, b in COCO_SKELETON)
    assert {k for bone in COCO_SKELETON for k in bone} == set(range(17))


def test_detections_are_validated_and_ranked() -> None:
    d = Detections(np.array([[0, 0, 5, 5], [1, 1, 9, 9], [2, 2, 3, 3]]), np.array([0.2, 0.9, 0.5]))
    top = d.top(0.3, 1)
    assert top.scores.tolist() == [pytest.approx(0.9)] and top.boxes.tolist() == [[1, 1, 9, 9]]
    assert len(Detections.empty()) == 0 and Detections(np.zeros((0, 4)), np.zeros(0)).boxes.shape == (0, 4)
    assert Detections(np.array([[-5, -5, 80, 10]]), np.array([1.0])).clipped(48, 64).boxes.tolist() == [[0, 0, 64, 10]]
    for boxes, scores in (([[0, 0, -1, 5]], [0.5]), ([[0, 0, 1, 1]], [1.5]), ([[0, 0, np.nan, 1]], [0.5]), ([[0, 0, 1, 1]], [0.5, 0.5])):
        with pytest.raises(HumanParseError):
            Detections(np.array(boxes, float), np.array(scores))


@pytest.mark.parametrize(
    "index",
    [np.zeros(3, bool), np.array([], np.int64), slice(3, None), np.array([True, False, True]), [True, False, True], np.array([2, 0]), [2, 0, 0], slice(1, None)],
)
def test_detections_index_as_their_arrays_do(index) -> None:
    d = Detections(np.array([[0, 0, 5, 5], [1, 1, 9, 9], [2, 2, 3, 3]]), np.array([0.2, 0.9, 0.5]))
    picked = d[index]
    assert isinstance(picked, Detections) and picked.boxes.shape == (len(picked), 4)
    assert picked.boxes.dtype == picked.scores.dtype == np.float32
    assert np.array_equal(picked.boxes, d.boxes[index]) and np.array_equal(picked.scores, d.scores[index])


def test_detections_refuse_a_single_integer_and_a_mask_of_another_length() -> None:
    assert len(Detections.empty()[np.zeros(0, bool)]) == 0
    d = Detections(np.array([[0, 0, 5, 5], [1, 1, 9, 9]]), np.array([0.2, 0.9]))
    with pytest.raises(TypeError, match=r"detections\[\[1\]\] keeps one"):
        d[1]
    with pytest.raises(IndexError):
        d[np.array([True, False, True])]


def test_admitted_detections_are_clipped_boxes_inside_the_image_best_first_and_capped() -> None:
    boxes = np.array([[-50, -50, -10, -10], [10, 10, 30, 40], [60, 0, 90, 20], [5, 5, 5.5, 40], [0, 0, 20, 20]], np.float32)
    found = Detections(boxes, np.array([0.99, 0.5, 0.9, 0.8, 0.2], np.float32))
    kept = found.admitted(48, 64, threshold=0.3)
    # outside the image, a half-pixel sliver and a score under the threshold are gone; x2 = 90 clipped to 64
    assert kept.boxes.tolist() == [[60, 0, 64, 20], [10, 10, 30, 40]] and kept.scores.tolist() == pytest.approx([0.9, 0.5])
    assert len(found.admitted(48, 64, max_count=1)) == 1
    many = Detections(np.tile(np.array([[1, 1, 20, 20]], np.float32), (10_000, 1)), np.linspace(0, 1, 10_000, dtype=np.float32))
    assert len(many.admitted(48, 64, 0.3, 20)) == 20


def test_a_resized_result_counts_each_part_instance_at_the_new_size() -> None:
    rng = np.random.default_rng(0)
    persons = rng.integers(0, 4, (7, 5)).astype(np.int32)
    parts = (rng.integers(1, 7, (7, 5)) * (persons > 0)).astype(np.uint8)
    ids = np.array([1, 2, 3])
    instances = tuple(PartScore(int(i), int(p), 0.5, int(((persons == i) & (parts == p)).sum())) for i in ids for p in range(1, 7) if ((persons == i) & (parts == p)).any())
    result = ParsingResult(parts, persons, ids, np.tile(np.array([[1, 1, 4, 6]], np.float32), (3, 1)), np.ones(3, np.float32), instances, PASCAL_PERSON_PART)
    big = result.resized(23, 11)  # factors 23/7 and 11/5: rows and columns repeat unevenly
    assert big.size == (23, 11) and big.boxes[0].tolist() == pytest.approx([2.2, 23 / 7, 8.8, 138 / 7])
    assert [p.pixels for p in big.part_instances] == [int(((big.persons == p.person) & (big.parts == p.part)).sum()) for p in big.part_instances]
    assert [(p.person, p.part) for p in big.part_instances] == [(p.person, p.part) for p in instances]


def _random_people(seed: int, height: int, width: int, count: int) -> ParsingResult:
    rng = np.random.default_rng(seed)
    persons, parts = np.zeros((height, width), np.int32), np.zeros((height, width), np.uint8)
    for pid in range(1, count + 1):
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        y1, x1 = int(rng.integers(y0 + 1, height + 1)), int(rng.integers(x0 + 1, width + 1))
        pixels = rng.random((y1 - y0, x1 - x0)) < 0.7
        persons[y0:y1, x0:x1][pixels] = pid
        parts[y0:y1, x0:x1][pixels] = rng.integers(1, 7, int(pixels.sum()))
    ids = np.arange(1, count + 1, dtype=np.int64)
    instances = tuple(PartScore(int(i), p, 0.5, int(((persons == i) & (parts == p)).sum())) for i in ids for p in range(1, 7) if ((persons == i) & (parts == p)).any())
    return ParsingResult(parts, persons, ids, np.zeros((count, 4), np.float32), np.ones(count, np.float32), instances, PASCAL_PERSON_PART)


@pytest.mark.parametrize("seed", range(20))
def test_regions_are_the_boxes_of_each_persons_pixels_through_resizing_and_relabelling(seed: int) -> None:
    from humanparse.ops import person_regions

    def boxes_by_brute_force(persons: np.ndarray) -> dict[int, tuple[slice, slice]]:
        found = {}
        for pid in np.unique(persons[persons > 0]).tolist():
            rows, cols = np.nonzero(persons == pid)
            found[pid] = (slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1))
        return found

    rng = np.random.default_rng(seed)
    result = _random_people(seed, int(rng.integers(2, 25)), int(rng.integers(2, 25)), int(rng.integers(0, 5)))
    assert result.regions == boxes_by_brute_force(result.persons) == person_regions(result.persons)
    for pid in [*result.ids.tolist(), 99]:  # 99: no pixels
        crop = result.person_crop(pid)
        placed = np.zeros(result.size, bool)
        placed[crop.region] = crop.mask
        assert np.array_equal(placed, result.persons == pid) and crop.area == int((result.persons == pid).sum())
    # Carried over, not found again: they must still be exact.
    big = result.resized(int(result.size[0] * rng.uniform(1, 3.5)) + 1, int(result.size[1] * rng.uniform(1, 3.5)) + 1)
    assert "regions" in big.__dict__ and big.regions == boxes_by_brute_force(big.persons)
    renamed = big.relabel(rng.permutation(np.arange(10, 10 + len(big.ids))))
    assert renamed.regions == boxes_by_brute_force(renamed.persons)
    assert renamed.persons.dtype == np.int32


def test_relabel_renames_every_pixel_of_each_person() -> None:
    result = _random_people(3, 30, 40, 4)
    renamed = result.relabel([7, 300, 2, 45])
    expected = np.select([result.persons == k for k in (1, 2, 3, 4)], [7, 300, 2, 45], 0)
    assert np.array_equal(renamed.persons, expected) and renamed.persons.dtype == np.int32
    assert renamed.ids.tolist() == [2, 7, 45, 300]
