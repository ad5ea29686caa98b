"""MediaPipe's selfie segmentation as a per-person mask: :class:`SelfieMasks`.

The general selfie model (Google, Apache-2.0) takes a 256 × 256 RGB image in 0..1 and gives
the probability of person at each pixel. Here it sees each person's square crop, as BlazePose
does, so each mask is that person's (and whoever else is in the crop: the Instance CRF
settles overlaps).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..structures import Poses
from .crops import crop_square, square_regions
from .registry import PretrainedNetwork

INPUT_SIZE = 256


class SelfieMasks(PretrainedNetwork):
    """A soft person mask per box: ``masker(image, boxes) -> Poses`` with masks (and no
    keypoints: K = 0).

    Args:
        device: where the network runs. weights: a converted checkpoint (default: shipped).
        crop_scale: each crop's side over the box's longer side.
    """

    def __init__(self, device: str | torch.device = "cpu", weights: str | Path = "selfie", crop_scale: float = 1.25) -> None:
        super().__init__(weights, device)
        self.crop_scale = crop_scale

    @torch.inference_mode()
    def forward(self, image: np.ndarray, boxes: np.ndarray) -> Poses:
        regions = square_regions(boxes, self.crop_scale)
        masks = np.zeros((len(regions), INPUT_SIZE, INPUT_SIZE), np.float32)
        for k, region in enumerate(regions):  # the graph takes one crop at a time
            crop = torch.from_numpy(crop_square(image, region, INPUT_SIZE)).to(self.device)[None].float().div(255)
            masks[k] = self.network.run(crop)["activation_10:0"][0, ..., 0].float().cpu().numpy()
        return Poses(np.zeros((len(regions), 0, 3), np.float32), regions, masks)
