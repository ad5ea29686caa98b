"""The built-in person detector: an anchor-free head on the segmenter's backbone features.

The CenterNet recipe (Zhou et al., "Objects as Points", 2019) for one class: a heatmap of
box centres trained with the penalty-reduced focal loss against Gaussian bumps, and per
cell the box size and the sub-cell offset of the centre, trained with L1 at the centres
only. Decoding keeps the heatmap's local maxima (3×3 max pooling), above a threshold, at
most N of them, optionally followed by NMS, with boxes clipped to the image.

Sizes and offsets are in units of the feature grid (pixels / output stride).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

from ..structures import Detections

# Focal-loss prior: the heatmap starts at p = 0.1 everywhere, as CenterNet initialises it.
_PRIOR_BIAS = -math.log((1 - 0.1) / 0.1)


class HeadOutput(NamedTuple):
    heatmap: Tensor  # (B, 1, h, w) logits
    size: Tensor  # (B, 2, h, w) box width and height, grid units
    offset: Tensor  # (B, 2, h, w) centre offset within the cell, grid units


class CenterNetHead(nn.Module):
    """Three small branches over (B, C, h, w) backbone features."""

    def __init__(self, in_channels: int, mid_channels: int = 64) -> None:
        super().__init__()

        def branch(out_channels: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(mid_channels, out_channels, 1))

        self.heatmap = branch(1)
        self.size = branch(2)
        self.offset = branch(2)
        nn.init.constant_(self.heatmap[-1].bias, _PRIOR_BIAS)

    def forward(self, features: Tensor) -> HeadOutput:
        return HeadOutput(self.heatmap(features), self.size(features), self.offset(features))


@dataclass(frozen=True)
class Targets:
    """Training targets of one image on an h × w grid.

    heatmap: (1, h, w) float Gaussian bumps, 1 at each centre cell; index: (K,) long flat
    cell indices of the centres; size, offset: (K, 2) float at those cells.
    """

    heatmap: Tensor
    index: Tensor
    size: Tensor
    offset: Tensor


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """The largest diagonal centre shift r (grid units) that keeps a box of this size at
    IoU >= ``min_overlap`` with itself unshifted.

    Shifting by (r, r) leaves an intersection (w-r)(h-r), and IoU = I / (2wh - I) >= t
    holds while (w-r)(h-r) >= 2t/(1+t)·wh: the smaller root of that quadratic. (The
    three-case formula of the CornerNet/CenterNet code does not keep this overlap.)
    """
    keep = 2 * min_overlap / (1 + min_overlap)
    total = height + width
    return (total - math.sqrt(total**2 - 4 * height * width * (1 - keep))) / 2


def encode_targets(boxes: Tensor, grid: tuple[int, int], stride: int) -> Targets:
    """Targets from (K, 4) boxes x1 y1 x2 y2 in pixels, for a (h, w) grid of ``stride``.

    Boxes whose centre lies outside the image contribute nothing.
    """
    h, w = grid
    heatmap = torch.zeros((1, h, w))
    boxes = boxes.detach().float().cpu()
    centres = torch.stack(((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2), 1) / stride
    sizes = torch.stack((boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1) / stride
    cells = centres.floor().long()
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < w) & (cells[:, 1] >= 0) & (cells[:, 1] < h) & (sizes > 0).all(1)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    for (cx, cy), (bw, bh) in zip(cells[inside].tolist(), sizes[inside].tolist()):
        sigma = (2 * max(0.0, gaussian_radius(bh, bw)) + 1) / 6
        bump = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        heatmap[0] = torch.maximum(heatmap[0], bump)
    index = cells[inside, 1] * w + cells[inside, 0]
    return Targets(heatmap, index, sizes[inside], centres[inside] - cells[inside].float())


def detection_loss(output: HeadOutput, targets: list[Targets], size_weight: float = 0.1) -> Tensor:
    """Penalty-reduced focal loss on the heatmap plus L1 on size and offset at the centres,
    each normalised by the number of boxes in the batch (CenterNet's weights: 1, 0.1, 1)."""
    heat_target = torch.stack([t.heatmap for t in targets]).to(output.heatmap.device)
    prob = torch.sigmoid(output.heatmap.float()).clamp(1e-4, 1 - 1e-4)
    positive = heat_target.eq(1).float()
    pos_loss = -(torch.log(prob) * (1 - prob) ** 2 * positive).sum()
    neg_loss = -(torch.log(1 - prob) * prob**2 * (1 - heat_target) ** 4 * (1 - positive)).sum()
    count = max(float(positive.sum()), 1.0)
    regression = output.heatmap.new_zeros(())
    b, _, h, w = output.heatmap.shape
    for i, t in enumerate(targets):
        if t.index.numel() == 0:
            continue
        index = t.index.to(output.size.device)
        size = output.size[i].reshape(2, h * w)[:, index].t()
        offset = output.offset[i].reshape(2, h * w)[:, index].t()
        regression = regression + size_weight * F.l1_loss(size, t.size.to(size), reduction="sum")
        regression = regression + F.l1_loss(offset, t.offset.to(offset), reduction="sum")
    return (pos_loss + neg_loss + regression) / count


@torch.no_grad()
def decode(
    output: HeadOutput,
    stride: int,
    image_size: tuple[int, int],
    threshold: float,
    max_detections: int,
    nms_iou: float | None,
) -> list[Detections]:
    """Boxes from the head's output, one :class:`Detections` per image of the batch.

    ``image_size`` is (height, width) in pixels; boxes are clipped to it. At most
    ``max_detections`` peaks scoring at least ``threshold``, suppressed at box IoU
    ``nms_iou`` (None: no suppression); the defaults are
    :class:`~humanparse.modeling.parser.ParseOptions`'.
    """
    prob = torch.sigmoid(output.heatmap.float())
    peaks = prob * (F.max_pool2d(prob, 3, stride=1, padding=1) == prob)
    b, _, h, w = prob.shape
    results = []
    for i in range(b):
        scores, index = peaks[i].reshape(-1).topk(min(max_detections, h * w))
        keep = scores >= threshold
        scores, index = scores[keep], index[keep]
        ys, xs = (index // w).float(), (index % w).float()
        offset = output.offset[i].float().reshape(2, -1)[:, index]
        size = output.size[i].float().reshape(2, -1)[:, index].clamp_min(0)
        cx, cy = xs + offset[0], ys + offset[1]
        boxes = torch.stack((cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2), 1) * stride
        if nms_iou is not None and len(boxes):
            kept = nms(boxes, scores, nms_iou)
            boxes, scores = boxes[kept], scores[kept]
        det = Detections(boxes.cpu().numpy().astype(np.float32), scores.cpu().numpy().astype(np.float32))
        results.append(det.clipped(*image_size))
    return results
