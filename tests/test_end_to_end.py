"""The whole pipeline through the command line: synthetic data → semantic stage → joint
stage → evaluation report with every field; and the README's demo on the shipped model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import pytest
from click.testing import CliRunner

from humanparse.cli import main
from humanparse.io.mots import read_mots

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


@pytest.mark.slow
def test_the_readme_demo_parses_the_whole_real_clip_with_the_default_parser(tmp_path) -> None:
    """README command 1 as a user runs it: a new process, the default (bodypix) parser,
    the real demo clip; the walkers keep their ids, with parts and keypoints."""
    demo = Path(__file__).resolve().parents[1] / "examples" / "pedestrians.mp4"
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "humanparse", "video", str(demo), "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    with av.open(str(demo)) as source:
        frames = source.streams.video[0].frames
    tracks = json.loads((out / "tracks.json").read_text())
    assert tracks["complete"] is True and tracks["frames_written"] == len(tracks["frames"]) == frames
    with av.open(str(out / "overlay.mp4")) as overlay:
        assert sum(1 for _ in overlay.decode(video=0)) == frames
    summary = json.loads((out / "summary.json").read_text())
    long_tracks = [t for t in summary["tracks"] if t["frames"] >= frames // 3]
    assert len(long_tracks) >= 4  # the walkers keep their ids through the clip
    assert all({"head", "torso", "upper-legs", "lower-legs"} <= set(t["parts"]) for t in long_tracks)
    first = tracks["frames"][0]["tracks"]
    assert first and all(person["num_keypoints"] >= 8 for person in first)
    objects = read_mots(out / "tracks.mots.txt")
    assert {o.track_id for o in objects} == {t["id"] for t in summary["tracks"]}
