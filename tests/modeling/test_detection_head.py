"""The built-in detection head: targets and decoding round-trip; the loss trains."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_iou

from humanparse.modeling.detection_head import CenterNetHead, HeadOutput, decode, detection_loss, encode_targets, gaussian_radius


def perfect_output(boxes: torch.Tensor, grid: tuple[int, int], stride: int) -> HeadOutput:
    """What a perfect head would predict: the target heatmap, sizes and offsets at centres."""
    t = encode_targets(boxes, grid, stride)
    h, w = grid
    heat = torch.logit(t.heatmap.clamp(1e-6, 1 - 1e-6))[None]
    size = torch.zeros(1, 2, h * w)
    offset = torch.zeros(1, 2, h * w)
    size[0, :, t.index] = t.size.t()
    offset[0, :, t.index] = t.offset.t()
    return HeadOutput(heat, size.reshape(1, 2, h, w), offset.reshape(1, 2, h, w))


@pytest.mark.parametrize("seed", range(5))
def test_targets_decode_back_to_the_boxes(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    stride, height, width = 8, 240, 320
    # Well-separated boxes of varied sizes (peaks of overlapping centres would merge).
    boxes = []
    for k in range(4):
        x1 = 10 + 75 * k + float(torch.rand(1, generator=gen)) * 10
        y1 = float(torch.rand(1, generator=gen)) * 60
        boxes.append([x1, y1, x1 + 20 + float(torch.rand(1, generator=gen)) * 40, y1 + 40 + float(torch.rand(1, generator=gen)) * 120])
    boxes = torch.tensor(boxes)
    grid = (math.ceil(height / stride), math.ceil(width / stride))
    dets = decode(perfect_output(boxes, grid, stride), stride, (height, width), threshold=0.5, max_detections=20, nms_iou=0.7)[0]
    assert len(dets) == len(boxes)
    iou = box_iou(torch.from_numpy(dets.boxes), boxes)
    assert bool((iou.max(1).values > 0.95).all()) and bool((iou.max(0).values > 0.95).all())
    assert bool((torch.from_numpy(dets.scores) > 0.99).all())


def test_boxes_outside_the_image_or_empty_give_no_targets() -> None:
    t = encode_targets(torch.tensor([[-50.0, -50.0, -10.0, -10.0], [5.0, 5.0, 5.0, 30.0]]), (8, 8), 8)
    assert t.index.numel() == 0 and float(t.heatmap.max()) == 0.0


def test_gaussian_radius_keeps_the_overlap() -> None:
    # A box shifted by the radius along both axes overlaps its original by exactly 0.7:
    # the radius is the largest shift that keeps the overlap.
    for h, w in ((10.0, 4.0), (30.0, 30.0), (6.0, 20.0)):
        r = gaussian_radius(h, w)
        shifted = torch.tensor([[r, r, w + r, h + r]], dtype=torch.float64)
        assert float(box_iou(shifted, torch.tensor([[0.0, 0.0, w, h]], dtype=torch.float64))) == pytest.approx(0.7, abs=1e-9)


def test_decoding_options() -> None:
    boxes = torch.tensor([[8.0, 8.0, 40.0, 72.0], [120.0, 16.0, 160.0, 96.0]])
    out = perfect_output(boxes, (16, 24), 8)
    assert len(decode(out, 8, (128, 192), threshold=0.3, max_detections=1, nms_iou=0.7)[0]) == 1
    assert len(decode(out, 8, (128, 192), threshold=1.01, max_detections=20, nms_iou=0.7)[0]) == 0
    clipped = decode(out, 8, (50, 100), threshold=0.3, max_detections=20, nms_iou=0.7)[0]
    assert float(clipped.boxes[:, 2].max()) <= 100 and float(clipped.boxes[:, 3].max()) <= 50


def test_loss_trains_the_head_towards_the_targets() -> None:
    torch.manual_seed(0)
    head = CenterNetHead(in_channels=8, mid_channels=16)
    features = torch.randn(2, 8, 12, 16)
    targets = [encode_targets(torch.tensor([[16.0, 16.0, 48.0, 80.0]]), (12, 16), 8), encode_targets(torch.zeros(0, 4), (12, 16), 8)]
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = detection_loss(head(features), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    det = decode(head(features), 8, (96, 128), threshold=0.3, max_detections=20, nms_iou=0.7)
    assert len(det[0]) >= 1 and float(box_iou(torch.from_numpy(det[0].boxes[:1]), torch.tensor([[16.0, 16.0, 48.0, 80.0]]))) > 0.7


def test_a_short_training_run_improves_box_ap_on_synthetic_images() -> None:
    import numpy as np

    from humanparse.config import ModelConfig
    from humanparse.data.synth import SceneConfig, render_scene, scene_rng
    from humanparse.metrics import box_ap
    from humanparse.modeling.holistic import build_model

    torch.manual_seed(0)
    scenes = [render_scene(scene_rng(5, i), 128, 128, SceneConfig(max_people=3, max_height_ratio=0.9)) for i in range(8)]
    images = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1).float() for s in scenes])
    truth = [s.boxes[~np.isnan(s.boxes).any(1)] for s in scenes]
    model = build_model(ModelConfig(backbone="resnet18", output_stride=16))
    stride = model.segmenter.backbone.output_stride

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            found = decode(model.detector(model.segmenter(images).features), stride, (128, 128), threshold=0.05, max_detections=20, nms_iou=0.7)
        model.train()
        return box_ap([(d.boxes, d.scores) for d in found], truth).ap50

    before = evaluate()
    targets = [encode_targets(torch.from_numpy(t), (8, 8), stride) for t in truth]
    optimiser = torch.optim.Adam([*model.segmenter.backbone.parameters(), *model.detector.parameters()], lr=1e-3)
    for _ in range(60):
        batch = torch.randperm(8)[:4]
        loss = detection_loss(model.detector(model.segmenter(images[batch]).features), [targets[i] for i in batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert evaluate() > before + 0.05
