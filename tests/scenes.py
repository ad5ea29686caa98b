"""Small scenes and models built in code, so tests need no dataset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Scene:
    image: torch.Tensor  # (3, H, W) float RGB 0..255
    parts: torch.Tensor  # (H, W) long, Pascal-Person-Part labels
    persons: torch.Tensor  # (H, W) long, 0 = background
    boxes: torch.Tensor  # (D, 4) float x1 y1 x2 y2
    scores: torch.Tensor  # (D,)


def _draw_person(parts: np.ndarray, persons: np.ndarray, image: np.ndarray, pid: int, x0: int, y0: int, scale: float, shirt, trousers) -> None:
    """A front-facing stick person with the six Pascal-Person-Part parts, later ones on top."""
    skin = (224, 172, 140)

    def rect(part: int, colour, x1: float, y1: float, x2: float, y2: float) -> None:
        ys = slice(max(int(y0 + y1 * scale), 0), max(int(y0 + y2 * scale), 0))
        xs = slice(max(int(x0 + x1 * scale), 0), max(int(x0 + x2 * scale), 0))
        parts[ys, xs] = part
        persons[ys, xs] = pid
        image[ys, xs] = colour

    rect(5, trousers, 3, 14, 9, 20)  # upper legs
    rect(6, trousers, 3, 20, 9, 27)  # lower legs
    rect(3, shirt, 0, 6, 3, 11)  # upper arms
    rect(3, shirt, 9, 6, 12, 11)
    rect(4, skin, 0, 11, 3, 15)  # lower arms
    rect(4, skin, 9, 11, 12, 15)
    rect(2, shirt, 3, 5, 9, 14)  # torso
    rect(1, skin, 4, 0, 8, 5)  # head


def two_people(height: int = 64, width: int = 64) -> Scene:
    """Two overlapping people in front of a striped background, with their boxes."""
    parts = np.zeros((height, width), np.int64)
    persons = np.zeros((height, width), np.int64)
    image = np.zeros((height, width, 3), np.float32)
    image[:] = (70, 90, 60)
    image[::6] = (90, 110, 80)
    _draw_person(parts, persons, image, 1, 6, 4, 2.0, shirt=(200, 40, 40), trousers=(40, 40, 160))
    _draw_person(parts, persons, image, 2, 22, 8, 2.0, shirt=(40, 170, 60), trousers=(90, 60, 30))
    boxes = []
    for pid in (1, 2):
        ys, xs = np.nonzero(persons == pid)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return Scene(
        image=torch.from_numpy(image).permute(2, 0, 1).contiguous(),
        parts=torch.from_numpy(parts),
        persons=torch.from_numpy(persons),
        boxes=torch.tensor(boxes, dtype=torch.float32),
        scores=torch.tensor([0.95, 0.9]),
    )


def eager_parser(backbone: str = "resnet18", seed: int = 0):
    """A tiny untrained model made to see people: its segmenter's background bias is
    lowered, so that inside detection boxes the Instance CRF gives person labels, and its
    detector head fires everywhere with boxes of about 64×96 pixels."""
    from humanparse.config import CRFConfig, ModelConfig
    from humanparse.modeling.holistic import build_model

    torch.manual_seed(seed)
    model = build_model(ModelConfig(backbone=backbone, output_stride=16, crf=CRFConfig(iterations=2)))
    with torch.no_grad():
        model.segmenter.head.classifier.bias[0] -= 4.0
        model.detector.heatmap[-1].bias.fill_(3.0)
        model.detector.size[-1].bias.copy_(torch.tensor([4.0, 6.0]))
    return model.eval()
