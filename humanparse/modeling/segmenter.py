"""The category-level part segmenter (paper Sec. 3.1, appendix B.1, Fig. 10b)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import IMAGENET_MEAN, IMAGENET_STD, Backbone, build_backbone

# ImageNet statistics, in 0..255 units since images arrive as 0..255 RGB.
_MEAN = tuple(m * 255 for m in IMAGENET_MEAN)
_STD = tuple(s * 255 for s in IMAGENET_STD)


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


class BodyPixPartHead(nn.Module):
    """BodyPix's person and part heads, grouped onto a label set: with BodyPix's weights the
    segmenter starts as BodyPix segments.

    One 1×1 conv gives a person logit s, BodyPix's 24 part logits and one logit for each of
    the label set's parts BodyPix has no part for ("new" parts). The outputs are log
    probabilities, so that their softmax is

        P(background) = σ(−s),  P(part k) = σ(s) · Σ_{j ∈ group k} softmax(parts)_j,

    BodyPix's own composition (the default parser's Q) with the groups of
    ``pretrained.bodypix.LABEL_GROUPS``; a new part's share is its own logit in the softmax.
    New parts start with zero weights and a bias of −10 (a share of about 1e-5), so the
    network starts where BodyPix is and learns them from the data.

    forward: (B, in_channels, h, w) float -> (B, P+1, h, w) float log probabilities.
    """

    NEW_PART_BIAS = -10.0

    def __init__(self, in_channels: int, groups: tuple[tuple[int, ...] | None, ...]) -> None:
        super().__init__()
        from ..pretrained.bodypix import PARTS

        fine = len(PARTS)
        new = [k for k, group in enumerate(groups) if group is None]
        self.conv = nn.Conv2d(in_channels, 1 + fine + len(new), 1)
        # membership[k, j]: 0 where logit j belongs to part k, -inf elsewhere
        membership = torch.full((len(groups), fine + len(new)), float("-inf"))
        for k, group in enumerate(groups):
            members = list(group) if group is not None else [fine + new.index(k)]
            membership[k, members] = 0.0
        self.register_buffer("membership", membership, persistent=False)
        with torch.no_grad():
            self.conv.weight[1 + fine :].zero_()
            self.conv.bias[1 + fine :].fill_(self.NEW_PART_BIAS)

    def load_bodypix(self, segments: nn.Conv2d, parts: nn.Conv2d) -> None:
        """Take BodyPix's person (1 channel) and part (24) heads as the first 25 outputs."""
        with torch.no_grad():
            self.conv.weight[:1].copy_(segments.weight)
            self.conv.bias[:1].copy_(segments.bias)
            self.conv.weight[1 : 1 + parts.out_channels].copy_(parts.weight)
            self.conv.bias[1 : 1 + parts.out_channels].copy_(parts.bias)

    def forward(self, features: Tensor) -> Tensor:
        out = self.conv(features)
        person, logits = out[:, :1], out[:, 1:]
        shares = torch.logsumexp(logits[:, None] + self.membership[None, :, :, None, None], dim=2) - torch.logsumexp(logits, dim=1, keepdim=True)
        return torch.cat((F.logsigmoid(-person), F.logsigmoid(person) + shares), dim=1)


class PartSegmenter(nn.Module):
    """Backbone + pyramid pooling head, built elsewhere and passed in.

    forward: images (B, 3, H, W) float RGB in 0..255 -> ``SegmenterOutput``.
    """

    def __init__(self, backbone: Backbone, head: PyramidPoolingHead | BodyPixPartHead) -> None:
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
    label_set: str | None = None,
) -> PartSegmenter:
    """The one builder of the segmenter, holding its numbers.

    Args:
        backbone: a name from ``humanparse.config.BACKBONES``.
        num_classes: P+1, background included.
        pretrained, output_stride, frozen_bn: as for ``build_backbone``.
        label_set: the labels' set, by name; with the ``bodypix`` backbone it picks how
            BodyPix's parts are grouped onto the labels (:class:`BodyPixPartHead`).
    """
    if backbone == "bodypix":
        return _bodypix_segmenter(num_classes, label_set, pretrained, output_stride)
    body = build_backbone(backbone, pretrained=pretrained, output_stride=output_stride, frozen_bn=frozen_bn)
    # The paper's 512-channel fusion for the ResNet-50/101 features; the light backbones
    # keep to 128 so that the head does not outweigh them on the CPU.
    mid_channels = 512 if backbone in ("resnet101", "resnet50") else 128
    head = PyramidPoolingHead(body.out_channels, num_classes, mid_channels=mid_channels)
    return PartSegmenter(body, head)


def _bodypix_segmenter(num_classes: int, label_set: str | None, pretrained: bool, output_stride: int) -> PartSegmenter:
    """BodyPix's MobileNetV1 and its heads grouped onto a label set that ``LABEL_GROUPS``
    maps (Pascal-Person-Part, CIHP), both from one BodyPix network: the shipped one when
    ``pretrained``."""
    from ..errors import HumanParseError
    from ..pretrained.bodypix import LABEL_GROUPS, BodyPixNet, load_bodypix
    from .backbones import bodypix_backbone

    groups = LABEL_GROUPS.get(label_set or "")
    if groups is None or len(groups) + 1 != num_classes:
        raise HumanParseError(f"the bodypix backbone maps BodyPix's parts onto {', '.join(LABEL_GROUPS)}, not {label_set!r}")
    net = load_bodypix()[0] if pretrained else BodyPixNet()
    body = bodypix_backbone(net, output_stride)
    head = BodyPixPartHead(body.out_channels, groups)
    if pretrained:
        head.load_bodypix(net.heads["segments"], net.heads["parts"])
    return PartSegmenter(body, head)
