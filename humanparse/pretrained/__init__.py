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
* ``crops`` — the square crops top-down networks see, and back.
"""

from __future__ import annotations

from .blazepose import BlazePose
from .bodypix import BodyPix, BodyPixNet
from .movenet import MoveNetMultiPose, MoveNetThunder
from .nanodet import NanoDet
from .registry import NETWORKS, PretrainedNetwork, load_network, network_path
from .selfie import SelfieMasks

__all__ = [
    "NETWORKS", "BlazePose", "BodyPix", "BodyPixNet", "MoveNetMultiPose", "MoveNetThunder", "NanoDet", "PretrainedNetwork", "SelfieMasks", "load_network", "network_path",
]
