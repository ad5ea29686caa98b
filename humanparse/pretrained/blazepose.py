"""BlazePose, top-down: 33 landmarks and a person mask per person crop: :class:`BlazePose`.

MediaPipe's BlazePose GHUM landmark network (the "full" model, Apache-2.0) takes a 256 × 256
RGB crop in 0..1 and gives 39 points × (x, y, z, visibility, presence) in crop pixels (33 body
landmarks, then 6 auxiliary ones), a pose-presence flag, and a 256 × 256 person mask. MediaPipe
aligns the crop to the body's rotation with its own detector; here the crop is the square
around a detector's box, upright, which suits people standing or walking.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..structures import Poses
from .crops import crop_square, square_regions, to_image_coordinates
from .registry import PretrainedNetwork

INPUT_SIZE = 256
LANDMARKS = 39  # 33 body landmarks and 6 auxiliary points
VALUES = 5  # x, y, z, visibility, presence
# BlazePose's landmark index for each COCO-17 keypoint (nose, eyes, ears, shoulders,
# elbows, wrists, hips, knees, ankles); BlazePose's eye is its eye centre.
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


class BlazePose(PretrainedNetwork):
    """COCO-17 keypoints and a soft person mask per box: ``estimator(image, boxes) -> Poses``.

    A keypoint's score is its visibility (a probability) times the crop's pose-presence
    flag, so that a crop holding no person gives low scores throughout.

    Args:
        device: where the network runs. weights: a converted checkpoint (default: shipped).
        crop_scale: each crop's side over the box's longer side; BlazePose was trained on
            crops with the body well inside.
        batch: crops per forward pass.
    """

    def __init__(self, device: str | torch.device = "cpu", weights: str | Path = "blazepose-full", crop_scale: float = 1.25, batch: int = 8) -> None:
        super().__init__(weights, device)
        self.crop_scale = crop_scale
        self.batch = batch

    @torch.inference_mode()
    def forward(self, image: np.ndarray, boxes: np.ndarray) -> Poses:
        regions = square_regions(boxes, self.crop_scale)
        d = len(regions)
        keypoints = np.zeros((d, len(BLAZEPOSE_TO_COCO), 3), np.float32)
        masks = np.zeros((d, INPUT_SIZE, INPUT_SIZE), np.float32)
        for start in range(0, d, self.batch):
            chunk = regions[start : start + self.batch]
            crops = np.stack([crop_square(image, region, INPUT_SIZE) for region in chunk])
            outputs = self.network.run(torch.from_numpy(crops).to(self.device).float().div(255))
            points = outputs["ld_3d"].float().reshape(-1, LANDMARKS, VALUES)[:, BLAZEPOSE_TO_COCO].cpu().numpy()
            flag = outputs["output_poseflag"].float().reshape(-1, 1).cpu().numpy()
            score = flag / (1 + np.exp(-points[..., 3]))
            for k, region in enumerate(chunk):
                keypoints[start + k, :, :2] = to_image_coordinates(points[k, :, :2], region, INPUT_SIZE)
                keypoints[start + k, :, 2] = score[k]
            masks[start : start + len(chunk)] = outputs["activation_segmentation"].float()[..., 0].cpu().numpy()
        return Poses(keypoints, regions, masks)
