"""Backbones, the pyramid pooling part segmenter and the BodyPix start."""

from __future__ import annotations

import math
import os
import urllib.error

import pytest
import torch
from torchvision import models
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d

from humanparse.errors import HumanParseError
from humanparse.modeling.backbones import BACKBONES, build_backbone
from humanparse.modeling.segmenter import PyramidPoolingHead, build_segmenter

LIGHT = ["resnet18", "mobilenet_v3_large"]
TORCHVISION = [name for name in BACKBONES if name != "bodypix"]  # dilated to stride 8, batch norm


@pytest.mark.parametrize("size", [(521, 521), (333, 250)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("backbone", TORCHVISION)
def test_segmenter_output_shapes_at_odd_sizes(backbone: str, size: tuple[int, int]) -> None:
    model = build_segmenter(backbone, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size) * 255)
    assert out.logits.shape == (1, 7, *size) and out.logits.dtype == torch.float32
    # Every strided layer pads so that it rounds up: exactly ⌈H/8⌉ × ⌈W/8⌉.
    assert out.features.shape == (1, model.backbone.out_channels, *(math.ceil(s / 8) for s in size))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_output_stride_16(backbone: str) -> None:
    # Stride 8 is the default the shape test above covers.
    body = build_backbone(backbone, output_stride=16).eval()
    assert body.output_stride == 16
    with torch.no_grad():
        features = body(torch.rand(1, 3, 65, 49))
    assert features.shape == (1, body.out_channels, 5, 4)


def test_hand_dilated_resnet18_equals_the_strided_one_on_its_grid() -> None:
    # Replacing a stride by a dilation only fills in the positions between the original
    # outputs: with the same weights, every second (fourth) output is the strided network's.
    torch.manual_seed(0)
    plain = IntermediateLayerGetter(models.resnet18().eval(), return_layers={"layer4": "out"})
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        reference = plain(x)["out"]
        for stride, step in ((16, 2), (8, 4)):
            dilated = build_backbone("resnet18", output_stride=stride).eval()
            dilated.body.load_state_dict(plain.state_dict())
            torch.testing.assert_close(dilated(x)[..., ::step, ::step], reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backbone", LIGHT)
def test_every_parameter_gets_a_gradient(backbone: str) -> None:
    # One image, as the paper trains: the head must work without batch statistics.
    torch.manual_seed(0)
    model = build_segmenter(backbone, num_classes=4).train()
    out = model(torch.rand(1, 3, 48, 40) * 255)
    (out.logits.square().mean() + out.features.mean()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and bool(param.grad.ne(0).any()), name


@pytest.mark.parametrize("backbone", TORCHVISION)
def test_frozen_batch_norm_replaces_every_batch_norm(backbone: str) -> None:
    body = build_backbone(backbone, frozen_bn=True)
    kinds = {type(m) for m in body.modules()}
    assert FrozenBatchNorm2d in kinds and torch.nn.BatchNorm2d not in kinds
    if backbone == "mobilenet_v3_large":
        # Its ImageNet training used eps 0.001; frozen statistics must keep it.
        assert {m.eps for m in body.modules() if isinstance(m, FrozenBatchNorm2d)} == {0.001}


def test_head_width_follows_the_backbone() -> None:
    assert build_segmenter("resnet50", num_classes=7).head.classifier.in_channels == 512
    assert build_segmenter("resnet18", num_classes=7).head.classifier.in_channels == 128


@pytest.mark.parametrize("size", [(5, 4), (1, 1)])
def test_head_works_on_maps_smaller_than_its_largest_bin(size: tuple[int, int]) -> None:
    head = PyramidPoolingHead(in_channels=32, num_classes=5, mid_channels=16).eval()
    with torch.no_grad():
        assert head(torch.rand(1, 32, *size)).shape == (1, 5, *size)


def test_segmenter_on_a_tiny_image() -> None:
    # 33×25 gives a 5×4 feature map, smaller than the 6×6 bin.
    model = build_segmenter("resnet18", num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 33, 25) * 255)
    assert out.logits.shape == (1, 7, 33, 25) and out.features.shape[-2:] == (5, 4)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and every download failing as it does without network.

    torchvision binds ``load_state_dict_from_url`` at import, so patching it on torch.hub
    would not reach it; ``download_url_to_file`` is looked up in torch.hub at call time.
    """

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return os.path.join(torch.hub.get_dir(), "checkpoints")


@pytest.mark.parametrize("backbone", LIGHT)
def test_offline_pretrained_weights_give_a_clear_error(offline_hub: str, backbone: str) -> None:
    with pytest.raises(HumanParseError) as info:
        build_segmenter(backbone, num_classes=7, pretrained=True)
    message = str(info.value)
    assert "could not download ImageNet weights" in message and "offline" in message
    assert f"save it as {offline_hub}{os.sep}" in message and "https://download.pytorch.org/models/" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("backbone", "weights"),
    [
        ("resnet18", models.ResNet18_Weights.IMAGENET1K_V1),
        ("mobilenet_v3_large", models.MobileNet_V3_Large_Weights.IMAGENET1K_V1),
    ],
    ids=LIGHT,
)
def test_weights_placed_in_the_hub_cache_load_into_frozen_batch_norm(offline_hub: str, backbone: str, weights) -> None:
    # What the error message tells an offline user to do. The stand-in file is a plain
    # torchvision model's state dict (num_batches_tracked included) with non-trivial statistics.
    torch.manual_seed(0)
    source = getattr(models, backbone)()
    for m in source.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    os.makedirs(offline_hub)
    torch.save(source.state_dict(), os.path.join(offline_hub, os.path.basename(weights.url)))

    body = build_backbone(backbone, pretrained=True, frozen_bn=True)
    loaded = body.body.state_dict()
    prefix = "features." if backbone == "mobilenet_v3_large" else ""
    for key, value in loaded.items():
        torch.testing.assert_close(value, source.state_dict()[prefix + key], rtol=0, atol=0)


def test_unknown_backbone_or_stride() -> None:
    with pytest.raises(HumanParseError, match="unknown backbone 'vgg16'; choose one of: resnet101, resnet50, resnet18, mobilenet_v3_large"):
        build_backbone("vgg16")
    with pytest.raises(HumanParseError, match="unsupported output stride 4; choose one of: 8, 16"):
        build_backbone("resnet18", output_stride=4)


def _bodypix_composition(maps) -> torch.Tensor:
    """BodyPix's own probabilities (the default parser's Q): background 1 − σ(s), part k
    σ(s) · Σ_{j ∈ group k} softmax(parts)_j, Pascal-Person-Part's groups; (B, 7, h, w)."""
    from humanparse.pretrained.bodypix import LABEL_GROUPS

    person, fine = torch.sigmoid(maps.segments), torch.softmax(maps.parts, 1)
    grouped = [fine[:, list(group)].sum(1, keepdim=True) for group in LABEL_GROUPS["pascal-person-part"]]
    return torch.cat([1 - person, *(person * g for g in grouped)], 1)


def test_the_bodypix_start_segments_exactly_as_bodypix_on_a_real_photo() -> None:
    """The segmenter built on the bodypix backbone with its weights gives, cell for cell,
    BodyPix's own probabilities of the input moved by 8 pixels (the cells' alignment)."""
    import numpy as np

    from humanparse.io.images import read_image
    from humanparse.pretrained.bodypix import load_bodypix

    photo = read_image(os.path.join(os.path.dirname(__file__), "..", "fixtures", "photos", "camera.jpg"))[: 16 * 12 + 1, : 16 * 10 + 1]
    rgb = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None].double()
    net = load_bodypix()[0].double()
    model = build_segmenter("bodypix", num_classes=7, pretrained=True, output_stride=16, label_set="pascal-person-part").double().eval()
    with torch.no_grad():
        moved = torch.nn.functional.pad(rgb[..., 8:, 8:], (0, 8, 0, 8), mode="replicate")  # 16k + 1 a side: BodyPix pads nothing
        expected = _bodypix_composition(net(moved))
        probs = model.head(model.backbone((rgb - model.mean) / model.std)).exp()
    assert probs.shape == expected.shape == (1, 7, 13, 11)
    # float64 throughout but for the float32 constants that take ImageNet's normalisation back
    torch.testing.assert_close(probs, expected, rtol=0, atol=2e-6)
    assert probs[:, 1:].sum(1).max() > 0.9  # a person is there, seen as BodyPix sees them


