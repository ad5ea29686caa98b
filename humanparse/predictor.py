"""Running a parser: images in, :class:`~humanparse.structures.ParsingResult` out; a video
in, tracked results out, frame by frame.

:class:`Predictor` holds a :class:`~humanparse.modeling.parser.Parser` on its device, an
optional external person detector, an optional top-down pose network (keypoints per person)
and the :class:`~humanparse.modeling.parser.ParseOptions`.
It groups images of one size into one call of the parser, parses video frames in several
threads at once, and keeps the time of each stage. What happens to an image — scaling,
padding, the CRF and the readout — is the parser's, the same for every caller.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import cv2
import numpy as np
import torch

from .detectors.files import MotDetector
from .device import resolve_device
from .errors import HumanParseError
from .follow import DETECT_EVERY, CropFollower
from .io.video import DecodedFrame, VideoInfo, VideoReader
from .modeling.checkpoints import DEFAULT_PARSER, POSE_GUIDED, load_parser
from .modeling.parser import ParseOptions, Parser
from .structures import Detections, Detector, ParsingResult, PoseEstimator
from .tracking import Tracker, TrackerOptions

__all__ = ["ParseOptions", "Predictor", "StreamedFrame", "Timings", "VideoStream"]


class Timings:
    """Seconds spent per stage, summed over the images since the last :meth:`reset`.

    ``seconds`` maps a stage's name (the parser's, e.g. "detect_segment" and "crf") to
    seconds; ``images`` counts the images parsed. Safe to add to from several threads.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.images = 0
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def count(self, images: int) -> None:
        with self._lock:
            self.images += images

    def reset(self) -> None:
        with self._lock:
            self.seconds, self.images = {}, 0


