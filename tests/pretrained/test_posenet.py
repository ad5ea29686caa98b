"""PoseNet's multi-person decoder: the same poses as body-pix's own decoder (TF.js, recorded
by tools/posenet_reference/ on real BodyPix maps and synthetic ones), answers known by
construction on planted people, the channel layout of the real maps, and assigning the poses
to person boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from humanparse.errors import HumanParseError
from humanparse.pretrained.posenet import SKELETON_EDGES, DecodedPoses, assign_poses_to_boxes, decode_poses

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pretrained" / "posenet" / "reference.npz"
MAPS = ("heatmaps", "short_offsets", "mid_offsets")
with np.load(FIXTURE) as _data:
    CASES = _data["names"].tolist()
# A standing person 160 px tall: 17 COCO keypoints (x, y) in pixels from its nose.
PERSON = np.array([
    [0, 0], [5, -5], [-5, -5], [11, -2], [-11, -2], [19, 24], [-19, 24], [26, 51], [-26, 51],
    [27, 75], [-27, 75], [13, 80], [-13, 80], [13, 115], [-13, 115], [13, 149], [-13, 149],
], np.float64)


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


def reference_maps(reference, j):
    """Map set j of the fixture as float32 (17, h, w), (34, h, w), (64, h, w)."""
    scale_zero = reference[f"maps/{j}/quantization"]
    return [(reference[f"maps/{j}/{key}"].astype(np.float32) - np.float32(z)) * np.float32(s) for key, (s, z) in zip(MAPS, scale_zero)]


def plant(people, h, w, stride=16, logits=None):
    """Exact maps of people (N, 17, 2) x, y pixels: at every cell each keypoint's short
    offsets point to the nearest person's keypoint and each edge's displacements join the
    keypoints of the person nearest its source; heatmap logits ``logits[n]`` (default 4) at
    the cell of each keypoint, -6 elsewhere."""
    people = np.asarray(people, np.float64)
    logits = np.full(len(people), 4.0) if logits is None else np.asarray(logits, np.float64)
    iy, ix = np.mgrid[0:h, 0:w] * stride
    heat, short, mid = np.full((17, h, w), -6.0), np.zeros((34, h, w)), np.zeros((64, h, w))
    if not len(people):
        return [m.astype(np.float32) for m in (heat, short, mid)]
    nearest = lambda k: ((people[:, k, 0, None, None] - ix) ** 2 + (people[:, k, 1, None, None] - iy) ** 2).argmin(0)
    for k in range(17):
        n = nearest(k)
        short[k], short[17 + k] = people[n, k, 1] - iy, people[n, k, 0] - ix
        for person, (x, y) in enumerate(people[:, k]):
            heat[k, int(np.floor(y / stride + 0.5)), int(np.floor(x / stride + 0.5))] = logits[person]
    for e, (parent, child) in enumerate(SKELETON_EDGES):
        for source, target, block in ((parent, child, 0), (child, parent, 32)):
            n = nearest(source)
            step = people[n, target] - people[n, source]
            mid[block + e], mid[block + 16 + e] = step[..., 1], step[..., 0]
    return [m.astype(np.float32) for m in (heat, short, mid)]


def sigmoid(x):
    return float(np.float32(1 / (1 + np.exp(-x))))


# --- the original's poses --------------------------------------------------------------------

def test_reference_cases_cover_real_maps_and_edge_cases(reference):
    names = list(reference["names"])
    assert {"real-vtest_frame0-bodypix", "real-vtest_frame0-coral", "real-astronaut-bodypix", "empty", "tiny-1x1", "none-asked"} <= set(names)
    assert sum(len(reference[f"{i}/scores"]) for i in range(len(names))) > 200


@pytest.mark.parametrize("name", CASES)
def test_same_poses_as_body_pix(reference, name):
    """Poses, their order, keypoints (1e-4 px) and scores as TF.js body-pix 2.2.1's
    decodeMultiplePoses gives them on the same maps."""
    i = CASES.index(name)
    stride, max_poses, threshold, nms = reference[f"{i}/params"]
    poses = decode_poses(*reference_maps(reference, int(reference[f"{i}/maps"])), stride=int(stride), max_poses=int(max_poses), score_threshold=threshold, nms_radius=nms)
    expected = reference[f"{i}/keypoints"]
    assert poses.keypoints.shape == expected.shape
    np.testing.assert_allclose(poses.keypoints[..., :2], expected[..., :2], rtol=0, atol=1e-4)
    np.testing.assert_allclose(poses.keypoints[..., 2], expected[..., 2], rtol=1e-6, atol=0)
    np.testing.assert_allclose(poses.scores, reference[f"{i}/scores"], rtol=1e-6, atol=1e-9)


def test_real_maps_give_the_people_in_the_photo(reference):
    """vtest_frame0 (its 3 pedestrians at 1.25 ×, cells 8..29 × 16..57 of the 46 × 81 grid):
    three confident poses, their noses over the boxes drawn by eye in people.json."""
    names = list(reference["names"])
    i = names.index("real-vtest_frame0-bodypix")
    poses = decode_poses(*reference_maps(reference, int(reference[f"{i}/maps"])))
    assert len(poses) == 3 and (poses.scores > 0.7).all()
    noses = poses.keypoints[:, 0, :2] + 16 * np.array([16, 8])  # back to the whole grid
    boxes = np.array([[254, 220, 282, 307], [500, 157, 530, 233], [640, 240, 684, 320]]) * 1.25
    inside = (noses[:, None] >= boxes[None, :, :2]) & (noses[:, None] <= boxes[None, :, 2:])
    assert sorted(inside.all(-1).argmax(1)) == [0, 1, 2]


# --- the channel layout of the real maps -----------------------------------------------------

def test_real_short_offsets_are_y_then_x(reference):
    """Around each confident heatmap peak, the 3 × 3 cells' short offsets point to one pixel
    when read as [y × 17, x × 17] (PoseNet's cell * 16 + offset), not in other layouts."""
    for j in (0, 1):
        heat, short, _ = reference_maps(reference, j)
        layouts = {"y17x17": short, "x17y17": np.concatenate([short[17:], short[:17]]), "yx pairs": np.concatenate([short[0::2], short[1::2]])}
        spread = {}
        for name, offsets in layouts.items():
            values = []
            for k, y, x in np.argwhere(heat[:, 1:-1, 1:-1] > 1.0) + [0, 1, 1]:
                if heat[k, y, x] < heat[k, y - 1 : y + 2, x - 1 : x + 2].max():
                    continue
                gy, gx = np.mgrid[y - 1 : y + 2, x - 1 : x + 2] * 16
                py, px = gy + offsets[k, y - 1 : y + 2, x - 1 : x + 2], gx + offsets[17 + k, y - 1 : y + 2, x - 1 : x + 2]
                values.append(np.hypot(py.std(), px.std()))
            spread[name] = np.median(values)
        assert spread["y17x17"] < 5 and spread["y17x17"] * 3 < min(spread["x17y17"], spread["yx pairs"]), spread


def test_real_mid_offsets_are_forward_then_backward_y_then_x(reference):
    """From every confident keypoint, following each skeleton edge's displacement lands on
    high scores of the edge's other keypoint when the 64 channels are read as [forward y,
    forward x, backward y, backward x] × 16 edges, better than with any other block order
    on both photos."""
    import itertools

    quality = {}
    for j in (0, 1):
        heat, short, mid = reference_maps(reference, j)
        scores = 1 / (1 + np.exp(-heat.astype(np.float64)))
        h, w = scores.shape[1:]
        cell = lambda p: tuple(np.clip(np.round(p / 16).astype(int), 0, [h - 1, w - 1]))
        for order in itertools.permutations(range(4)):  # block of forward y, forward x, backward y, backward x
            landed = []
            for k, y, x in np.argwhere(scores > 0.5):
                if scores[k, y, x] < scores[k, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].max():
                    continue
                point = np.array([y * 16 + short[k, y, x], x * 16 + short[17 + k, y, x]])
                i, j = cell(point)
                for e, edge in enumerate(SKELETON_EDGES):
                    for direction, (source, target) in enumerate((edge, edge[::-1])):
                        if source == k:
                            block_y, block_x = order[2 * direction], order[2 * direction + 1]
                            step = mid[[16 * block_y + e, 16 * block_x + e], i, j]
                            landed.append(scores[(target, *cell(point + step))])
            quality.setdefault(order, []).append(np.mean(landed))
    best = quality.pop((0, 1, 2, 3))
    for order, other in quality.items():  # swapping the x blocks shows little on the small pedestrians, much on the astronaut
        assert min(b - o for b, o in zip(best, other)) > 0 and sum(best) - sum(other) > 0.1, (order, other, best)


def test_real_heatmaps_are_coco_ordered(reference):
    """The astronaut faces the camera: her left eye, ear and shoulder are right of her
    right ones in the image, her nose above her shoulders."""
    heat = reference_maps(reference, 1)[0]
    peak = {k: np.unravel_index(heat[k].argmax(), heat[k].shape) for k in range(7)}
    for left, right in ((1, 2), (3, 4), (5, 6)):
        assert peak[left][1] > peak[right][1]
    assert peak[0][0] < min(peak[5][0], peak[6][0])


# --- answers known by construction -----------------------------------------------------------

def test_planted_overlapping_people_come_back_exactly():
    """Two people, the second 40 px right of the first and in front of it: each keypoint
    where it was planted, scores the sigmoid of the planted logits, first the stronger."""
    a = PERSON + [100, 44]
    b = PERSON + [140, 52]
    poses = decode_poses(*plant([a, b], 14, 18, logits=[4.0, 3.0]))
    assert len(poses) == 2
    np.testing.assert_allclose(poses.keypoints[0, :, :2], a, atol=1e-4)
    np.testing.assert_allclose(poses.keypoints[1, :, :2], b, atol=1e-4)
    np.testing.assert_allclose(poses.keypoints[:, :, 2], [[sigmoid(4)] * 17, [sigmoid(3)] * 17], rtol=1e-6)
    np.testing.assert_allclose(poses.scores, [sigmoid(4), sigmoid(3)], rtol=1e-6)


def test_a_duplicate_root_is_suppressed_within_the_nms_radius():
    """A second nose peak two cells away whose offset lands 5 px right and 5 px down of the
    first person's nose: skipped with the default radius (20 px); with a 5 px radius it
    starts a third person, the first person again but the nose, whose score counts only
    that nose (the other keypoints lie on the first person's)."""
    a, b = PERSON + [100, 44], PERSON + [210, 44]
    heat, short, mid = plant([a, b], 14, 18, logits=[4.0, 3.0])
    heat[0, 3, 8] = 3.5  # the nose of a is in cell (3, 6)
    short[0, 3, 8], short[17, 3, 8] = 44 + 5 - 3 * 16, 100 + 5 - 8 * 16
    assert len(decode_poses(heat, short, mid)) == 2
    poses = decode_poses(heat, short, mid, nms_radius=5.0)
    assert len(poses) == 3
    np.testing.assert_allclose(poses.keypoints[1, 0, :2], [105, 49], atol=1e-4)
    np.testing.assert_allclose(poses.keypoints[1, 1:, :2], a[1:], atol=1e-4)
    np.testing.assert_allclose(poses.scores, [sigmoid(4), sigmoid(3.5) / 17, sigmoid(3)], rtol=1e-6)


def test_no_people_tiny_grids_and_limits():
    empty = plant(np.zeros((0, 17, 2)), 5, 6)
    poses = decode_poses(*empty)
    assert len(poses) == 0 and poses.keypoints.shape == (0, 17, 3) and poses.scores.shape == (0,)
    one = decode_poses(*plant([PERSON * 0 + 3], 1, 1))  # a 1 × 1 grid: every keypoint in the one cell
    assert len(one) == 1 and np.allclose(one.keypoints[0, :, :2], 3)
    people = [PERSON * 0.5 + [46 + 60 * n, 20] for n in range(4)]
    assert len(decode_poses(*plant(people, 8, 20))) == 4
    assert len(decode_poses(*plant(people, 8, 20), max_poses=3)) == 3
    assert len(decode_poses(*plant(people, 8, 20), max_poses=0)) == 0
    faint = plant(people, 8, 20, logits=[-0.5] * 4)  # sigmoid(-0.5) = 0.38
    assert len(decode_poses(*faint)) == 0
    assert len(decode_poses(*faint, score_threshold=0.35)) == 4


def test_cell_origin_moves_every_keypoint():
    maps = plant([PERSON + [100, 44]], 14, 12)
    base, moved = decode_poses(*maps), decode_poses(*maps, cell_origin=7.5)
    np.testing.assert_allclose(moved.keypoints[..., :2], base.keypoints[..., :2] + 7.5, atol=1e-4)
    np.testing.assert_array_equal(moved.scores, base.scores)


def test_bad_maps_and_settings_are_refused():
    heat, short, mid = plant([PERSON + [100, 44]], 14, 12)
    for args in ((heat[:16], short, mid), (heat, short[:, :5], mid), (heat, short, mid[:32]), (heat[:, :0], short[:, :0], mid[:, :0])):
        with pytest.raises(HumanParseError, match="PoseNet maps"):
            decode_poses(*args)
    bad = heat.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(HumanParseError, match="finite"):
        decode_poses(bad, short, mid)
    for settings in ({"nms_radius": 0}, {"score_threshold": 1.5}, {"max_poses": -1}, {"stride": 0}):
        with pytest.raises(HumanParseError):
            decode_poses(heat, short, mid, **settings)


# --- poses to boxes --------------------------------------------------------------------------

def poses_of(*people, score=0.9):
    keypoints = np.concatenate([np.asarray(people, np.float32).reshape(-1, 17, 2), np.full((len(people), 17, 1), score, np.float32)], axis=-1)
    return DecodedPoses(keypoints, np.full(len(people), score, np.float32))


def test_assign_empty_inputs():
    none = assign_poses_to_boxes(np.zeros((0, 4)), poses_of(PERSON))
    assert none.keypoints.shape == (0, 17, 3) and none.pose_index.shape == (0,) and none.unmatched.tolist() == [0]
    boxes = np.array([[0, 0, 50, 50]])
    nothing = assign_poses_to_boxes(boxes, DecodedPoses(np.zeros((0, 17, 3)), np.zeros(0)))
    assert not nothing.keypoints.any() and nothing.pose_index.tolist() == [-1] and nothing.unmatched.shape == (0,)


def test_assign_each_box_its_person_and_report_the_rest():
    a, b, c = PERSON + [100, 40], PERSON + [150, 40], PERSON + [400, 40]
    boxes = np.array([[120, 20, 185, 200], [70, 20, 135, 200]])  # b's box, then a's; they overlap
    poses = poses_of(a, b, c)
    result = assign_poses_to_boxes(boxes, poses)
    assert result.pose_index.tolist() == [1, 0] and result.unmatched.tolist() == [2]
    np.testing.assert_array_equal(result.keypoints, poses.keypoints[[1, 0]])


def test_assign_prefers_the_box_that_fits_and_ignores_unsure_poses():
    """A pose inside a tight box and a loose one around it goes to the tight one; a pose
    whose keypoints are all below the keypoint threshold goes to no box."""
    a = PERSON + [100, 40]
    loose, tight = [0, 0, 300, 300], [70, 30, 130, 195]
    result = assign_poses_to_boxes(np.array([loose, tight]), poses_of(a))
    assert result.pose_index.tolist() == [-1, 0] and not result.keypoints[0].any()
    unsure = assign_poses_to_boxes(np.array([tight]), poses_of(a, score=0.1))
    assert unsure.pose_index.tolist() == [-1] and unsure.unmatched.tolist() == [0]
    half_out = a + [0, 120]  # more than half the keypoints below the box
    assert assign_poses_to_boxes(np.array([tight]), poses_of(half_out)).pose_index.tolist() == [-1]
