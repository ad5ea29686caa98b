"""Running a parser: images in, :class:`~humanparse.structures.ParsingResult` out.

:class:`Predictor` holds a :class:`~humanparse.modeling.parser.Parser` on its device, an
optional external person detector, an optional top-down pose network (keypoints per person)
and the :class:`~humanparse.modeling.parser.ParseOptions`. It groups images of one size into
one call of the parser, bounds their size, and keeps the time of each stage. What happens to
an image — scaling, padding, the CRF and the readout — is the parser's, the same for every
caller; a video's loop is :mod:`humanparse.streaming`'s (:meth:`Predictor.stream`); the
models are built by name in :mod:`humanparse.build`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from .build import DETECT_EVERY
from .device import resolve_device
from .errors import HumanParseError, OptionError
from .io.images import check_pixels
from .modeling.parser import OPTION_FLAGS, ParseOptions, Parser
from .pretrained.crops import drop_borrowed_keypoints
from .structures import Detections, Detector, ParsingResult, PoseEstimator
from .tracking import TrackerOptions

if TYPE_CHECKING:
    from .streaming import VideoStream

__all__ = ["ParseOptions", "Predictor", "Timings"]


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
        # Set by humanparse.build when "auto" means another pose network in video: builds
        # the predictor that stream() runs.
        self.video_twin: Callable[[], Predictor] | None = None
        self._video: Predictor | None = None
        if detector is None and not parser.finds_people:
            raise HumanParseError("this model has no built-in detector: give one (--detector)")
        _check_options_read(parser, options, detector is not None)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, device: str = "auto", detector: str | Detector | None = None, pose: str | PoseEstimator | None = "auto", **options: Any
    ) -> Predictor:
        """The predictor ``humanparse images`` runs, built by :func:`humanparse.build.build_predictor`:
        ``path`` None or ``"bodypix"`` the default parser for real people, ``"pose-guided"``
        the earlier one, ``"synthetic"`` the shipped holistic model, or a checkpoint file;
        ``device`` auto, cpu, cuda[:N]; ``detector`` a ``--detector`` text or a detector
        (None: the parser's own); ``pose`` "auto", "movenet", "blazepose", "none" or a pose
        network (for the default parser: in place of its PoseNet keypoints); ``options``
        :class:`ParseOptions` fields. Its :meth:`stream` runs what ``humanparse video`` runs."""
        from .build import build_predictor

        return build_predictor(path, device, detector, pose, "images", **options)

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> ParsingResult:
        """Parse one (H, W, 3) uint8 RGB image; ``key`` names it for file-based detectors."""
        return self.predict([image], None if key is None else [key])[0]

    def predict(
        self, images: Sequence[np.ndarray], keys: Sequence[str | int] | None = None, detections: Sequence[Detections | None] | None = None
    ) -> list[ParsingResult]:
        """Parse a list of images; those of one size share one call of the parser (one batch).
        ``detections``: per image, the persons to parse in place of any detector's (None for
        an image: its detector's, as without ``detections``)."""
        if isinstance(images, np.ndarray):
            raise HumanParseError("predict takes a list of images; for one image call the predictor: predictor(image)")
        if keys is not None and len(keys) != len(images):
            raise HumanParseError(f"{len(images)} images but {len(keys)} keys")
        if detections is not None and len(detections) != len(images):
            raise HumanParseError(f"{len(images)} images but {len(detections)} detection sets")
        if detections is not None and not all(found is None or isinstance(found, Detections) for found in detections):
            raise HumanParseError("detections must hold a Detections (or None) per image")
        for image in images:
            _check_image(image)
        images = [_writable(image) for image in images]
        results: list[ParsingResult | None] = [None] * len(images)
        # One parser call per size, and per whether the persons are given or found.
        groups: dict[tuple[int, int, bool], list[int]] = {}
        for k, image in enumerate(images):
            groups.setdefault((*image.shape[:2], detections is None or detections[k] is None), []).append(k)
        for (height, width, found_here), indices in groups.items():
            batch = [images[k] for k in indices]
            given = None if found_here else [detections[k] for k in indices]  # type: ignore[index,misc]
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
                    keypoints = drop_borrowed_keypoints(self.pose(images[k], result.boxes).keypoints, result.boxes)
                    result = replace(result, keypoints=keypoints)
                    self.timings.add("pose", time.perf_counter() - started)
                results[k] = result
            self.timings.count(len(indices))
        return results  # type: ignore[return-value]

    def detect(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        """The persons in one (H, W, 3) uint8 RGB image: the external detector's, else the
        parser's own (by the options' det_threshold and max_people); timed as "detect"."""
        _check_image(image)
        image = _writable(image)
        started = time.perf_counter()
        found = self.detector(image, key=key) if self.detector is not None else self.parser.detect(image, self.options)
        self.timings.add("detect", time.perf_counter() - started)
        return found

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
    ) -> VideoStream:
        """Parse a video (any file or stream URL FFmpeg reads) frame by frame, tracking the
        people: iterate the returned :class:`~humanparse.streaming.VideoStream` for a
        :class:`~humanparse.structures.StreamedFrame` per parsed frame, in order.
        ``stride``, ``start`` and ``end`` (seconds, exclusive) pick the frames; ``tracker``
        None keeps each frame's own ids; ``batch`` frames share one parser call (pays on a
        GPU); ``workers`` calls run at once, each on its share of the CPU threads.
        ``detect_every``: for a parser that follows people by their keypoints (the
        pose-guided one, with its own detector), detect on every this many frames and after
        a person is lost, and follow each person's crop in between (frames are then parsed
        one after another); None: detect on every frame, follow no one. Any other parser
        detects on every frame, and another value than the default is an error. Raises HumanParseError for a source that is not a readable
        video."""
        from .streaming import VideoStream

        return VideoStream(self._for_video(), source, stride, start, end, tracker, batch, workers, detect_every)

    def _for_video(self) -> Predictor:
        """This predictor, or its video twin (another pose network for "auto"), built once."""
        if self.video_twin is None:
            return self
        if self._video is None:
            self._video = self.video_twin()
        return self._video


def working_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) scaled down to fit ``max_side`` on the longer side, aspect kept
    (each side at least 1); unchanged if it fits or ``max_side`` is None."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _writable(image: np.ndarray) -> np.ndarray:
    """``image``, or a copy if it is read-only: np.asarray(PIL.Image) gives read-only arrays,
    which torch warns about wherever it wraps one."""
    return image if image.flags.writeable else image.copy()


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise HumanParseError(f"an image must be an (H, W, 3) uint8 RGB array, got {shape} {getattr(image, 'dtype', type(image).__name__)}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise HumanParseError(f"an image must have at least one pixel, got {image.shape[1]}x{image.shape[0]}")
    check_pixels("an image", image.shape[0], image.shape[1])  # the command line's bound, from the file's header


def _check_options_read(parser: Parser, options: ParseOptions, external_detector: bool) -> None:
    """A one-line error for an option set away from its default that nothing will read:
    the parser declares what it reads (``Parser.reads``); the predictor itself reads
    ``max_side``, and with an external detector its score and count limits."""
    read = set(parser.reads) | {"max_side"} | ({"det_threshold", "max_people", "nms_iou"} if external_detector else set())
    unread = [f.name for f in fields(ParseOptions) if f.name not in read and getattr(options, f.name) != f.default]
    if unread:
        named = ", ".join(f"{name} ({OPTION_FLAGS[name]})" if name in OPTION_FLAGS else name for name in unread)
        raise OptionError(f"{named}: not used by {type(parser).__name__}; leave {'it' if len(unread) == 1 else 'them'} at the default")
