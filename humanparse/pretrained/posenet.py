"""PoseNet's greedy multi-person pose decoder: :func:`decode_poses`, and
:func:`assign_poses_to_boxes` to give the decoded poses to person boxes.

A port of TensorFlow.js body-pix 2.2.1's ``multi_person/decode_multiple_poses.ts`` (with
``build_part_with_score_queue.ts``, ``decode_pose.ts``, ``max_heap.ts``, ``util.ts``; the
same code as posenet 2.x's; Apache-2.0), the decoder BodyPix 2 runs after its network,
in numpy. It gives what the original gives (checked against TF.js itself run in Node,
``tools/posenet_reference/``): the same poses, in the same order, with the same scores.

Inputs are the network's maps on its grid of h × w cells, channels first:

* ``heatmaps`` (17, h, w): keypoint logits, :data:`~humanparse.labels.COCO_KEYPOINTS`
  order; the sigmoid is taken here, as body-pix does after the model.
* ``short_offsets`` (34, h, w): pixels, [y of the 17 keypoints, then x of the 17].
* ``mid_offsets`` (64, h, w): pixels, displacements along :data:`SKELETON_EDGES`:
  [forward y of the 16 edges, forward x, backward y, backward x]. Forward goes from an
  edge's parent to its child, backward from the child to the parent. This is TF.js's
  ``displacement_fwd`` (32) followed by ``displacement_bwd`` (32), and the layout Coral's
  ``PosenetDecoderOp`` reads (google-coral/edgetpu ``src/cpp/posenet/posenet_decoder.cc``),
  whose models (google-coral/project-bodypix) give these maps.

Cell → pixel: a keypoint found at cell (i, j) lies at pixel
``(x, y) = (j * stride + offset_x, i * stride + offset_y) + cell_origin`` of the network's
input, and a pixel p falls in cell ``round(p / stride)``: PoseNet's convention, which puts
cell centres at ``cell * stride`` (``cell_origin`` = 0, :data:`CELL_ORIGIN`). Decoding runs
in that frame exactly as the original; ``cell_origin`` only moves the result, for a network
whose cell centres lie elsewhere.

The algorithm, after body-pix's description: every keypoint's local maxima (3 × 3
window) scoring at least ``score_threshold`` go into one priority queue; the best is taken
as the root of a new person unless it lies within ``nms_radius`` pixels of the same keypoint
of a person already found; the rest of the person follows the skeleton from the root,
backwards towards the nose then forwards to the ankles, each step following the mid offsets
from the known keypoint's cell and refining the landing point twice with the target's short
offsets. A person's score is the sum of its keypoint scores, leaving out keypoints within
``nms_radius`` of the same keypoint of an earlier person, divided by 17.

Coral's ``PosenetDecoderOp`` is a different decoder of the same maps (bilinear sampling in
cell units, five refinement steps, a priority-queue traversal, soft keypoint NMS and
rescoring, poses below the threshold dropped); its poses are not these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import HumanParseError
from ..labels import COCO_KEYPOINTS, MIN_KEYPOINT_SCORE

KEYPOINTS = len(COCO_KEYPOINTS)
# PoseNet's skeleton (keypoints.ts POSE_CHAIN): 16 (parent, child) edges in COCO-17 indices,
# a tree rooted at the nose. Edge e owns channels e (y) and 16 + e (x) of each displacement
# block of the mid offsets.
SKELETON_EDGES = (
    (0, 1), (1, 3), (0, 2), (2, 4), (0, 5), (5, 7), (7, 9), (5, 11),
    (11, 13), (13, 15), (0, 6), (6, 8), (8, 10), (6, 12), (12, 14), (14, 16),
)
EDGES = len(SKELETON_EDGES)
# The pixel of cell (0, 0)'s centre in PoseNet's convention: pixel = cell * stride + offset.
CELL_ORIGIN = 0.0
# The original's fixed constants: a root candidate is the maximum of its keypoint's scores
# within this many cells each way (decode_multiple_poses.ts kLocalMaximumRadius), and each
# keypoint reached along an edge is refined this many times with the short offsets
# (decode_pose.ts traverseToTargetKeypoint offsetRefineStep).
LOCAL_MAXIMUM_RADIUS = 1
OFFSET_REFINE_STEPS = 2
# Defaults of body-pix's PERSON_INFERENCE_CONFIG (body_pix_model.ts). Coral's decoder model
# (project-bodypix ..._640_480_16_quant_decoder.tflite) sets max_detections 20,
# score_threshold 0.2, nms_radius 10, stride 16 for its own, different decoder.
MAX_POSES = 10
SCORE_THRESHOLD = 0.4
NMS_RADIUS = 20.0


@dataclass(frozen=True, eq=False)
class DecodedPoses:
    """Persons found bottom-up in one image, in the decoder's order (root score, best first).

    keypoints: (P, 17, 3) float32 x, y in pixels of the network's input and score in
        [0, 1], :data:`~humanparse.labels.COCO_KEYPOINTS` order.
    scores: (P,) float32 pose scores in [0, 1]. P may be 0.
    """

    keypoints: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        keypoints = np.asarray(self.keypoints, np.float32).reshape(-1, KEYPOINTS, 3) if np.size(self.keypoints) == 0 else np.asarray(self.keypoints, np.float32)
        scores = np.asarray(self.scores, np.float32).reshape(-1)
        if keypoints.ndim != 3 or keypoints.shape[1:] != (KEYPOINTS, 3) or scores.shape != keypoints.shape[:1]:
            raise HumanParseError(f"decoded poses need (P, {KEYPOINTS}, 3) keypoints and (P,) scores, got {keypoints.shape} and {scores.shape}")
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True, eq=False)
class PoseAssignment:
    """Decoded poses given to D boxes by :func:`assign_poses_to_boxes`.

    keypoints: (D, 17, 3) float32, each box's pose (x, y, score), zeros where it got none.
    pose_index: (D,) int64, the index of each box's pose in the decoded poses, -1 for none.
    unmatched: (U,) int64, indices of the decoded poses no box got, in decoding order:
        candidates for persons the boxes missed.
    """

    keypoints: np.ndarray
    pose_index: np.ndarray
    unmatched: np.ndarray


class _MaxHeap:
    """body-pix's max_heap.ts as it is: parent of k is k // 2, so slot 0 has the single child
    1. Candidates of equal score come out in the order this heap gives them, and with a
    quantised network equal scores are common, so a different queue changes the poses."""

    def __init__(self) -> None:
        self.items: list[tuple[float, int, int, int]] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def enqueue(self, item: tuple[float, int, int, int]) -> None:
        queue = self.items
        queue.append(item)
        k = len(queue) - 1
        while k > 0 and queue[k // 2][0] < queue[k][0]:
            queue[k], queue[k // 2] = queue[k // 2], queue[k]
            k //= 2

    def dequeue(self) -> tuple[float, int, int, int]:
        queue = self.items
        top = queue[0]
        queue[0] = queue[-1]
        queue.pop()
        last = len(queue) - 1
        k = 0
        while 2 * k <= last:
            j = 2 * k
            if j < last and queue[j][0] < queue[j + 1][0]:
                j += 1
            if not queue[k][0] < queue[j][0]:
                break
            queue[k], queue[j] = queue[j], queue[k]
            k = j
        return top


def _round_half_up(value: float) -> int:
    """JavaScript's Math.round: the nearest integer, halves towards +infinity."""
    floor = math.floor(value)
    return floor + 1 if value - floor >= 0.5 else floor


