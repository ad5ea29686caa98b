"""The tracker on hand-built mask sequences; its IoU association against brute force; the
appearance descriptor and distance."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from humanparse.errors import ConfigError, HumanParseError
from humanparse.labels import CIHP, PASCAL_PERSON_PART
from humanparse.structures import ParsingResult, PartScore
from humanparse.tracking import Tracker, TrackerOptions, TrackSummary, appearance_descriptor, appearance_distance, appearance_groups

H, W = 40, 60
# Pascal-Person-Part torso, arms, legs.
GROUPS = ((2,), (3, 4), (5, 6))
RED, BLUE, GREEN, GREY = (200, 30, 30), (30, 40, 200), (40, 170, 60), (90, 90, 90)


def rect(y0: int, x0: int, h: int, w: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(size, bool)
    mask[y0 : y0 + h, x0 : x0 + w] = True
    return mask


def stack(*masks: np.ndarray) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, H, W), bool)


def dress(mask: np.ndarray, shirt, trousers, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An image and part map of one person: the top 3/5 of the mask a shirt (torso), the
    rest trousers (upper legs), with pixel noise as a camera would add."""
    rng = np.random.default_rng(seed)
    image = np.full(mask.shape + (3,), 128, np.uint8)
    parts = np.zeros(mask.shape, np.int64)
    rows = np.flatnonzero(mask.any(1))
    split = rows[0] + (rows[-1] + 1 - rows[0]) * 3 // 5
    torso = mask.copy()
    torso[split:] = False
    legs = mask & ~torso
    parts[torso], parts[legs] = 2, 5
    image[torso], image[legs] = shirt, trousers
    noise = rng.normal(0, 6, image.shape)
    image = np.where(mask[..., None], np.clip(image + noise, 0, 255), image).astype(np.uint8)
    return image, parts


def describe(mask: np.ndarray, shirt, trousers, seed: int = 0) -> np.ndarray:
    image, parts = dress(mask, shirt, trousers, seed)
    return appearance_descriptor(image, parts, mask, GROUPS)


def slow_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean(), xs.mean()])


def crossing() -> list[tuple[np.ndarray, np.ndarray]]:
    """A tall narrow person walking right and a short wide one walking left, 4 px a frame,
    both centred on the same row; their masks overlap from frame 3 to 9, and at frame 6 each
    one's centroid lands exactly where the other's was a frame before."""
    return [(rect(5, 4 + 4 * t, 30, 8), rect(14, 45 - 4 * t, 12, 14)) for t in range(12)]


def greedy_by_position(frames: list[tuple[np.ndarray, ...]]) -> list[list[int]]:
    """The naive tracker: each mask in turn takes the free track with the nearest last centroid."""
    last = [centroid(m) for m in frames[0]]
    out = [list(range(len(last)))]
    for masks in frames[1:]:
        free, ids = set(range(len(last))), []
        for mask in masks:
            c = centroid(mask)
            best = min(free, key=lambda k: float(np.linalg.norm(last[k] - c)))
            free.remove(best)
            ids.append(best)
            last[best] = c
        out.append(ids)
    return out


def test_options_out_of_range_are_rejected() -> None:
    for bad in ({"max_age": -1}, {"min_iou": 0.0}, {"min_iou": 1.5}, {"max_appearance_distance": -0.1}, {"max_iou_gap": -1}):
        with pytest.raises(ConfigError):
            TrackerOptions(**bad)


def test_empty_frames_and_zero_masks() -> None:
    tracker = Tracker()
    assert tracker.summaries() == []
    ids = tracker.update(np.zeros((0, H, W), bool))
    assert ids.shape == (0,) and ids.dtype == np.int64
    assert tracker.update(np.zeros((0, H, W), bool), np.zeros((0, 21), np.float32), []).shape == (0,)
    person = rect(10, 10, 20, 8)
    assert tracker.update(stack(person)).tolist() == [1]
    assert tracker.update(stack()).tolist() == []
    assert tracker.update(stack(person)).tolist() == [1]
    assert [(s.track_id, s.frames) for s in tracker.summaries()] == [(1, 2)]