def test_the_bodypix_start_on_cihp_keeps_bodypix_where_parts_correspond_and_learns_the_rest() -> None:
    from humanparse.labels import CIHP
    from humanparse.pretrained.bodypix import LABEL_GROUPS

    torch.manual_seed(0)
    model = build_segmenter("bodypix", num_classes=20, pretrained=True, output_stride=16, label_set="cihp").eval()
    with torch.no_grad():
        probs = model.head(model.backbone(torch.randn(1, 3, 97, 81))).exp()
    assert torch.allclose(probs.sum(1), torch.ones(1), atol=1e-5)
    new = [k + 1 for k, group in enumerate(LABEL_GROUPS["cihp"]) if group is None]
    assert [CIHP.names[k] for k in new] == ["hat", "hair", "glove", "sunglasses", "dress", "coat", "socks", "torso-skin", "scarf", "skirt"]
    assert probs[:, new].max() < 1e-3  # starting from nothing, they are learned from the data
    with pytest.raises(HumanParseError, match="maps BodyPix's parts onto pascal-person-part, cihp, not 'coarse'"):
        build_segmenter("bodypix", num_classes=4, output_stride=16, label_set="coarse")
    with pytest.raises(HumanParseError, match="output stride 16, not 8"):
        build_segmenter("bodypix", num_classes=7, output_stride=8, label_set="pascal-person-part")
