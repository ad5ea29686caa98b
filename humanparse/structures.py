"""Validated data at module boundaries: what detectors give (:class:`Detections`, the
:class:`Detector` protocol), what pose networks give (:class:`Poses`, the
:class:`PoseEstimator` protocol), what every parser gives (:class:`ParsingResult`) and what a
video stream gives per frame (:class:`StreamedFrame`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple, Protocol

import cv2
import numpy as np

from .errors import HumanParseError
from .labels import LabelSet
from .ops import CroppedMask, person_regions

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Detections:
    """Person detections of one image.

    boxes: (D, 4) float32 x1 y1 x2 y2 in pixels, x2 >= x1 and y2 >= y1; scores: (D,)
    float32 in [0, 1]. D may be 0. Checked on construction, so every detector's output,
    file-read or computed, obeys the same contract.
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4) if np.size(self.boxes) == 0 else np.asarray(self.boxes, np.float32)
        scores = np.asarray(self.scores, np.float32).reshape(-1)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
            raise HumanParseError(f"detections need (D, 4) boxes and (D,) scores, got {boxes.shape} and {scores.shape}")
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise HumanParseError("detection boxes and scores must be finite")
        if ((scores < 0) | (scores > 1)).any():
            raise HumanParseError(f"detection scores must lie in [0, 1], got {scores.min():.3g}..{scores.max():.3g}")
        if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            raise HumanParseError("detection boxes must have x2 >= x1 and y2 >= y1")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, index: np.ndarray | slice | Sequence[int] | Sequence[bool]) -> "Detections":
        """Some of the detections, as a new (validated) :class:`Detections`.

        ``index`` picks along D as numpy does: a (D,) bool mask, an integer index array (any
        order, repeats allowed) or a slice. A single integer is refused, as it would drop
        the D axis: one detection is ``detections[[k]]``.
        """
        if isinstance(index, (int, np.integer)):
            raise TypeError(f"index detections with a mask, an index array or a slice, not the integer {index} (detections[[{index}]] keeps one)")
        return Detections(self.boxes[index], self.scores[index])

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def top(self, threshold: float = 0.0, max_count: int | None = None) -> "Detections":
        """The detections scoring at least ``threshold``, best first, at most ``max_count``."""
        order = np.argsort(-self.scores, kind="stable")
        order = order[self.scores[order] >= threshold][:max_count]
        return self[order]

    def scaled(self, sx: float, sy: float) -> "Detections":
        """Boxes of the same image resized by sx horizontally and sy vertically."""
        return Detections(self.boxes * np.array([sx, sy, sx, sy], np.float32), self.scores)

    def clipped(self, height: int, width: int) -> "Detections":
        """Boxes clipped to a height × width image."""
        boxes = self.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        return Detections(boxes, self.scores)

    def admitted(self, height: int, width: int, threshold: float = 0.0, max_count: int | None = None) -> "Detections":
        """The detections a height × width image can hold: boxes clipped to it, those left
        less than a pixel wide or high dropped (a box outside the image is no person), then
        :meth:`top` by ``threshold`` and ``max_count``. Every outside source of boxes (a
        file, a detector, the caller) passes through this before anything is made per box."""
        clipped = self.clipped(height, width)
        sides = clipped.boxes[:, 2:] - clipped.boxes[:, :2]
        keep = (sides >= 1).all(axis=1)
        return clipped[keep].top(threshold, max_count)

    def tensors(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(D, 4) and (D,) float32 tensors, as the Instance CRF takes them."""
        import torch  # the one use: importing structures costs no torch

        return torch.from_numpy(self.boxes).to(device), torch.from_numpy(self.scores).to(device)


class Detector(Protocol):
    """Any person detector: ``detector(image, key=None) -> Detections``.

    ``image`` is (H, W, 3) uint8 RGB; ``key`` names the image for detectors that look
    results up: a file name (or its stem) for images, the frame number from 1 for video.
    """

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections: ...


@dataclass(frozen=True, eq=False)
class Poses:
    """Top-down pose of D persons of one image, in the order of the boxes asked about.

    keypoints: (D, K, 3) float32 x, y in image pixels and score in [0, 1]; K = 17 in
        :data:`~humanparse.labels.COCO_KEYPOINTS` order.
    regions: (D, 4) float32 x1 y1 x2 y2 pixels, the square each person's crop covered (it
        may reach outside the image).
    masks: (D, S, S) float32 person probability over each region, or None for estimators
        without a mask; :func:`humanparse.pretrained.crops.paste_masks` puts them in the frame.
    """

    keypoints: np.ndarray
    regions: np.ndarray
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        keypoints = np.asarray(self.keypoints, np.float32)
        regions = np.asarray(self.regions, np.float32).reshape(-1, 4)
        d = len(regions)
        if keypoints.ndim != 3 or keypoints.shape[0] != d or keypoints.shape[2] != 3:
            raise HumanParseError(f"{d} regions need (D, K, 3) keypoints, got {keypoints.shape}")
        if self.masks is not None:
            masks = np.asarray(self.masks, np.float32)
            if masks.ndim != 3 or masks.shape[0] != d or masks.shape[1] != masks.shape[2]:
                raise HumanParseError(f"{d} regions need (D, S, S) masks, got {masks.shape}")
            object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "regions", regions)

    def __len__(self) -> int:
        return len(self.regions)


class PoseEstimator(Protocol):
    """Any top-down pose network: ``estimator(image, boxes) -> Poses``, one pose per box.

    ``image`` is (H, W, 3) uint8 RGB; ``boxes`` (D, 4) float x1 y1 x2 y2 pixels, D may be 0.
    """

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> Poses: ...


@dataclass(frozen=True)
class PartScore:
    """One part instance: part ``part`` (1..P) of person ``person`` (an id of the result),
    its score in [0, 1] and its area in pixels."""

    person: int
    part: int
    score: float
    pixels: int


@dataclass(frozen=True, eq=False)
class ParsingResult:
    """Instance-level parsing of one image, whichever parser made it.

    parts: (H, W) uint8 part label per pixel, 0 = background.
    persons: (H, W) int32 person id per pixel, 0 = background. Ids are 1..N by decreasing
        score for an image; in video, the track ids.
    ids: (N,) int64 the person ids, in id order. boxes: (N, 4) float32 x1 y1 x2 y2 pixels,
        the detections the persons came from. scores: (N,) float32 in [0, 1].
    part_instances: one per (person, part) with at least one pixel, by person then part.
    labels: the label set of ``parts``.
    keypoints: (N, K, 3) float32 per person x, y (pixels) and score in [0, 1], K = 17 in
        :data:`~humanparse.labels.COCO_KEYPOINTS` order; K = 0 for parsers without a pose
        (the default). A keypoint that was not found has score 0.

    Person and part masks are not stored: each pixel belongs to at most one instance, so
    ``persons == id`` and ``(persons == id) & (parts == part)`` are them.
    """

    parts: np.ndarray
    persons: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    part_instances: tuple[PartScore, ...]
    labels: LabelSet
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.parts.shape != self.persons.shape or self.parts.ndim != 2:
            raise HumanParseError(f"part map {self.parts.shape} and person map {self.persons.shape} must be one (H, W)")
        n = len(self.ids)
        if self.boxes.shape != (n, 4) or self.scores.shape != (n,):
            raise HumanParseError(f"{n} ids need (N, 4) boxes and (N,) scores, got {self.boxes.shape} and {self.scores.shape}")
        keypoints = np.zeros((n, 0, 3), np.float32) if self.keypoints is None else np.asarray(self.keypoints, np.float32)
        if keypoints.ndim != 3 or keypoints.shape[0] != n or keypoints.shape[2] != 3:
            raise HumanParseError(f"{n} persons need (N, K, 3) keypoints, got {keypoints.shape}")
        object.__setattr__(self, "keypoints", keypoints)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.parts.shape  # type: ignore[return-value]

    @cached_property
    def regions(self) -> dict[int, tuple[slice, slice]]:
        """Each person's bounding box as (rows, columns) slices of the maps, by id (persons
        without pixels are left out): :func:`~humanparse.ops.person_regions`, found once
        per result and shared by the tracker, the drawing and every file written, so that
        they touch the people's pixels only, not the whole frame's."""
        return person_regions(self.persons)

    def person_crop(self, person: int) -> CroppedMask:
        """One person's mask inside their box (``regions``), ``CroppedMask.EMPTY`` for a
        person without pixels."""
        where = self.regions.get(person)
        if where is None:
            return CroppedMask.EMPTY
        mask = self.persons[where] == person
        return CroppedMask(where[0].start, where[1].start, mask, int(np.count_nonzero(mask)))

    def person_mask(self, person: int) -> np.ndarray:
        """(H, W) bool pixels of one person."""
        return self.persons == person

    def part_mask(self, person: int, part: int) -> np.ndarray:
        """(H, W) bool pixels of one part of one person."""
        return (self.persons == person) & (self.parts == part)

    def resized(self, height: int, width: int) -> "ParsingResult":
        """The same result on a height × width image: maps by nearest pixel, boxes and
        keypoints scaled. Enlarging keeps every part instance (each pixel lands somewhere)."""
        h, w = self.size
        if (h, w) == (height, width):
            return self
        sx, sy = width / w, height / h
        parts = cv2.resize(self.parts, (width, height), interpolation=cv2.INTER_NEAREST)
        persons = cv2.resize(self.persons, (width, height), interpolation=cv2.INTER_NEAREST)
        keypoints = self.keypoints.copy()
        keypoints[..., 0] *= sx
        keypoints[..., 1] *= sy
        boxes = (self.boxes * np.array([sx, sy, sx, sy], np.float32)).astype(np.float32)
        # Areas at the new size, counted on the small maps: each source pixel weighs the
        # number of rows times columns that cv2's nearest-pixel mapping gives it (exact,
        # without a full-size int64 code map: 384 MB at 48 megapixels).
        source_row = cv2.resize(np.arange(h, dtype=np.int32)[:, None], (1, height), interpolation=cv2.INTER_NEAREST).ravel()
        source_col = cv2.resize(np.arange(w, dtype=np.int32)[None, :], (width, 1), interpolation=cv2.INTER_NEAREST).ravel()
        rows, cols = np.bincount(source_row, minlength=h), np.bincount(source_col, minlength=w)
        bins = len(self.labels.names)
        # The people's pixels only: most of a frame is background, which no instance counts.
        where = np.flatnonzero(self.persons)
        codes = self.persons.reshape(-1)[where].astype(np.int64) * bins + self.parts.reshape(-1)[where]
        weights = rows[where // w] * cols[where % w]
        counts = np.bincount(codes, weights=weights.astype(np.float64), minlength=(int(self.ids.max(initial=0)) + 1) * bins)
        part_instances = tuple(replace(p, pixels=int(round(counts[p.person * bins + p.part]))) for p in self.part_instances)
        out = replace(self, parts=parts, persons=persons, boxes=boxes, keypoints=keypoints, part_instances=part_instances)
        if height >= h and width >= w:
            # Enlarged, every source row and column lands somewhere, in order: a person's box
            # is the span of the rows and columns its source box lands on.
            def span(edges: slice, source: np.ndarray) -> slice:
                return slice(int(np.searchsorted(source, edges.start)), int(np.searchsorted(source, edges.stop)))

            out.__dict__["regions"] = {pid: (span(r, source_row), span(c, source_col)) for pid, (r, c) in self.regions.items()}
        return out

    def relabel(self, new_ids: Sequence[int] | np.ndarray) -> "ParsingResult":
        """The same result with person ``ids[k]`` renamed ``new_ids[k]`` (tracking)."""
        new_ids = np.asarray(new_ids, np.int64).reshape(-1)
        if len(new_ids) != len(self.ids) or len(set(new_ids.tolist())) != len(new_ids) or (new_ids < 1).any():
            raise HumanParseError(f"relabel needs {len(self.ids)} distinct positive ids, got {new_ids.tolist()}")
        mapping = dict(zip(self.ids.tolist(), new_ids.tolist()))
        # Renamed inside each person's box: the people's pixels, not the frame's, are
        # touched (pixels of an id not in ``ids`` become background).
        persons = np.zeros(self.persons.shape, np.int32)
        regions = {mapping[pid]: where for pid, where in self.regions.items() if pid in mapping}
        for pid, where in self.regions.items():
            if pid in mapping:
                persons[where][self.persons[where] == pid] = mapping[pid]
        order = np.argsort(new_ids, kind="stable")
        part_instances = sorted((replace(p, person=mapping[p.person]) for p in self.part_instances), key=lambda p: (p.person, p.part))
        renamed = ParsingResult(
            self.parts, persons, new_ids[order], self.boxes[order], self.scores[order], tuple(part_instances), self.labels, self.keypoints[order]
        )
        renamed.__dict__["regions"] = dict(sorted(regions.items()))  # the same boxes under the new ids
        return renamed


class StreamedFrame(NamedTuple):
    """One parsed video frame: ``index`` its frame number in the source (from 0), ``time``
    in seconds by its timestamp, ``image`` (H, W, 3) uint8 RGB upright, ``result`` with
    track ids as person ids (each frame's own ids when the stream does not track)."""

    index: int
    time: float
    image: np.ndarray
    result: ParsingResult