def test_summaries_give_the_callers_frame_numbers_and_ages_count_frames_tracked() -> None:
    """A video parsed at stride 10: the summary names source frames 0..40, while a track
    lost for one parsed frame is still alive (max_age counts frames tracked)."""
    tracker = Tracker(TrackerOptions(max_age=1))
    person = rect(10, 10, 20, 8)
    assert tracker.update(stack(person), frame=0).tolist() == [1]
    tracker.update(stack(), frame=10)
    assert tracker.update(stack(person), frame=20).tolist() == [1]
    assert tracker.update(stack(person), frame=40).tolist() == [1]
    [summary] = tracker.summaries()
    assert (summary.first_frame, summary.last_frame, summary.frames) == (0, 40, 3)


@pytest.mark.parametrize("with_appearance", [False, True])
def test_people_crossing_keep_their_ids(with_appearance: bool) -> None:
    frames = crossing()
    assert any((a & b).any() for a, b in frames), "the masks must overlap mid-crossing"
    # The naive nearest-centroid tracker swaps the two at the crossing; this case is hard.
    assert greedy_by_position(frames)[-1] == [1, 0]
    tracker = Tracker()
    for t, (tall, wide) in enumerate(frames):
        descriptors = None
        if with_appearance:
            descriptors = np.stack([describe(tall, RED, GREY, t), describe(wide, BLUE, GREY, 100 + t)])
        assert tracker.update(stack(tall, wide), descriptors).tolist() == [1, 2], f"frame {t}"


def test_appearance_decides_iou_ties() -> None:
    left, right = rect(5, 10, 30, 10), rect(5, 14, 30, 10)
    # Both new masks lie exactly between the old ones: IoU cannot tell who is who.
    middle = rect(5, 12, 30, 10)
    tracker = Tracker()
    tracker.update(stack(left, right), np.stack([describe(left, RED, GREY), describe(right, BLUE, GREY)]))
    ids = tracker.update(stack(middle, middle), np.stack([describe(middle, BLUE, GREY, 1), describe(middle, RED, GREY, 2)]))
    assert ids.tolist() == [2, 1]


def test_iou_outweighs_appearance() -> None:
    left, right = rect(5, 5, 30, 10), rect(5, 40, 30, 10)
    tracker = Tracker()
    tracker.update(stack(left, right), np.stack([describe(left, RED, GREY), describe(right, BLUE, GREY)]))
    # Same places, colours swapped (a lighting change, a parsing error): overlap wins.
    ids = tracker.update(stack(left, right), np.stack([describe(left, BLUE, GREY, 1), describe(right, RED, GREY, 2)]))
    assert ids.tolist() == [1, 2]


@pytest.mark.parametrize("hidden", [1, 2, 3])
def test_person_hidden_up_to_max_age_keeps_id(hidden: int) -> None:
    tracker = Tracker(TrackerOptions(max_age=3))
    person = rect(10, 20, 25, 10)
    assert tracker.update(stack(person)).tolist() == [1]
    for _ in range(hidden):
        assert tracker.update(stack()).tolist() == []
    assert tracker.update(stack(rect(10, 21, 25, 10))).tolist() == [1]


def test_person_hidden_longer_than_max_age_gets_new_id() -> None:
    tracker = Tracker(TrackerOptions(max_age=3))
    person = rect(10, 20, 25, 10)
    descriptor = describe(person, RED, GREY)[None]
    assert tracker.update(stack(person), descriptor).tolist() == [1]
    for _ in range(4):
        tracker.update(stack(), np.zeros((0, 21)))
    # Same place and same colours, but the track has died.
    assert tracker.update(stack(person), descriptor).tolist() == [2]


def test_reentry_elsewhere_is_relinked_by_appearance() -> None:
    tracker = Tracker(TrackerOptions(max_age=5))
    left, right = rect(8, 2, 28, 10), rect(8, 46, 28, 10)
    for t in range(3):
        assert tracker.update(stack(left), describe(left, RED, BLUE, t)[None]).tolist() == [1]
    tracker.update(stack(), np.zeros((0, 21)))
    tracker.update(stack(), np.zeros((0, 21)))
    assert tracker.update(stack(right), describe(right, RED, BLUE, 9)[None]).tolist() == [1]


