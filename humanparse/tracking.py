"""Track ids for person masks across the frames of a video.

The paper's appendix A links the persons of consecutive frames by mask IoU; this tracker
adds appearance re-identification, so that a person who was occluded or walked out of the
picture keeps their id when they come back somewhere else. Each call to
:meth:`Tracker.update` handles one frame (frames are numbered by call, from 0):

1. IoU association. A track is alive while it has missed at most ``max_age`` frames since
   its last match, and keeps the mask it was last matched with. The frame's masks and the
   alive tracks that have missed at most ``max_iou_gap`` frames are paired by the Hungarian
   algorithm on mask IoU; a pair is accepted only if its IoU is at least ``min_iou``. With
   descriptors, the IoU of each pair is scaled down by at most 10% according to the
   appearance distance, which can decide a near-tie but never overturns a clearly better
   overlap.
2. Appearance re-link. The masks left over are paired with the alive tracks left over that
   were *not* matched in the previous frame (lost: occluded, or out of the picture), by the
   Hungarian algorithm on :func:`appearance_distance` to the track's appearance; a pair is
   accepted if the distance is at most ``max_appearance_distance``. A track's appearance is
   an exponential moving average of the descriptors it was matched with.
3. Every mask still unmatched starts a new track. Ids start at 1, increase strictly and are
   never reused; a track that has missed more than ``max_age`` frames leaves the alive set
   for good.

Appearance descriptors (:func:`appearance_descriptor`) hold, per group of part labels
(e.g. torso, arms, legs), the group's pixel count and the mean and standard deviation of
its CIE Lab colour divided by 100; Euclidean distances between them are therefore CIE76
colour differences ΔE in units of 100 (0.25 is ΔE 25: the same shirt under a change of
light stays well below it, a red and a blue shirt are far above it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from .errors import ConfigError, HumanParseError
from .labels import COCO_KEYPOINTS, MIN_KEYPOINT_SCORE, LabelSet
from .ops import CroppedMask, cropped_iou
from .structures import ParsingResult

__all__ = [
    "TrackSummary",
    "Tracker",
    "TrackerOptions",
    "appearance_descriptor",
    "appearance_distance",
    "appearance_groups",
]

# Per group: pixel count, mean L a b, std L a b.
_GROUP_FEATURES = 7
# Fewer pixels give colour statistics dominated by a sliver at the mask edge, often mixed
# with background, so such a group counts as not visible.
_MIN_GROUP_PIXELS = 16
# Lab L runs over 0..100 and a, b over about -128..127; dividing by 100 keeps the
# distances near [0, 1] while leaving them proportional to ΔE.
_LAB_SCALE = 100.0
# Weight of a track's past appearance in its moving average: about the last five matches.
_APPEARANCE_MEMORY = 0.8
# Largest relative reduction of a pair's IoU by appearance in the IoU association.
_APPEARANCE_TIE_BREAK = 0.1
# Stands in for an infinite appearance distance, which linear_sum_assignment refuses.
_NO_MATCH_COST = 1e6

# Body regions whose colours identify a person again, by part name across label sets:
# clothing keeps its colour when the person turns, faces and hands are too small.
_REGIONS = (
    ("torso", "upper-clothes", "coat", "dress", "torso-skin", "scarf"),
    ("upper-arms", "lower-arms", "left-arm", "right-arm", "glove"),
    ("upper-legs", "lower-legs", "pants", "skirt", "left-leg", "right-leg", "socks"),
)


def keypoint_similarity(a: np.ndarray, b: np.ndarray, height: float, reach: float = 0.25, min_score: float = MIN_KEYPOINT_SCORE) -> float:
    """How alike two poses (17, 3) of one frame size are, in [0, 1]: the mean over keypoints
    both see (score >= ``min_score``) of exp(-½ (d / (reach · height))²), with d the keypoint's
    displacement and ``height`` the person's in pixels; 0 when no keypoint is seen by both.

    Tolerant on purpose, unlike COCO's OKS: it links one person across frames, where a walker
    70 px tall moves 12 px between frames of vtest.avi at 10 frames/s (similarity 0.8), while
    the next person stands 40 px or more away (0.08).
    """
    both = (a[:, 2] >= min_score) & (b[:, 2] >= min_score)
    if not both.any() or height <= 0:
        return 0.0
    d = np.hypot(a[both, 0] - b[both, 0], a[both, 1] - b[both, 1])
    return float(np.exp(-0.5 * (d / (reach * height)) ** 2).mean())


@dataclass(frozen=True)
class TrackerOptions:
    """When tracks die and which pairs are accepted.

    max_age: frames a track may go unmatched and still be matched again.
    min_iou: the least mask IoU of an accepted IoU pair, in (0, 1].
    max_appearance_distance: the largest :func:`appearance_distance` of an accepted re-link,
        in units of 100 CIE76 ΔE.
    max_iou_gap: frames a track may go unmatched and still be matched by mask IoU (tracks
        leave after ``max_age`` whatever it is); one lost longer comes back by appearance
        only. A last mask says less and less of where its person is: in the demo clip a
        walker who came out from behind another after 28 frames overlapped that one's stale
        mask, and IoU handed the two each other's id. On 10 synthetic clips of 100 frames
        (``bench_tracking.py``'s parsed persons, IoU + appearance), IDF1 and ID switches
        with no limit and with 5: default parser 42.3 / 46 and 45.9 / 45, synthetic model
        71.6 / 16 and 73.4 / 14, pose-guided 39.0 / 17 and 38.1 / 7 (3 gave 48.0 / 44,
        73.4 / 14, 36.2 / 14).
    """

    max_age: int = 30
    min_iou: float = 0.2
    max_appearance_distance: float = 0.25
    max_iou_gap: int = 5

    def __post_init__(self) -> None:
        if self.max_age < 0:
            raise ConfigError(f"max_age must be 0 or more frames, got {self.max_age}")
        if not 0.0 < self.min_iou <= 1.0:
            raise ConfigError(f"min_iou must be in (0, 1], got {self.min_iou}")
        if not self.max_appearance_distance >= 0.0:
            raise ConfigError(f"max_appearance_distance must be 0 or more, got {self.max_appearance_distance}")
        if not 0 <= self.max_iou_gap:
            raise ConfigError(f"max_iou_gap must be 0 or more frames, got {self.max_iou_gap}")


@dataclass(frozen=True)
class TrackSummary:
    """One track over the whole video.

    first_frame, last_frame: the first and the last frame it was matched in: the frame
    numbers given to :meth:`Tracker.update` (by default the frames tracked, counted from 0).
    frames: the number of frames it was matched in. mean_area: its mean mask area in pixels
    over those frames. parts: the part labels ever seen on it, sorted (empty when no part
    labels were given).
    """

    track_id: int
    first_frame: int
    last_frame: int
    frames: int
    mean_area: float
    parts: tuple[int, ...]


def appearance_groups(labels: LabelSet) -> tuple[tuple[int, ...], ...]:
    """Part labels of the torso, arms and legs in ``labels`` (regions it lacks are left out;
    a label set with none of them uses every part as one region)."""
    groups = tuple(tuple(k for k, name in enumerate(labels.names) if name in region) for region in _REGIONS)
    groups = tuple(g for g in groups if g)
    return groups or (tuple(range(1, len(labels.names))),)


def appearance_descriptor(
    image: np.ndarray, parts: np.ndarray, person: np.ndarray, groups: Sequence[Sequence[int]]
) -> np.ndarray:
    """Colour statistics of one person's body regions.

    Args:
        image: (H, W, 3) uint8 RGB.
        parts: (H, W) integer part label of every pixel.
        person: (H, W) bool mask of the person.
        groups: the part labels of each region, e.g. ``((2,), (3, 4), (5, 6))`` for torso,
            arms and legs in Pascal-Person-Part.

    Returns:
        (7·G,) float32: per group, its pixel count, then the mean and the standard deviation
        of its CIE Lab colour (L, a, b) divided by 100. A group with fewer than 16 pixels
        is not visible; its colour statistics are 0 and :func:`appearance_distance` ignores it.
    """
    image, parts, person = np.asarray(image), np.asarray(parts), np.asarray(person)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise HumanParseError(f"the image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if parts.shape != image.shape[:2] or person.shape != image.shape[:2]:
        raise HumanParseError(
            f"the part map {parts.shape} and the person mask {person.shape} must match the image's size {image.shape[:2]}"
        )
    if not np.issubdtype(parts.dtype, np.integer):
        raise HumanParseError(f"the part map must hold integer labels, got {parts.dtype}")
    if person.dtype != bool:
        raise HumanParseError(f"the person mask must be bool, got {person.dtype}")
    if not groups or any(len(labels) == 0 for labels in groups):
        raise HumanParseError(f"appearance needs at least one group, each of at least one part label, got {groups!r}")
    descriptor = np.zeros((len(groups), _GROUP_FEATURES), np.float32)
    rows, cols = np.flatnonzero(person.any(1)), np.flatnonzero(person.any(0))
    if rows.size == 0:
        return descriptor.reshape(-1)
    # Only the person's bounding box matters; cropping keeps this cheap on large frames.
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    image, parts, person = image[box], parts[box], person[box]
    for g, labels in enumerate(groups):
        region = person & np.isin(parts, labels)
        count = int(region.sum())
        descriptor[g, 0] = count
        if count < _MIN_GROUP_PIXELS:
            continue
        rgb = image[region][None].astype(np.float32) / 255.0
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[0] / _LAB_SCALE
        descriptor[g, 1:4] = lab.mean(0)
        descriptor[g, 4:7] = lab.std(0)
    return descriptor.reshape(-1)


def appearance_distance(a: np.ndarray, b: np.ndarray, num_groups: int) -> float:
    """Colour distance of two :func:`appearance_descriptor` vectors of ``num_groups`` groups.

    Per group visible in both, the Euclidean distance of (mean Lab, std Lab) / 100, i.e.
    ΔE / 100; these are averaged with the smaller of the two pixel counts as weight, so a
    barely visible region counts little. 0 for equal colours, about 1 for black against
    white; inf when no group is visible in both.
    """
    size = num_groups * _GROUP_FEATURES
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if num_groups < 1 or a.shape != (size,) or b.shape != (size,):
        raise HumanParseError(
            f"appearance descriptors of {num_groups} groups must have shape ({size},), got {a.shape} and {b.shape}"
        )
    a, b = a.reshape(num_groups, _GROUP_FEATURES), b.reshape(num_groups, _GROUP_FEATURES)
    shared = (a[:, 0] >= _MIN_GROUP_PIXELS) & (b[:, 0] >= _MIN_GROUP_PIXELS)
    if not shared.any():
        return math.inf
    weight = np.minimum(a[shared, 0], b[shared, 0])
    per_group = np.linalg.norm(a[shared, 1:] - b[shared, 1:], axis=1)
    return float((weight * per_group).sum() / weight.sum())


def _blend(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The moving average of two descriptors, group by group.

    A group visible in only one of them takes that one's statistics: averaging with the
    zeros of an invisible group would drag the colour towards black.
    """
    old_groups, new_groups = old.reshape(-1, _GROUP_FEATURES), new.reshape(-1, _GROUP_FEATURES)
    old_visible = old_groups[:, 0] >= _MIN_GROUP_PIXELS
    new_visible = new_groups[:, 0] >= _MIN_GROUP_PIXELS
    blended = old_groups.copy()
    both = old_visible & new_visible
    blended[both] = _APPEARANCE_MEMORY * old_groups[both] + (1.0 - _APPEARANCE_MEMORY) * new_groups[both]
    only_new = new_visible & ~old_visible
    blended[only_new] = new_groups[only_new]
    return blended.reshape(-1)


@dataclass
class _Track:
    """A track's running state; mutated by the tracker only."""

    track_id: int
    mask: CroppedMask  # the last matched mask
    appearance: np.ndarray | None  # (F,) float32 moving average, None without descriptors
    first_frame: int  # the internal count; ages are measured in frames tracked
    last_frame: int
    first_number: int  # the caller's frame numbers, for the summary
    last_number: int
    frames: int = 0
    area_sum: float = 0.0
    parts: set[int] = field(default_factory=set)
    keypoints: np.ndarray | None = None  # (K, 3) the last matched, None without a pose

    def record(self, frame: int, number: int, mask: CroppedMask, descriptor: np.ndarray | None, parts: Sequence[int] | None, keypoints: np.ndarray | None = None) -> None:
        self.mask = mask
        self.keypoints = keypoints
        self.last_frame = frame
        self.last_number = number
        self.frames += 1
        self.area_sum += float(mask.area)
        if descriptor is not None:
            # A single frame's colours are noisy (part labels bleeding into the background,
            # motion blur, a passer-by in front); averaging over past matches suppresses
            # that, and exponential weights still follow slow changes such as lighting or
            # the person turning round, which a plain mean over the whole track would not.
            self.appearance = descriptor.copy() if self.appearance is None else _blend(self.appearance, descriptor)
        if parts is not None:
            self.parts.update(int(p) for p in parts)


class Tracker:
    """Gives the persons of consecutive frames persistent ids (see the module docstring).

    :meth:`update_with_result` takes a frame's :class:`ParsingResult` and returns it with
    track ids as person ids; :meth:`update` is the same on plain masks and descriptors.
    """

    def __init__(self, options: TrackerOptions = TrackerOptions()) -> None:
        self.options = options
        self._frame = 0
        self._next_id = 1
        self._shape: tuple[int, int] | None = None
        self._features: int | None = None
        self._tracks: list[_Track] = []  # every track ever created, in id order
        self._alive: list[_Track] = []

    def update(
        self,
        masks: np.ndarray,
        descriptors: np.ndarray | None = None,
        parts: Sequence[Sequence[int]] | None = None,
        keypoints: np.ndarray | None = None,
        frame: int | None = None,
    ) -> np.ndarray:
        """Track one frame.

        Args:
            masks: (N, H, W) bool person masks; N may be 0, H and W must not change.
            descriptors: (N, F) float :func:`appearance_descriptor` vectors, or None;
                F must not change between frames that have them.
            parts: per person the part labels visible on it (kept for :meth:`summaries`), or None.
            keypoints: (N, 17, 3) float COCO keypoints (x, y pixels, score), or None. Where a
                person and a track both have them, the pair's similarity is the larger of
                mask IoU and :func:`keypoint_similarity`: a small person's mask changes shape
                from frame to frame far more than their skeleton does.
            frame: this frame's number in the caller's numbering (a video's frame index),
                for :meth:`summaries`; None: the count of frames tracked before it. Ages
                (``max_age``) are counted in frames tracked either way.

        Returns:
            (N,) int64 track ids, 1 or more, distinct within the frame.
        """
        masks = self._checked_masks(masks)
        return self._update([CroppedMask.of(mask) for mask in masks], descriptors, parts, keypoints, frame)

    def _update(
        self,
        masks: list[CroppedMask],
        descriptors: np.ndarray | None,
        parts: Sequence[Sequence[int]] | None,
        keypoints: np.ndarray | None,
        frame: int | None,
    ) -> np.ndarray:
        """:meth:`update` on cropped masks, of a frame size checked already."""
        n = len(masks)
        descriptors = self._checked_descriptors(descriptors, n)
        if parts is not None and len(parts) != n:
            raise HumanParseError(f"got part labels for {len(parts)} persons but {n} masks")
        if keypoints is not None and (keypoints.ndim != 3 or keypoints.shape[0] != n or keypoints.shape[2] != 3):
            raise HumanParseError(f"{n} masks need (N, K, 3) keypoints, got {keypoints.shape}")
        number = self._frame if frame is None else frame
        frame = self._frame
        self._frame += 1
        alive = [t for t in self._alive if frame - t.last_frame - 1 <= self.options.max_age]
        kept = {id(t) for t in alive}
        for track in self._alive:
            if id(track) not in kept:
                # A dead track is only summarised from now on: dropping its mask keeps
                # memory flat however many people come and go in a long video.
                track.mask = CroppedMask.EMPTY
                track.appearance = None
                track.keypoints = None
        self._alive = alive

        recent = [k for k, t in enumerate(self._alive) if frame - t.last_frame - 1 <= self.options.max_iou_gap]
        assigned = {i: recent[k] for i, k in self._match_by_iou(masks, descriptors, [self._alive[k] for k in recent], keypoints)}
        if descriptors is not None:
            taken = set(assigned.values())
            free = [i for i in range(n) if i not in assigned]
            lost = [
                k
                for k, track in enumerate(self._alive)
                if k not in taken and track.last_frame < frame - 1 and track.appearance is not None
            ]
            for i, k in self._match_by_appearance(descriptors[free], [self._alive[k] for k in lost]):
                assigned[free[i]] = lost[k]

        matched = [self._alive[assigned[i]] if i in assigned else None for i in range(n)]
        ids = np.zeros(n, np.int64)
        for i, track in enumerate(matched):
            mask = masks[i]
            if track is None:
                track = _Track(self._next_id, mask, None, first_frame=frame, last_frame=frame, first_number=number, last_number=number)
                self._next_id += 1
                self._tracks.append(track)
                self._alive.append(track)
            track.record(frame, number, mask, None if descriptors is None else descriptors[i], None if parts is None else parts[i], None if keypoints is None else keypoints[i])
            ids[i] = track.track_id
        return ids

    def update_with_result(self, result: ParsingResult, image: np.ndarray | None = None, frame: int | None = None) -> ParsingResult:
        """Track one frame's result: the same result with its persons renamed to track ids.

        ``image`` (H, W, 3) uint8 RGB, the frame parsed, gives each person's appearance
        (the colours of its torso, arms and legs) for re-linking lost tracks; without it
        only mask IoU links persons. ``frame``: its number, as :meth:`update` takes it.
        """
        ids = result.ids.tolist()
        self._check_size(result.size)
        if image is not None and (image.ndim != 3 or image.shape[:2] != result.size):
            raise HumanParseError(f"the image {image.shape} must be the result's size {result.size}, (H, W, 3) uint8 RGB")
        if not ids:
            self._update([], None, None, None, frame)
            return result
        # Each person's mask inside their box (result.regions): no whole-frame mask is made.
        masks = [result.person_crop(pid) for pid in ids]
        descriptors = None
        if image is not None:
            groups = appearance_groups(result.labels)
            descriptors = np.stack([appearance_descriptor(image[m.region], result.parts[m.region], m.mask, groups) for m in masks])
        parts = [sorted({p.part for p in result.part_instances if p.person == pid}) for pid in ids]
        keypoints = result.keypoints if result.keypoints.shape[1] == len(COCO_KEYPOINTS) else None
        return result.relabel(self._update(masks, descriptors, parts, keypoints, frame))

    @property
    def nbytes(self) -> int:
        """Bytes of the masks and appearances the tracker holds: those of the alive tracks
        only, so it stays flat however long the video."""
        return sum(t.mask.mask.nbytes + (0 if t.appearance is None else t.appearance.nbytes) for t in self._tracks)

    def summaries(self) -> list[TrackSummary]:
        """Every track ever created, by id."""
        return [
            TrackSummary(t.track_id, t.first_number, t.last_number, t.frames, t.area_sum / t.frames, tuple(sorted(t.parts)))
            for t in self._tracks
        ]

    def _checked_masks(self, masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.dtype != bool:
            raise HumanParseError(f"masks must be an (N, H, W) bool array, got {masks.shape} {masks.dtype}")
        self._check_size((int(masks.shape[1]), int(masks.shape[2])))
        return masks

    def _check_size(self, shape: tuple[int, int]) -> None:
        if self._shape is not None and shape != self._shape:
            raise HumanParseError(f"the frame size changed from {self._shape} to {shape}")
        self._shape = shape

    def _checked_descriptors(self, descriptors: np.ndarray | None, n: int) -> np.ndarray | None:
        if descriptors is None:
            return None
        descriptors = np.asarray(descriptors, np.float32)
        if descriptors.ndim != 2 or descriptors.shape[0] != n:
            raise HumanParseError(f"descriptors must be ({n}, F) for {n} masks, got {descriptors.shape}")
        features = int(descriptors.shape[1])
        if features == 0 or features % _GROUP_FEATURES:
            raise HumanParseError(
                f"descriptors must hold {_GROUP_FEATURES} values per group (appearance_descriptor), got {features}"
            )
        if self._features is not None and features != self._features:
            raise HumanParseError(f"the descriptor length changed from {self._features} to {features}")
        if not np.isfinite(descriptors).all():
            raise HumanParseError("descriptors must be finite")
        self._features = features
        return descriptors

    def _distances(self, descriptors: np.ndarray, tracks: Sequence[_Track]) -> np.ndarray:
        """(N, T) appearance distances; inf where a track has no appearance yet."""
        num_groups = descriptors.shape[1] // _GROUP_FEATURES
        distances = np.full((descriptors.shape[0], len(tracks)), math.inf)
        for k, track in enumerate(tracks):
            if track.appearance is not None:
                for i, descriptor in enumerate(descriptors):
                    distances[i, k] = appearance_distance(descriptor, track.appearance, num_groups)
        return distances

    def _match_by_iou(
        self, masks: list[CroppedMask], descriptors: np.ndarray | None, tracks: Sequence[_Track], keypoints: np.ndarray | None = None
    ) -> list[tuple[int, int]]:
        """Accepted (mask index, track index) pairs of the IoU association."""
        if not masks or not tracks:
            return []
        iou = cropped_iou(masks, [t.mask for t in tracks])
        if keypoints is not None:
            heights = np.array([m.mask.shape[0] for m in masks], np.float64)
            for k, track in enumerate(tracks):
                if track.keypoints is not None and len(track.keypoints) == keypoints.shape[1]:
                    iou[:, k] = np.maximum(iou[:, k], [keypoint_similarity(keypoints[i], track.keypoints, float(heights[i])) for i in range(len(masks))])
        admissible = iou >= self.options.min_iou
        # Inadmissible pairs score 0, as good as no match, so the assignment maximises the
        # summed IoU of the accepted pairs alone.
        score = np.where(admissible, iou, 0.0)
        if descriptors is not None:
            # When two people cross, each new mask overlaps both old masks, and their IoUs
            # can differ by a hair, or favour the swap because of how the shapes happen to
            # line up; clothes colour tells them apart. Scaling by at most 10% keeps IoU the
            # primary criterion. A pair without a shared visible group is neutral (0.5).
            distance = self._distances(descriptors, tracks)
            distance = np.where(np.isfinite(distance), np.minimum(distance, 1.0), 0.5)
            score = score * (1.0 - _APPEARANCE_TIE_BREAK * distance)
        rows, cols = linear_sum_assignment(score, maximize=True)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if admissible[r, c]]

    def _match_by_appearance(self, descriptors: np.ndarray, tracks: Sequence[_Track]) -> list[tuple[int, int]]:
        """Accepted (descriptor index, track index) pairs of the appearance re-link."""
        if descriptors.shape[0] == 0 or not tracks:
            return []
        distance = self._distances(descriptors, tracks)
        rows, cols = linear_sum_assignment(np.where(np.isfinite(distance), distance, _NO_MATCH_COST))
        limit = self.options.max_appearance_distance
        return [(int(r), int(c)) for r, c in zip(rows, cols) if distance[r, c] <= limit]
