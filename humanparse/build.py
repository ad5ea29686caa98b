"""One place that builds every model by name, as segment-anything's ``build_sam.py`` does:
parsers, person detectors, pose networks and the predictor that runs them, with their
defaults, the "auto" pose rule included.

The command line and the library both come here (``humanparse images|video|eval`` through
:func:`build_predictor`, :meth:`Predictor.from_checkpoint
<humanparse.predictor.Predictor.from_checkpoint>` too), so they choose alike. The tables
:data:`PARSERS` and :data:`POSE_NETWORKS` give ``--help`` and ``humanparse info`` their text;
the shipped networks' provenance is :data:`humanparse.pretrained.registry.NETWORKS`, which the
converter tools and ``info`` read. Adding a parser or a pose network is its class plus one
entry here.

Importing this module costs no torch: the builders import what they build.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import HumanParseError, OptionError

if TYPE_CHECKING:
    import torch

    from .detectors import DetectorSpec
    from .modeling.parser import Parser
    from .predictor import Predictor
    from .structures import Detector, PoseEstimator

Task = Literal["images", "video", "eval"]


@dataclass(frozen=True)
class ParserEntry:
    """A parser that a ``--checkpoint`` name gives: what it is in a few words (``brief``,
    for ``--help``) and in one line (``summary``, for ``humanparse info``), what runs per
    image and per frame (``steps``: ``info``'s rows), and the shipped ``networks`` it runs
    (keys of ``NETWORKS``: their licenses)."""

    brief: str
    summary: str
    steps: tuple[tuple[str, str], ...]
    networks: tuple[str, ...]


# Frames from one detection to the next while a parser that follows people (pose-guided)
# follows everyone in a video (humanparse.streaming.CropFollower).
DETECT_EVERY = 8

BODYPIX = "bodypix"
POSE_GUIDED = "pose-guided"
SYNTHETIC = "synthetic"
BODYPIX_ALONE = "bodypix-alone"
DEFAULT_PARSER = BODYPIX
# BodyPix's parts with NanoDet's persons and the Instance CRF (the default, for real
# people); the earlier pose-guided parser (parts cut from person masks by the skeleton; kept
# for comparison), both built from the shipped pretrained networks; and the holistic network
# trained on the synthetic world (for the synthetic benchmarks, training and Table 1).
PARSERS: dict[str, ParserEntry] = {
    BODYPIX: ParserEntry(
        "real people: BodyPix's parts, NanoDet's and PoseNet's persons, the Instance CRF",
        "real people: BodyPix's parts in one whole-image pass, NanoDet's and PoseNet's persons, PoseNet keypoints, the Instance CRF",
        (("images and video", "per frame: NanoDet persons, plus persons BodyPix's pose maps show where no box is; one BodyPix pass (parts, person, "
          "keypoint maps) and one selfie-model pass over the whole image; a second BodyPix pass over persons under 120 px; PoseNet keypoints; "
          "the Instance CRF at half scale"),),
        ("nanodet", "bodypix", "selfie"),
    ),
    POSE_GUIDED: ParserEntry(
        "the earlier parser for real people: parts from the skeleton",
        "real people, the earlier parser: NanoDet persons, top-down keypoints and masks, parts from the skeleton, the Instance CRF with the mask term",
        (("images", "NanoDet persons confirmed by MoveNet Thunder keypoints; BlazePose and selfie masks averaged; CRF at half scale"),
         ("video", f"NanoDet every {DETECT_EVERY}th frame, crops following the keypoints between; BlazePose keypoints and mask in one pass, selfie mask; "
                   "tracking by mask and skeleton")),
        ("nanodet", "movenet-thunder", "blazepose-full", "selfie"),
    ),
    SYNTHETIC: ParserEntry("the holistic model trained on the synthetic world, shipped", "the holistic network of the paper trained on humanparse's synthetic world from BodyPix's weights (built-in detector)", (), ()),
    BODYPIX_ALONE: ParserEntry(
        "BodyPix's own parts, no persons: the baseline to score against",
        "category-level only: BodyPix's own part segmentation (person > 0.5, then its largest part logit, grouped onto Pascal-Person-Part); no persons",
        (("images", "one BodyPix pass over the image at 640 px on its longer side"),),
        ("bodypix",),
    ),
}

@dataclass(frozen=True)
class PoseEntry:
    """A top-down pose network by name: what it gives (``--help``), and its wrapper class
    (``module:Class``, built as ``Class(device=...)``, imported only when built)."""

    what: str
    wrapper: str


# Top-down pose networks, run per person: --pose's choices besides auto and none.
POSE_NETWORKS: dict[str, PoseEntry] = {
    "movenet": PoseEntry("MoveNet SinglePose Thunder, 17 keypoints per person crop; right on portraits and full bodies alike",
                         "humanparse.pretrained.movenet:MoveNetThunder"),
    "blazepose": PoseEntry("BlazePose full, keypoints and a person mask per crop; wants the whole body in the crop",
                           "humanparse.pretrained.blazepose:BlazePose"),
}
POSE_CHOICES = ("auto", *POSE_NETWORKS, "none")
AUTO_POSE_RULE = (
    "auto: for bodypix, the keypoints of BodyPix's own pose maps (no network per person); for pose-guided, movenet on images and "
    "blazepose in video (3x faster; for close-ups and upper bodies give movenet); for a holistic model, movenet with a real-photo "
    "detector (nanodet, movenet, torchvision), else none"
)


def checkpoint_help() -> str:
    """``--checkpoint``'s help: every named parser and what it is."""
    return f"The model: {', '.join(f'{name} ({entry.brief})' for name, entry in PARSERS.items())}, or a checkpoint file."


def auto_pose(parser: str, task: Task, real_detector: bool) -> str:
    """What ``--pose auto`` means: a key of :data:`POSE_NETWORKS`, or "none".

    Measured (docs/pretrained.md): BodyPix's own PoseNet keypoints are good enough and cost
    no network per person; for the pose-guided parser, Thunder is right on portraits and
    whole bodies alike, and in video BlazePose's one pass (keypoints and mask) on the
    followed crop is MediaPipe's own scheme at a third of the cost; a holistic model gets
    keypoints when its persons come from a detector trained on real photos.
    """
    if parser in (BODYPIX, BODYPIX_ALONE):
        return "none"
    if parser == POSE_GUIDED:
        return "blazepose" if task == "video" else "movenet"
    return "movenet" if real_detector else "none"


def build_pose(name: str, device: str | torch.device = "cpu") -> PoseEstimator:
    """The top-down pose network ``name`` (a key of :data:`POSE_NETWORKS`) on ``device``."""
    if name not in POSE_NETWORKS:
        raise HumanParseError(f"unknown pose network {name!r}; choose one of: {', '.join(POSE_NETWORKS)}")
    module, _, cls = POSE_NETWORKS[name].wrapper.partition(":")
    return getattr(importlib.import_module(module), cls)(device=device)


def build_parser(name: str | os.PathLike | None = None, device: str | torch.device = "cpu", pose: PoseEstimator | None = None) -> Parser:
    """The parser a ``--checkpoint`` value names (None: :data:`DEFAULT_PARSER`): a key of
    :data:`PARSERS` or a checkpoint file of the holistic network, on ``device``. ``pose`` is
    the pose-guided parser's keypoint network (default MoveNet Thunder); the others run a
    pose network, if any, from the predictor."""
    name = DEFAULT_PARSER if name is None else str(name)
    if name == BODYPIX:
        from .modeling.bodypix_parser import BodyPixParser

        return BodyPixParser().to(device)
    if name == POSE_GUIDED:
        from .modeling.pose_guided import PoseGuidedParser

        return PoseGuidedParser(pose=pose).to(device)
    if name == BODYPIX_ALONE:
        from .modeling.bodypix_parser import BodyPixAloneParser

        return BodyPixAloneParser().to(device)
    from .modeling.checkpoints import load_checkpoint, synthetic_checkpoint

    return load_checkpoint(synthetic_checkpoint() if name == SYNTHETIC else name, device)


def build_detector(spec: str | DetectorSpec, device: str = "cpu", data_root: str | os.PathLike | None = None, **options: Any) -> Detector | None:
    """The person detector a ``--detector`` text names (see :mod:`humanparse.detectors.spec`);
    None for "builtin", the parser's own. ``options``: ParseOptions' det_threshold,
    max_people and nms_iou."""
    from .detectors import DetectorSpec
    from .modeling.parser import ParseOptions

    spec = DetectorSpec.parse(spec) if isinstance(spec, str) else spec
    parse = ParseOptions(**options)
    return spec.build(data_root=data_root, threshold=parse.det_threshold, max_people=parse.max_people, nms_iou=parse.nms_iou, device=device)


def build_predictor(
    checkpoint: str | os.PathLike | None = None,
    device: str = "auto",
    detector: str | Detector | None = "builtin",
    pose: str | PoseEstimator | None = "auto",
    task: Task = "images",
    data_root: str | os.PathLike | None = None,
    **options: Any,
) -> Predictor:
    """The predictor for ``task`` (images, video or eval): the parser ``checkpoint`` names,
    on ``device`` (auto, cpu, cuda[:N]), with its persons from ``detector`` (a
    ``--detector`` text, or a detector object; "builtin" or None: the parser's own), its
    keypoints from ``pose`` ("auto" by :func:`auto_pose`, a key of :data:`POSE_NETWORKS`,
    "none" or None for the parser's own, or a pose network object), and ``options`` the
    :class:`~humanparse.modeling.parser.ParseOptions` fields. The detector's text is checked
    before any model loads; an option the chosen parser does not read is an error.

    With ``pose="auto"`` and a parser whose rule differs in video, the predictor for images
    builds its video twin the first time it streams (:meth:`Predictor.stream
    <humanparse.predictor.Predictor.stream>`), so the library runs what ``humanparse video``
    runs.
    """
    from .detectors import DetectorSpec
    from .device import resolve_device
    from .modeling.parser import ParseOptions
    from .predictor import Predictor

    name = DEFAULT_PARSER if checkpoint is None else str(checkpoint)
    spec = DetectorSpec.parse(detector if detector is not None else "builtin") if not callable(detector) else None
    parse = ParseOptions(**options)  # checked before anything loads
    if name == POSE_GUIDED and pose in ("none", None):
        raise OptionError("pose none (--pose): the pose-guided parser finds its parts from keypoints; choose movenet or blazepose (none is for a holistic checkpoint)")
    if spec is not None and spec.kind not in ("builtin", "nanodet", "movenet") and parse.nms_iou != ParseOptions.nms_iou:
        raise OptionError(f"nms_iou (--nms-iou) does not apply to the {spec.kind} detector: its boxes come suppressed already")
    dev = resolve_device(device)
    external = detector if spec is None else build_detector(spec, str(dev), data_root, **options)
    chosen = pose
    if pose == "auto":
        chosen = auto_pose(name, task, spec is not None and spec.real)
    estimator = build_pose(chosen, dev) if isinstance(chosen, str) and chosen != "none" else (None if isinstance(chosen, str) else chosen)
    if name == POSE_GUIDED:
        predictor = Predictor(build_parser(name, dev, pose=estimator), dev, external, parse)
    else:
        predictor = Predictor(build_parser(name, dev), dev, external, parse, estimator)
    if pose == "auto" and task != "video" and auto_pose(name, "video", spec is not None and spec.real) != chosen:
        predictor.video_twin = functools.partial(build_predictor, checkpoint, device, detector, pose, "video", data_root, **options)
    return predictor


def describe(checkpoint: str | None = None) -> list[tuple[str, str]]:
    """``humanparse info``'s rows for the model ``checkpoint`` names (None: the default):
    what runs, its labels and its licenses, or a checkpoint file's configuration."""
    from .labels import PASCAL_PERSON_PART
    from .modeling.checkpoints import read_checkpoint, synthetic_checkpoint
    from .pretrained.registry import NETWORKS

    name = checkpoint or DEFAULT_PARSER
    default = "" if checkpoint else " (the default)"
    if name in PARSERS and name != SYNTHETIC:
        entry = PARSERS[name]
        licenses = sorted({NETWORKS[n].license for n in entry.networks})
        return [
            ("model", f"{name}{default}: {entry.summary}"),
            *entry.steps,
            ("labels", f"{PASCAL_PERSON_PART.name}: {', '.join(PASCAL_PERSON_PART.names[1:])}"),
            ("licenses", f"{', '.join(licenses)} (the pretrained networks below; humanparse/models/NOTICE)"),
        ]
    path = synthetic_checkpoint() if name == SYNTHETIC else name
    payload = read_checkpoint(path)
    config, labels, about = payload["config"], payload["labels"], payload["extra"].get("about", {})
    rows = [
        ("model", f"{path}" + (f" ({SYNTHETIC}: {PARSERS[SYNTHETIC].summary})" if name == SYNTHETIC else "")),
        ("backbone", f"{config['backbone']} (output stride {config['output_stride']}), built-in detector {'yes' if config.get('detection_head') else 'no'}"),
        ("labels", f"{labels['name']}: {', '.join(labels['names'][1:])}"),
        ("crf", f"{config['crf']['iterations']} mean-field iterations, global term {'on' if config['crf']['global_term'] else 'off'}"),
        ("weights", f"{sum(t.numel() for t in payload['state_dict'].values() if t.is_floating_point()):,} values"),
    ]
    rows += [(key.replace("_", " "), str(about[key])) for key in ("trained_on", "recipe", "results", "license") if about.get(key)]
    return rows
