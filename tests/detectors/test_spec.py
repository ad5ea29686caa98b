"""The --detector text: parsed and checked once, printed back, built into a detector."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from humanparse.data.synth import write_image_dataset
from humanparse.detectors import TORCHVISION_MODELS, CocoResultsDetector, DetectionNoise, DetectorSpec, GroundTruthDetector, MotDetector, SimulatedDetector, TorchvisionDetector
from humanparse.errors import HumanParseError
from humanparse.pretrained import MoveNetMultiPose, NanoDet

VALID = [
    ("builtin", DetectorSpec("builtin"), "builtin"),
    ("nanodet", DetectorSpec("nanodet"), "nanodet"),
    ("movenet", DetectorSpec("movenet"), "movenet"),
    ("gt", DetectorSpec("gt"), "gt"),
    ("sim", DetectorSpec("sim"), "sim"),
    ("sim:", DetectorSpec("sim"), "sim"),
    ("sim:0", DetectorSpec("sim"), "sim"),
    ("sim:5", DetectorSpec("sim", seed=5), "sim:5"),
    ("sim:5:", DetectorSpec("sim", seed=5), "sim:5"),
    ("sim:5:0.15", DetectorSpec("sim", seed=5), "sim:5"),
    ("sim:5:0.75", DetectorSpec("sim", seed=5, noise=replace(DetectionNoise(), truncation_rate=0.75)), "sim:5:0.75"),
    ("sim::1", DetectorSpec("sim", noise=replace(DetectionNoise(), truncation_rate=1.0)), "sim:0:1.0"),
    ("sim:2:0", DetectorSpec("sim", seed=2, noise=replace(DetectionNoise(), truncation_rate=0.0)), "sim:2:0.0"),
    ("sim:3:1e-1", DetectorSpec("sim", seed=3, noise=replace(DetectionNoise(), truncation_rate=0.1)), "sim:3:0.1"),
    ("file:dets.json", DetectorSpec("file", path=Path("dets.json")), "file:dets.json"),
    ("file:./runs/det.txt", DetectorSpec("file", path=Path("runs/det.txt")), "file:runs/det.txt"),
    ("file:/data/a:b.json", DetectorSpec("file", path=Path("/data/a:b.json")), "file:/data/a:b.json"),
] + [(f"torchvision:{name}", DetectorSpec("torchvision", name=name), f"torchvision:{name}") for name in TORCHVISION_MODELS]


@pytest.mark.parametrize("text, spec, canonical", VALID, ids=[row[0] for row in VALID])
def test_valid_specs_parse_and_round_trip(text: str, spec: DetectorSpec, canonical: str) -> None:
    parsed = DetectorSpec.parse(text)
    assert parsed == spec
    assert str(parsed) == canonical
    assert DetectorSpec.parse(str(parsed)) == parsed
    assert parsed.needs_data == (parsed.kind in ("gt", "sim"))
    assert parsed.real == (parsed.kind in ("nanodet", "movenet", "torchvision"))


INVALID = [
    ("", "unknown detector ''"),
    ("magic", "unknown detector 'magic'; use builtin, nanodet, movenet, torchvision:NAME, file:PATH, gt or sim"),
    ("Builtin", "unknown detector 'Builtin'"),
    ("simx", "unknown detector 'simx'"),
    (" gt", "unknown detector ' gt'"),
    ("builtin:x", "builtin takes no argument"),
    ("nanodet:fast", "nanodet takes no argument"),
    ("gt:", "gt takes no argument"),
    ("file:", "file:PATH needs a path"),
    ("file", "file:PATH needs a path"),
    ("torchvision", "unknown torchvision detector ''; choose one of: " + ", ".join(TORCHVISION_MODELS)),
    ("torchvision:yolo", "unknown torchvision detector 'yolo'; choose one of: fasterrcnn_resnet50_fpn_v2"),
    ("sim:x", "integer seed, got 'x'"),
    ("sim:1.5", "integer seed, got '1.5'"),
    ("sim:-1", "non-negative integer seed, got -1"),
    ("sim:1:x", r"truncation rate in \[0, 1\], got 'x'"),
    ("sim:1:1.5", r"truncation rate in \[0, 1\], got 1.5"),
    ("sim:1:-0.1", r"truncation rate in \[0, 1\], got -0.1"),
    ("sim:1:nan", r"truncation rate in \[0, 1\], got nan"),
    ("sim:1:inf", r"truncation rate in \[0, 1\], got inf"),
    ("sim:1:0.5:2", r"truncation rate in \[0, 1\], got '0.5:2'"),
]


@pytest.mark.parametrize("text, message", INVALID, ids=[row[0] or "empty" for row in INVALID])
def test_invalid_specs_name_the_problem_in_one_line(text: str, message: str) -> None:
    with pytest.raises(HumanParseError, match=message) as raised:
        DetectorSpec.parse(text)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"kind": "yolo"}, "unknown detector kind 'yolo'"),
        ({"kind": "gt", "seed": 3}, "a gt detector takes no seed"),
        ({"kind": "builtin", "name": "fcos_resnet50_fpn", "path": Path("a.json")}, "a builtin detector takes no name or path"),
        ({"kind": "file", "path": Path("a.json"), "noise": replace(DetectionNoise(), truncation_rate=0.5)}, "a file detector takes no noise"),
        ({"kind": "file"}, "needs a path"),
        ({"kind": "sim", "noise": replace(DetectionNoise(), jitter=0.0)}, "truncation rate of its noise only"),
    ],
)
def test_specs_are_checked_on_construction(fields: dict, message: str) -> None:
    with pytest.raises(HumanParseError, match=message):
        DetectorSpec(**fields)


def test_specs_build_their_detectors(tmp_path) -> None:
    root = write_image_dataset(tmp_path / "d", 1, seed=4, size=(32, 32))
    coco = tmp_path / "dets.json"
    coco.write_text(json.dumps([]))
    mot = tmp_path / "det.txt"
    mot.write_text("")
    assert DetectorSpec.parse("builtin").build(data_root=root) is None
    nanodet = DetectorSpec.parse("nanodet").build(threshold=0.4, max_people=3, nms_iou=0.5)
    assert isinstance(nanodet, NanoDet) and (nanodet.threshold, nanodet.max_people, nanodet.nms_iou) == (0.4, 3, 0.5)
    movenet = DetectorSpec.parse("movenet").build(threshold=0.2, max_people=2, nms_iou=0.6)
    assert isinstance(movenet, MoveNetMultiPose) and (movenet.threshold, movenet.max_people, movenet.nms_iou) == (0.2, 2, 0.6)
    assert isinstance(DetectorSpec.parse("gt").build(data_root=root), GroundTruthDetector)
    assert isinstance(DetectorSpec.parse("sim:5").build(data_root=root), SimulatedDetector)
    assert isinstance(DetectorSpec.parse(f"file:{coco}").build(), CocoResultsDetector)
    assert isinstance(DetectorSpec.parse(f"file:{mot}").build(), MotDetector)
    for text, message in (("gt", "annotated data set"), ("sim", "annotated data set"), ("file:/nope.json", "does not exist")):
        with pytest.raises(HumanParseError, match=message):
            DetectorSpec.parse(text).build()


def test_sim_spec_sets_the_truncation_rate(tmp_path) -> None:
    root = write_image_dataset(tmp_path / "d", 1, seed=4, size=(32, 32))
    default = DetectorSpec.parse("sim:5").build(data_root=root)
    heavy = DetectorSpec.parse("sim:5:0.75").build(data_root=root)
    assert isinstance(default, SimulatedDetector) and isinstance(heavy, SimulatedDetector)
    assert default.noise == DetectionNoise() and heavy.seed == 5
    assert heavy.noise == replace(DetectionNoise(), truncation_rate=0.75)
    assert DetectorSpec.parse("sim::1").build(data_root=root).noise.truncation_rate == 1.0


def test_torchvision_spec_builds_with_the_given_settings() -> None:
    det = DetectorSpec.parse("torchvision:fcos_resnet50_fpn").build(threshold=0.4, max_people=3, weights=None)
    assert isinstance(det, TorchvisionDetector)
    assert det.threshold == 0.4 and det.max_people == 3
