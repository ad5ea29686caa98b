"""Evaluation of a model on a data set: every metric reported, files written."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from humanparse.cli import main
from humanparse.config import CRFConfig, ModelConfig
from humanparse.data.synth import write_image_dataset
from humanparse.detectors import GroundTruthDetector
from humanparse.evaluate import evaluate, ground_truth, report_dict
from humanparse.metrics import BoxAP
from humanparse.modeling.checkpoints import save_checkpoint
from humanparse.modeling.holistic import build_model
from humanparse.predictor import Predictor


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_image_dataset(tmp_path_factory.mktemp("eval") / "d", 3, seed=6, size=(64, 48), split="val")


def test_ground_truth_instances_from_the_maps() -> None:
    parts = np.array([[1, 1, 2, 0], [3, 255, 2, 1]])
    persons = np.array([[1, 1, 1, 0], [2, 2, 1, 2]])
    part_instances, person_instances, parsings = ground_truth(parts, persons)
    assert sorted((c, int(m.sum())) for c, m in part_instances) == [(1, 1), (1, 2), (2, 2), (3, 1)]
    assert [int(m.sum()) for _, m in person_instances] == [4, 2]  # the ignored pixel belongs to no one
    assert parsings[1].tolist() == [[0, 0, 0, 0], [3, 0, 0, 1]]


def test_report_has_every_metric(data) -> None:
    model = build_model(ModelConfig(backbone="resnet18", output_stride=16, crf=CRFConfig(iterations=1)))
    with_gt = evaluate(Predictor(model, "cpu", GroundTruthDetector(data)), data, "val")
    builtin = evaluate(Predictor(model, "cpu"), data, "val")
    assert with_gt.images == builtin.images == 3
    # Box AP scores the persons' boxes, whichever detector found them.
    assert isinstance(with_gt.boxes, BoxAP) and isinstance(builtin.boxes, BoxAP)
    for report in (with_gt, builtin):
        d = report_dict(report, model.labels)
        json.dumps(d)
        assert set(d["part_ap_r"]) == {f"{t / 10:.1f}" for t in range(1, 10)}
        for key in ("part_ap_r_vol", "person_ap_r_vol", "ap_p_50", "ap_p_vol", "pcp_50", "miou"):
            assert d[key] is None or 0 <= d[key] <= 100, key


def test_cli_writes_the_report_and_the_heatmap(tmp_path, data) -> None:
    ckpt = save_checkpoint(build_model(ModelConfig(backbone="resnet18", output_stride=16, crf=CRFConfig(iterations=1))), tmp_path / "m.pt")
    result = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(ckpt), "--detector", "gt", "--out", str(tmp_path / "r.json"), "--heatmap", str(tmp_path / "ap.png"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == 3 and set(report["box_ap"]) == {"ap", "ap50", "ap75"}
    assert cv2.imread(str(tmp_path / "ap.png")) is not None
    missing = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(ckpt), "--split", "test", "--quiet"])
    assert missing.exit_code == 1 and "missing split file" in missing.output