def _candidates(scores: np.ndarray, score_threshold: float) -> _MaxHeap:
    """The root candidates (score, y, x, keypoint) in a heap filled in the original's order
    (row by row, keypoints within a cell): every score at least ``score_threshold`` that no
    score of its keypoint within LOCAL_MAXIMUM_RADIUS cells exceeds."""
    r = LOCAL_MAXIMUM_RADIUS
    _, h, w = scores.shape
    padded = np.pad(scores, ((0, 0), (r, r), (r, r)), constant_values=-np.inf)
    window = padded[:, : h, : w].copy()
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            np.maximum(window, padded[:, dy : dy + h, dx : dx + w], out=window)
    keep = (scores.astype(np.float64) >= score_threshold) & (scores >= window)
    ys, xs, ks = np.nonzero(keep.transpose(1, 2, 0))
    heap = _MaxHeap()
    for item in zip(scores[ks, ys, xs].tolist(), ys.tolist(), xs.tolist(), ks.tolist()):
        heap.enqueue(item)
    return heap


def _check_maps(heatmaps: np.ndarray, short_offsets: np.ndarray, mid_offsets: np.ndarray) -> None:
    shapes = [np.shape(heatmaps), np.shape(short_offsets), np.shape(mid_offsets)]
    channels = [KEYPOINTS, 2 * KEYPOINTS, 4 * EDGES]
    grid = shapes[0][1:]
    if any(len(s) != 3 or s[0] != c or s[1:] != grid for s, c in zip(shapes, channels)) or min(grid, default=0) < 1:
        raise HumanParseError(f"PoseNet maps must be (17, h, w), (34, h, w) and (64, h, w) with h, w >= 1, got {shapes[0]}, {shapes[1]} and {shapes[2]}")
    if not all(np.isfinite(m).all() for m in (heatmaps, short_offsets, mid_offsets)):
        raise HumanParseError("PoseNet maps must be finite")


