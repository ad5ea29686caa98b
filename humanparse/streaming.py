"""A video, parsed and tracked frame by frame: decode → persons (detect or follow) → parse → track.

:class:`VideoStream` is the whole loop, in the order a frame goes through it:

1. **decode** — :class:`~humanparse.io.video.VideoReader` decodes in its own thread; frames
   are grouped into batches of ``batch``;
2. **persons** — for a parser that follows people (``Parser.follows_people``), the
   :class:`CropFollower` says whether this frame is a detection frame; if so the predictor's
   :meth:`~humanparse.predictor.Predictor.detect` runs, and the followed persons are merged
   with what it found. Every other parser finds its persons inside ``parse``;
3. **parse** — :meth:`~humanparse.predictor.Predictor.predict`, ``workers`` batches at once,
   each worker on its share of the CPU threads;
4. **track** — :meth:`~humanparse.tracking.Tracker.update_with_result`, on the batches taken
   back in order (tracking needs the frames in sequence, parsing does not).

Memory stays flat however long the video: at most ``workers + 1`` batches are in flight.

Detect, then follow (MediaPipe's scheme): a detector pass on every frame costs as much as the
pose of a few persons, and boxes that jump from frame to frame make keypoints and masks
jitter. So the detector runs on the first frame, every ``detect_every`` frames after it, and on
the frame after a person was lost; on the frames between, each person's box is the one their
previous keypoints span (:func:`~humanparse.ops.keypoint_boxes`), with their detection score
carried along. On a detection frame, followed persons the detector misses (behind a lamp
post, blurred, turned away) are kept; those it finds again take its box.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import torch

from .build import DETECT_EVERY
from .detectors.files import MotDetector
from .errors import HumanParseError, OptionError
from .io.video import DecodedFrame, VideoInfo, VideoReader
from .metrics import box_iou_np
from .ops import keypoint_boxes
from .structures import Detections, ParsingResult, StreamedFrame
from .tracking import Tracker, TrackerOptions

if TYPE_CHECKING:
    from .predictor import Predictor

__all__ = ["DETECT_EVERY", "CropFollower", "StreamedFrame", "VideoStream"]

# A detection overlapping a followed box by this IoU is the same person found again.
SAME_PERSON_IOU = 0.3


class VideoStream:
    """The frames of a video, parsed and tracked, in order (see :meth:`Predictor.stream
    <humanparse.predictor.Predictor.stream>` for the arguments).

    A stream that breaks part-way ends the iteration early with ``error`` set (a one-line
    reason; None when it decoded cleanly); one that yields no frame raises HumanParseError.
    ``info`` describes the source, ``tracker`` holds the tracks, ``follower`` the followed
    persons (None unless the parser follows people), ``seconds`` the time per stage. Iterate
    it once; use it as a context manager (or iterate to the end) so that its threads and file
    are closed.
    """

    def __init__(self, predictor: Predictor, source: str | Path, stride: int = 1, start: float = 0.0, end: float | None = None,
                 tracker: TrackerOptions | None = TrackerOptions(), batch: int = 1, workers: int = 1, detect_every: int | None = DETECT_EVERY) -> None:
        if batch < 1 or workers < 1:
            raise HumanParseError(f"batch and workers must be at least 1, got {batch} and {workers}")
        if detect_every is not None and detect_every < 1:
            raise HumanParseError(f"detect_every must be at least 1, got {detect_every}")
        follows = predictor.detector is None and predictor.parser.follows_people
        if detect_every not in (None, DETECT_EVERY) and not follows:
            raise OptionError("detect_every (--detect-every) applies to a parser that follows people with its own detector (pose-guided); this one detects on every frame")
        self.predictor = predictor
        self.batch, self.workers = batch, workers
        self.follower = None
        if follows and detect_every is not None:
            # Each frame's persons come from the last frame's keypoints: one frame at a
            # time, in order, on the one parsing thread.
            self.follower = CropFollower(detect_every)
            self.batch = self.workers = 1
        self.tracker = None if tracker is None else Tracker(tracker)
        self._reader = VideoReader(source, stride=stride, start=start, end=end)
        self.info: VideoInfo = self._reader.info
        if isinstance(predictor.detector, MotDetector) and self.info.frames is not None:
            try:  # rows past the last frame are another video's detections
                predictor.detector.check_frames(self.info.frames)
            except HumanParseError:
                self._reader.close()
                raise
        self._own_seconds = {"decode": 0.0, "track": 0.0}
        self._frames = self._run()

    @property
    def error(self) -> str | None:
        return self._reader.error

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds per stage so far: decode (waiting on the decoder), the predictor's
        stages, track."""
        return {"decode": self._own_seconds["decode"], **self.predictor.timings.seconds, "track": self._own_seconds["track"]}

    def __iter__(self) -> Iterator[StreamedFrame]:
        return self._frames

    def close(self) -> None:
        """Stop parsing and decoding; the frames already yielded stand. Safe to call twice."""
        self._frames.close()
        self._reader.close()

    def __enter__(self) -> VideoStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _run(self) -> Iterator[StreamedFrame]:
        self.predictor.timings.reset()
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, threads // self.workers))
        # One worker parses on this thread: torch's CPU kernels run up to 2.5x slower called
        # from a second Python thread than from the one that first set up its thread pool
        # (BlazePose 12.4 ms a crop here, 31 on a pool thread; benchmarks/bench_video.py).
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="humanparse-parse") if self.workers > 1 else None
        queued = self.workers if pool is not None else 0  # one batch queued beyond the busy workers
        parsing: deque[tuple[list[DecodedFrame], Future]] = deque()
        try:
            with self._reader:
                for chunk in self._decoded_batches():
                    parsing.append((chunk, self._submit(pool, chunk)))
                    while len(parsing) > queued:
                        yield from self._tracked(*parsing.popleft())
            while parsing:
                yield from self._tracked(*parsing.popleft())
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            torch.set_num_threads(threads)

    def _decoded_batches(self) -> Iterator[list[DecodedFrame]]:
        """1. Decode: batches of ``batch`` frames, the last one possibly shorter. A source
        that breaks after some frames ends the batches (the reader keeps the error); one
        that breaks before any raises."""
        frames = iter(self._reader)
        chunk: list[DecodedFrame] = []
        started = False
        while True:
            tick = time.perf_counter()
            try:
                chunk.append(next(frames))
            except StopIteration:
                break
            except HumanParseError:
                if started or chunk:  # the stream broke; what was parsed stands
                    break
                raise
            self._own_seconds["decode"] += time.perf_counter() - tick
            if len(chunk) == self.batch:
                started = True
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _submit(self, pool: ThreadPoolExecutor | None, chunk: list[DecodedFrame]) -> Future:
        """3. Parse a batch, on a worker thread or (one worker) right here."""
        if pool is not None:
            return pool.submit(self._parse, chunk)
        done: Future = Future()
        done.set_result(self._parse(chunk))
        return done

    def _parse(self, chunk: list[DecodedFrame]) -> list[ParsingResult]:
        # File detectors know video frames by their number from 1 (MOT).
        images, keys = [frame.image for frame in chunk], [frame.index + 1 for frame in chunk]
        if self.follower is None:
            return self.predictor.predict(images, keys)
        # 2. Persons: detect (on a detection frame) or follow.
        found = self.predictor.detect(images[0], keys[0]) if self.follower.due() else None
        results = self.predictor.predict(images, keys, [self.follower.persons(found)])
        self.follower.update(results[0])
        return results

    def _tracked(self, chunk: list[DecodedFrame], parsed: Future) -> Iterator[StreamedFrame]:
        """4. Track: the batch's results in order, persons renamed to track ids."""
        for frame, result in zip(chunk, parsed.result()):
            if self.tracker is not None:
                tick = time.perf_counter()
                result = self.tracker.update_with_result(result, frame.image, frame.index)
                self._own_seconds["track"] += time.perf_counter() - tick
            yield StreamedFrame(frame.index, frame.time, frame.image, result)


class CropFollower:
    """Which persons to parse in each frame of a video, in order (the module docstring).

    Per frame: ``found = detect(image) if follower.due() else None``, then ``persons =
    follower.persons(found)``, and once the frame is parsed with exactly those persons,
    ``follower.update(result)``.

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

    def due(self) -> bool:
        """Whether this frame is a detection frame: the first, every ``detect_every``-th
        after the last one, and the one after a person was lost."""
        return self._lost or self._since_detection >= self.detect_every - 1

    def persons(self, found: Detections | None) -> Detections:
        """The persons to parse this frame: the followed boxes, merged on a detection frame
        with the detector's persons ``found`` (given exactly when :meth:`due`)."""
        if (found is not None) != self.due():
            raise HumanParseError("give the detector's persons on a detection frame, and only there")
        if found is None:
            self._since_detection += 1
            self._given, self._given_followed = self._followed, np.ones(len(self._followed), bool)
            return self._given
        self._since_detection = 0
        self.detections += 1
        followed = self._followed
        if len(followed) and len(found):
            # A followed person found again takes the detector's box; the others stay.
            again = (box_iou_np(followed.boxes, found.boxes) >= SAME_PERSON_IOU).any(1)
            followed = followed[~again]
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
