"""Person detectors behind one interface: image in, :class:`Detections` out.

A detector is any callable ``detector(image, key=None) -> Detections`` where ``image`` is
(H, W, 3) uint8 RGB and ``key`` names the image for detectors that look results up (a
file name for images, a frame number from 1 for video). Provided here:

* :class:`TorchvisionDetector` — Faster R-CNN v2, RetinaNet v2, FCOS, Mask R-CNN v2,
  keeping the COCO person class;
* :class:`CocoResultsDetector` — a COCO results JSON written by any detector;
* :class:`MotDetector` — a MOT ``det.txt`` for video;
* :class:`GroundTruthDetector` and :class:`SimulatedDetector` — the boxes of an annotated
  data set, exact or with the synthetic world's detector errors (for training and
  ablations).

``parse_detector_spec`` turns the command line's ``--detector`` value into one of these.
"""

from __future__ import annotations

import hashlib
import json
import math
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torchvision.models import detection as tv_detection

from ..data.cihp import read_label_png
from ..data.synth import DetectionNoise, simulate_detections
from ..errors import HumanParseError
from ..structures import Detections, Detector

COCO_PERSON = 1


# name -> (builder, default weights, keyword of the model's own score threshold)
TORCHVISION_MODELS: dict[str, tuple[Callable[..., torch.nn.Module], object, str]] = {
    "fasterrcnn_resnet50_fpn_v2": (tv_detection.fasterrcnn_resnet50_fpn_v2, tv_detection.FasterRCNN_ResNet50_FPN_V2_Weights.DEFAULT, "box_score_thresh"),
    "retinanet_resnet50_fpn_v2": (tv_detection.retinanet_resnet50_fpn_v2, tv_detection.RetinaNet_ResNet50_FPN_V2_Weights.DEFAULT, "score_thresh"),
    "fcos_resnet50_fpn": (tv_detection.fcos_resnet50_fpn, tv_detection.FCOS_ResNet50_FPN_Weights.DEFAULT, "score_thresh"),
    "maskrcnn_resnet50_fpn_v2": (tv_detection.maskrcnn_resnet50_fpn_v2, tv_detection.MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT, "box_score_thresh"),
}


class TorchvisionDetector:
    """A torchvision COCO detector, keeping persons only.

    Args:
        name: a key of ``TORCHVISION_MODELS``.
        weights: ``"default"`` for torchvision's COCO weights (from the torch hub cache, or
            downloaded when online), a path to a state-dict file, or None for random weights
            (tests).
        threshold: minimum score kept; max_people: at most this many, best first.
        min_size, max_size: the model's own resizing of the input.
    """

    def __init__(
        self,
        name: str,
        weights: str | Path | None = "default",
        threshold: float = 0.5,
        max_people: int = 20,
        device: str | torch.device = "cpu",
        min_size: int = 800,
        max_size: int = 1333,
    ) -> None:
        if name not in TORCHVISION_MODELS:
            raise HumanParseError(f"unknown torchvision detector {name!r}; choose one of: {', '.join(TORCHVISION_MODELS)}")
        builder, default_weights, threshold_key = TORCHVISION_MODELS[name]
        # The model's own threshold stays low so that ``threshold`` alone decides.
        model = builder(weights=None, weights_backbone=None, min_size=min_size, max_size=max_size, **{threshold_key: 0.01})
        if weights == "default":
            try:
                state = default_weights.get_state_dict(progress=False, check_hash=True)
            except (urllib.error.URLError, OSError, RuntimeError) as exc:
                raise HumanParseError(
                    f"cannot load COCO weights for {name} ({type(exc).__name__}); offline, download {default_weights.url} "
                    f"elsewhere and put it in {torch.hub.get_dir()}/checkpoints, or pass the file with --detector-weights"
                ) from None
            model.load_state_dict(state)
        elif weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise HumanParseError(f"detector weights {path} do not exist")
            try:
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except (RuntimeError, OSError, ValueError) as exc:
                raise HumanParseError(f"{path}: not weights for {name} ({str(exc).splitlines()[0]})") from None
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.threshold = threshold
        self.max_people = max_people

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255).to(self.device)
        output = self.model([tensor])[0]
        return person_detections(output, self.threshold, self.max_people)


def person_detections(output: dict[str, torch.Tensor], threshold: float, max_people: int | None) -> Detections:
    """A torchvision detection output (boxes, labels, scores) -> the persons in it."""
    keep = output["labels"] == COCO_PERSON
    boxes = output["boxes"][keep].detach().float().cpu().numpy()
    scores = output["scores"][keep].detach().float().cpu().numpy()
    return Detections(boxes, scores).top(threshold, max_people)