def decode_poses(
    heatmaps: np.ndarray,
    short_offsets: np.ndarray,
    mid_offsets: np.ndarray,
    stride: int = 16,
    max_poses: int = MAX_POSES,
    score_threshold: float = SCORE_THRESHOLD,
    nms_radius: float = NMS_RADIUS,
    cell_origin: float = CELL_ORIGIN,
) -> DecodedPoses:
    """Persons in the PoseNet maps of one image, as body-pix's ``decodeMultiplePoses``.

    Args:
        heatmaps: (17, h, w) keypoint logits.
        short_offsets: (34, h, w) pixels, [y × 17, x × 17].
        mid_offsets: (64, h, w) pixels, [forward y × 16, forward x × 16, backward y × 16,
            backward x × 16] along :data:`SKELETON_EDGES`.
        stride: pixels per cell.
        max_poses: at most this many persons.
        score_threshold: a root candidate scores (sigmoid) at least this, in [0, 1].
        nms_radius: pixels; a root within it of the same keypoint of an earlier person is
            skipped, and such keypoints do not count towards a person's score.
        cell_origin: pixel of cell (0, 0)'s centre, added to every x and y (see the module).

    Returns:
        :class:`DecodedPoses` with up to ``max_poses`` persons, keypoints in pixels.
    """
    _check_maps(heatmaps, short_offsets, mid_offsets)
    if stride < 1 or max_poses < 0 or not 0.0 <= score_threshold <= 1.0 or not nms_radius > 0:
        raise HumanParseError(f"PoseNet decoding needs stride >= 1, max_poses >= 0, score_threshold in [0, 1] and nms_radius > 0, got {stride}, {max_poses}, {score_threshold}, {nms_radius}")
    logits = np.asarray(heatmaps, np.float64)
    with np.errstate(over="ignore"):
        # TF.js computes the sigmoid in float64 and stores it as float32.
        scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    _, h, w = scores.shape
    offsets = np.asarray(short_offsets, np.float32)
    displacements = np.asarray(mid_offsets, np.float32)
    squared_nms = float(nms_radius) * float(nms_radius)
    queue = _candidates(scores, score_threshold)

    def cell(y: float, x: float) -> tuple[int, int]:
        return min(max(_round_half_up(y / stride), 0), h - 1), min(max(_round_half_up(x / stride), 0), w - 1)

    def traverse(source: tuple[float, float, float], target: int, channel_y: int, channel_x: int) -> tuple[float, float, float]:
        i, j = cell(source[0], source[1])
        y = source[0] + float(displacements[channel_y, i, j])
        x = source[1] + float(displacements[channel_x, i, j])
        for _ in range(OFFSET_REFINE_STEPS):
            i, j = cell(y, x)
            y = i * stride + float(offsets[target, i, j])
            x = j * stride + float(offsets[KEYPOINTS + target, i, j])
        i, j = cell(y, x)
        return y, x, float(scores[target, i, j])

    def near(points: list[tuple[float, float, float]], y: float, x: float) -> bool:
        """Whether (y, x) is within nms_radius of any of ``points`` (the original's test)."""
        for py, px, _ in points:
            dy, dx = py - y, px - x
            if dy * dy + dx * dx <= squared_nms:
                return True
        return False

    found: list[list[tuple[float, float, float]]] = []  # per person, 17 × (y, x, score)
    while len(found) < max_poses and queue:
        root_score, i, j, root = queue.dequeue()
        y = i * stride + float(offsets[root, i, j])
        x = j * stride + float(offsets[KEYPOINTS + root, i, j])
        if near([person[root] for person in found], y, x):
            continue
        pose: dict[int, tuple[float, float, float]] = {root: (y, x, root_score)}
        for e in range(EDGES - 1, -1, -1):
            parent, child = SKELETON_EDGES[e]
            if child in pose and parent not in pose:
                pose[parent] = traverse(pose[child], parent, 2 * EDGES + e, 3 * EDGES + e)
        for e, (parent, child) in enumerate(SKELETON_EDGES):
            if parent in pose and child not in pose:
                pose[child] = traverse(pose[parent], child, e, EDGES + e)
        found.append([pose[k] for k in range(KEYPOINTS)])
    # Each person's score: the mean of its keypoint scores, a keypoint within nms_radius of
    # the same keypoint of an earlier person counting 0 (summed in order, as the original).
    pose_scores = []
    for p, pose in enumerate(found):
        total = 0.0
        for k, (y, x, score) in enumerate(pose):
            if not near([earlier[k] for earlier in found[:p]], y, x):
                total += score
        pose_scores.append(total / KEYPOINTS)
    found_array = np.array(found, np.float64).reshape(-1, KEYPOINTS, 3)
    keypoints = np.stack([found_array[..., 1] + cell_origin, found_array[..., 0] + cell_origin, found_array[..., 2]], axis=-1)
    return DecodedPoses(keypoints.astype(np.float32), np.array(pose_scores, np.float32))


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of (A, 4) and (B, 4) x1 y1 x2 y2 boxes; 0 where both are empty."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def assign_poses_to_boxes(
    boxes: np.ndarray,
    poses: DecodedPoses,
    min_keypoint_score: float = MIN_KEYPOINT_SCORE,
    min_share: float = 0.5,
) -> PoseAssignment:
    """Give each person box at most one decoded pose, each pose to at most one box.

    A pose's confident keypoints are those scoring at least ``min_keypoint_score``; its
    share in a box is the score-weighted fraction of them inside the box (edges included).
    A box and a pose may pair when the share is at least ``min_share``; among those, the
    pairs maximising the total of share + 0.1 × IoU(box, box of the pose's confident
    keypoints) are chosen (Hungarian, scipy's linear_sum_assignment); the IoU decides
    between boxes that hold a pose equally, as nested or duplicate boxes do.

    Args:
        boxes: (D, 4) float x1 y1 x2 y2, in the pixels of the poses (the network's input).
        poses: the decoded poses (P of them).
    Returns:
        :class:`PoseAssignment`; D = 0 or P = 0 give no pairs.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    d, p = len(boxes), len(poses)
    keypoints = np.zeros((d, KEYPOINTS, 3), np.float32)
    pose_index = np.full(d, -1, np.int64)
    if d and p:
        xy = poses.keypoints[:, :, :2].astype(np.float64)
        weight = np.where(poses.keypoints[:, :, 2] >= min_keypoint_score, poses.keypoints[:, :, 2].astype(np.float64), 0.0)  # (P, K)
        inside = ((xy[None] >= boxes[:, None, None, :2]) & (xy[None] <= boxes[:, None, None, 2:])).all(-1)  # (D, P, K)
        total = weight.sum(-1)
        share = np.where(total > 0, (inside * weight[None]).sum(-1) / np.where(total > 0, total, 1), 0.0)  # (D, P)
        confident = weight > 0
        lo = np.where(confident[..., None], xy, np.inf).min(1)
        hi = np.where(confident[..., None], xy, -np.inf).max(1)
        spans = np.where(confident.any(1)[:, None], np.concatenate([lo, hi], 1), 0.0)
        gain = np.where(share >= min_share, share + 0.1 * _box_iou(boxes, spans), 0.0)
        rows, cols = linear_sum_assignment(gain, maximize=True)
        kept = gain[rows, cols] > 0
        pose_index[rows[kept]] = cols[kept]
        keypoints[rows[kept]] = poses.keypoints[cols[kept]]
    unmatched = np.setdiff1d(np.arange(p), pose_index[pose_index >= 0]).astype(np.int64)
    return PoseAssignment(keypoints, pose_index, unmatched)
