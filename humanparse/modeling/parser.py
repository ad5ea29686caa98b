"""The model interface: images in, :class:`~humanparse.structures.ParsingResult` out.

Everything downstream of a model — the predictor's batching and threads, the tracker, the
output files, the evaluator, the command line — talks to a :class:`Parser` and reads
:class:`ParsingResult`\\ s, so other kinds of parser (BodyPix's and the pose-guided one, for
real photos) plug in without touching them. The holistic network of the paper
(:class:`~humanparse.modeling.holistic.HolisticParser`) is one implementation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..config import MAX_CRF_ITERATIONS
from ..errors import HumanParseError
from ..labels import LabelSet
from ..structures import Detections, ParsingResult

if TYPE_CHECKING:
    import torch

# Called with a stage's name and the seconds it took, once per stage and call.
StageTimer = Callable[[str, float], None]


class StageClock:
    """Times a parser's stages one after another: ``clock.lap(stage)`` gives ``timer`` the
    seconds since the clock started or the last lap (nothing when ``timer`` is None)."""

    def __init__(self, timer: StageTimer | None) -> None:
        self.timer = timer
        self.tick = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.timer is not None:
            self.timer(stage, now - self.tick)
        self.tick = now


# A 12-megapixel photo parsed whole peaked at 14.7 GB; at this working size the default
# parser stays under 3 GB for any input (benchmarks/bench_memory.py).
MAX_SIDE = 1600


@dataclass(frozen=True)
class ParseOptions:
    """How a parser runs at inference; one name and one default per knob.

    det_threshold, max_people: the least score of a person and at most how many, best
        first, from every source: the parser's own detector, an external one, a detections
        file, detections given to :meth:`Predictor.predict`.
    nms_iou: non-maximum suppression at this box IoU for the detectors that run here
        (None: no suppression); boxes from outside are taken as suppressed already.
    max_side: images whose longer side exceeds this many pixels are parsed at that size
        and the results mapped back (nearest pixel) to the image's: memory and time stay
        bounded whatever the input (None: always at full size).
    input_scale: the network sees the image scaled by this, in (0, 1], for speed (the
        default parser: BodyPix's working size scaled by this).
    crf_scale: the Instance CRF runs on the image scaled by this, in (0, 1]; None: the
        model's own (the holistic network 1, the parsers for real photos 0.5).
    crf_iterations: mean-field iterations; None: the model's own.
    amp: half precision for the network on CUDA (never on the CPU, never for the CRF).
    """

    det_threshold: float = 0.3
    max_people: int = 20
    nms_iou: float | None = 0.7
    max_side: int | None = MAX_SIDE
    input_scale: float = 1.0
    crf_scale: float | None = None
    crf_iterations: int | None = None
    amp: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.det_threshold <= 1:
            raise HumanParseError(f"det_threshold must be in [0, 1], got {self.det_threshold}")
        if self.max_people < 1:
            raise HumanParseError(f"max_people must be at least 1, got {self.max_people}")
        if self.nms_iou is not None and not 0 < self.nms_iou <= 1:
            raise HumanParseError(f"nms_iou must be in (0, 1] or None, got {self.nms_iou}")
        if self.max_side is not None and self.max_side < 32:
            raise HumanParseError(f"max_side must be at least 32 pixels or None, got {self.max_side}")
        for name in ("input_scale", "crf_scale"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise HumanParseError(f"{name} must be in (0, 1], got {value}")
        if self.crf_iterations is not None and not 0 <= self.crf_iterations <= MAX_CRF_ITERATIONS:
            raise HumanParseError(f"crf_iterations must be in 0..{MAX_CRF_ITERATIONS}, got {self.crf_iterations}")


# The command line's name of each option, for messages.
OPTION_FLAGS = {
    "det_threshold": "--det-threshold", "max_people": "--max-people", "nms_iou": "--nms-iou", "max_side": "--max-side",
    "input_scale": "--scale", "crf_scale": "--crf-scale", "crf_iterations": "--crf-iterations",
}


def detect_persons(detector: Callable[..., Detections], image: np.ndarray, options: ParseOptions) -> Detections:
    """A parser's own detector on one (H, W, 3) uint8 RGB image, called as ``detector(image,
    nms_iou=...)`` with the options' NMS (None: no suppression, IoU 1) and filtered by their
    ``det_threshold`` and ``max_people``: what the parsers built on NanoDet share."""
    return detector(image, nms_iou=1.0 if options.nms_iou is None else options.nms_iou).top(options.det_threshold, options.max_people)


class Parser(Protocol):
    """What a model offers to everything that runs it.

    labels: the label set of the results' part maps.
    finds_people: whether the parser detects persons itself (:meth:`detect`); when False,
        ``parse`` needs detections.
    follows_people: whether, in a video, the parser's persons can be followed from frame to
        frame by their keypoints (:class:`~humanparse.streaming.CropFollower`): the stream
        then calls :meth:`detect` on detection frames only and gives ``parse`` the persons.
    default_crf_scale: the CRF's scale when the options' ``crf_scale`` is None.
    reads: the :class:`ParseOptions` fields the parser reads; the predictor refuses any
        other set away from its default (it reads ``max_side`` itself).
    """

    labels: LabelSet
    finds_people: bool
    follows_people: bool
    default_crf_scale: float
    reads: frozenset[str]

    def to(self, device: torch.device) -> "Parser": ...

    def eval(self) -> "Parser": ...

    def parse(
        self,
        images: Sequence[np.ndarray],
        detections: Sequence[Detections] | None = None,
        options: ParseOptions = ParseOptions(),
        timer: StageTimer | None = None,
    ) -> list[ParsingResult]:
        """Parse images of one size: each (H, W, 3) uint8 RGB.

        ``detections``: per image, the persons to parse (None: the parser's own detector).
        ``timer`` receives the seconds of each stage (e.g. "detect_segment", "crf").
        """
        ...

    def detect(self, image: np.ndarray, options: ParseOptions = ParseOptions()) -> Detections:
        """The parser's own persons in one (H, W, 3) uint8 RGB image, by the options'
        ``det_threshold`` and ``max_people``, as ``parse`` would find them before
        confirming them; HumanParseError if it has no detector (``finds_people`` False)."""
        ...