def test_reentry_with_other_appearance_gets_new_id() -> None:
    tracker = Tracker(TrackerOptions(max_age=5))
    left, right = rect(8, 2, 28, 10), rect(8, 46, 28, 10)
    tracker.update(stack(left), describe(left, RED, BLUE)[None])
    tracker.update(stack(), np.zeros((0, 21)))
    assert tracker.update(stack(right), describe(right, GREEN, BLUE, 1)[None]).tolist() == [2]


def test_two_lost_people_are_relinked_by_colour() -> None:
    tracker = Tracker()
    a, b = rect(8, 2, 28, 8), rect(8, 14, 28, 8)
    tracker.update(stack(a, b), np.stack([describe(a, RED, GREY), describe(b, GREEN, BLUE)]))
    tracker.update(stack(), np.zeros((0, 21)))
    c, d = rect(8, 38, 28, 8), rect(8, 50, 28, 8)
    ids = tracker.update(stack(c, d), np.stack([describe(c, GREEN, BLUE, 1), describe(d, RED, GREY, 2)]))
    assert ids.tolist() == [2, 1]


def test_relink_skips_tracks_seen_in_previous_frame() -> None:
    # A jump with no overlap from one frame to the next is another person, however dressed.
    tracker = Tracker()
    left, right = rect(8, 2, 28, 10), rect(8, 46, 28, 10)
    tracker.update(stack(left), describe(left, RED, BLUE)[None])
    assert tracker.update(stack(right), describe(right, RED, BLUE, 1)[None]).tolist() == [2]


def test_new_person_gets_new_id_and_ids_are_never_reused() -> None:
    tracker = Tracker(TrackerOptions(max_age=2))
    a, b = rect(5, 5, 30, 10), rect(5, 40, 30, 10)
    seen = [*tracker.update(stack(a)).tolist()]
    assert seen == [1]
    ids = tracker.update(stack(a, b)).tolist()
    assert ids == [1, 2]
    seen += ids
    for _ in range(3):
        tracker.update(stack())
    # Both tracks are dead; a person at a's old place is somebody new.
    new = tracker.update(stack(a)).tolist()
    assert new == [3] and new[0] > max(seen)
    assert tracker.update(stack(a, b)).tolist() == [3, 4]


@pytest.mark.parametrize("seed", range(12))
def test_iou_association_is_optimal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = (14, 14)

    def random_masks(count: int) -> np.ndarray:
        return np.stack(
            [rect(*rng.integers(0, 8, 2), *rng.integers(3, 9, 2), size=size) for _ in range(count)]
        )

    old, new = random_masks(int(rng.integers(1, 5))), random_masks(int(rng.integers(1, 5)))
    options = TrackerOptions()
    tracker = Tracker(options)
    assert tracker.update(old).tolist() == list(range(1, len(old) + 1))
    ids = tracker.update(new).tolist()
    assert len(set(ids)) == len(ids)
    iou = np.array([[slow_iou(m, o) for o in old] for m in new])
    matched = [(i, track - 1) for i, track in enumerate(ids) if track <= len(old)]
    assert all(iou[i, k] >= options.min_iou for i, k in matched)
    assert [track for track in ids if track > len(old)] == list(range(len(old) + 1, len(ids) - len(matched) + len(old) + 1))
    best = 0.0
    for choice in itertools.permutations(list(range(len(old))) + [None] * len(new), len(new)):
        pairs = [(i, k) for i, k in enumerate(choice) if k is not None]
        if all(iou[i, k] >= options.min_iou for i, k in pairs):
            best = max(best, sum(iou[i, k] for i, k in pairs))
    assert sum(iou[i, k] for i, k in matched) == pytest.approx(best, abs=1e-9)


def test_summaries_count_frames_areas_and_parts() -> None:
    tracker = Tracker(TrackerOptions(max_age=1))
    a0, a1, b = rect(10, 10, 4, 5), rect(10, 10, 5, 6), rect(20, 40, 2, 5)
    assert tracker.update(stack(a0), parts=[(1, 2)]).tolist() == [1]
    assert tracker.update(stack(a1, b), parts=[(5, 2), ()]).tolist() == [1, 2]
    tracker.update(stack(), parts=[])
    assert tracker.update(stack(a1), parts=[(2,)]).tolist() == [1]
    assert tracker.summaries() == [
        TrackSummary(track_id=1, first_frame=0, last_frame=3, frames=3, mean_area=(20 + 30 + 30) / 3, parts=(1, 2, 5)),
        TrackSummary(track_id=2, first_frame=1, last_frame=1, frames=1, mean_area=10.0, parts=()),
    ]


