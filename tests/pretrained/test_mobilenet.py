"""MoveNet's backbone loads into torchvision's MobileNetV2 and gives the graph's features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.mobilenetv2 import InvertedResidual

from humanparse.io.images import read_image
from humanparse.pretrained.crops import resize_image
from humanparse.pretrained.graph import TFGraph
from humanparse.pretrained.mobilenet import FEATURES_NODE, INPUT_NODE, TFSamePad, movenet_backbone
from humanparse.pretrained.registry import network_path
from humanparse.pretrained.tfjs import load_graph_checkpoint

PHOTO = Path(__file__).resolve().parents[1] / "fixtures" / "photos" / "astronaut.jpg"


@pytest.mark.parametrize(("name", "width_channels", "size"), [("movenet-thunder", 560, 256), ("movenet-multipose", 480, 256), ("movenet-multipose", 480, 224)])
def test_torchvision_mobilenet_v2_with_tf_padding_gives_the_graphs_features(name, width_channels, size):
    backbone = movenet_backbone(name)
    assert sum(isinstance(m, InvertedResidual) for m in backbone) == 17
    assert sum(isinstance(m, TFSamePad) for m in backbone.modules()) == 5  # the five stride-2 convolutions
    spec, _ = load_graph_checkpoint(network_path(name))
    graph = TFGraph({**spec, "outputs": {"image": INPUT_NODE, "features": FEATURES_NODE}})
    photo = torch.from_numpy(resize_image(read_image(PHOTO), size, size))[None]
    with torch.inference_mode():
        out = graph(photo.int())
        features = backbone(out["image"].permute(0, 3, 1, 2))
    expected = out["features"].permute(0, 3, 1, 2)
    assert features.shape == expected.shape == (1, width_channels, size // 32, size // 32)
    torch.testing.assert_close(features, expected, atol=1e-4, rtol=1e-4)


def test_the_backbone_is_an_ordinary_trainable_module():
    backbone = movenet_backbone("movenet-multipose").train()
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    backbone(x).square().mean().backward()
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)
