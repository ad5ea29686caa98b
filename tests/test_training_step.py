"""A real end-to-end training run, tiny: segmenter + Instance CRF + matched loss."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from humanparse.config import CRFConfig, ModelConfig
from humanparse.labels import IGNORE
from humanparse.matching import matched_instance_loss
from humanparse.modeling.holistic import build_model


def test_matched_loss_decreases_when_a_tiny_model_trains_on_two_overlapping_people(scene) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", crf=CRFConfig(iterations=2)))
    # As in the paper: pre-train the segmenter with per-pixel cross-entropy, then train the
    # whole network end to end through the Instance CRF with the matched loss.
    optimiser = torch.optim.Adam(model.segmenter.parameters(), lr=1e-3)
    for _ in range(60):
        loss = F.cross_entropy(model.segmenter(scene.image[None]).logits, scene.parts[None])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    crf_before = [p.detach().clone() for p in model.crf.parameters()]
    losses, accuracies = [], []
    for _ in range(30):
        out = model(scene.image[None], [scene.boxes], [scene.scores])
        matched = matched_instance_loss(out.instances[0], scene.parts, scene.persons, num_parts=6, boxes=scene.boxes)
        optimiser.zero_grad()
        matched.loss.backward()
        optimiser.step()
        losses.append(matched.loss.item())
        valid = matched.target != IGNORE
        accuracies.append((out.instances[0].argmax(0) == matched.target)[valid].float().mean().item())
    assert statistics.mean(losses[-5:]) < 0.5 * losses[0], losses
    assert statistics.mean(accuracies[-5:]) > accuracies[0]
    # Each person matched to its own detection, and the CRF itself was trained.
    assert matched.assignment.det_for_gt == (1, 2)
    assert all(not torch.equal(a, b.detach()) for a, b in zip(crf_before, model.crf.parameters()))


def test_training_from_the_bodypix_start_reaches_every_parameter_and_lowers_the_loss(scene) -> None:
    """The holistic network on BodyPix's MobileNetV1 with its part heads grouped onto the
    labels (model.backbone = "bodypix", pretrained): joint steps, the matched loss through
    the Instance CRF plus the detection head's loss, as `train` takes them."""
    from humanparse.modeling.detection_head import detection_loss, encode_targets

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="bodypix", output_stride=16, pretrained=True, crf=CRFConfig(iterations=2))).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    crf_before = [p.detach().clone() for p in model.crf.parameters()]
    image = scene.image[None]
    losses = []
    for step in range(25):
        out = model(image, [scene.boxes], [scene.scores])
        matched = matched_instance_loss(out.instances[0], scene.parts, scene.persons, num_parts=6, boxes=scene.boxes)
        targets = [encode_targets(scene.boxes, tuple(out.head.heatmap.shape[-2:]), model.segmenter.backbone.output_stride)]
        loss = matched.loss + detection_loss(out.head, targets)
        optimiser.zero_grad()
        loss.backward()
        if step == 0:
            for name, param in model.named_parameters():
                assert param.grad is not None and bool(param.grad.ne(0).any()), name
        optimiser.step()
        losses.append(matched.loss.item())
    # 16.3 at the start (BodyPix has never seen these stick figures), about 1.8 after 25 steps
    assert statistics.mean(losses[-5:]) < 0.3 * losses[0], losses
    assert all(not torch.equal(a, b.detach()) for a, b in zip(crf_before, model.crf.parameters()))