def test_update_rejects_malformed_input() -> None:
    tracker = Tracker()
    person = stack(rect(5, 5, 20, 10))
    with pytest.raises(HumanParseError, match="bool"):
        tracker.update(person.astype(np.uint8))
    with pytest.raises(HumanParseError, match="bool"):
        tracker.update(person[0])
    with pytest.raises(HumanParseError, match=r"\(1, F\)"):
        tracker.update(person, np.zeros((2, 21)))
    with pytest.raises(HumanParseError, match="7 values per group"):
        tracker.update(person, np.zeros((1, 20)))
    with pytest.raises(HumanParseError, match="part labels for 2 persons"):
        tracker.update(person, parts=[(1,), (2,)])
    tracker.update(person, np.zeros((1, 21)))
    with pytest.raises(HumanParseError, match="frame size changed"):
        tracker.update(np.zeros((1, H + 1, W), bool))
    with pytest.raises(HumanParseError, match="descriptor length changed"):
        tracker.update(person, np.zeros((1, 14)))


def test_descriptor_holds_counts_and_lab_statistics() -> None:
    person = rect(0, 0, 10, 4, size=(10, 6))
    parts = np.zeros((10, 6), np.int64)
    parts[:6], parts[6:] = 2, 5
    image = np.zeros((10, 6, 3), np.uint8)
    image[:6] = 255  # white torso
    descriptor = appearance_descriptor(image, parts, person, GROUPS).reshape(3, 7)
    assert descriptor.dtype == np.float32
    np.testing.assert_allclose(descriptor[0], [24, 1, 0, 0, 0, 0, 0], atol=1e-3)
    # No arms, and legs of 16 black pixels: L = a = b = 0.
    np.testing.assert_allclose(descriptor[1], np.zeros(7))
    np.testing.assert_allclose(descriptor[2], [16, 0, 0, 0, 0, 0, 0], atol=1e-3)
    empty = appearance_descriptor(image, parts, np.zeros((10, 6), bool), GROUPS)
    np.testing.assert_array_equal(empty, np.zeros(21, np.float32))


def test_same_colours_give_small_distance() -> None:
    here, there = rect(4, 4, 30, 10), rect(8, 40, 26, 12)
    distance = appearance_distance(describe(here, RED, GREY, 1), describe(there, RED, GREY, 2), len(GROUPS))
    assert distance < 0.05 < TrackerOptions().max_appearance_distance


def test_different_shirt_colours_give_large_distance() -> None:
    person = rect(4, 4, 30, 10)
    distance = appearance_distance(describe(person, RED, GREY), describe(person, BLUE, GREY), len(GROUPS))
    assert distance > 2 * TrackerOptions().max_appearance_distance


def test_groups_invisible_in_one_descriptor_are_ignored() -> None:
    person = rect(4, 4, 30, 10)
    image, parts = dress(person, RED, GREEN)
    whole = appearance_descriptor(image, parts, person, GROUPS)
    # The legs hidden behind something: torso only, and what is hidden has another colour.
    upper = person.copy()
    upper[22:] = False
    image[22:] = BLUE
    torso_only = appearance_descriptor(image, parts, upper, GROUPS)
    assert torso_only.reshape(3, 7)[2, 0] == 0
    assert appearance_distance(whole, torso_only, len(GROUPS)) < 1e-6
    # A few pixels are not enough to count as visible.
    sliver = np.zeros_like(person)
    sliver[20:22, 4:6] = True
    assert math.isinf(appearance_distance(whole, appearance_descriptor(image, parts, sliver, GROUPS), len(GROUPS)))
    legs_only = appearance_descriptor(image, parts, person & (parts == 5), GROUPS)
    assert math.isinf(appearance_distance(torso_only, legs_only, len(GROUPS)))