class Predictor:
    """Images in, :class:`ParsingResult` out.

    Example::

        predictor = Predictor.from_checkpoint()           # the default parser (BodyPix)
        result = predictor(image)                         # (H, W, 3) uint8 RGB
        result.parts, result.persons, result.boxes, result.scores
        result.keypoints                                  # (N, 17, 3) x, y, score

        predictor = Predictor.from_checkpoint("synthetic")  # the synthetic-world model

        for frame in predictor.stream("clip.mp4"):        # tracked, in order
            frame.index, frame.result.persons             # person ids are track ids

    One predictor may be called from several threads at once; each call holds only its
    own tensors.
    """

    def __init__(
        self,
        parser: Parser,
        device: str | torch.device = "auto",
        detector: Detector | None = None,
        options: ParseOptions = ParseOptions(),
        pose: PoseEstimator | None = None,
    ) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.parser = parser.to(self.device).eval()
        self.labels = parser.labels
        self.detector = detector
        self.pose = pose
        self.options = options
        self.timings = Timings()
        if detector is None and not parser.finds_people:
            raise HumanParseError("this model has no built-in detector: give one (--detector)")

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, device: str = "auto", detector: Detector | None = None, pose: PoseEstimator | None = None, **options
    ) -> "Predictor":
        """Load a parser onto ``device`` (auto, cpu, cuda[:N]): ``path`` None or
        ``"bodypix"`` the default parser for real people, ``"pose-guided"`` the earlier one,
        ``"synthetic"`` the shipped holistic model, or a checkpoint file. ``pose`` is the
        pose-guided parser's keypoint network, or for any other a pose stage run on its
        persons (for the default parser: in place of its PoseNet keypoints). ``options`` are
        :class:`ParseOptions` fields."""
        dev = resolve_device(device)
        if (DEFAULT_PARSER if path is None else str(path)) == POSE_GUIDED:
            return cls(load_parser(POSE_GUIDED, dev, pose=pose), dev, detector, ParseOptions(**options))
        return cls(load_parser(path, map_location=dev), dev, detector, ParseOptions(**options), pose)

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> ParsingResult:
        """Parse one (H, W, 3) uint8 RGB image; ``key`` names it for file-based detectors."""
        return self.predict([image], None if key is None else [key])[0]

    def predict(
        self, images: Sequence[np.ndarray], keys: Sequence[str | int] | None = None, detections: Sequence[Detections] | None = None
    ) -> list[ParsingResult]:
        """Parse images; those of one size share one call of the parser (one batch).
        ``detections``: per image, the persons to parse, in place of any detector's."""
        if keys is not None and len(keys) != len(images):
            raise HumanParseError(f"{len(images)} images but {len(keys)} keys")
        if detections is not None and len(detections) != len(images):
            raise HumanParseError(f"{len(images)} images but {len(detections)} detection sets")
        for image in images:
            _check_image(image)
        results: list[ParsingResult | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for k, image in enumerate(images):
            by_size.setdefault(image.shape[:2], []).append(k)
        for (height, width), indices in by_size.items():
            batch = [images[k] for k in indices]
            given = None if detections is None else [detections[k] for k in indices]
            if given is None and self.detector is not None:
                started = time.perf_counter()
                given = [self.detector(images[k], key=None if keys is None else keys[k]) for k in indices]
                self.timings.add("detect", time.perf_counter() - started)
            if given is not None:
                given = [found.admitted(height, width, self.options.det_threshold, self.options.max_people) for found in given]
            work = working_size(height, width, self.options.max_side)
            if work != (height, width):
                # Parsed at the bounded working size; results come back at the image's size.
                fx, fy = work[1] / width, work[0] / height
                batch = [cv2.resize(image, (work[1], work[0]), interpolation=cv2.INTER_AREA) for image in batch]
                given = None if given is None else [found.scaled(fx, fy) for found in given]
            parsed = [result.resized(height, width) for result in self.parser.parse(batch, given, self.options, self.timings.add)]
            for k, result in zip(indices, parsed):
                if self.pose is not None:
                    started = time.perf_counter()
                    result = replace(result, keypoints=self.pose(images[k], result.boxes).keypoints)
                    self.timings.add("pose", time.perf_counter() - started)
                results[k] = result
            self.timings.count(len(indices))
        return results  # type: ignore[return-value]

    def stream(
        self,
        source: str | Path,
        stride: int = 1,
        start: float = 0.0,
        end: float | None = None,
        tracker: TrackerOptions | None = TrackerOptions(),
        batch: int = 1,
        workers: int = 1,
        detect_every: int | None = DETECT_EVERY,
    ) -> "VideoStream":
        """Parse a video (any file or stream URL FFmpeg reads) frame by frame, tracking the
        people: iterate the returned :class:`VideoStream` for a :class:`StreamedFrame` per
        parsed frame, in order. ``stride``, ``start`` and ``end`` (seconds, exclusive) pick
        the frames; ``tracker`` None keeps each frame's own ids; ``batch`` frames share one
        parser call (pays on a GPU); ``workers`` calls run at once, each on its share of the
        CPU threads. ``detect_every``: for a parser that follows people by their keypoints
        (the pose-guided one, with its own detector), detect on every this many frames and
        after a person is lost, and follow each person's crop in between
        (:class:`~humanparse.follow.CropFollower`; frames are then parsed one after another,
        ``batch`` and ``workers`` 1); None: detect on every frame. Raises HumanParseError
        for a source that is not a readable video."""
        return VideoStream(self, source, stride, start, end, tracker, batch, workers, detect_every)


class StreamedFrame(NamedTuple):
    """One parsed video frame: ``index`` its frame number in the source (from 0), ``time``
    in seconds by its timestamp, ``image`` (H, W, 3) uint8 RGB upright, ``result`` with
    track ids as person ids."""

    index: int
    time: float
    image: np.ndarray
    result: ParsingResult


class VideoStream:
    """The frames of a video, parsed and tracked, in order (see :meth:`Predictor.stream`).

    Decoding runs in a background thread, parsing in ``workers`` threads on batches of
    frames taken back in order (tracking needs the frames in sequence, parsing does not),
    so memory stays flat however long the video. A stream that breaks part-way ends the
    iteration early with ``error`` set (a one-line reason; None when it decoded cleanly);
    one that yields no frame raises HumanParseError. ``info`` describes the source,
    ``tracker`` holds the tracks, ``seconds`` the time per stage. Iterate it once; use it
    as a context manager (or iterate to the end) so that its threads and file are closed.
    """

    def __init__(self, predictor: Predictor, source: str | Path, stride: int, start: float, end: float | None,
                 tracker: TrackerOptions | None, batch: int, workers: int, detect_every: int | None = None) -> None:
        if batch < 1 or workers < 1:
            raise HumanParseError(f"batch and workers must be at least 1, got {batch} and {workers}")
        if detect_every is not None and detect_every < 1:
            raise HumanParseError(f"detect_every must be at least 1, got {detect_every}")
        self.predictor = predictor
        self.batch, self.workers = batch, workers
        parser = predictor.parser
        self.follower = None
        if detect_every is not None and predictor.detector is None and parser.follows_people:
            # Each frame's crops come from the last frame's keypoints: one frame at a time,
            # in order, on the one parsing thread.
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
        stages = self.predictor.timings.seconds
        return {"decode": self._own_seconds["decode"], **stages, "track": self._own_seconds["track"]}

    def __iter__(self) -> Iterator[StreamedFrame]:
        return self._frames

    def close(self) -> None:
        """Stop parsing and decoding; the frames already yielded stand. Safe to call twice."""
        self._frames.close()
        self._reader.close()

    def __enter__(self) -> "VideoStream":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _follow(self, images: list[np.ndarray], keys: list[int]) -> list[ParsingResult]:
        """Parse one frame for the persons the follower gives (on the parsing thread)."""
        predictor, follower = self.predictor, self.follower
        assert follower is not None and len(images) == 1

        def detect() -> Detections:
            started = time.perf_counter()
            found = predictor.parser.detect(images[0], predictor.options)  # type: ignore[attr-defined]
            predictor.timings.add("detect", time.perf_counter() - started)
            return found

        results = predictor.predict(images, keys, [follower.persons(detect)])
        follower.update(results[0])
        return results

    def _run(self) -> Iterator[StreamedFrame]:
        predictor = self.predictor
        predictor.timings.reset()
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, threads // self.workers))
        # One worker parses on this thread: torch's CPU kernels run up to 2.5x slower called
        # from a second Python thread than from the one that first set up its thread pool
        # (BlazePose 12.4 ms a crop here, 31 on a pool thread; benchmarks/bench_video.py).
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="humanparse-parse") if self.workers > 1 else None
        queued = self.workers if pool is not None else 0  # one batch queued beyond the busy workers
        parsing: deque[tuple[list[DecodedFrame], Future]] = deque()
        yielded = False

        def submit(chunk: list[DecodedFrame]) -> None:
            # File detectors know video frames by their number from 1 (MOT).
            images, keys = [frame.image for frame in chunk], [frame.index + 1 for frame in chunk]
            task = self._follow if self.follower is not None else predictor.predict
            if pool is None:
                done: Future = Future()
                done.set_result(task(images, keys))
                parsing.append((chunk, done))
            else:
                parsing.append((chunk, pool.submit(task, images, keys)))

        def finish_oldest() -> Iterator[StreamedFrame]:
            chunk, future = parsing.popleft()
            for frame, result in zip(chunk, future.result()):
                if self.tracker is not None:
                    tick = time.perf_counter()
                    result = self.tracker.update_with_result(result, frame.image)
                    self._own_seconds["track"] += time.perf_counter() - tick
                yield StreamedFrame(frame.index, frame.time, frame.image, result)

        try:
            with self._reader:
                frames = iter(self._reader)
                chunk: list[DecodedFrame] = []
                while True:
                    tick = time.perf_counter()
                    try:
                        chunk.append(next(frames))
                    except StopIteration:
                        break
                    except HumanParseError:
                        if yielded or parsing or chunk:  # the stream broke; what was parsed stands
                            break
                        raise
                    self._own_seconds["decode"] += time.perf_counter() - tick
                    if len(chunk) == self.batch:
                        submit(chunk)
                        chunk = []
                    while len(parsing) > queued:
                        yield from finish_oldest()
                        yielded = True
                if chunk:
                    submit(chunk)
            while parsing:
                yield from finish_oldest()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            torch.set_num_threads(threads)


def working_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) scaled down to fit ``max_side`` on the longer side, aspect kept
    (each side at least 1); unchanged if it fits or ``max_side`` is None."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise HumanParseError(f"an image must be an (H, W, 3) uint8 RGB array, got {shape} {getattr(image, 'dtype', type(image).__name__)}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise HumanParseError(f"an image must have at least one pixel, got {image.shape[1]}x{image.shape[0]}")
