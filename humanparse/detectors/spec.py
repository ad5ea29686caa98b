"""The ``--detector`` text, parsed and checked once: :class:`DetectorSpec`.

    builtin                   the model's own detector head
    nanodet                   NanoDet, shipped, pretrained on COCO (real photos)
    movenet                   MoveNet MultiPose, shipped (real photos; at most 6 people)
    torchvision:NAME          a torchvision COCO detector, NAME a key of TORCHVISION_MODELS
    file:PATH                 detections written by any detector: COCO results (.json) or a
                              MOT det.txt (any other name)
    gt                        the ground-truth boxes of an annotated data set
    sim[:SEED[:TRUNCATION]]   those boxes with an imperfect detector's errors, drawn from SEED
                              (0 by default); TRUNCATION is the share of boxes cut short (0.15)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ..errors import HumanParseError
from ..structures import Detector
from .files import CocoResultsDetector, MotDetector
from .simulated import DetectionNoise, GroundTruthDetector, SimulatedDetector
from .torchvision import TORCHVISION_MODELS, TorchvisionDetector

DetectorKind = Literal["builtin", "nanodet", "movenet", "torchvision", "file", "gt", "sim"]
KINDS: tuple[DetectorKind, ...] = ("builtin", "nanodet", "movenet", "torchvision", "file", "gt", "sim")
GRAMMAR = "builtin, nanodet, movenet, torchvision:NAME, file:PATH, gt or sim[:SEED[:TRUNCATION]]"
# The kinds whose networks were trained on real photos: a pose stage suits their people.
REAL_KINDS: tuple[DetectorKind, ...] = ("nanodet", "movenet", "torchvision")


@dataclass(frozen=True)
class DetectorSpec:
    """Which person detector to use, checked on construction; no file is looked at.

    kind: one of ``KINDS``. name: the torchvision model (torchvision only). path: the
    detections file (file only). seed, noise: the simulated detector's stream and errors
    (sim only); of the noise, the text sets the truncation rate alone, so the rest stays
    at ``DetectionNoise()``'s values.
    """

    kind: DetectorKind
    name: str | None = None
    path: Path | None = None
    seed: int = 0
    noise: DetectionNoise = DetectionNoise()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise HumanParseError(f"unknown detector kind {self.kind!r}; use {GRAMMAR}")
        if self.kind == "torchvision" and self.name not in TORCHVISION_MODELS:
            raise HumanParseError(f"unknown torchvision detector {self.name!r}; choose one of: {', '.join(TORCHVISION_MODELS)}")
        if self.kind == "file" and self.path is None:
            raise HumanParseError("--detector file:PATH needs a path")
        extra = [
            field
            for field, given, allowed in (
                ("name", self.name is not None, "torchvision"),
                ("path", self.path is not None, "file"),
                ("seed", self.seed != 0, "sim"),
                ("noise", self.noise != DetectionNoise(), "sim"),
            )
            if given and self.kind != allowed
        ]
        if extra:
            raise HumanParseError(f"a {self.kind} detector takes no {' or '.join(extra)}")
        if self.seed < 0:
            raise HumanParseError(f"--detector sim:SEED needs a non-negative integer seed, got {self.seed}")
        rate = self.noise.truncation_rate
        if not 0 <= rate <= 1:
            raise HumanParseError(f"--detector sim:SEED:TRUNCATION needs a truncation rate in [0, 1], got {rate}")
        if self.noise != replace(DetectionNoise(), truncation_rate=rate):
            raise HumanParseError("a sim detector spec sets the truncation rate of its noise only")

    @classmethod
    def parse(cls, text: str) -> DetectorSpec:
        """The spec that ``text`` (the grammar in the module docstring) names; a HumanParseError
        names what is wrong with it. Opens no file: :meth:`build` does."""
        kind, colon, arg = text.partition(":")
        if kind == "torchvision":
            return cls("torchvision", name=arg)
        if kind == "file":
            if not arg:
                raise HumanParseError("--detector file:PATH needs a path")
            return cls("file", path=Path(arg))
        if kind == "sim":
            seed_text, _, rate_text = arg.partition(":")
            return cls("sim", seed=_seed(seed_text), noise=_noise(rate_text))
        if kind in ("builtin", "nanodet", "movenet", "gt"):
            if colon:
                raise HumanParseError(f"--detector {kind} takes no argument, got {text!r}")
            return cls(kind)
        raise HumanParseError(f"unknown detector {text!r}; use {GRAMMAR}")

    def __str__(self) -> str:
        """The canonical text, which parses back to an equal spec."""
        if self.kind == "torchvision":
            return f"torchvision:{self.name}"
        if self.kind == "file":
            return f"file:{self.path}"
        if self.kind == "sim" and self.noise != DetectionNoise():
            return f"sim:{self.seed}:{self.noise.truncation_rate}"
        if self.kind == "sim" and self.seed:
            return f"sim:{self.seed}"
        return self.kind

    @property
    def real(self) -> bool:
        """Whether the detector was trained on real photos (nanodet, movenet, torchvision)."""
        return self.kind in REAL_KINDS

    @property
    def needs_data(self) -> bool:
        """Whether the detector reads an annotated data set's ground truth (gt, sim)."""
        return self.kind in ("gt", "sim")

    def build(
        self,
        data_root: str | Path | None = None,
        threshold: float = 0.5,
        max_people: int = 20,
        device: str = "cpu",
        weights: str | Path | None = "default",
        nms_iou: float = 0.7,
    ) -> Detector | None:
        """The detector; None for builtin, the model's own head, which the model resolves.

        Args:
            data_root: the annotated data set (CIHP layout) of gt and sim.
            threshold, max_people: the least score and the most persons kept (nanodet,
                movenet, torchvision); nms_iou: the overlap above which the lower-scoring
                of two boxes goes (nanodet, movenet; torchvision's models do their own).
            device: where a network runs; weights: a torchvision detector's, see
                :class:`TorchvisionDetector`.
        """
        if self.kind == "builtin":
            return None
        if self.kind == "nanodet":
            from ..pretrained.nanodet import NanoDet

            return NanoDet(threshold=threshold, max_people=max_people, nms_iou=nms_iou, device=device)
        if self.kind == "movenet":
            from ..pretrained.movenet import MoveNetMultiPose

            return MoveNetMultiPose(threshold=threshold, max_people=max_people, nms_iou=nms_iou, device=device)
        if self.kind == "torchvision":
            return TorchvisionDetector(self.name, weights=weights, threshold=threshold, max_people=max_people, device=device)
        if self.kind == "file":
            if not self.path.is_file():
                raise HumanParseError(f"detections file {self.path} does not exist")
            return CocoResultsDetector(self.path) if self.path.suffix.lower() == ".json" else MotDetector(self.path)
        if data_root is None:
            raise HumanParseError(f"--detector {self.kind} needs an annotated data set")
        if self.kind == "gt":
            return GroundTruthDetector(data_root)
        return SimulatedDetector(data_root, noise=self.noise, seed=self.seed)


def _seed(text: str) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        raise HumanParseError(f"--detector sim:SEED needs an integer seed, got {text!r}") from None


def _noise(text: str) -> DetectionNoise:
    if not text:
        return DetectionNoise()
    try:
        rate = float(text)
    except ValueError:
        raise HumanParseError(f"--detector sim:SEED:TRUNCATION needs a truncation rate in [0, 1], got {text!r}") from None
    return replace(DetectionNoise(), truncation_rate=rate)