def test_appearance_input_validation() -> None:
    image = np.zeros((10, 6, 3), np.uint8)
    parts = np.zeros((10, 6), np.int64)
    person = np.ones((10, 6), bool)
    with pytest.raises(HumanParseError, match=r"must match the image's size \(10, 6\)"):
        appearance_descriptor(image, parts[:9], person, GROUPS)
    with pytest.raises(HumanParseError, match=r"must match the image's size"):
        appearance_descriptor(image, parts, person[:, :5], GROUPS)
    with pytest.raises(HumanParseError, match="uint8 RGB"):
        appearance_descriptor(image.astype(np.float32), parts, person, GROUPS)
    with pytest.raises(HumanParseError, match="uint8 RGB"):
        appearance_descriptor(image[..., :2], parts, person, GROUPS)
    with pytest.raises(HumanParseError, match="integer labels"):
        appearance_descriptor(image, parts.astype(np.float32), person, GROUPS)
    with pytest.raises(HumanParseError, match="must be bool"):
        appearance_descriptor(image, parts, person.astype(np.uint8), GROUPS)
    with pytest.raises(HumanParseError, match="at least one group"):
        appearance_descriptor(image, parts, person, ((2,), ()))
    with pytest.raises(HumanParseError, match=r"shape \(21,\)"):
        appearance_distance(np.zeros(21), np.zeros(14), 3)


def test_dead_tracks_release_their_masks_but_keep_their_summary() -> None:
    tracker = Tracker(TrackerOptions(max_age=1))
    masks = np.zeros((1, 20, 20), bool)
    masks[0, 2:8, 2:8] = True
    tracker.update(masks)
    assert tracker.nbytes == 36  # the 6 x 6 box of the mask, not the 20 x 20 frame
    for _ in range(3):
        tracker.update(np.zeros((0, 20, 20), bool))
    assert tracker.nbytes == 0  # memory flat in video length
    assert [(s.track_id, s.frames, s.mean_area) for s in tracker.summaries()] == [(1, 1, 36.0)]


def test_appearance_regions_by_label_set() -> None:
    assert appearance_groups(PASCAL_PERSON_PART) == ((2,), (3, 4), (5, 6))
    torso, arms, legs = appearance_groups(CIHP)
    assert set(torso) == {5, 6, 7, 10, 11} and set(arms) == {3, 14, 15} and set(legs) == {8, 9, 12, 16, 17}


def test_results_in_results_out_with_track_ids() -> None:
    labels = PASCAL_PERSON_PART

    def frame(x_left: int, x_right: int, swap: bool) -> ParsingResult:
        persons = np.zeros((20, 40), np.int32)
        a, b = (2, 1) if swap else (1, 2)
        persons[5:15, x_left : x_left + 6], persons[5:15, x_right : x_right + 6] = a, b
        parts = np.where(persons > 0, 2, 0).astype(np.uint8)
        boxes = np.array([[x_left, 5, x_left + 6, 15], [x_right, 5, x_right + 6, 15]], np.float32)[[a - 1, b - 1]]
        return ParsingResult(parts, persons, np.array([1, 2]), boxes, np.array([0.9, 0.8], np.float32),
                             (PartScore(1, 2, 0.9, 60), PartScore(2, 2, 0.8, 60)), labels)

    image = np.zeros((20, 40, 3), np.uint8)
    tracker = Tracker()
    first = tracker.update_with_result(frame(2, 30, swap=False), image)
    # The parser numbers persons by score, so the same people may come back with swapped ids.
    second = tracker.update_with_result(frame(3, 29, swap=True), image)
    assert isinstance(second, ParsingResult) and first.ids.tolist() == second.ids.tolist() == [1, 2]
    assert (second.persons[5:15, 3:9] == first.persons[5, 2]).all() and (second.persons[5:15, 29:35] == first.persons[5, 30]).all()
    assert second.boxes[second.ids.tolist().index(int(first.persons[5, 2]))][0] == 3
    assert {p.person for p in second.part_instances} == {1, 2}
    empty = tracker.update_with_result(ParsingResult(np.zeros((20, 40), np.uint8), np.zeros((20, 40), np.int32), np.zeros(0, np.int64),
                                                     np.zeros((0, 4), np.float32), np.zeros(0, np.float32), (), labels))
    assert len(empty.ids) == 0
    assert [s.frames for s in tracker.summaries()] == [2, 2]


