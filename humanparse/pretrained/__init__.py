"""Real pretrained networks, converted from TF.js (and BodyPix from TFLite) and run by PyTorch alone.

* ``graph`` — :class:`TFGraph`: a TensorFlow graph as a torch module (TF semantics: NHWC,
  "SAME" padding with the odd pixel after, TF resizing);
* ``tfjs`` — reading TF.js graph models and converting them to checkpoints (dev time);
* ``registry`` — :data:`NETWORKS`, the shipped checkpoints, and :func:`load_network`;
* ``nanodet`` — :class:`NanoDet`, a COCO detector as a person detector;
* ``movenet`` — :class:`MoveNetMultiPose` (persons and keypoints) and :class:`MoveNetThunder`
  (keypoints per person crop);
* ``blazepose`` — :class:`BlazePose` (keypoints and a person mask per crop);
* ``selfie`` — :class:`SelfieMasks` (the selfie model's person mask per crop);
* ``bodypix`` — :class:`BodyPix` and :class:`BodyPixNet`: BodyPix 2 (MobileNetV1 0.75, stride
  16) as a native torch module, whole image at any size: person logit, 24 body-part logits and
  PoseNet's keypoint heatmaps and offsets on a 16-px grid (:func:`~.bodypix.upsample_to`);
* ``mobilenet`` — :func:`movenet_backbone`: MoveNet's backbone as torchvision's MobileNetV2;
* ``crops`` — the square crops top-down networks see, and back.
"""

from __future__ import annotations

import torch

from ..errors import HumanParseError
from ..structures import PoseEstimator
from .blazepose import BlazePose
from .bodypix import BodyPix, BodyPixNet
from .movenet import MoveNetMultiPose, MoveNetThunder
from .nanodet import NanoDet
from .registry import NETWORKS, PretrainedNetwork, load_network, network_path
from .selfie import SelfieMasks

POSE_NETWORKS: dict[str, str] = {
    "movenet": "MoveNet SinglePose Thunder: 17 keypoints per person crop (the default: right on portraits and full bodies alike)",
    "blazepose": "BlazePose full: keypoints and a person mask per crop (wants the whole body in the crop)",
}

__all__ = [
    "NETWORKS", "POSE_NETWORKS", "BlazePose", "BodyPix", "BodyPixNet", "MoveNetMultiPose", "MoveNetThunder", "NanoDet", "PretrainedNetwork", "SelfieMasks", "build_pose", "load_network", "network_path",
]


def build_pose(name: str, device: str | torch.device = "cpu") -> PoseEstimator:
    """The top-down pose network ``name`` (a key of :data:`POSE_NETWORKS`) on ``device``."""
    if name == "movenet":
        return MoveNetThunder(device=device)
    if name == "blazepose":
        return BlazePose(device=device)
    raise HumanParseError(f"unknown pose network {name!r}; choose one of: {', '.join(POSE_NETWORKS)}")
