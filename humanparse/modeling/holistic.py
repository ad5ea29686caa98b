"""The whole network (paper Fig. 2): part segmenter + Instance CRF; checkpoint I/O."""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .. import __version__
from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError, HumanParseError
from ..io.files import publish_file
from ..labels import LabelSet, get_label_set
from .crf import InstanceCRF
from .detection_head import CenterNetHead, HeadOutput, decode
from .segmenter import PartSegmenter, build_segmenter

CHECKPOINT_FORMAT = "humanparse-checkpoint"
CHECKPOINT_VERSION = 1


class DecodeOptions(NamedTuple):
    """How the built-in head's detections are picked (see detection_head.decode)."""

    threshold: float = 0.3
    max_detections: int = 20
    nms_iou: float | None = 0.7


class ParserOutput(NamedTuple):
    """What the network returns, in training and in evaluation alike.

    logits: (B, P+1, H, W) part logits of the segmenter (Q = softmax over dim 1).
    instances: per image, (P·D_b+1, H, W) Instance CRF probabilities.
    boxes, scores: per image, the (D_b, 4) boxes and (D_b,) scores the CRF was given.
    head: the built-in detection head's raw output (for its loss), None without a head.
    """

    logits: Tensor
    instances: list[Tensor]
    boxes: list[Tensor]
    scores: list[Tensor]
    head: HeadOutput | None


