"""Every model built by name in one place: the parsers, the "auto" pose rule (the same for the
library and the command line), options a parser does not read refused, and the tables that
``--help`` and ``info`` print."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from humanparse.build import BODYPIX, DEFAULT_PARSER, PARSERS, POSE_CHOICES, POSE_GUIDED, POSE_NETWORKS, SYNTHETIC, auto_pose, build_parser, build_pose, build_predictor, checkpoint_help, describe
from humanparse.errors import CheckpointError, HumanParseError, OptionError
from humanparse.modeling.bodypix_parser import BodyPixParser
from humanparse.modeling.holistic import HolisticParser
from humanparse.modeling.parser import ParseOptions
from humanparse.modeling.pose_guided import PoseGuidedParser
from humanparse.predictor import Predictor
from humanparse.pretrained.blazepose import BlazePose
from humanparse.pretrained.movenet import MoveNetThunder
from humanparse.pretrained.registry import NETWORKS
from humanparse.structures import Detections


def test_each_name_builds_its_parser(eager_checkpoint) -> None:
    assert DEFAULT_PARSER == BODYPIX
    assert isinstance(build_parser(), BodyPixParser)
    assert isinstance(build_parser(SYNTHETIC), HolisticParser)
    assert isinstance(build_parser(str(eager_checkpoint)), HolisticParser)
    with pytest.raises(CheckpointError, match="does not exist"):
        build_parser("no-such-model.pt")


def test_the_auto_pose_rule() -> None:
    assert [auto_pose(BODYPIX, task, real) for task in ("images", "video") for real in (False, True)] == ["none"] * 4
    assert [auto_pose(POSE_GUIDED, task, False) for task in ("images", "video", "eval")] == ["movenet", "blazepose", "movenet"]
    assert [auto_pose("model.pt", "images", real) for real in (False, True)] == ["none", "movenet"]
    assert set(POSE_CHOICES) == {"auto", "none", *POSE_NETWORKS}
    assert isinstance(build_pose("movenet"), MoveNetThunder) and isinstance(build_pose("blazepose"), BlazePose)
    assert all(entry.wrapper.startswith("humanparse.pretrained.") for entry in POSE_NETWORKS.values())
    with pytest.raises(HumanParseError, match="unknown pose network"):
        build_pose("openpose")


def test_the_library_streams_what_the_command_line_runs_on_video() -> None:
    """"auto" is BlazePose in video and MoveNet on images for the pose-guided parser: the
    library's predictor for images builds its video twin when it streams."""
    images = Predictor.from_checkpoint(POSE_GUIDED, device="cpu")
    assert isinstance(images.parser.pose, MoveNetThunder)
    video = build_predictor(POSE_GUIDED, "cpu", task="video")
    assert isinstance(video.parser.pose, BlazePose) and video.video_twin is None
    twin = images._for_video()
    assert isinstance(twin.parser.pose, BlazePose) and images._for_video() is twin  # built once
    assert Predictor.from_checkpoint(POSE_GUIDED, device="cpu", pose="movenet").video_twin is None  # chosen, not auto
    default = Predictor.from_checkpoint(device="cpu")
    assert default.video_twin is None and default.pose is None  # BodyPix's own keypoints, images and video alike


def test_options_the_parser_does_not_read_are_refused() -> None:
    pose_guided = PoseGuidedParser(pose=MoveNetThunder())
    with pytest.raises(OptionError, match=r"input_scale \(--scale\): not used by PoseGuidedParser"):
        Predictor(pose_guided, "cpu", options=ParseOptions(input_scale=0.5))
    with pytest.raises(OptionError, match="amp"):
        Predictor(BodyPixParser(), "cpu", options=ParseOptions(amp=False))
    Predictor(pose_guided, "cpu", options=ParseOptions(crf_scale=0.25, nms_iou=0.5, max_side=800))  # read: fine
    with pytest.raises(OptionError, match="nms_iou"):
        build_predictor(BODYPIX, "cpu", detector="gt", nms_iou=0.5)
    with pytest.raises(OptionError, match="--pose"):
        build_predictor(POSE_GUIDED, "cpu", pose="none")


def test_the_default_parser_reads_nms_iou(monkeypatch) -> None:
    parser = BodyPixParser()
    image = np.zeros((64, 64, 3), np.uint8)
    seen: list[float] = []
    original = parser.detector.forward

    def spy(image, key=None, nms_iou=None):
        seen.append(nms_iou)
        return original(image, key, nms_iou)

    monkeypatch.setattr(parser.detector, "forward", spy)
    assert isinstance(parser.detect(image, ParseOptions(nms_iou=0.4)), Detections)
    parser.detect(image, ParseOptions(nms_iou=None))
    assert seen == [0.4, 1.0]  # None: no suppression


def test_help_and_info_come_from_the_tables() -> None:
    text = checkpoint_help()
    assert all(f"{name} ({entry.brief})" in text for name, entry in PARSERS.items())
    rows = dict(describe())
    assert rows["model"].startswith("bodypix (the default): ") and "images and video" in rows
    assert rows["licenses"].startswith("Apache-2.0")
    assert dict(describe(POSE_GUIDED)).keys() >= {"images", "video", "labels"}
    assert dict(describe(SYNTHETIC))["backbone"].startswith("bodypix") and dict(describe(SYNTHETIC))["license"].startswith("Apache-2.0")
    for name, network in NETWORKS.items():
        assert network.upstream.startswith("https://") and network.license == "Apache-2.0"
        assert (network.package_model is not None) == (network.converted_from == "TF.js"), name


def test_help_costs_no_torch() -> None:
    code = "import sys, humanparse.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
