"""The one inference path: detector → part segmenter → Instance CRF → a typed result.

:class:`Predictor` takes uint8 RGB images and returns :class:`ParsingResult`: the part map,
the person-id map, and per person its box and score, per part instance its score. Images
of one size go through the segmenter as one batch; the CRF runs per image, optionally on a
reduced grid (``crf_scale``) with its probabilities upsampled before the argmax, which
keeps edges smooth where upsampling the labels would make them blocky.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .detectors import Detector
from .device import resolve_device
from .errors import HumanParseError
from .labels import LabelSet
from .modeling.detection_head import decode
from .modeling.holistic import HolisticParser, load_checkpoint
from .modeling.instances import instance_statistics, part_map, person_map

__all__ = ["ParsingResult", "PartScore", "Predictor", "PredictorOptions", "Timings", "default_checkpoint"]

# Smaller inputs are padded up to this size: below it the backbone's strided layers leave
# no feature cells at all.
_MIN_SIDE = 32


@dataclass(frozen=True)
class PartScore:
    """One part instance: part ``part`` (1..P) of person ``person`` (an id of the result)."""

    person: int
    part: int
    score: float
    pixels: int


@dataclass(frozen=True, eq=False)
class ParsingResult:
    """Instance-level parsing of one image.

    parts: (H, W) uint8 part label per pixel, 0 = background.
    persons: (H, W) int32 person id per pixel, 0 = background. Ids are 1..N by decreasing
        score for an image; in video, the track ids.
    ids: (N,) int64 the person ids, in id order. boxes: (N, 4) float32 x1 y1 x2 y2 pixels,
        the detections the persons came from. scores: (N,) float32 in [0, 1].
    part_instances: one per (person, part) with at least one pixel, by person then part.
    labels: the label set of ``parts``.

    Person and part masks are not stored: the CRF's labelling puts each pixel in at most
    one instance, so ``persons == id`` and ``(persons == id) & (parts == part)`` are them.
    """

    parts: np.ndarray
    persons: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    part_instances: tuple[PartScore, ...]
    labels: LabelSet

    def __post_init__(self) -> None:
        if self.parts.shape != self.persons.shape or self.parts.ndim != 2:
            raise HumanParseError(f"part map {self.parts.shape} and person map {self.persons.shape} must be one (H, W)")
        n = len(self.ids)
        if self.boxes.shape != (n, 4) or self.scores.shape != (n,):
            raise HumanParseError(f"{n} ids need (N, 4) boxes and (N,) scores, got {self.boxes.shape} and {self.scores.shape}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.parts.shape  # type: ignore[return-value]

    def person_mask(self, person: int) -> np.ndarray:
        """(H, W) bool pixels of one person."""
        return self.persons == person

    def part_mask(self, person: int, part: int) -> np.ndarray:
        """(H, W) bool pixels of one part of one person."""
        return (self.persons == person) & (self.parts == part)

    def relabel(self, new_ids: Sequence[int] | np.ndarray) -> "ParsingResult":
        """The same result with person ``ids[k]`` renamed ``new_ids[k]`` (tracking)."""
        new_ids = np.asarray(new_ids, np.int64).reshape(-1)
        if len(new_ids) != len(self.ids) or len(set(new_ids.tolist())) != len(new_ids) or (new_ids < 1).any():
            raise HumanParseError(f"relabel needs {len(self.ids)} distinct positive ids, got {new_ids.tolist()}")
        table = np.zeros(int(max(self.ids.max(initial=0), 0)) + 1, np.int64)
        table[self.ids] = new_ids
        persons = table[self.persons].astype(np.int32)
        mapping = dict(zip(self.ids.tolist(), new_ids.tolist()))
        order = np.argsort(new_ids, kind="stable")
        part_instances = sorted((replace(p, person=mapping[p.person]) for p in self.part_instances), key=lambda p: (p.person, p.part))
        return ParsingResult(self.parts, persons, new_ids[order], self.boxes[order], self.scores[order], tuple(part_instances), self.labels)


@dataclass
class Timings:
    """Seconds spent per stage, summed over the images since the last reset."""

    detect_segment: float = 0.0
    crf: float = 0.0
    images: int = 0

    def reset(self) -> None:
        self.detect_segment, self.crf, self.images = 0.0, 0.0, 0


@dataclass(frozen=True)
class PredictorOptions:
    """det_threshold, max_people, nms_iou: the built-in detector's decoding (an external
    detector applies its own). input_scale: the segmenter and the built-in detector see the
    image scaled by this (0, 1]. crf_scale: the CRF runs on the image scaled by this.
    crf_iterations: mean-field iterations (None: the model's). amp: half-precision
    segmenter on CUDA."""

    det_threshold: float = 0.3
    max_people: int = 20
    nms_iou: float | None = 0.7
    input_scale: float = 1.0
    crf_scale: float = 1.0
    crf_iterations: int | None = None
    amp: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.det_threshold <= 1:
            raise HumanParseError(f"det_threshold must be in [0, 1], got {self.det_threshold}")
        if self.max_people < 1:
            raise HumanParseError(f"max_people must be at least 1, got {self.max_people}")
        for name in ("input_scale", "crf_scale"):
            if not 0 < getattr(self, name) <= 1:
                raise HumanParseError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.crf_iterations is not None and self.crf_iterations < 0:
            raise HumanParseError(f"crf_iterations must be >= 0, got {self.crf_iterations}")


def default_checkpoint() -> Path:
    """The model shipped inside the package (``humanparse/models/default.pt``)."""
    path = Path(str(resources.files("humanparse") / "models" / "default.pt"))
    if not path.is_file():
        raise HumanParseError("this installation has no default model (humanparse/models/default.pt); give --checkpoint")
    return path


class Predictor:
    """Images in, :class:`ParsingResult` out.

    Example::

        predictor = Predictor.from_checkpoint()           # the shipped default model
        result = predictor(image)                         # (H, W, 3) uint8 RGB
        result.parts, result.persons, result.boxes, result.scores

    One predictor may be called from several threads at once (``humanparse video
    --workers``); each call holds only its own tensors.
    """

    def __init__(self, model: HolisticParser, device: str | torch.device = "auto", detector: Detector | None = None, options: PredictorOptions = PredictorOptions()) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model = model.to(self.device).eval()
        self.labels = model.labels
        self.detector = detector
        self.options = options
        self.timings = Timings()
        self._timing = threading.Lock()
        if detector is None and model.detector is None:
            raise HumanParseError("this model has no built-in detector: give one (--detector)")

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str = "auto", detector: Detector | None = None, **options) -> "Predictor":
        """Load a checkpoint (None: the shipped default) onto ``device`` (auto, cpu, cuda[:N]);
        ``options`` are :class:`PredictorOptions` fields."""
        dev = resolve_device(device)
        model = load_checkpoint(default_checkpoint() if path is None else path, map_location=dev)
        return cls(model, dev, detector, PredictorOptions(**options))

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> ParsingResult:
        """Parse one (H, W, 3) uint8 RGB image; ``key`` names it for file-based detectors."""
        return self.predict([image], None if key is None else [key])[0]

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray], keys: Sequence[str | int] | None = None) -> list[ParsingResult]:
        """Parse images; those of one size share the segmenter's batch."""
        if keys is not None and len(keys) != len(images):
            raise HumanParseError(f"{len(images)} images but {len(keys)} keys")
        for image in images:
            _check_image(image)
        results: list[ParsingResult | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for k, image in enumerate(images):
            by_size.setdefault(image.shape[:2], []).append(k)
        for indices in by_size.values():
            batch = [images[k] for k in indices]
            batch_keys = [None if keys is None else keys[k] for k in indices]
            for k, result in zip(indices, self._predict_same_size(batch, batch_keys)):
                results[k] = result
        return results  # type: ignore[return-value]

    def _predict_same_size(self, images: list[np.ndarray], keys: list) -> list[ParsingResult]:
        started = time.perf_counter()
        height, width = images[0].shape[:2]
        x = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float()
        small = _scaled((height, width), self.options.input_scale)
        seen = x if small == (height, width) else F.interpolate(x, small, mode="area")
        padded = F.pad(seen, (0, max(_MIN_SIDE - small[1], 0), 0, max(_MIN_SIDE - small[0], 0)))
        amp = self.options.amp and self.device.type == "cuda"
        with torch.autocast(self.device.type, enabled=amp):
            seg = self.model.segmenter(padded)
            head = self.model.detector(seg.features) if self.detector is None else None
        q = torch.softmax(seg.logits.float(), 1)[:, :, : small[0], : small[1]]
        if self.detector is None:
            found = decode(head, self.model.segmenter.backbone.output_stride, small, self.options.det_threshold, self.options.max_people, self.options.nms_iou)
            found = [d.scaled(width / small[1], height / small[0]).clipped(height, width) for d in found]
        else:
            found = [self.detector(image, key=key) for image, key in zip(images, keys)]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        with self._timing:
            self.timings.detect_segment += time.perf_counter() - started
        results = []
        for b, detections in enumerate(found):
            started = time.perf_counter()
            boxes, scores = detections.clipped(height, width).tensors(self.device)
            confidence, labels = self._crf(q[b], x[b], boxes, scores)
            results.append(_result(confidence, labels, boxes, scores, self.labels))
            with self._timing:  # video parses in several threads at once
                self.timings.crf += time.perf_counter() - started
                self.timings.images += 1
        return results

    def _crf(self, q: torch.Tensor, image: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, W) argmax probability and label of the Instance CRF at the image's full
        resolution. ``q`` (P+1, h, w) is the segmenter's output at its input size, ``image``
        (3, H, W) and ``boxes`` are at full size; the CRF runs at ``crf_scale`` of it."""
        height, width = image.shape[-2:]
        grid = _scaled((height, width), self.options.crf_scale)
        if tuple(q.shape[-2:]) != grid:
            q = F.interpolate(q[None], grid, mode="bilinear", align_corners=False)[0]
        if grid == (height, width):
            probs = self.model.crf(q, image, boxes, scores, iterations=self.options.crf_iterations)
            return probs.max(0)
        image_small = F.interpolate(image[None], grid, mode="area")[0]
        factors = boxes.new_tensor([grid[1] / width, grid[0] / height] * 2)
        probs = self.model.crf(q, image_small, boxes * factors, scores, iterations=self.options.crf_iterations)
        return _upsampled_max(probs, (height, width))


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise HumanParseError(f"an image must be an (H, W, 3) uint8 RGB array, got {shape} {getattr(image, 'dtype', type(image).__name__)}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise HumanParseError(f"an image must have at least one pixel, got {image.shape[1]}x{image.shape[0]}")


def _upsampled_max(probs: torch.Tensor, size: tuple[int, int], chunk: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and argmax over channels of the bilinearly upsampled (L, h, w) ``probs``, a few
    channels at a time so that the full (L, H, W) stack never exists."""
    best = torch.full(size, -1.0, device=probs.device)
    labels = torch.zeros(size, dtype=torch.long, device=probs.device)
    for start in range(0, probs.shape[0], chunk):
        up = F.interpolate(probs[None, start : start + chunk], size, mode="bilinear", align_corners=False)[0]
        value, index = up.max(0)
        better = value > best
        best = torch.where(better, value, best)
        labels = torch.where(better, index + start, labels)
    return best, labels


def _result(confidence: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor, label_set: LabelSet) -> ParsingResult:
    """Number the persons that got pixels 1..N by decreasing score and build the result."""
    p = label_set.num_parts
    stats = instance_statistics(confidence, labels, scores, p)
    person_counts = stats.person_counts.cpu().numpy()
    person_scores = stats.person_scores.cpu().numpy()
    kept = np.flatnonzero(person_counts > 0)
    kept = kept[np.argsort(-person_scores[kept], kind="stable")]
    table = np.zeros(len(person_counts) + 1, np.int32)
    table[kept + 1] = np.arange(1, len(kept) + 1)
    detection_index = person_map(labels, p).cpu().numpy()
    persons = table[detection_index]
    parts = part_map(labels, p).cpu().numpy().astype(np.uint8)
    counts = stats.counts.cpu().numpy()
    part_scores = stats.part_scores.cpu().numpy()
    part_instances = tuple(
        PartScore(new_id, j + 1, float(part_scores[det, j]), int(counts[det, j]))
        for new_id, det in enumerate(kept.tolist(), start=1)
        for j in range(p)
        if counts[det, j]
    )
    return ParsingResult(
        parts,
        persons,
        np.arange(1, len(kept) + 1, dtype=np.int64),
        boxes.cpu().numpy()[kept].astype(np.float32).reshape(-1, 4),
        person_scores[kept].astype(np.float32),
        part_instances,
        label_set,
    )
