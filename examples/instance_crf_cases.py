"""The Instance CRF on the paper's problem cases, drawn side by side into one PNG.

    python examples/instance_crf_cases.py [--out crf_cases.png]

A hand-made part map Q of two overlapping people is given three sets of detections:
(a) a good box per person; (b) person 1's box truncated at the waist, with and without the
global term (the paper's Sec. 3.2.2); (c) a false-positive box on the background (Sec.
3.2.1). Each panel shows the winning person (colour) and part (shade) of every pixel and
the boxes. No training and no data needed.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from humanparse.modeling.crf import InstanceCRF
from humanparse.modeling.instances import part_map, person_map

PERSON_COLOURS = np.array([[40, 40, 40], [230, 80, 60], [60, 140, 230], [240, 200, 40]], np.float32)


def scene(height: int = 160, width: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Q (7, H, W) for two overlapping stick people, and a matching RGB image."""
    parts = np.zeros((height, width), np.int64)
    image = np.full((height, width, 3), 90, np.float32)

    def person(x0: int, shirt: tuple[int, int, int]) -> None:
        for part, (x1, y1, x2, y2), colour in (
            (5, (x0 + 12, 85, x0 + 38, 115), (50, 50, 150)),
            (6, (x0 + 12, 115, x0 + 38, 150), (50, 50, 150)),
            (3, (x0, 35, x0 + 10, 60), shirt),
            (3, (x0 + 40, 35, x0 + 50, 60), shirt),
            (4, (x0, 60, x0 + 10, 85), (220, 170, 140)),
            (4, (x0 + 40, 60, x0 + 50, 85), (220, 170, 140)),
            (2, (x0 + 10, 30, x0 + 40, 85), shirt),
            (1, (x0 + 15, 8, x0 + 35, 30), (220, 170, 140)),
        ):
            parts[y1:y2, x1:x2] = part
            image[y1:y2, x1:x2] = colour

    person(40, (200, 60, 60))
    person(80, (60, 160, 80))
    q = torch.nn.functional.one_hot(torch.from_numpy(parts), 7).permute(2, 0, 1).float() * 0.9 + 0.1 / 7
    return q, torch.from_numpy(image).permute(2, 0, 1)


def render(image: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor, title: str) -> np.ndarray:
    persons = person_map(labels, 6).numpy()
    shade = 0.55 + 0.45 * part_map(labels, 6).numpy()[..., None] / 6.0
    canvas = PERSON_COLOURS[np.minimum(persons, 3)] * np.where(persons[..., None] > 0, shade, 1.0)
    canvas = np.ascontiguousarray(canvas.astype(np.uint8)[..., ::-1])
    for i, (x1, y1, x2, y2) in enumerate(boxes.round().int().tolist()):
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), PERSON_COLOURS[i + 1][::-1].tolist(), 1)
    cv2.putText(canvas, title, (4, 154), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="crf_cases.png")
    args = parser.parse_args()
    q, image = scene()
    good = torch.tensor([[38.0, 6.0, 92.0, 152.0], [78.0, 6.0, 132.0, 152.0]])
    truncated = torch.tensor([[38.0, 6.0, 92.0, 85.0], [78.0, 6.0, 132.0, 152.0]])
    false_positive = torch.cat((good, torch.tensor([[140.0, 10.0, 195.0, 150.0]])))
    panels = []
    for title, boxes, crf in (
        ("(a) good boxes", good, InstanceCRF(6)),
        ("(b) truncated, box term only", truncated, InstanceCRF(6, global_term=False)),
        ("(b) truncated, box + global", truncated, InstanceCRF(6)),
        ("(c) false positive", false_positive, InstanceCRF(6)),
    ):
        scores = torch.full((boxes.shape[0],), 0.9)
        with torch.no_grad():
            labels = crf(q, image, boxes, scores).argmax(0)
        panels.append(render(image, labels, boxes, title))
    cv2.imwrite(args.out, np.concatenate(panels, 1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
