"""The category-level part segmenter (paper Sec. 3.1, appendix B.1, Fig. 10b)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone, build_backbone

# ImageNet statistics, in 0..255 units since images arrive as 0..255 RGB.
_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class SegmenterOutput(NamedTuple):
    """What ``PartSegmenter`` returns.

    logits: (B, P+1, H, W) float part logits at the input size (Q = softmax over dim 1).
    features: (B, C, h, w) float backbone features, kept for heads that share them.
    """

    logits: Tensor
    features: Tensor


def _conv_norm_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    # Group norm where PSPNet has batch norm: the paper trains with one image per step,
    # and batch statistics of the 1×1 pyramid bin do not exist for a batch of one
    # (BatchNorm2d refuses it in training mode).
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.GroupNorm(_groups(out_channels), out_channels),
        nn.ReLU(inplace=True),
    )


def _groups(channels: int) -> int:
    """32 groups where the channels allow (Wu & He's default), fewer otherwise, keeping at
    least two channels a group so that a 1×1 map still has statistics."""
    return next((g for g in (32, 16, 8, 4, 2) if channels % g == 0 and channels // g >= 2), 1)


class PyramidPoolingHead(nn.Module):
    """Multi-scale context as in Fig. 10b.

    Average-pool the backbone output to each bin size (1×1, 2×2, 3×3, 6×6), reduce each with
    a 1×1 conv to ``branch_channels`` (default ``in_channels // len(bins)``), upsample back
    bilinearly, concatenate with the backbone output, fuse with a 3×3 conv to
    ``mid_channels`` (512 in the paper), drop out 10% and classify with a 1×1 conv.

    forward: (B, in_channels, h, w) float -> (B, num_classes, h, w) float logits. Maps
    smaller than a bin work: adaptive pooling then repeats pixels.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        bins: tuple[int, ...] = (1, 2, 3, 6),
        branch_channels: int | None = None,
        mid_channels: int = 512,
    ) -> None:
        super().__init__()
        if branch_channels is None:
            branch_channels = in_channels // len(bins)
        self.bins = bins
        self.branches = nn.ModuleList(_conv_norm_relu(in_channels, branch_channels, 1) for _ in bins)
        self.fuse = _conv_norm_relu(in_channels + branch_channels * len(bins), mid_channels, 3)
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(mid_channels, num_classes, 1)

    def forward(self, features: Tensor) -> Tensor:
        size = features.shape[-2:]
        pyramid = [features]
        for bin_size, branch in zip(self.bins, self.branches):
            pooled = branch(F.adaptive_avg_pool2d(features, bin_size))
            pyramid.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=False))
        return self.classifier(self.dropout(self.fuse(torch.cat(pyramid, 1))))


class PartSegmenter(nn.Module):
    """Backbone + pyramid pooling head, built elsewhere and passed in.

    forward: images (B, 3, H, W) float RGB in 0..255 -> ``SegmenterOutput``.
    """

    def __init__(self, backbone: Backbone, head: PyramidPoolingHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        # Not persistent: constants, not learned state, so checkpoints stay free of them.
        self.register_buffer("mean", torch.tensor(_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> SegmenterOutput:
        features = self.backbone((images - self.mean) / self.std)
        logits = F.interpolate(self.head(features), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return SegmenterOutput(logits, features)


def build_segmenter(
    backbone: str,
    num_classes: int,
    pretrained: bool = False,
    output_stride: int = 8,
    frozen_bn: bool = False,
) -> PartSegmenter:
    """The one builder of the segmenter, holding its numbers.

    Args:
        backbone: a name from ``humanparse.backbones.BACKBONES``.
        num_classes: P+1, background included.
        pretrained, output_stride, frozen_bn: as for ``build_backbone``.
    """
    body = build_backbone(backbone, pretrained=pretrained, output_stride=output_stride, frozen_bn=frozen_bn)
    # The paper's 512-channel fusion for the ResNet-50/101 features; the light backbones
    # keep to 128 so that the head does not outweigh them on the CPU.
    mid_channels = 512 if backbone in ("resnet101", "resnet50") else 128
    head = PyramidPoolingHead(body.out_channels, num_classes, mid_channels=mid_channels)
    return PartSegmenter(body, head)
