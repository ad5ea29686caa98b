"""The command line: one line of error, never a traceback."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from humanparse import __version__
from humanparse.cli import main
from humanparse.config import CRFConfig, ModelConfig
from humanparse.modeling.checkpoints import save_checkpoint
from humanparse.modeling.holistic import build_model


def test_info_prints_versions_device_and_the_default_parser_with_its_licenses() -> None:
    result = CliRunner().invoke(main, ["info", "--device", "cpu"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert __version__ in result.output and "torch" in result.output and "cpu" in result.output
    assert "bodypix (the default)" in result.output and "BodyPix" in result.output and "PoseNet keypoints" in result.output
    assert "licenses" in result.output and "Apache-2.0" in result.output


def test_info_describes_the_earlier_pose_guided_parser_by_name() -> None:
    result = CliRunner().invoke(main, ["info", "--device", "cpu", "--checkpoint", "pose-guided"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "pose-guided:" in result.output and "MoveNet Thunder" in result.output and "BlazePose keypoints and mask" in result.output


def test_info_describes_the_synthetic_model_by_name() -> None:
    result = CliRunner().invoke(main, ["info", "--checkpoint", "synthetic"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "default.pt (synthetic" in result.output and "bodypix (output stride 16)" in result.output and "Apache-2.0" in result.output


def test_info_describes_a_checkpoint(tmp_path) -> None:
    path = save_checkpoint(build_model(ModelConfig(crf=CRFConfig(iterations=3))), tmp_path / "m.pt")
    result = CliRunner().invoke(main, ["info", "--checkpoint", str(path)])
    assert result.exit_code == 0, result.output
    assert "resnet18" in result.output and "head, torso" in result.output and "3 mean-field" in result.output


def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("nonsense")
    for args in (["info", "--checkpoint", str(bad)], ["info", "--checkpoint", str(tmp_path / "nope.pt")], ["info", "--device", "cuda:7"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
        assert "Traceback" not in result.output


def test_an_option_the_model_does_not_read_is_a_usage_error_before_anything_runs(tmp_path) -> None:
    photo = Path(__file__).resolve().parent / "fixtures" / "photos" / "camera.jpg"
    for args, named in (
        (["images", str(photo), "--checkpoint", "pose-guided", "--scale", "0.5"], "input_scale (--scale): not used by PoseGuidedParser"),
        (["images", str(photo), "--detector", "file:" + str(photo), "--nms-iou", "0.5"], "--nms-iou"),
        (["video", "examples/pedestrians.mp4", "--detect-every", "3"], "--detect-every"),
    ):
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"])
        assert result.exit_code == 2 and named in result.output and "Traceback" not in result.output, result.output
        assert not (tmp_path / "out").exists()


def test_export_writes_a_half_precision_model_that_info_describes(tmp_path) -> None:
    import json

    import torch

    from humanparse.config import CRFConfig, ModelConfig
    from humanparse.modeling.checkpoints import load_checkpoint, save_checkpoint
    from humanparse.modeling.holistic import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", output_stride=16, crf=CRFConfig(iterations=1))).eval()
    full = save_checkpoint(model, tmp_path / "full.pt", extra={"optimiser": {"state": torch.zeros(1000, 100)}})
    (tmp_path / "about.json").write_text(json.dumps({"trained_on": "synthetic world, 2000 images", "recipe": "see docs"}))
    result = CliRunner().invoke(main, ["export", str(full), str(tmp_path / "small.pt"), "--half", "--about", str(tmp_path / "about.json")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "small.pt").stat().st_size < 0.6 * full.stat().st_size
    small = load_checkpoint(tmp_path / "small.pt").eval()
    assert all(p.dtype == torch.float32 for p in small.parameters())
    image = torch.rand(1, 3, 64, 48) * 255
    with torch.no_grad():
        a, b = model.segmenter(image).logits, small.segmenter(image).logits
    assert (a - b).abs().max() < 1e-2 * a.abs().max()
    info = CliRunner().invoke(main, ["info", "--checkpoint", str(tmp_path / "small.pt")])
    assert "synthetic world, 2000 images" in info.output and "see docs" in info.output
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    refused = CliRunner().invoke(main, ["export", str(full), str(tmp_path / "x.pt"), "--about", str(bad)])
    assert refused.exit_code == 1 and "JSON object" in refused.output
    # A user's file at the target was replaced without a word, and so was the source itself.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"a user's photo")
    kept = CliRunner().invoke(main, ["export", str(full), str(photo)])
    assert kept.exit_code == 2 and "already exists; choose another file or pass --overwrite" in kept.output and photo.read_bytes() == b"a user's photo"
    itself = CliRunner().invoke(main, ["export", str(full), str(full), "--overwrite"])
    assert itself.exit_code == 2 and "is the checkpoint being exported" in itself.output
    assert CliRunner().invoke(main, ["export", str(full), str(tmp_path / "small.pt"), "--overwrite"]).exit_code == 0


def test_images_on_real_photos_with_nanodet_find_each_person_with_keypoints(tmp_path) -> None:
    """The issue's user run: persons on real photos, each with 17 keypoints on the joints,
    in the JSON (COCO's flat keypoints) and on the overlay."""
    import json
    from pathlib import Path

    import numpy as np

    from humanparse.io.images import read_image

    photos = Path(__file__).resolve().parent / "fixtures" / "photos"
    names = ["astronaut.jpg", "grace_hopper.jpg", "camera.jpg"]
    result = CliRunner().invoke(main, ["images", *(str(photos / n) for n in names), "--checkpoint", "synthetic", "--detector", "nanodet", "--out", str(tmp_path), "--device", "cpu", "--save", "json,overlay"])
    assert result.exit_code == 0, result.output
    # One person each, and on grace_hopper a low-scored NanoDet box on the flag at the left
    # edge that this synthetic-world model gives pixels to. The square crop of that thin box
    # takes in Grace: the joints MoveNet finds there are hers, and are dropped.
    assert "parsed 3 images (4 persons)" in result.output
    flag = [p for p in json.loads((tmp_path / "json" / "grace_hopper.json").read_text())["persons"] if p["score"] < 0.1]
    assert len(flag) == 1 and flag[0]["num_keypoints"] == 0
    for name in names:
        stem = Path(name).stem
        record = json.loads((tmp_path / "json" / f"{stem}.json").read_text())
        person = max(record["persons"], key=lambda p: p["score"])
        assert person["score"] > 0.25 and all(p["score"] < 0.1 for p in record["persons"] if p is not person)
        keypoints = np.array(person["keypoints"], np.float32).reshape(17, 3)
        assert person["num_keypoints"] == int((keypoints[:, 2] == 2).sum()) >= 5
        x1, y1, x2, y2 = person["box"]
        seen = keypoints[keypoints[:, 2] == 2]
        assert ((seen[:, 0] >= x1 - 10) & (seen[:, 0] <= x2 + 10) & (seen[:, 1] >= y1 - 10) & (seen[:, 1] <= y2 + 10)).all()
        overlay = read_image(tmp_path / "overlay" / f"{stem}.jpg")
        assert overlay.shape == read_image(photos / name).shape


def test_the_pose_stage_is_off_for_the_synthetic_detectors_and_can_be_chosen(tmp_path) -> None:
    from pathlib import Path

    photo = Path(__file__).resolve().parent / "fixtures" / "photos" / "astronaut.jpg"
    result = CliRunner().invoke(main, ["images", str(photo), "--checkpoint", "synthetic", "--out", str(tmp_path / "a"), "--device", "cpu", "--save", "json"])
    assert result.exit_code == 0, result.output
    assert '"keypoints"' not in (tmp_path / "a" / "json" / "astronaut.json").read_text()
    result = CliRunner().invoke(main, ["images", str(photo), "--checkpoint", "synthetic", "--detector", "movenet", "--pose", "none", "--out", str(tmp_path / "b"), "--device", "cpu", "--save", "json"])
    assert result.exit_code == 0, result.output
    assert '"keypoints"' not in (tmp_path / "b" / "json" / "astronaut.json").read_text()


def test_images_by_default_write_parts_and_keypoints_of_real_people(tmp_path) -> None:
    import json
    from pathlib import Path

    photo = Path(__file__).resolve().parent / "fixtures" / "photos" / "camera.jpg"
    result = CliRunner().invoke(main, ["images", str(photo), "--out", str(tmp_path), "--device", "cpu", "--save", "json,parts"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "json" / "camera.json").read_text())
    [person] = record["persons"]
    # PoseNet's own keypoints: the cameraman's face, shoulders and arms (his legs are out of
    # the frame or behind the camera).
    assert person["num_keypoints"] >= 5
    assert {p["name"] for p in record["parts"]} >= {"head", "torso"}
    no_pose = CliRunner().invoke(main, ["images", str(photo), "--pose", "none", "--checkpoint", "pose-guided", "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert no_pose.exit_code == 2 and "--pose" in no_pose.output and "Traceback" not in no_pose.output


def test_a_photo_over_max_side_is_parsed_smaller_and_written_at_its_own_size(tmp_path) -> None:
    import json
    from pathlib import Path

    import cv2

    photo = Path(__file__).resolve().parent / "fixtures" / "photos" / "camera.jpg"
    height, width = cv2.imread(str(photo)).shape[:2]
    result = CliRunner().invoke(main, ["images", str(photo), "--out", str(tmp_path), "--device", "cpu", "--save", "json,parts", "--max-side", "256"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "json" / "camera.json").read_text())
    assert (record["width"], record["height"]) == (width, height) and max(width, height) > 256
    assert cv2.imread(str(tmp_path / "parts" / "camera.png")).shape[:2] == (height, width)
    [person] = record["persons"]
    assert {p["name"] for p in record["parts"]} >= {"head", "torso"}


def test_synth_sizes_whose_rendering_would_not_fit_in_3_gb_are_refused(tmp_path) -> None:
    for command in (["synth", "images", str(tmp_path / "d"), "--num", "1"], ["synth", "video", str(tmp_path / "v.mp4"), "--frames", "1"]):
        result = CliRunner().invoke(main, [*command, "--size", "8192x8192"])  # peaked at 6.7 GB
        assert result.exit_code == 2 and "width and height must be 8..4096" in result.output, result.output
    assert not list(tmp_path.iterdir())


def test_ctrl_c_while_a_command_is_still_importing_exits_130_without_a_traceback() -> None:
    """SIGINT while the train command imports torch. The moment is read off the child, not a
    clock: once libtorch is mapped into it, torch's import has a second of Python left to run
    (a fixed delay was either still in the interpreter's own start-up, which no program can
    guard, on a loaded machine, or past the import on an idle one)."""
    import signal
    import subprocess
    import sys
    import time

    config = Path(__file__).resolve().parents[1] / "configs" / "synth-small.toml"
    child = subprocess.Popen([sys.executable, "-m", "humanparse", "train", "--config", str(config)], stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{child.pid}/maps")
    deadline = time.monotonic() + 60
    while "libtorch_cpu" not in maps.read_text() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert child.poll() is None, "the command ended before it imported torch"
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted"


def test_images_says_one_image_and_one_person(tmp_path) -> None:
    photo = Path(__file__).resolve().parent / "fixtures" / "photos" / "camera.jpg"
    result = CliRunner().invoke(main, ["images", str(photo), "--out", str(tmp_path), "--device", "cpu", "--save", "json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"parsed 1 image (1 person) into {tmp_path}" in result.output


def test_the_video_table_keeps_each_track_on_one_line_at_80_columns(monkeypatch, capsys) -> None:
    from humanparse.cli import _report_video
    from humanparse.jobs.video import VideoSummary
    from humanparse.labels import PASCAL_PERSON_PART
    from humanparse.tracking import TrackSummary

    monkeypatch.setenv("COLUMNS", "80")
    tracks = (TrackSummary(1, 0, 189, 167, 830.4, (1, 2, 3, 4, 5, 6)), TrackSummary(2, 10, 30, 21, 91.0, (1, 2)))
    _report_video(VideoSummary(200, tracks, None, False, {"decode": 0.1, "crf": 10.0, "total": 30.0}), "clip.mp4", "runs/clip", PASCAL_PERSON_PART)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    assert len(rows) == 2 and "all 6" in rows[0] and "head, torso" in rows[1]


def test_convert_reads_a_non_utf8_ids_file_as_one_line(tmp_path) -> None:
    (tmp_path / "ann").mkdir()
    (tmp_path / "img").mkdir()
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"2008_000001\n\xff\xfe\n")
    result = CliRunner().invoke(main, ["data", "convert", "pascal-part", str(tmp_path / "out"), "--annotations", str(tmp_path / "ann"),
                                       "--images", str(tmp_path / "img"), "--ids", str(ids), "--quiet"])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output


def test_sigterm_during_eval_stops_it_as_ctrl_c_does(tmp_path) -> None:
    """Exit 130 with one line, no report; the program sends itself SIGTERM after two images."""
    import subprocess
    import sys

    from humanparse.data.synth import write_image_dataset

    write_image_dataset(tmp_path / "data", 4, 0, (96, 96), split="val")
    script = f"""
import os, signal, sys
import humanparse.evaluate as evaluation
from humanparse.cli import run
original = evaluation.evaluate
def evaluate(*args, progress=None, **kwargs):
    def tick(done, total):
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        progress(done, total)
    return original(*args, progress=tick, **kwargs)
evaluation.evaluate = evaluate
sys.argv = ["humanparse", "eval", "--data", {str(tmp_path / "data")!r}, "--checkpoint", "synthetic", "--out", {str(tmp_path / "r.json")!r}, "--quiet"]
run()
"""
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert child.returncode == 130 and child.stderr.strip() == "interrupted", child.stderr
    assert not (tmp_path / "r.json").exists()


def test_once_a_command_has_finished_a_stop_signal_no_longer_changes_its_exit_status(tmp_path) -> None:
    """SIGTERM during the interpreter's shutdown, after "parsed 24 images", killed the
    process with -15: the command's files were whole, its status was lost."""
    import subprocess
    import sys

    script = (
        "import signal, sys\n"
        "from humanparse import cli\n"
        "sys.argv = ['humanparse', '--version']\n"
        "try:\n    cli.run()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print(code, [signal.getsignal(s) is signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "0 [True, True, True]", done.stdout + done.stderr
