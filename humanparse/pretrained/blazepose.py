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
from scipy.special import expit

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
    """

    def __init__(self, device: str | torch.device = "cpu", weights: str | Path = "blazepose-full", crop_scale: float = 1.25) -> None:
        super().__init__(weights, device)
        self.crop_scale = crop_scale

    @torch.inference_mode()
    def forward(self, image: np.ndarray, boxes: np.ndarray) -> Poses:
        regions = square_regions(boxes, self.crop_scale)
        d = len(regions)
        keypoints = np.zeros((d, len(BLAZEPOSE_TO_COCO), 3), np.float32)
        masks = np.zeros((d, INPUT_SIZE, INPUT_SIZE), np.float32)
        # One crop at a time: batching gains nothing on the CPU (13.0 ms a crop alone, 12.9
        # in fours), and a batch size that varies from frame to frame retraces the graph
        # (40 ms a person on the real clip in batches of up to 8, 19 one by one).
        for k, region in enumerate(regions):
            crop = torch.from_numpy(crop_square(image, region, INPUT_SIZE)).to(self.device)[None].float().div(255)
            outputs = self.network.run(crop)
            points = outputs["ld_3d"].float().reshape(LANDMARKS, VALUES)[list(BLAZEPOSE_TO_COCO)].cpu().numpy()
            flag = float(outputs["output_poseflag"].float().reshape(()))
            keypoints[k, :, :2] = to_image_coordinates(points[:, :2], region, INPUT_SIZE)
            # expit: 1 / (1 + exp(-x)) overflows (a RuntimeWarning) for the float32 logit of
            # a keypoint far out of view.
            keypoints[k, :, 2] = flag * expit(points[:, 3])
            masks[k] = outputs["activation_segmentation"].float()[0, ..., 0].cpu().numpy()
        return Poses(keypoints, regions, masks)
