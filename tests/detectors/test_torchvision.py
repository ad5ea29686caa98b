"""torchvision's COCO detectors, keeping persons."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch

from humanparse.detectors import TorchvisionDetector
from humanparse.detectors.torchvision import person_detections
from humanparse.errors import HumanParseError
from humanparse.structures import Detections


def test_person_detections_keep_persons_above_threshold() -> None:
    output = {
        "boxes": torch.tensor([[0.0, 0, 5, 5], [1, 1, 6, 6], [2, 2, 7, 7], [3, 3, 8, 8]]),
        "labels": torch.tensor([1, 3, 1, 1]),
        "scores": torch.tensor([0.6, 0.99, 0.3, 0.8]),
    }
    det = person_detections(output, threshold=0.5, max_people=None)
    assert det.scores.tolist() == pytest.approx([0.8, 0.6])
    assert det.boxes.tolist() == [[3, 3, 8, 8], [0, 0, 5, 5]]
    assert len(person_detections(output, threshold=0.0, max_people=1)) == 1


@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2"])
def test_torchvision_adapter_with_random_weights(name: str) -> None:
    torch.manual_seed(0)
    det = TorchvisionDetector(name, weights=None, threshold=0.0, max_people=5, min_size=96, max_size=128)
    out = det(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    assert isinstance(out, Detections) and len(out) <= 5
    assert bool(np.all(np.diff(out.scores) <= 0))


def test_torchvision_weights_offline_or_missing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(HumanParseError, match="cannot load COCO weights.*checkpoints") as raised:
        TorchvisionDetector("fcos_resnet50_fpn", weights="default", min_size=96, max_size=128)
    message = str(raised.value)
    assert message.endswith(f"put it in {torch.hub.get_dir()}/checkpoints") and "--" not in message
    with pytest.raises(HumanParseError, match="do not exist"):
        TorchvisionDetector("fcos_resnet50_fpn", weights=tmp_path / "nope.pth")
    with pytest.raises(HumanParseError, match="unknown torchvision detector"):
        TorchvisionDetector("yolo")


def test_detector_weights_holding_code_or_other_data_are_one_line_errors(tmp_path) -> None:
    import pickle

    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "code-ran"), "w"))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"backbone.weight": Exploit()}))  # a traceback before
    with pytest.raises(HumanParseError, match="cannot read detector weights .*evil.pth: it holds Python objects"):
        TorchvisionDetector("fcos_resnet50_fpn", weights=evil, min_size=96, max_size=128)
    assert not (tmp_path / "code-ran").exists()
    other = tmp_path / "other.pth"
    torch.save([1, 2, 3], other)
    with pytest.raises(HumanParseError, match="other.pth: not weights for fcos_resnet50_fpn"):
        TorchvisionDetector("fcos_resnet50_fpn", weights=other, min_size=96, max_size=128)
