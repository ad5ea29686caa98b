"""The paper's network (Fig. 2): part segmenter (+ the built-in detection head) and
Instance CRF, trained end to end. It owns its pre- and post-processing, so that training,
validation, evaluation, images and video all run the same code: :meth:`HolisticParser.forward`
for training (logits and CRF probabilities to put a loss on), :meth:`HolisticParser.parse`
for inference (uint8 images in, :class:`~humanparse.structures.ParsingResult` out)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import HumanParseError
from ..labels import LabelSet, get_label_set
from ..ops import scaled_size
from ..structures import Detections, ParsingResult
from .crf import InstanceCRF
from .detection_head import CenterNetHead, HeadOutput, decode
from .instances import parsing_result, upsampled_max
from .parser import ParseOptions, StageTimer
from .segmenter import PartSegmenter, build_segmenter

# Smaller inputs are padded up to this size: below it the backbone's strided layers leave
# no feature cells at all.
_MIN_SIDE = 32


class ParserOutput(NamedTuple):
    """What :meth:`HolisticParser.forward` returns, in training and in evaluation alike.

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
    """Part segmenter and Instance CRF, trained end to end (paper Sec. 3); a
    :class:`~humanparse.modeling.parser.Parser`."""

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

    follows_people = False  # video: detections on every frame (the head costs nothing extra)
    default_crf_scale = 1.0
    reads = frozenset({"det_threshold", "max_people", "nms_iou", "input_scale", "crf_scale", "crf_iterations", "amp"})

    @property
    def finds_people(self) -> bool:
        """Whether the built-in detection head is there to find persons."""
        return self.detector is not None

    def forward(
        self,
        images: Tensor,
        boxes: list[Tensor] | None = None,
        scores: list[Tensor] | None = None,
        crf_iterations: int | None = None,
        decoding: ParseOptions = ParseOptions(),
    ) -> ParserOutput:
        """Parse a batch for training.

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
            found = self._decode(head, tuple(images.shape[-2:]), decoding)
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

    @torch.no_grad()
    def parse(
        self,
        images: Sequence[np.ndarray],
        detections: Sequence[Detections] | None = None,
        options: ParseOptions = ParseOptions(),
        timer: StageTimer | None = None,
    ) -> list[ParsingResult]:
        """Parse images of one size, each (H, W, 3) uint8 RGB, into results at that size.

        The segmenter (and the built-in head, when ``detections`` is None) sees the batch
        scaled by ``options.input_scale`` and padded to at least 32 pixels a side, under
        autocast on CUDA; the CRF runs per image at ``options.crf_scale`` in float32, and
        its probabilities are upsampled a few channels at a time before the argmax, which
        keeps edges smooth where upsampling labels would make them blocky. Stages timed:
        "detect_segment" and "crf".
        """
        started = time.perf_counter()
        device = next(self.parameters()).device
        if detections is not None and len(detections) != len(images):
            raise HumanParseError(f"{len(images)} images but {len(detections)} detection sets")
        height, width = images[0].shape[:2]
        if any(image.shape[:2] != (height, width) for image in images):
            raise HumanParseError("parse takes images of one size; group them first")
        x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float()
        q, own = self._network(x, options, detect=detections is None)
        found = own if detections is None else list(detections)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if timer is not None:
            timer("detect_segment", time.perf_counter() - started)
        results = []
        for b, found_b in enumerate(found):
            started = time.perf_counter()
            boxes, scores = found_b.clipped(height, width).tensors(device)
            confidence, labels = self._crf_max(q[b], x[b], boxes, scores, options)
            results.append(parsing_result(confidence, labels, boxes, scores, self.labels))
            if timer is not None:
                timer("crf", time.perf_counter() - started)
        return results

    @torch.no_grad()
    def detect(self, image: np.ndarray, options: ParseOptions = ParseOptions()) -> Detections:
        """The built-in head's persons in one (H, W, 3) uint8 RGB image, as :meth:`parse`
        finds them (the segmenter runs too: the head reads its features)."""
        device = next(self.parameters()).device
        x = torch.from_numpy(image[None]).to(device).permute(0, 3, 1, 2).float()
        return self._network(x, options, detect=True)[1][0]

    def _network(self, x: Tensor, options: ParseOptions, detect: bool) -> tuple[Tensor, list[Detections]]:
        """The segmenter's (B, P+1, h, w) probabilities at the scaled input size and, with
        ``detect``, the built-in head's persons at the images' size. ``x``: (B, 3, H, W)
        float RGB 0..255; the network sees it scaled by ``options.input_scale`` and padded
        to at least 32 pixels a side, under autocast on CUDA."""
        if detect and self.detector is None:
            raise HumanParseError("this model has no built-in detector: give one (--detector)")
        height, width = x.shape[-2:]
        small = scaled_size((height, width), options.input_scale)
        seen = x if small == (height, width) else F.interpolate(x, small, mode="area")
        padded = F.pad(seen, (0, max(_MIN_SIDE - small[1], 0), 0, max(_MIN_SIDE - small[0], 0)))
        with torch.autocast(x.device.type, enabled=options.amp and x.device.type == "cuda"):
            seg = self.segmenter(padded)
            head = self.detector(seg.features) if detect else None
        q = torch.softmax(seg.logits.float(), 1)[:, :, : small[0], : small[1]]
        found = [d.scaled(width / small[1], height / small[0]) for d in self._decode(head, small, options)] if detect else []
        return q, found

    def _decode(self, head: HeadOutput, size: tuple[int, int], options: ParseOptions) -> list[Detections]:
        return decode(head, self.segmenter.backbone.output_stride, size, options.det_threshold, options.max_people, options.nms_iou)

    def _crf_max(self, q: Tensor, image: Tensor, boxes: Tensor, scores: Tensor, options: ParseOptions) -> tuple[Tensor, Tensor]:
        """(H, W) argmax probability and label of the Instance CRF at the image's full
        resolution. ``q`` (P+1, h, w) is the segmenter's output at its input size, ``image``
        (3, H, W) and ``boxes`` are at full size; the CRF runs at ``options.crf_scale``."""
        height, width = image.shape[-2:]
        grid = scaled_size((height, width), options.crf_scale or self.default_crf_scale)
        if tuple(q.shape[-2:]) != grid:
            q = F.interpolate(q[None], grid, mode="bilinear", align_corners=False)[0]
        if grid != (height, width):
            image = F.interpolate(image[None], grid, mode="area")[0]
            boxes = boxes * boxes.new_tensor([grid[1] / width, grid[0] / height] * 2)
        probs = self.crf(q, image, boxes, scores, iterations=options.crf_iterations)
        return upsampled_max(probs, (height, width))


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
        label_set=labels.name,
    )
    # CRFConfig's fields are InstanceCRF's keyword arguments, one for one, but for the
    # background penalty (background stays one more person here).
    crf = InstanceCRF(labels.num_parts, **dataclasses.asdict(config.crf))
    detector = CenterNetHead(segmenter.backbone.out_channels) if config.detection_head else None
    return HolisticParser(segmenter, crf, labels, config, detector)