def test_keypoint_similarity_tolerates_a_walk_and_tells_neighbours_apart() -> None:
    from humanparse.tracking import keypoint_similarity

    pose = np.zeros((17, 3), np.float32)
    pose[:, 0] = np.linspace(100, 120, 17)
    pose[:, 1] = np.linspace(50, 120, 17)
    pose[:, 2] = 0.9
    walked, neighbour, unseen = pose.copy(), pose.copy(), pose.copy()
    walked[:, 0] += 12  # a 70-px walker's step between frames at 10 frames/s
    neighbour[:, 0] += 40
    unseen[:, 2] = 0.1
    assert keypoint_similarity(pose, pose, 70) == 1.0
    assert keypoint_similarity(pose, walked, 70) > 0.75
    assert keypoint_similarity(pose, neighbour, 70) < 0.1
    assert keypoint_similarity(pose, unseen, 70) == 0.0


def test_keypoints_keep_ids_where_small_masks_change_shape_too_much() -> None:
    """Two small people whose masks overlap little from frame to frame (IoU < min_iou) but
    whose skeletons move a little: ids by keypoints, new ids without them."""
    def frame(shift: int, narrow: bool):
        masks = np.zeros((2, 100, 200), bool)
        keypoints = np.zeros((2, 17, 3), np.float32)
        for k, x0 in enumerate((40, 120)):
            x = x0 + shift
            width = 6 if narrow else 14  # the mask flickers between a thin and a wide shape
            masks[k, 20:90, x : x + width] = True
            keypoints[k, :, 0] = x + 7
            keypoints[k, :, 1] = np.linspace(22, 88, 17)
            keypoints[k, :, 2] = 0.9
        return masks, keypoints

    with_pose, without = Tracker(), Tracker()
    ids_pose, ids_plain = [], []
    for t in range(4):
        masks, keypoints = frame(shift=5 * t, narrow=t % 2 == 1)
        ids_pose.append(with_pose.update(masks, keypoints=keypoints).tolist())
        ids_plain.append(without.update(masks).tolist())
    assert ids_pose == [[1, 2]] * 4
    assert len({i for ids in ids_plain for i in ids}) > 2


def _band(cols: tuple[int, int], width: int = 60) -> np.ndarray:
    mask = np.zeros((60, width), bool)
    mask[10:50, cols[0] : cols[1]] = True
    return mask


def _crossing(options: TrackerOptions) -> tuple[list[int], list[int]]:
    """A (narrow, red) walks behind B (wide, blue) and comes out on B's other side while B
    has moved onto where A was last seen: A's ids and B's ids before and after."""
    red = np.array([[500, 0.5, 0.4, 0.2, 0.02, 0.02, 0.02]], np.float32)
    blue = np.array([[500, 0.5, -0.1, -0.4, 0.02, 0.02, 0.02]], np.float32)
    tracker = Tracker(options)
    before = []
    for _ in range(5):
        before = tracker.update(np.stack([_band((10, 20)), _band((22, 40))]), np.concatenate([red, blue])).tolist()
    for step in range(10):  # A hidden; B drifts left
        tracker.update(_band((21 - step, 39 - step))[None], blue)
    # B now overlaps A's last mask more than its own; A overlaps B's last mask.
    after = tracker.update(np.stack([_band((8, 24)), _band((24, 34))]), np.concatenate([blue, red])).tolist()
    return before, after


def test_a_person_back_from_a_long_occlusion_is_found_by_appearance_not_by_a_stale_mask() -> None:
    (a, b), (b_after, a_after) = _crossing(TrackerOptions())
    assert (a_after, b_after) == (a, b)


def test_without_an_iou_gap_stale_masks_swap_two_crossing_persons() -> None:
    """Why ``max_iou_gap`` exists: with every alive track in the IoU association, the sum of
    two mediocre overlaps with stale masks beats the one good overlap."""
    (a, b), (b_after, a_after) = _crossing(TrackerOptions(max_iou_gap=30))
    assert (a_after, b_after) == (b, a)


def test_a_person_missed_for_a_few_frames_is_still_matched_by_iou() -> None:
    tracker = Tracker(TrackerOptions(max_iou_gap=3, max_age=30))
    first = tracker.update(_band((10, 30))[None]).tolist()
    for _ in range(3):
        tracker.update(np.zeros((0, 60, 60), bool))
    assert tracker.update(_band((12, 32))[None]).tolist() == first  # no descriptors: IoU only
    for _ in range(4):
        tracker.update(np.zeros((0, 60, 60), bool))
    assert tracker.update(_band((12, 32))[None]).tolist() != first
