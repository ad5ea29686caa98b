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
    # Parsing R-CNN's convention: the void pixel is person 2's, in none of their parts, and
    # void in their parsing (which AP^p's confusion matrix skips).
    assert [int(m.sum()) for _, m in person_instances] == [4, 3]
    assert parsings[1].tolist() == [[0, 0, 0, 0], [3, 255, 0, 1]]


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


def test_eval_refuses_another_label_set_and_detections_of_other_images(tmp_path, data, eager_checkpoint) -> None:
    import shutil

    cihp_labelled = tmp_path / "cihp"
    shutil.copytree(data, cihp_labelled)
    meta = json.loads((cihp_labelled / "meta.json").read_text())
    (cihp_labelled / "meta.json").write_text(json.dumps({**meta, "label_set": "cihp"}))
    wrong = CliRunner().invoke(main, ["eval", "--data", str(cihp_labelled), "--checkpoint", str(eager_checkpoint), "--detector", "gt", "--quiet"])
    assert wrong.exit_code == 1 and "labelled with 'cihp'" in wrong.output and "Traceback" not in wrong.output

    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"image_id": "not_in_this_split", "bbox": [1, 1, 20, 20], "score": 0.9, "category_id": 1}]))
    unknown = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(eager_checkpoint), "--detector", f"file:{other}", "--quiet"])
    assert unknown.exit_code == 1 and "unknown images" in unknown.output and "not_in_this_split" in unknown.output


def test_an_unwritable_report_destination_fails_before_the_evaluation(tmp_path, data, eager_checkpoint) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # (root, as CI runs, writes through permissions: a file in the way and a read-only file system instead)
    for flag, target in (("--out", blocker / "r.json"), ("--heatmap", blocker / "ap.png"), ("--out", tmp_path), ("--out", "/proc/humanparse-r.json")):
        result = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(eager_checkpoint), "--detector", "gt", flag, str(target), "--quiet"])
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert "part AP^r" not in result.output, target  # refused before evaluating


def test_void_pixels_of_a_person_count_for_their_mask_and_not_against_their_parsing() -> None:
    from humanparse.metrics import instance_ap, parsing_ap

    parts = np.array([[1, 1, 2, 2], [255, 255, 2, 2], [0, 0, 0, 0]])
    persons = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]])
    _, person_instances, parsings = ground_truth(parts, persons)
    predicted = np.where(persons == 1, np.where(parts == 255, 2, parts), 0)  # void guessed as torso
    # AP^p: the void pixels are skipped, so the parsing is perfect at every threshold.
    assert parsing_ap([([(predicted, 0.9)], parsings)], 7).ap == pytest.approx((1.0,) * 9)
    # person AP^r: the whole person, void included, is the mask to find (IoU 1, not 6/8).
    found = instance_ap([([(1, persons == 1, 0.9)], person_instances)])
    assert found.per_class[1] == pytest.approx((1.0,) * 9)