@dataclass(frozen=True)
class _Rows:
    boxes: list[list[float]]
    scores: list[float]


class CocoResultsDetector:
    """Detections from a COCO results JSON: a list of {"image_id" (or "file_name"),
    "bbox": [x, y, w, h], "score", "category_id"}; only ``category_id`` = person is kept.

    ``key`` is matched against the image id as written, as a file name, or as its stem;
    an image the file does not list has no detections.
    """

    def __init__(self, path: str | Path, person_category: int = COCO_PERSON) -> None:
        self.path = Path(path)
        try:
            rows = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise HumanParseError(f"{self.path}: cannot read detections ({exc})") from None
        if not isinstance(rows, list):
            raise HumanParseError(f"{self.path}: a COCO results file is a JSON list of detections")
        self._by_key: dict[str, _Rows] = {}
        for index, row in enumerate(rows):
            where = f"{self.path}: detection {index}"
            if not isinstance(row, dict):
                raise HumanParseError(f"{where} is not an object")
            image = row.get("file_name", row.get("image_id"))
            if image is None or isinstance(image, bool) or not isinstance(image, (str, int)):
                raise HumanParseError(f"{where} has no image_id or file_name")
            if row.get("category_id", person_category) != person_category:
                continue
            box = _box_xywh(row.get("bbox"), where)
            score = _score(row.get("score"), where)
            entry = self._by_key.setdefault(str(image), _Rows([], []))
            entry.boxes.append(box)
            entry.scores.append(score)

    @property
    def keys(self) -> set[str]:
        return set(self._by_key)

    def check_known(self, known: list[str]) -> None:
        """Fail if the file lists images that are not among ``known`` (names or stems)."""
        names = set()
        for k in known:
            path = Path(str(k))
            names |= {str(k), path.name, path.stem, _numeric(path.stem) or path.stem}
        unknown = sorted(k for k in self._by_key if k not in names and Path(k).stem not in names)
        if unknown:
            raise HumanParseError(f"{self.path}: detections for unknown images, e.g. {', '.join(unknown[:3])}")

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        if key is None:
            raise HumanParseError(f"{self.path}: file detections need the image's name")
        name = str(key)
        for candidate in (name, Path(name).name, Path(name).stem, _numeric(Path(name).stem)):
            if candidate is not None and candidate in self._by_key:
                rows = self._by_key[candidate]
                return Detections(np.array(rows.boxes, np.float32), np.array(rows.scores, np.float32))
        return Detections.empty()


class MotDetector:
    """Detections from a MOT ``det.txt``: ``frame, id, x, y, w, h, score, ...`` per line,
    comma-separated, frames from 1."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            lines = self.path.read_text().splitlines()
        except OSError as exc:
            raise HumanParseError(f"{self.path}: cannot read detections ({exc.strerror or exc})") from None
        self._by_frame: dict[int, _Rows] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{self.path}:{number}"
            fields = [f.strip() for f in line.split(",")]
            if len(fields) < 7:
                raise HumanParseError(f"{where}: expected at least 7 comma-separated fields (frame, id, x, y, w, h, score)")
            try:
                frame = int(float(fields[0]))
                x, y, w, h, score = (float(v) for v in fields[2:7])
            except ValueError:
                raise HumanParseError(f"{where}: fields must be numbers") from None
            if frame < 1:
                raise HumanParseError(f"{where}: frames count from 1, got {frame}")
            box = _box_xywh([x, y, w, h], where)
            entry = self._by_frame.setdefault(frame, _Rows([], []))
            entry.boxes.append(box)
            entry.scores.append(_score(score, where))

    @property
    def last_frame(self) -> int:
        return max(self._by_frame, default=0)

    def check_frames(self, frame_count: int) -> None:
        """Fail if the file has detections past the video's last frame."""
        if self.last_frame > frame_count:
            raise HumanParseError(f"{self.path}: detections for frame {self.last_frame}, but the video has {frame_count} frames")

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        if not isinstance(key, int):
            raise HumanParseError(f"{self.path}: MOT detections need the frame number")
        rows = self._by_frame.get(key)
        if rows is None:
            return Detections.empty()
        return Detections(np.array(rows.boxes, np.float32), np.array(rows.scores, np.float32))