class HolisticParser(nn.Module):
    """Part segmenter and Instance CRF, trained end to end (paper Sec. 3)."""

    def __init__(
        self,
        segmenter: PartSegmenter,
        crf: InstanceCRF,
        labels: LabelSet,
        config: ModelConfig,
        detector: CenterNetHead | None = None,
    ) -> None:
        super().__init__()
        if crf.num_parts != labels.num_parts:
            raise HumanParseError(f"CRF built for {crf.num_parts} parts, label set {labels.name!r} has {labels.num_parts}")
        self.segmenter = segmenter
        self.crf = crf
        self.detector = detector
        self.labels = labels
        self.config = config

    def forward(
        self,
        images: Tensor,
        boxes: list[Tensor] | None = None,
        scores: list[Tensor] | None = None,
        crf_iterations: int | None = None,
        decoding: DecodeOptions = DecodeOptions(),
    ) -> ParserOutput:
        """Parse a batch.

        Args:
            images: (B, 3, H, W) float RGB in 0..255.
            boxes: B tensors (D_b, 4) x1 y1 x2 y2 in pixels (D_b may be 0), from any
                detector; None uses the built-in head's own detections.
            scores: B tensors (D_b,) in [0, 1], with ``boxes``.
            crf_iterations: mean-field iterations, defaulting to the CRF's own.
            decoding: how the built-in head's detections are picked when ``boxes`` is None.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise HumanParseError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if (boxes is None) != (scores is None):
            raise HumanParseError("give boxes and scores together, or neither for the built-in detector")
        if boxes is not None and (len(boxes) != images.shape[0] or len(scores) != images.shape[0]):
            raise HumanParseError(f"{images.shape[0]} images but {len(boxes)} box sets and {len(scores)} score sets")
        if boxes is None and self.detector is None:
            raise HumanParseError("this model has no built-in detector: give detections (--detector)")
        seg = self.segmenter(images)
        head = self.detector(seg.features) if self.detector is not None else None
        if boxes is None:
            found = decode(head, self.segmenter.backbone.output_stride, tuple(images.shape[-2:]), **decoding._asdict())
            boxes, scores = map(list, zip(*(d.tensors(images.device) for d in found)))
        # The lattice's sums of many small weights need float32: under mixed precision the
        # CRF runs outside autocast.
        with torch.autocast(images.device.type, enabled=False):
            q = torch.softmax(seg.logits.float(), 1)
            instances = [
                self.crf(q[b], images[b].float(), boxes[b].to(q), scores[b].to(q), iterations=crf_iterations)
                for b in range(images.shape[0])
            ]
        return ParserOutput(seg.logits, instances, boxes, scores, head)


def build_model(config: ModelConfig, labels: LabelSet | None = None, pretrained: bool | None = None) -> HolisticParser:
    """The one builder: every number of the network comes from ``config``.

    ``labels`` defaults to the built-in label set named by ``config.label_set`` (a checkpoint
    carries its own). ``pretrained`` overrides ``config.pretrained`` (checkpoint loading
    passes False: the weights come from the file, never from a download).
    """
    labels = labels or get_label_set(config.label_set)
    segmenter = build_segmenter(
        config.backbone,
        num_classes=labels.num_parts + 1,
        pretrained=config.pretrained if pretrained is None else pretrained,
        output_stride=config.output_stride,
        frozen_bn=config.frozen_bn,
    )
    # CRFConfig's fields are InstanceCRF's keyword arguments, one for one.
    crf = InstanceCRF(labels.num_parts, **dataclasses.asdict(config.crf))
    detector = CenterNetHead(segmenter.backbone.out_channels) if config.detection_head else None
    return HolisticParser(segmenter, crf, labels, config, detector)


def save_checkpoint(model: HolisticParser, path: str | os.PathLike, extra: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write one file holding the state dict, the model config and the label set.

    The write is atomic: a temporary file in the same folder, then a rename, so that a
    crash or a full disk never leaves a half-written checkpoint in place of a good one.
    ``extra`` holds plain data and tensors only (optimiser state, iteration, ...).
    ``half`` stores floating-point weights as float16.
    """
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "humanparse_version": __version__,
        "config": model.config.to_dict(),
        "labels": model.labels.to_dict(),
        # Half precision halves a shipped file; loading copies the values back into float32.
        "state_dict": {k: v.half() if half and v.is_floating_point() else v for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    try:
        # Serialised in memory first: torch.save writing straight to a failing file (a full
        # disk) raises an opaque RuntimeError, a plain write raises OSError with its errno.
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        publish_file(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dictionary, loaded with ``weights_only=True`` and validated."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist" if not path.exists() else f"checkpoint {path} is not a file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a humanparse checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload.get('version')} is not supported (expected {CHECKPOINT_VERSION})")
    for key in ("config", "labels", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint has no {key!r}")
    return payload


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> HolisticParser:
    """Rebuild the network from a checkpoint written by :func:`save_checkpoint`."""
    payload = read_checkpoint(path, map_location)
    model, _ = _model_from(payload, path, _config_of(payload, path), strict=True)
    return model.to(map_location)


# What a previous stage's weights must agree on; the rest of [model] (the CRF's iterations,
# kernels and global term, frozen batch norm) is the new run's to choose.
_ARCHITECTURE = ("backbone", "label_set", "output_stride", "detection_head")
# Parameters that exist only with some CRF settings: the global term's weight.
_OPTIONAL_PARAMETERS = {"crf.log_global_weight"}


def init_from_checkpoint(config: ModelConfig, path: str | os.PathLike) -> HolisticParser:
    """The network described by ``config`` with the weights of the checkpoint at ``path``
    (a previous training stage), as detectron2's MODEL.WEIGHTS: the run's config decides the
    CRF's settings (``crf.global_term``, iterations, kernel widths), the checkpoint every
    learned value. An architecture that differs is an error naming the fields; the global
    weight is dropped, or starts at ``crf.global_weight``, when the global term is switched."""
    payload = read_checkpoint(path)
    source = _config_of(payload, path)
    differ = [f"{name} {getattr(source, name)!r} (the run has {getattr(config, name)!r})" for name in _ARCHITECTURE if getattr(source, name) != getattr(config, name)]
    if differ:
        raise ConfigError(f"init {path} has a different architecture: {'; '.join(differ)}; set [model] to match it")
    model, stray = _model_from(payload, path, config, strict=False)
    stray -= _OPTIONAL_PARAMETERS
    if stray:
        raise CheckpointError(f"{path}: weights do not fit the model: {', '.join(sorted(stray)[:5])}")
    return model


def _config_of(payload: dict[str, Any], path: str | os.PathLike) -> ModelConfig:
    try:
        return ModelConfig.from_dict(payload["config"], source=f"{path}")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def _model_from(payload: dict[str, Any], path: str | os.PathLike, config: ModelConfig, strict: bool) -> tuple[HolisticParser, set[str]]:
    """The network of ``config`` with the checkpoint's labels and weights, and the names of
    the parameters missing from the checkpoint or left over (empty when ``strict``)."""
    try:
        labels = LabelSet.from_dict(payload["labels"])
    except HumanParseError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    model = build_model(config, labels=labels, pretrained=False)
    try:
        missing, unexpected = model.load_state_dict(payload["state_dict"], strict=strict)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model: {str(exc).splitlines()[0]}") from None
    return model, set(missing) | set(unexpected)
