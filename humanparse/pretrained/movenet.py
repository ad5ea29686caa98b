"""MoveNet: :class:`MoveNetMultiPose`, a person detector that also finds 17 keypoints.

MoveNet MultiPose Lightning (Google, Apache-2.0) takes an int32 RGB image whose sides are
multiples of 32 and gives up to 6 people, each as 17 × (y, x, score) and a box (ymin, xmin,
ymax, xmax, score), normalised to the input. Its backbone is torchvision's MobileNetV2 at
width 1.5 with TF padding; here it runs as the converted graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision

from ..structures import Detections, Poses
from .crops import crop_square, resize_image, square_regions, to_image_coordinates
from .registry import PretrainedNetwork

# Input sides (square, multiples of 32). 256 is MoveNet's own for MultiPose and finds people
# who fill the picture; it misses the 80-px pedestrians of vtest.avi (768 x 576; scores
# 0.21/0.19/0.20), which 512 finds (0.49/0.44/0.34) while missing the portraits. Images
# larger than the first are seen at both, and the two sets of people merged.
SCALES = (256, 512)
KEYPOINTS = 17


class MoveNetMultiPose(PretrainedNetwork):
    """Persons and their keypoints by MoveNet MultiPose: ``detector(image) -> Detections``
    (the Detector protocol); :meth:`detect_with_poses` also gives the keypoints.

    The image is padded (bottom, right) to a square and resized to 256 px and, if larger, to
    512 px as well (small people); the people of both are merged by NMS, at most 6 per scale.

    Args:
        threshold, max_people, nms_iou: kept persons.
        device: where the network runs. weights: a converted checkpoint (default: shipped).
    """

    def __init__(self, threshold: float = 0.3, max_people: int = 20, nms_iou: float = 0.7, device: str | torch.device = "cpu", weights: str | Path = "movenet-multipose") -> None:
        super().__init__(weights, device)
        self.threshold, self.max_people, self.nms_iou = threshold, max_people, nms_iou

    def forward(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        return self.detect_with_poses(image)[0]

    @torch.inference_mode()
    def detect_with_poses(self, image: np.ndarray) -> tuple[Detections, Poses]:
        """Detections and, in their order, the keypoints MoveNet found with them."""
        height, width = image.shape[:2]
        side = max(height, width)
        square = np.zeros((side, side, 3), np.uint8)
        square[:height, :width] = image
        people = torch.cat([
            self.network.run(torch.from_numpy(resize_image(square, size, size)).to(self.device)[None].int())["output_0"][0].float().cpu()  # (6, 56)
            for size in SCALES
            if size == SCALES[0] or side > SCALES[0]
        ])
        boxes = people[:, [52, 51, 54, 53]] * side  # (ymin, xmin, ymax, xmax) -> x1 y1 x2 y2
        scores = people[:, 55].clamp(0, 1)
        keep = torch.nonzero(scores >= self.threshold).flatten()
        keep = keep[torchvision.ops.nms(boxes[keep], scores[keep], self.nms_iou)][: self.max_people]
        points = people[keep, : 3 * KEYPOINTS].reshape(-1, KEYPOINTS, 3)
        keypoints = torch.stack([points[..., 1] * side, points[..., 0] * side, points[..., 2].clamp(0, 1)], dim=-1).numpy()
        detections = Detections(boxes[keep].numpy(), scores[keep].numpy()).clipped(height, width)
        return detections, Poses(keypoints, detections.boxes)


class MoveNetThunder(PretrainedNetwork):
    """17 COCO keypoints per box by MoveNet SinglePose Thunder on a square crop:
    ``estimator(image, boxes) -> Poses`` (no masks).

    Args:
        device: where the network runs. weights: a converted checkpoint (default: shipped).
        crop_scale: each crop's side over the box's longer side.
    """

    input_size = 256

    def __init__(self, device: str | torch.device = "cpu", weights: str | Path = "movenet-thunder", crop_scale: float = 1.25) -> None:
        super().__init__(weights, device)
        self.crop_scale = crop_scale

    @torch.inference_mode()
    def forward(self, image: np.ndarray, boxes: np.ndarray) -> Poses:
        regions = square_regions(boxes, self.crop_scale)
        keypoints = np.zeros((len(regions), KEYPOINTS, 3), np.float32)
        for k, region in enumerate(regions):  # the graph takes one crop at a time
            crop = torch.from_numpy(crop_square(image, region, self.input_size)).to(self.device)[None].int()
            points = self.network.run(crop)["Identity:0"].float().reshape(KEYPOINTS, 3).cpu().numpy()
            keypoints[k, :, :2] = to_image_coordinates(points[:, [1, 0]] * self.input_size, region, self.input_size)
            keypoints[k, :, 2] = points[:, 2].clip(0, 1)
        return Poses(keypoints, regions)