class GroundTruthDetector:
    """The tight boxes of each person in a CIHP-layout data set, with score 1."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / "Human_ids").is_dir():
            raise HumanParseError(f"{self.root}: ground-truth detections need person ids (Human_ids/)")

    def boxes(self, key: str | int | None, shape: tuple[int, int]) -> np.ndarray:
        if key is None:
            raise HumanParseError("ground-truth detections need the image's id")
        persons = read_label_png(self.root / "Human_ids" / f"{Path(str(key)).stem}.png", shape)
        boxes = []
        for pid in np.unique(persons[persons > 0]):
            ys, xs = np.nonzero(persons == pid)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        return np.array(boxes, np.float32).reshape(-1, 4)

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        boxes = self.boxes(key, image.shape[:2])
        return Detections(boxes, np.ones(len(boxes), np.float32))


class SimulatedDetector(GroundTruthDetector):
    """Ground-truth boxes with the errors of an imperfect detector (jitter, truncation,
    misses, false positives); the same image and seed always give the same detections."""

    def __init__(self, root: str | Path, noise: DetectionNoise = DetectionNoise(), seed: int = 0) -> None:
        super().__init__(root)
        self.noise = noise
        self.seed = seed

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        boxes = self.boxes(key, image.shape[:2])
        # A stream per image, keyed by its name, so that order and repetition do not matter.
        digest = int(hashlib.sha256(str(key).encode()).hexdigest()[:16], 16)
        rng = np.random.default_rng([self.seed, digest])
        sim = simulate_detections(rng, boxes, image.shape[0], image.shape[1], self.noise)
        return Detections(sim.boxes, sim.scores)


def parse_simulation(arg: str) -> tuple[int, DetectionNoise]:
    """The ``SEED[:TRUNCATION]`` of a ``sim`` detector spec: the seed (0 when empty) and
    the detection noise, with TRUNCATION the share of boxes cut short."""
    seed_text, _, rate_text = arg.partition(":")
    try:
        seed = int(seed_text) if seed_text else 0
    except ValueError:
        raise HumanParseError(f"--detector sim:SEED needs an integer seed, got {seed_text!r}") from None
    noise = DetectionNoise()
    if rate_text:
        try:
            rate = float(rate_text)
        except ValueError:
            rate = math.nan
        if not 0 <= rate <= 1:
            raise HumanParseError(f"--detector sim:SEED:TRUNCATION needs a truncation rate in [0, 1], got {rate_text!r}")
        noise = replace(noise, truncation_rate=rate)
    return seed, noise


def parse_detector_spec(
    spec: str,
    data_root: str | Path | None = None,
    threshold: float = 0.5,
    max_people: int = 20,
    device: str = "cpu",
    weights: str | None = "default",
) -> Detector:
    """``torchvision:NAME``, ``file:PATH`` (.json COCO results or MOT .txt), ``gt`` or
    ``sim[:SEED[:TRUNCATION]]`` (ground truth of ``data_root``; TRUNCATION is the share of
    boxes cut short, 0.15 by default). ``builtin`` is the model's own head and is
    resolved by the model, not here."""
    kind, _, arg = spec.partition(":")
    if kind == "torchvision":
        return TorchvisionDetector(arg, weights=weights, threshold=threshold, max_people=max_people, device=device)
    if kind == "file":
        if not arg:
            raise HumanParseError("--detector file:PATH needs a path")
        path = Path(arg)
        if not path.is_file():
            raise HumanParseError(f"detections file {path} does not exist")
        return CocoResultsDetector(path) if path.suffix.lower() == ".json" else MotDetector(path)
    if kind in ("gt", "sim"):
        if data_root is None:
            raise HumanParseError(f"--detector {kind} needs an annotated data set")
        if kind == "gt":
            return GroundTruthDetector(data_root)
        seed, noise = parse_simulation(arg)
        return SimulatedDetector(data_root, noise=noise, seed=seed)
    raise HumanParseError(
        f"unknown detector {spec!r}; use builtin, torchvision:NAME, file:PATH, gt or sim[:SEED[:TRUNCATION]]"
    )


def _box_xywh(value: object, where: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise HumanParseError(f"{where}: bbox must be [x, y, w, h]")
    try:
        x, y, w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        raise HumanParseError(f"{where}: bbox values must be numbers") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise HumanParseError(f"{where}: bbox values must be finite")
    if w < 0 or h < 0:
        raise HumanParseError(f"{where}: negative box size {w} x {h}")
    return [x, y, x + w, y + h]


def _score(value: object, where: str) -> float:
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise HumanParseError(f"{where}: score must be a number") from None
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise HumanParseError(f"{where}: score {value} is not in [0, 1]")
    return score


def _numeric(stem: str) -> str | None:
    """'000123' -> '123', for results files whose image ids are the numeric file names."""
    return str(int(stem)) if stem.isdigit() else None
