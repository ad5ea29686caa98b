"""MoveNet's backbone as torchvision's own MobileNetV2: :func:`movenet_backbone`.

MoveNet's feature extractor is Keras' MobileNetV2 (width 1.5 in MultiPose Lightning, 1.75 in
SinglePose Thunder) with batch norm folded into the convolutions' biases by TensorFlow's
export. That is exactly torchvision's ``mobilenet_v2(width_mult=W).features[:18]``: the
weights load one to one, each batch norm (in eval mode) an identity that adds the folded
bias; trained, they normalise by the batch as any batch norm does. One
thing differs, TensorFlow's "SAME" padding of the four stride-2 convolutions (the odd pixel
after: right and bottom only on an even-sized input); :class:`TFSamePad` restores it. With
it the last block's features match the graph's to 1e-5 (of values up to 11); with
torchvision's symmetric padding their cosine similarity is only 0.75 (Thunder) and 0.79
(MultiPose) on a real photo.

This gives the converted weights as an ordinary, trainable torch backbone: the start of
initialising humanparse's own segmenter from MoveNet (DESIGN §2d, "Later").
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v2

from ..errors import CheckpointError
from .graph import same_padding
from .registry import network_spec

PREFIX = "StatefulPartitionedCall/center_net_mobile_net_v2fpn_feature_extractor/model_1/model/"
# The graph node of the last feature block (block 16's projection), and of the normalised image.
FEATURES_NODE = PREFIX + "block_16_project_BN/FusedBatchNormV3"
INPUT_NODE = "StatefulPartitionedCall/sub_1"


class TFSamePad(nn.Module):
    """Pads an NCHW tensor as TensorFlow's "SAME" does for a ``kernel`` × ``kernel``
    convolution of stride ``stride``: the odd pixel after. Computed per input size."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[2], self.kernel, self.stride)
        left, right = same_padding(x.shape[3], self.kernel, self.stride)
        return F.pad(x, (left, right, top, bottom))


def _graph_layers(spec: dict) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(layer name, TF filter, bias) of the backbone's convolutions, in network order."""
    layers = []
    for node in spec["nodes"]:
        if node["op"] in ("_FusedConv2D", "FusedDepthwiseConv2dNative") and node["name"].startswith(PREFIX):
            name = node["name"][len(PREFIX) :].split("/")[0]
            layers.append((name, spec["constants"][node["inputs"][1]], spec["constants"][node["inputs"][2]]))
    order = {"Conv1_relu": (0, 0), "expanded_conv_depthwise": (1, 1), "expanded_conv_project_BN": (1, 2)}

    def rank(name: str) -> tuple[int, int]:
        if name in order:
            return order[name]
        match = re.fullmatch(r"block_(\d+)_(expand_relu|depthwise|project_BN)", name)
        if match is None:
            return (99, 0)  # out_relu: the head's, not the backbone's
        return (int(match[1]) + 1, ("expand_relu", "depthwise", "project_BN").index(match[2]))

    return [layer for layer in sorted(layers, key=lambda layer: rank(layer[0])) if rank(layer[0])[0] < 99]


def movenet_backbone(weights: str | Path = "movenet-thunder") -> nn.Sequential:
    """torchvision's MobileNetV2 ``features[:18]`` holding MoveNet's backbone weights, with
    TF "SAME" padding on the stride-2 convolutions.

    Input: (N, 3, H, W) float RGB normalised as MoveNet does, ``x / 127.5 - 1`` for pixels
    x in 0..255 (the graph's float16 scale makes it 3e-5 off that). Output:
    (N, C, H/32, W/32) float, block 16's projection (C = 320 × width, rounded to 8).
    ``weights``: a shipped MoveNet's name or a converted checkpoint.
    """
    spec = network_spec(weights)
    layers = _graph_layers(spec)
    if not layers or layers[0][0] != "Conv1_relu":
        raise CheckpointError(f"{weights}: no MobileNetV2 backbone (MoveNet's layer names) in this graph")
    width = layers[0][1].shape[3] / 32
    features = mobilenet_v2(weights=None, width_mult=width).features[:18]
    convs = [(m, bn) for block in features for m, bn in _conv_bn_pairs(block)]
    if len(convs) != len(layers):
        raise CheckpointError(f"{weights}: {len(layers)} backbone layers, torchvision's MobileNetV2 at width {width} has {len(convs)}")
    for (conv, bn), (name, filt, bias) in zip(convs, layers):
        depthwise = conv.groups > 1
        weight = filt.permute(2, 3, 0, 1) if depthwise else filt.permute(3, 2, 0, 1)  # TF [H, W, I|C, O|1]
        if tuple(weight.shape) != tuple(conv.weight.shape):
            raise CheckpointError(f"{weights}: {name} is {tuple(weight.shape)}, torchvision's layer {tuple(conv.weight.shape)}")
        with torch.no_grad():
            conv.weight.copy_(weight.float())
            # batch norm folded by TF's export: an identity that adds the bias
            bn.weight.fill_(1.0)
            bn.bias.copy_(bias.float())
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)  # sqrt(var + eps) = 1
        if conv.stride == (2, 2):
            conv.padding = (0, 0)
    strided = [(parent, key, child) for parent in features.modules() for key, child in parent.named_children() if isinstance(child, nn.Conv2d) and child.stride == (2, 2)]
    for parent, key, conv in strided:
        setattr(parent, key, nn.Sequential(TFSamePad(conv.kernel_size[0], 2), conv))
    return features.eval()


def _conv_bn_pairs(block: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Each convolution of a torchvision block with the batch norm that follows it."""
    modules = [m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    return [(modules[k], modules[k + 1]) for k in range(0, len(modules), 2)]
