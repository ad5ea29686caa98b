"""Backbones from torchvision, dilated to output stride 8 (paper appendix B.1) or 16.

ResNet-101 and ResNet-50 are the paper's accuracy setting; ResNet-18 and MobileNetV3-Large
are the light ones for the CPU. ImageNet weights are loaded only when asked for.
"""

from __future__ import annotations

import urllib.error
from functools import partial

import torch
from torch import Tensor, nn
from torchvision import models
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf
from torchvision.ops import FrozenBatchNorm2d

from .errors import HumanParseError

BACKBONES = ("resnet101", "resnet50", "resnet18", "mobilenet_v3_large")
OUTPUT_STRIDES = (8, 16)

_RESNETS = {
    "resnet101": (models.resnet101, models.ResNet101_Weights.IMAGENET1K_V2, 2048),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V2, 2048),
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, 512),
}


class Backbone(nn.Module):
    """Feature extractor: (B, 3, H, W) normalised images -> (B, C, ⌈H/s⌉, ⌈W/s⌉) features.

    Attributes:
        out_channels: C.
        output_stride: s, 8 or 16.
    """

    def __init__(self, body: nn.Module, out_channels: int, output_stride: int) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels
        self.output_stride = output_stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return out["out"] if isinstance(out, dict) else out


def build_backbone(name: str, pretrained: bool = False, output_stride: int = 8, frozen_bn: bool = False) -> Backbone:
    """Build a backbone by name (see ``BACKBONES``).

    Args:
        name: resnet101, resnet50, resnet18 or mobilenet_v3_large.
        pretrained: load torchvision's ImageNet weights (downloaded once into the torch hub
            cache; offline, they must already be there).
        output_stride: 8 (the paper's) or 16; the later stages are dilated instead of strided.
        frozen_bn: batch norm with fixed statistics and affine parameters, as the paper
            trains; only sensible from pretrained weights.
    """
    if name not in BACKBONES:
        raise HumanParseError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if output_stride not in OUTPUT_STRIDES:
        raise HumanParseError(f"output stride must be 8 or 16, got {output_stride}")
    norm_layer = FrozenBatchNorm2d if frozen_bn else None
    try:
        if name in _RESNETS:
            builder, weights, channels = _RESNETS[name]
            # Bottleneck ResNets accept dilation in layer2..4; BasicBlock ones (ResNet-18) do
            # not, so they are dilated by hand below.
            dilate = [False, output_stride == 8, True]
            kwargs = {"weights": weights if pretrained else None}
            if norm_layer is not None:
                kwargs["norm_layer"] = norm_layer
            if name == "resnet18":
                net = builder(**kwargs)
                _dilate_basic_resnet(net, dilate)
            else:
                net = builder(replace_stride_with_dilation=dilate, **kwargs)
            body = IntermediateLayerGetter(net, return_layers={"layer4": "out"})
            return Backbone(body, channels, output_stride)
        return _mobilenet(pretrained, output_stride, norm_layer)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        if not pretrained:
            raise
        raise HumanParseError(
            f"cannot load ImageNet weights for {name} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"without network access, put torchvision's weight file in {torch.hub.get_dir()}/checkpoints "
            "or build the model with pretrained=False"
        ) from None


def _dilate_basic_resnet(net: models.ResNet, dilate: list[bool]) -> None:
    """Turn the strided stages of a BasicBlock ResNet into dilated ones.

    torchvision only dilates Bottleneck ResNets; the same change by hand: the stage's first
    block loses its stride (in the 3×3 conv and the downsampling 1×1), and every 3×3 conv of
    the stage and of the stages after it takes the accumulated dilation.
    """
    dilation = 1
    for layer, flag in zip((net.layer2, net.layer3, net.layer4), dilate):
        if flag:
            dilation *= 2
            first = layer[0]
            first.conv1.stride = (1, 1)
            if first.downsample is not None:
                first.downsample[0].stride = (1, 1)
        if dilation > 1:
            for i, block in enumerate(layer):
                for conv in (block.conv1, block.conv2):
                    # The first conv of a newly dilated stage still sees the previous rate.
                    rate = dilation // 2 if (flag and i == 0 and conv is block.conv1) else dilation
                    conv.dilation = (rate, rate)
                    conv.padding = (rate, rate)


def _mobilenet(pretrained: bool, output_stride: int, norm_layer) -> Backbone:
    """MobileNetV3-Large features, dilated from C4 (stride 16) or from C3 too (stride 8)."""
    setting, last_channel = _mobilenet_v3_conf("mobilenet_v3_large", dilated=True)
    if output_stride == 8:
        # Blocks 6.. (C3 on) lose their stride: C3 dilates by 2 and C4 by 4.
        for i, cnf in enumerate(setting):
            if i >= 12:
                cnf.dilation = 4
            elif i >= 6:
                cnf.dilation = 2
    # MobileNetV3 was trained with eps 0.001; frozen statistics must keep it.
    norm = partial(norm_layer, eps=0.001) if norm_layer is not None else partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
    net = MobileNetV3(setting, last_channel, norm_layer=norm)
    if pretrained:
        weights = models.MobileNet_V3_Large_Weights.IMAGENET1K_V1
        net.load_state_dict(weights.get_state_dict(progress=True))
    return Backbone(net.features, 960, output_stride)
