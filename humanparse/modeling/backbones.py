"""Backbones from torchvision, dilated to output stride 8 (paper appendix B.1) or 16, and
BodyPix's MobileNetV1 (output stride 16).

ResNet-101 and ResNet-50 are the paper's accuracy setting; ResNet-18 and MobileNetV3-Large
are the light ones for the CPU. ImageNet weights are loaded only when asked for. ``bodypix``
is the one backbone with real pretrained weights shipped (``pretrained`` loads them from the
package): features trained for human parsing, for starting a holistic network on real data.
"""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models
from torchvision.models._api import WeightsEnum
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d

from ..config import BACKBONES, OUTPUT_STRIDES
from ..errors import HumanParseError

# ImageNet's statistics, in 0..1 units: the segmenter normalises every backbone's input by them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (torchvision builder, ImageNet weights, channels of the last stage)
_RESNETS = {
    "resnet101": (models.resnet101, models.ResNet101_Weights.IMAGENET1K_V2, 2048),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V2, 2048),
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, 512),
}


class Backbone(nn.Module):
    """Feature extractor of the last stage.

    forward: (B, 3, H, W) float, ImageNet-normalised -> (B, out_channels, h, w) float with
    h = ⌈H / output_stride⌉, w = ⌈W / output_stride⌉ (every strided layer pads to round up).

    Attributes:
        out_channels: channels of the features.
        output_stride: 8 or 16.
    """

    def __init__(self, body: IntermediateLayerGetter, out_channels: int, output_stride: int) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels
        self.output_stride = output_stride

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)["out"]


def build_backbone(name: str, pretrained: bool = False, output_stride: int = 8, frozen_bn: bool = False) -> Backbone:
    """Build a backbone by name.

    Args:
        name: one of ``BACKBONES``.
        pretrained: load torchvision's ImageNet weights (downloaded once into the torch hub
            cache, ``torch.hub.get_dir()/checkpoints``; offline they must already be there).
            Otherwise the weights are randomly initialised.
        output_stride: 8 (the paper's) or 16; the later stages are dilated instead of strided.
        frozen_bn: batch norm with fixed statistics and affine parameters, as the paper
            trains from ImageNet weights (``torchvision.ops.FrozenBatchNorm2d``).

    Raises:
        HumanParseError: unknown name or stride, or weights that could not be obtained.
    """
    if name not in BACKBONES:
        raise HumanParseError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    if output_stride not in OUTPUT_STRIDES:
        raise HumanParseError(f"unsupported output stride {output_stride}; choose one of: {', '.join(map(str, OUTPUT_STRIDES))}")
    if name == "bodypix":
        from ..pretrained.bodypix import BodyPixNet, load_bodypix

        return bodypix_backbone(load_bodypix()[0] if pretrained else BodyPixNet(), output_stride)
    if name in _RESNETS:
        return _resnet(name, pretrained, output_stride, FrozenBatchNorm2d if frozen_bn else None)
    # MobileNetV3 was trained with eps 0.001 (torchvision's default norm layer for it);
    # frozen statistics must keep that eps to reproduce its activations.
    return _mobilenet(pretrained, output_stride, partial(FrozenBatchNorm2d, eps=0.001) if frozen_bn else None)


def _resnet(name: str, pretrained: bool, output_stride: int, norm_layer: Callable[..., nn.Module] | None) -> Backbone:
    """A dilated torchvision ResNet up to layer4; ``norm_layer`` None is torchvision's BatchNorm2d."""
    builder, weights, channels = _RESNETS[name]
    # torchvision's flags for layer2..layer4, as in its deeplabv3.py.
    dilate = [False, output_stride == 8, True]
    if name == "resnet18":
        # torchvision refuses dilation in BasicBlock ResNets, so this one is dilated by hand.
        net = builder(weights=None, norm_layer=norm_layer)
        _dilate_basic_resnet(net, dilate)
    else:
        net = builder(weights=None, norm_layer=norm_layer, replace_stride_with_dilation=dilate)
    if pretrained:
        net.load_state_dict(_imagenet_state_dict(name, weights))
    return Backbone(IntermediateLayerGetter(net, return_layers={"layer4": "out"}), channels, output_stride)


def _dilate_basic_resnet(net: models.ResNet, dilate: list[bool]) -> None:
    """What ``replace_stride_with_dilation`` does to Bottleneck ResNets, for BasicBlock ones.

    A dilated stage's first block loses its stride (in its first 3×3 conv and in the 1×1
    downsampling); that conv keeps the dilation of the stage before, every later 3×3 conv
    of the stage and of the stages after it takes the doubled one. With the same weights
    the outputs on the strided network's grid are then the strided network's outputs.
    """
    dilation = 1
    for layer, flag in zip((net.layer2, net.layer3, net.layer4), dilate):
        previous = dilation
        if flag:
            dilation *= 2
            layer[0].conv1.stride = (1, 1)
            layer[0].downsample[0].stride = (1, 1)
        for i, block in enumerate(layer):
            for conv in (block.conv1, block.conv2):
                rate = previous if (i == 0 and conv is block.conv1) else dilation
                conv.dilation = (rate, rate)
                conv.padding = (rate, rate)


