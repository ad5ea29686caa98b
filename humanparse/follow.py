"""Detect, then follow: which persons a video frame is parsed for (MediaPipe's scheme).

A detector pass on every frame costs as much as the pose of a few persons, and boxes that
jump from frame to frame make keypoints and masks jitter. So, as MediaPipe's pose pipeline
does, the detector runs on the first frame, every ``detect_every`` frames after it, and on the
frame after a person was lost; on the frames between, each person's box is the one their
previous keypoints span (:func:`keypoint_boxes`), with their detection score carried along.
On a detection frame, followed persons the detector misses (behind a lamp post, blurred,
turned away) are kept; those it finds again take its box.
"""

from __future__ import annotations

import numpy as np

from .labels import MIN_KEYPOINT_SCORE
from .metrics import box_iou_np
from .structures import Detections, ParsingResult

# A box from keypoints reaches past them by these fractions of the keypoints' span (their
# box's longer side): the top of the head lies above the eyes and ears, the soles below the
# ankles, the hands beyond the wrists.
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_SIDE = 0.2, 0.1, 0.1
# Frames from one detection to the next while everyone is followed (the default).
DETECT_EVERY = 8
# The fewest keypoints at MIN_KEYPOINT_SCORE that place a person's box.
MIN_KEYPOINTS = 4
# A detection overlapping a followed box by this IoU is the same person found again.
SAME_PERSON_IOU = 0.3


def keypoint_boxes(keypoints: np.ndarray, min_score: float = MIN_KEYPOINT_SCORE) -> tuple[np.ndarray, np.ndarray]:
    """Boxes around each person's confident keypoints.

    Args:
        keypoints: (N, K, 3) float x, y (pixels), score.
    Returns:
        (N, 4) float32 x1 y1 x2 y2 boxes (pixel edges), the keypoints' span widened by the
        margins above, and (N,) bool: which persons have ``MIN_KEYPOINTS`` keypoints scoring
        ``min_score`` (the others' boxes are zeros).
    """
    keypoints = np.asarray(keypoints, np.float32)
    seen = keypoints[..., 2] >= min_score
    placed = seen.sum(1) >= MIN_KEYPOINTS
    boxes = np.zeros((len(keypoints), 4), np.float32)
    for k in np.flatnonzero(placed):
        x, y = keypoints[k, seen[k], 0], keypoints[k, seen[k], 1]
        span = max(float(x.max() - x.min()), float(y.max() - y.min()), 1.0)
        boxes[k] = (x.min() - MARGIN_SIDE * span, y.min() - MARGIN_TOP * span, x.max() + MARGIN_SIDE * span, y.max() + MARGIN_BOTTOM * span)
    return boxes, placed


class CropFollower:
    """Which persons to parse in each frame of a video, in order.

    Per frame: ``persons = follower.persons(detect)`` with ``detect`` a callable giving the
    detector's :class:`Detections` for this frame (called only on detection frames), then,
    once the frame is parsed with exactly those persons, ``follower.update(result)``.

    Args:
        detect_every: run the detector on every this many frames (1: every frame).
    """

    def __init__(self, detect_every: int) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        self.detect_every = detect_every
        self._followed = Detections.empty()
        self._given = Detections.empty()
        self._given_followed = np.zeros(0, bool)  # which of the given persons were followed
        self._since_detection = 0
        self._lost = True  # nothing followed yet: detect on the first frame
        self.detections = 0  # detection frames so far

    def persons(self, detect) -> Detections:
        """The persons to parse this frame: followed boxes, and on a detection frame the
        detector's persons merged with them."""
        due = self._lost or self._since_detection >= self.detect_every - 1
        if not due:
            self._since_detection += 1
            self._given, self._given_followed = self._followed, np.ones(len(self._followed), bool)
            return self._given
        self._since_detection = 0
        self.detections += 1
        found: Detections = detect()
        followed = self._followed
        if len(followed) and len(found):
            # A followed person found again takes the detector's box; the others stay.
            again = (box_iou_np(followed.boxes, found.boxes) >= SAME_PERSON_IOU).any(1)
            followed = Detections(followed.boxes[~again], followed.scores[~again])
        self._given = Detections(np.concatenate([found.boxes, followed.boxes]), np.concatenate([found.scores, followed.scores]))
        self._given_followed = np.arange(len(self._given)) >= len(found)
        return self._given

    def update(self, result: ParsingResult) -> None:
        """Follow the persons of ``result``, the frame parsed with the last :meth:`persons`:
        their next boxes from their keypoints, their scores the ones they were given (a
        result's person scores also weigh the CRF's confidence, and would shrink frame by
        frame). A person given but missing from the result, or with too few keypoints, is
        lost: the next frame is a detection frame."""
        count = len(result.scores)
        boxes, placed = keypoint_boxes(result.keypoints) if result.keypoints.shape[1] else (np.zeros((count, 4), np.float32), np.zeros(count, bool))
        # The result keeps the given box of each person it kept: that finds their given score.
        given = self._given.clipped(*result.size)  # parsers clip the boxes they are given
        scores = np.zeros(count, np.float32)
        kept_followed = 0
        for n, box in enumerate(result.boxes):
            match = np.flatnonzero(np.all(np.abs(given.boxes - box) <= 1e-3, axis=1))
            placed[n] &= len(match) > 0
            if len(match):
                scores[n] = given.scores[match[0]]
                kept_followed += int(self._given_followed[match[0]] and placed[n])
        self._followed = Detections(boxes[placed], scores[placed])
        # Unconfirmed fresh detections (a traffic cone) are not lost persons.
        self._lost = kept_followed < int(self._given_followed.sum()) or len(self._followed) == 0
