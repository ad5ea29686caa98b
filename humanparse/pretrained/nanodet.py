"""NanoDet, a COCO object detector, as a person detector: :class:`NanoDet`.

NanoDet-m at 416 × 416 (RangiLyu/nanodet, Apache-2.0): three levels (strides 8, 16, 32) of
80 sigmoid class scores and, per box side, an 11-bin distribution over distances (generalised
focal loss, reg_max 10); the distance is the distribution's mean times the stride, measured
from the cell centre. The image is resized to 416 × 416 without keeping its aspect (as the
model was trained) and normalised as NanoDet's training config does (BGR, mean/std below),
which scored persons higher than plain 0..1 RGB on the real clip and photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision

from ..structures import Detections
from .crops import resize_image
from .registry import PretrainedNetwork

INPUT_SIZE = 416
REG_MAX = 10
# NanoDet's config normalises BGR images with these (pixel values 0..255).
BGR_MEAN = (103.53, 116.28, 123.675)
BGR_STD = (57.375, 57.12, 58.395)
PERSON = 0  # COCO's person, first of NanoDet's 80 classes
# (class scores, box distributions) output names per level, finest first
LEVELS = (("Identity:0", "Identity_3:0"), ("Identity_1:0", "Identity_4:0"), ("Identity_2:0", "Identity_5:0"))


class NanoDet(PretrainedNetwork):
    """Persons by NanoDet: ``detector(image) -> Detections`` (the Detector protocol).

    Args:
        threshold: minimum person score kept; max_people: at most this many, best first;
        nms_iou: boxes overlapping a better one by more than this are dropped.
        device: where the network runs. weights: a converted checkpoint (default: shipped).
    """

    def __init__(self, threshold: float = 0.3, max_people: int = 20, nms_iou: float = 0.7, device: str | torch.device = "cpu", weights: str | Path = "nanodet") -> None:
        super().__init__(weights, device)
        self.threshold, self.max_people, self.nms_iou = threshold, max_people, nms_iou
        self.register_buffer("mean", torch.tensor(BGR_MEAN, device=device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(BGR_STD, device=device).view(1, 3, 1, 1), persistent=False)

    @torch.inference_mode()
    def forward(self, image: np.ndarray, key: str | int | None = None, nms_iou: float | None = None) -> Detections:
        """Persons in one (H, W, 3) uint8 RGB image; ``nms_iou`` in place of the one given at
        construction (a parser passes its options'). ``key`` is unused (Detector protocol)."""
        height, width = image.shape[:2]
        small = resize_image(image, INPUT_SIZE, INPUT_SIZE)
        x = torch.from_numpy(np.ascontiguousarray(small[..., ::-1].transpose(2, 0, 1)))[None].to(self.device).float()
        outputs = self.network.run((x - self.mean) / self.std)
        boxes, scores = decode(outputs, self.threshold)
        keep = torchvision.ops.nms(boxes, scores, self.nms_iou if nms_iou is None else nms_iou)[: self.max_people]
        boxes = boxes[keep] * torch.tensor([width, height, width, height], device=boxes.device) / INPUT_SIZE
        return Detections(boxes.cpu().numpy(), scores[keep].clamp(0, 1).cpu().numpy()).clipped(height, width)


def decode(outputs: dict[str, torch.Tensor], threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Person boxes (M, 4) x1 y1 x2 y2 in the 416-px input and scores (M,), those scoring
    at least ``threshold``, before NMS, from NanoDet's outputs (batch of one)."""
    all_boxes, all_scores = [], []
    bins = torch.arange(REG_MAX + 1, dtype=torch.float32)
    for scores_name, boxes_name in LEVELS:
        scores = outputs[scores_name][0, :, PERSON]
        keep = torch.nonzero(scores >= threshold).flatten()
        cells = round(scores.shape[0] ** 0.5)
        stride = INPUT_SIZE / cells
        distribution = outputs[boxes_name][0, keep].reshape(-1, 4, REG_MAX + 1).softmax(-1)
        distances = (distribution * bins.to(distribution.device)).sum(-1) * stride  # left, top, right, bottom
        cx = (keep % cells).float().add(0.5) * stride
        cy = torch.div(keep, cells, rounding_mode="floor").float().add(0.5) * stride
        all_boxes.append(torch.stack([cx - distances[:, 0], cy - distances[:, 1], cx + distances[:, 2], cy + distances[:, 3]], dim=1))
        all_scores.append(scores[keep])
    return torch.cat(all_boxes), torch.cat(all_scores)