def _mobilenet(pretrained: bool, output_stride: int, norm_layer: Callable[..., nn.Module] | None) -> Backbone:
    """MobileNetV3-Large features (960 channels) at output stride 16 or 8.

    ``dilated=True`` is torchvision's stride 16 (C4 dilated, as for its segmentation
    models); stride 8 also takes the stride out of C3 and doubles every dilation from there.
    ``norm_layer`` None is torchvision's BatchNorm2d with eps 0.001, momentum 0.01.
    """
    net = models.mobilenet_v3_large(weights=None, dilated=True, norm_layer=norm_layer)
    if output_stride == 8:
        # The blocks that reduce the resolution (C1..C4), found as torchvision's LR-ASPP
        # finds them; C3 is the second last.
        reducing = [i for i, block in enumerate(net.features) if getattr(block, "_is_cn", False)]
        for conv in net.features[reducing[-2] :].modules():
            if isinstance(conv, nn.Conv2d) and conv.groups > 1:  # the depthwise convs
                rate = 2 * conv.dilation[0]
                conv.stride = (1, 1)
                conv.dilation = (rate, rate)
                conv.padding = ((conv.kernel_size[0] - 1) // 2 * rate,) * 2
    if pretrained:
        net.load_state_dict(_imagenet_state_dict("mobilenet_v3_large", models.MobileNet_V3_Large_Weights.IMAGENET1K_V1))
    body = IntermediateLayerGetter(net.features, return_layers={str(len(net.features) - 1): "out"})
    return Backbone(body, 960, output_stride)


class _BodyPixFeatures(nn.Module):
    """BodyPix's MobileNetV1 0.75 (``pretrained.bodypix.BodyPixNet`` without its heads) on
    the segmenter's ImageNet-normalised input: ``forward(x) -> {"out": (B, 384, ⌈H/16⌉, ⌈W/16⌉)}``.

    The input is taken back to BodyPix's own normalisation, (rgb - 128) / 128. BodyPix's
    cell r is centred on input pixel 16 r; the segmenter upsamples as if on 16 r + 7.5 (the
    centre of its 16-pixel block), so the input is moved up and left by 8 pixels (the edge
    repeated), which puts the cells within half a pixel of where the segmenter reads them.
    """

    SHIFT = 8

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.conv0 = net.conv0
        self.blocks = net.blocks
        mean, std = torch.tensor(IMAGENET_MEAN) * 255, torch.tensor(IMAGENET_STD) * 255
        # x_imagenet * std + mean = rgb; (rgb - 128) / 128 = x_imagenet * scale + offset
        self.register_buffer("scale", (std / 128).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("offset", ((mean - 128) / 128).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = x * self.scale + self.offset
        shift = min(self.SHIFT, x.shape[-2] - 1, x.shape[-1] - 1)
        if shift > 0:
            x = F.pad(x[..., shift:, shift:], (0, shift, 0, shift), mode="replicate")
        x = F.relu6(self.conv0(x), inplace=True)
        for block in self.blocks:
            x = block(x)
        return {"out": x}


def bodypix_backbone(net: nn.Module, output_stride: int = 16) -> Backbone:
    """The MobileNetV1 0.75 of a ``pretrained.bodypix.BodyPixNet`` (its layers shared, its
    heads left out) as a backbone at BodyPix's own output stride 16 (``model.output_stride``
    16); ``load_bodypix()`` gives the shipped weights (a local file, never a download)."""
    from ..pretrained.bodypix import BLOCKS, STRIDE

    if output_stride != STRIDE:
        raise HumanParseError(f"the bodypix backbone has output stride {STRIDE}, not {output_stride}")
    return Backbone(_BodyPixFeatures(net.train()), BLOCKS[-1][1], STRIDE)  # type: ignore[arg-type]


def _imagenet_state_dict(name: str, weights: WeightsEnum) -> dict[str, Tensor]:
    """torchvision's ImageNet weights, from the hub cache or downloaded into it."""
    try:
        # No progress bar: the library never prints.
        return weights.get_state_dict(progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:  # offline, unwritable cache, bad hash
        reason = " ".join(str(exc).split())  # one line, as the CLI prints it
        target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        raise HumanParseError(
            f"could not download ImageNet weights for {name} ({type(exc).__name__}: {reason}); "
            f"fetch {weights.url} on a machine with network access and save it as {target}, "
            "or build without pretrained weights"
        ) from None
