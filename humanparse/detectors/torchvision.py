"""torchvision's COCO detectors, keeping the person class: :class:`TorchvisionDetector`.

``TORCHVISION_MODELS`` names the models (Faster R-CNN v2, RetinaNet v2, FCOS, Mask R-CNN v2);
``person_detections`` turns one of their outputs into :class:`Detections`.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torchvision.models import detection as tv_detection

from ..errors import HumanParseError
from ..io.weights import load_plain
from ..structures import Detections
from .files import COCO_PERSON

# name -> (builder, default weights, keyword of the model's own score threshold)
TORCHVISION_MODELS: dict[str, tuple[Callable[..., torch.nn.Module], object, str]] = {
    "fasterrcnn_resnet50_fpn_v2": (tv_detection.fasterrcnn_resnet50_fpn_v2, tv_detection.FasterRCNN_ResNet50_FPN_V2_Weights.DEFAULT, "box_score_thresh"),
    "retinanet_resnet50_fpn_v2": (tv_detection.retinanet_resnet50_fpn_v2, tv_detection.RetinaNet_ResNet50_FPN_V2_Weights.DEFAULT, "score_thresh"),
    "fcos_resnet50_fpn": (tv_detection.fcos_resnet50_fpn, tv_detection.FCOS_ResNet50_FPN_Weights.DEFAULT, "score_thresh"),
    "maskrcnn_resnet50_fpn_v2": (tv_detection.maskrcnn_resnet50_fpn_v2, tv_detection.MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT, "box_score_thresh"),
}


class TorchvisionDetector:
    """A torchvision COCO detector, keeping persons only.

    Args:
        name: a key of ``TORCHVISION_MODELS``.
        weights: ``"default"`` for torchvision's COCO weights (from the torch hub cache, or
            downloaded when online), a path to a state-dict file, or None for random weights
            (tests).
        threshold: minimum score kept; max_people: at most this many, best first.
        min_size, max_size: the model's own resizing of the input.
    """

    def __init__(
        self,
        name: str,
        weights: str | Path | None = "default",
        threshold: float = 0.5,
        max_people: int = 20,
        device: str | torch.device = "cpu",
        min_size: int = 800,
        max_size: int = 1333,
    ) -> None:
        if name not in TORCHVISION_MODELS:
            raise HumanParseError(f"unknown torchvision detector {name!r}; choose one of: {', '.join(TORCHVISION_MODELS)}")
        builder, default_weights, threshold_key = TORCHVISION_MODELS[name]
        # The model's own threshold stays low so that ``threshold`` alone decides.
        model = builder(weights=None, weights_backbone=None, min_size=min_size, max_size=max_size, **{threshold_key: 0.01})
        if weights == "default":
            try:
                state = default_weights.get_state_dict(progress=False, check_hash=True)
            except (urllib.error.URLError, OSError, RuntimeError) as exc:
                raise HumanParseError(
                    f"cannot load COCO weights for {name} ({type(exc).__name__}); offline, download {default_weights.url} "
                    f"elsewhere and put it in {torch.hub.get_dir()}/checkpoints"
                ) from None
            model.load_state_dict(state)
        elif weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise HumanParseError(f"detector weights {path} do not exist")
            state = load_plain(path, "detector weights")
            try:
                model.load_state_dict(state)  # type: ignore[arg-type]
            except (RuntimeError, OSError, ValueError, TypeError) as exc:
                raise HumanParseError(f"{path}: not weights for {name} ({str(exc).splitlines()[0]})") from None
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.threshold = threshold
        self.max_people = max_people

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255).to(self.device)
        output = self.model([tensor])[0]
        return person_detections(output, self.threshold, self.max_people)


def person_detections(output: dict[str, torch.Tensor], threshold: float, max_people: int | None) -> Detections:
    """The persons in a torchvision detection output.

    Args:
        output: one image's "boxes" (N, 4) x1 y1 x2 y2 pixels, "labels" (N,) COCO categories,
            "scores" (N,).
        threshold: minimum score kept; max_people: at most this many, best first (None: all).
    """
    keep = output["labels"] == COCO_PERSON
    boxes = output["boxes"][keep].detach().float().cpu().numpy()
    scores = output["scores"][keep].detach().float().cpu().numpy()
    return Detections(boxes, scores).top(threshold, max_people)
