"""Backbones and the pyramid pooling part segmenter."""

from __future__ import annotations

import math
import urllib.error

import pytest
import torch
from torchvision import models
from torchvision.ops import FrozenBatchNorm2d

from humanparse.backbones import BACKBONES, build_backbone
from humanparse.errors import HumanParseError
from humanparse.segmenter import PyramidPoolingHead, build_segmenter

FAST = ["resnet18", "mobilenet_v3_large"]


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("size", [(521, 521), (333, 250)])
def test_segmenter_output_shapes_at_odd_sizes(backbone: str, size: tuple[int, int]) -> None:
    model = build_segmenter(backbone, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size) * 255)
    assert out.logits.shape == (1, 7, *size) and out.logits.dtype == torch.float32
    assert out.features.shape[-2:] == tuple(math.ceil(s / 8) for s in size)
    assert out.features.shape[1] == model.backbone.out_channels


@pytest.mark.parametrize("backbone", BACKBONES)
def test_output_stride_16(backbone: str) -> None:
    body = build_backbone(backbone, output_stride=16).eval()
    with torch.no_grad():
        features = body(torch.rand(1, 3, 64, 96))
    assert features.shape[-2:] == (4, 6) and features.shape[1] == body.out_channels


def test_hand_dilated_resnet18_equals_the_strided_one_on_its_grid() -> None:
    # Replacing a stride by a dilation only fills in the positions between the original
    # outputs: with the same weights, every second output is the strided network's.
    torch.manual_seed(0)
    dilated = build_backbone("resnet18", output_stride=16).eval()
    plain = models.resnet18().eval()
    plain.load_state_dict(dilated.body.state_dict(), strict=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        reference = torch.nn.Sequential(*list(plain.children())[:-2])(x)
        ours = dilated(x)
    torch.testing.assert_close(ours[..., ::2, ::2], reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backbone", FAST)
def test_every_parameter_gets_a_gradient(backbone: str) -> None:
    model = build_segmenter(backbone, num_classes=4).train()
    out = model(torch.rand(2, 3, 48, 40) * 255)
    (out.logits.square().mean() + out.features.mean()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and bool(param.grad.ne(0).any()), name


@pytest.mark.parametrize("backbone", FAST)
def test_frozen_batch_norm(backbone: str) -> None:
    body = build_backbone(backbone, frozen_bn=True)
    kinds = {type(m) for m in body.modules()}
    assert FrozenBatchNorm2d in kinds and torch.nn.BatchNorm2d not in kinds


def test_head_works_on_maps_smaller_than_its_largest_bin() -> None:
    head = PyramidPoolingHead(in_channels=32, num_classes=5, mid_channels=16).eval()
    with torch.no_grad():
        assert head(torch.rand(1, 32, 4, 3)).shape == (1, 5, 4, 3)


def test_offline_pretrained_weights_give_a_clear_error(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    for name in FAST:
        with pytest.raises(HumanParseError, match="cannot load ImageNet weights.*checkpoints"):
            build_backbone(name, pretrained=True)


def test_unknown_backbone_or_stride() -> None:
    with pytest.raises(HumanParseError, match="unknown backbone"):
        build_backbone("vgg16")
    with pytest.raises(HumanParseError, match="output stride"):
        build_backbone("resnet18", output_stride=4)
