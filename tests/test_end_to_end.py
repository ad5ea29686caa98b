"""The whole pipeline through the command line: synthetic data → semantic stage → joint
stage → evaluation report with every field."""

from __future__ import annotations

import json

from click.testing import CliRunner

from humanparse.cli import main

REPORT_FIELDS = {
    "images", "part_ap_r", "part_ap_r_vol", "part_ap_r_per_class", "person_ap_r", "person_ap_r_vol",
    "ap_p_50", "ap_p_vol", "pcp_50", "miou", "class_iou", "box_ap",
}


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_synth_train_semantic_then_joint_then_eval(tmp_path) -> None:
    train_data, test_data = tmp_path / "train", tmp_path / "test"
    run("synth", "images", str(train_data), "--num", "4", "--seed", "1", "--size", "64x48", "--quiet")
    run("synth", "images", str(test_data), "--num", "3", "--seed", "2", "--size", "64x48", "--split", "test", "--quiet")
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'[model]\nbackbone = "resnet18"\noutput_stride = 16\n[model.crf]\niterations = 1\n'
        f'[data]\nroot = "{train_data}"\n[optim]\nlr = 0.001\niterations = 2\n'
    )
    run("train", "--config", str(config), "--set", f"out={tmp_path / 'semantic'}", "--quiet")
    run("train", "--config", str(config), "--set", f"out={tmp_path / 'joint'}", "--set", "stage=joint",
        "--set", f"init={tmp_path / 'semantic' / 'final.pt'}", "--set", "data.detector=builtin", "--quiet")
    output = run("eval", "--data", str(test_data), "--split", "test", "--checkpoint", str(tmp_path / "joint" / "final.pt"),
                 "--det-threshold", "0", "--out", str(tmp_path / "report.json"), "--quiet")
    assert "part AP^r" in output and "box AP" in output
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) == REPORT_FIELDS
    assert report["images"] == 3
    assert set(report["part_ap_r"]) == set(report["person_ap_r"]) == {f"0.{k}" for k in range(1, 10)}
    assert all(v is None or 0 <= v <= 100 for v in report["part_ap_r"].values())
    assert set(report["box_ap"]) == {"ap", "ap50", "ap75"}  # the built-in detector gave the boxes
    assert set(report["class_iou"]) == {"background", "head", "torso", "upper-arms", "lower-arms", "upper-legs", "lower-legs"}
    assert 0 <= report["miou"] <= 100
