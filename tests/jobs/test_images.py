"""`humanparse images`: files written and read back, bad inputs, sharding, and scoring the
written results with `humanparse eval --predictions`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from humanparse.cli import main
from humanparse.data.cihp import read_split
from humanparse.data.synth import write_image_dataset
from humanparse.io import rle
from humanparse.jobs.images import output_names, shard


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = write_image_dataset(tmp_path_factory.mktemp("img") / "d", 4, seed=3, size=(64, 48), split="val")
    rows = []
    for sample_id in read_split(root, "val"):
        persons = np.array(Image.open(root / "Human_ids" / f"{sample_id}.png"))
        for pid in np.unique(persons[persons > 0]):
            ys, xs = np.nonzero(persons == pid)
            rows.append({"image_id": sample_id, "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)], "score": 0.9, "category_id": 1})
    (root / "dets.json").write_text(json.dumps(rows))
    return root


def images(*args: str, env=None):
    return CliRunner().invoke(main, ["images", *args, "--quiet"], env=env)


def test_every_output_reads_back_consistently(tmp_path, data, eager_checkpoint) -> None:
    result = images(str(data / "images"), "--out", str(tmp_path), "--checkpoint", str(eager_checkpoint), "--detector", f"file:{data / 'dets.json'}")
    assert result.exit_code == 0, result.output
    assert "parsed 4 images" in result.output
    for sample_id in read_split(data, "val"):
        record = json.loads((tmp_path / "json" / f"{sample_id}.json").read_text())
        assert (record["width"], record["height"]) == (64, 48) and record["image"] == sample_id
        parts = np.array(Image.open(tmp_path / "parts" / f"{sample_id}.png"))
        persons = np.array(Image.open(tmp_path / "persons" / f"{sample_id}.png"))
        assert len(record["persons"]) >= 1
        for person in record["persons"]:
            assert np.array_equal(rle.decode(person["mask"]), persons == person["id"])
            assert len(person["box"]) == 4 and 0 <= person["score"] <= 1
        rebuilt = np.zeros_like(parts)
        for part in record["parts"]:
            mask = rle.decode(part["mask"])
            assert not (rebuilt[mask] > 0).any()  # part instances never overlap
            rebuilt[mask] = part["part"]
            assert part["name"] == record["labels"][part["part"]]
            assert (persons[mask] == part["person"]).all()
        assert np.array_equal(rebuilt, parts)
        assert np.array_equal(np.array(Image.open(tmp_path / "cihp" / "global_parsing" / f"{sample_id}.png")), parts)
        assert cv2.imread(str(tmp_path / "overlay" / f"{sample_id}.jpg")).shape == (48, 64, 3)


@pytest.mark.parametrize("detector", ["file", "builtin"])
def test_scoring_written_results_equals_scoring_the_model_live(tmp_path, data, eager_checkpoint, detector) -> None:
    detector = f"file:{data / 'dets.json'}" if detector == "file" else detector
    assert images(str(data / "images"), "--out", str(tmp_path / "pred"), "--checkpoint", str(eager_checkpoint), "--detector", detector, "--save", "json").exit_code == 0
    assert sorted(p.name for p in tmp_path.joinpath("pred").iterdir()) == ["json"]
    live = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(eager_checkpoint), "--detector", detector, "--out", str(tmp_path / "live.json"), "--quiet"])
    files = CliRunner().invoke(main, ["eval", "--data", str(data), "--predictions", str(tmp_path / "pred"), "--out", str(tmp_path / "files.json"), "--quiet"])
    assert live.exit_code == 0 and files.exit_code == 0, live.output + files.output
    a, b = json.loads((tmp_path / "live.json").read_text()), json.loads((tmp_path / "files.json").read_text())
    # One inference path: every field of the report agrees, box AP included.
    assert a == b
    assert set(b["box_ap"]) == {"ap", "ap50", "ap75"}
    if detector != "builtin":
        # The persons' boxes are ground-truth boxes; only persons the CRF gave no pixel are missing.
        assert 50 < b["box_ap"]["ap"] <= 100
    (tmp_path / "pred" / "json" / "000001.json").unlink()
    missing = CliRunner().invoke(main, ["eval", "--data", str(data), "--predictions", str(tmp_path / "pred"), "--quiet"])
    assert missing.exit_code == 1 and "has no result for 1 of the 4 images" in missing.output


def test_unreadable_images_are_skipped_and_reported(tmp_path, data, eager_checkpoint) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(inputs / "colour.png"), rgb)
    cv2.imwrite(str(inputs / "grey.png"), rgb[..., 0])
    cv2.imwrite(str(inputs / "alpha.png"), np.concatenate([rgb, np.full((20, 30, 1), 255, np.uint8)], 2))
    cv2.imwrite(str(inputs / "deep.png"), rgb.astype(np.uint16) * 257)
    cv2.imwrite(str(inputs / "tiny.png"), rgb[:1, :1])
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = images(str(inputs), "--out", str(tmp_path / "out"), "--checkpoint", str(eager_checkpoint), "--save", "persons")
    assert result.exit_code == 1
    assert "broken.jpg" in result.output and "parsed 5 images" in result.output and "1 failed" in result.output
    assert "Traceback" not in result.output
    for name, shape in [("colour", (20, 30)), ("grey", (20, 30)), ("alpha", (20, 30)), ("deep", (20, 30)), ("tiny", (1, 1))]:
        assert np.array(Image.open(tmp_path / "out" / "persons" / f"{name}.png")).shape == shape


def test_bad_requests_are_one_line_errors(tmp_path, data, eager_checkpoint) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        ([str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o")], "no such file"),
        ([str(data / "images"), "--out", str(blocker / "sub")], "cannot write"),
        ([str(data / "images"), "--out", str(tmp_path / "o"), "--save", "parts,nope"], "unknown kind"),
        ([str(data / "images"), "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "none.pt")], "none.pt"),
    ]
    for args, message in cases:
        result = images(*args, "--checkpoint", str(eager_checkpoint)) if "--checkpoint" not in args else images(*args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_ranks_take_disjoint_shares(tmp_path, data, eager_checkpoint) -> None:
    assert shard(list(range(7)), 1, 3) == [1, 4]
    for rank in ("0", "1"):
        result = images(str(data / "images"), "--out", str(tmp_path), "--checkpoint", str(eager_checkpoint), "--save", "json", env={"RANK": rank, "WORLD_SIZE": "2"})
        assert result.exit_code == 0, result.output
        assert "parsed 2 images" in result.output
    assert len(list((tmp_path / "json").iterdir())) == 4


def test_output_names_keep_folders_and_separate_clashes(tmp_path) -> None:
    paths = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "b" / "y.jpg", tmp_path / "b" / "y.png"]
    assert output_names(paths) == ["a/x", "b/x", "b/y_jpg", "b/y_png"]
    assert output_names([tmp_path / "only.jpg"]) == ["only"]


def test_eval_at_the_speed_settings_scores_what_the_predictor_gives(tmp_path, data, eager_checkpoint) -> None:
    detector = f"file:{data / 'dets.json'}"
    assert images(str(data / "images"), "--out", str(tmp_path / "pred"), "--checkpoint", str(eager_checkpoint), "--detector", detector,
                  "--save", "json", "--scale", "0.5", "--crf-scale", "0.5").exit_code == 0
    files = CliRunner().invoke(main, ["eval", "--data", str(data), "--predictions", str(tmp_path / "pred"), "--out", str(tmp_path / "files.json"), "--quiet"])
    live = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(eager_checkpoint), "--detector", detector,
                                     "--scale", "0.5", "--crf-scale", "0.5", "--out", str(tmp_path / "live.json"), "--quiet"])
    assert live.exit_code == 0 and files.exit_code == 0, live.output + files.output
    a, b = json.loads((tmp_path / "live.json").read_text()), json.loads((tmp_path / "files.json").read_text())
    for key in ("part_ap_r_vol", "person_ap_r_vol", "miou", "ap_p_vol", "pcp_50", "box_ap"):
        assert a[key] == pytest.approx(b[key], abs=0.02), key


def test_file_detections_honour_max_people_and_the_threshold_and_boxes_outside_are_no_one(tmp_path, data, eager_checkpoint) -> None:
    sample_id = read_split(data, "val")[0]
    crowd = [{"image_id": sample_id, "bbox": [1 + k % 30, 1 + k % 20, 30, 24], "score": 0.31 + 0.6 * k / 300, "category_id": 1} for k in range(300)]
    outside = [{"image_id": sample_id, "bbox": [200, 200, 30, 30], "score": 1.0, "category_id": 1}]
    faint = [{"image_id": sample_id, "bbox": [2, 2, 40, 40], "score": 0.1, "category_id": 1}]
    for name, rows, options, expected in (("crowd", crowd, ["--max-people", "2"], 2), ("outside", outside + faint, [], 0)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(rows))
        out = tmp_path / name
        result = images(str(data / "images" / f"{sample_id}.jpg"), "--out", str(out), "--checkpoint", str(eager_checkpoint), "--detector", f"file:{path}", *options)
        assert result.exit_code == 0, result.output
        persons = json.loads((out / "json" / f"{sample_id}.json").read_text())["persons"]
        assert (1 <= len(persons) <= expected) if expected else not persons
        if expected == 0:
            assert not np.array(Image.open(out / "persons" / f"{sample_id}.png")).any()


def test_a_detections_file_for_other_images_is_refused_before_anything_is_written(tmp_path, data, eager_checkpoint) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"image_id": "street_0042", "bbox": [1, 1, 20, 20], "score": 0.9, "category_id": 1}]))
    result = images(str(data / "images"), "--out", str(tmp_path / "out"), "--checkpoint", str(eager_checkpoint), "--detector", f"file:{other}")
    assert result.exit_code == 1 and "unknown images" in result.output and "street_0042" in result.output
    assert not (tmp_path / "out").exists()


def test_a_write_failure_leaves_each_image_all_old_files_never_a_mix(tmp_path, data, eager_checkpoint) -> None:
    """A real write failure (the file-size limit, EFBIG, as a full disk gives ENOSPC) in
    the middle of an image's files: that image keeps every earlier file, none half-new."""
    import resource
    import subprocess
    import sys

    sample_id = read_split(data, "val")[0]
    image = str(data / "images" / f"{sample_id}.jpg")
    out = tmp_path / "out"
    first = images(image, "--out", str(out), "--checkpoint", str(eager_checkpoint), "--detector", f"file:{data / 'dets.json'}")
    assert first.exit_code == 0, first.output
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    sizes = sorted(len(b) for b in before.values())
    limit = sizes[len(sizes) // 2]  # the smaller files fit, the larger do not

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "humanparse", "images", image, "--out", str(out), "--checkpoint", str(eager_checkpoint), "--overwrite", "--quiet"]
    second = subprocess.run(command, preexec_fn=small_files, capture_output=True, text=True, timeout=300)  # its own detector: other results
    assert second.returncode == 1 and "cannot write the results" in second.stderr and "Traceback" not in second.stderr, second.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # all old, no temporaries


def test_results_already_there_need_overwrite_as_in_video(tmp_path, data, eager_checkpoint) -> None:
    args = [str(data / "images"), "--out", str(tmp_path), "--checkpoint", str(eager_checkpoint), "--save", "json"]
    assert images(*args).exit_code == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.json")}
    again = images(*args)
    assert again.exit_code == 1 and "--overwrite" in again.output and "Traceback" not in again.output
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.json")} == before
    assert images(*args, "--overwrite").exit_code == 0
    assert images(*args[:-1], "parts").exit_code == 0  # other kinds of files are not in the way


def test_damaged_and_oversized_files_give_one_line_each_and_nothing_from_the_decoders(tmp_path, eager_checkpoint) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    photo = Path(__file__).resolve().parents[1] / "fixtures" / "photos" / "grace_hopper.jpg"
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "cut.jpg").write_bytes(photo.read_bytes()[:20_000])  # libjpeg says "Premature end of JPEG file"
    Image.open(photo).save(inputs / "whole.tiff")
    tiff = (inputs / "whole.tiff").read_bytes()
    (inputs / "cut.tiff").write_bytes(tiff[: len(tiff) // 2])  # OpenCV logs TIFF warnings and errors
    Image.new("1", (12000, 9000)).save(inputs / "huge.png")
    done = subprocess.run([sys.executable, "-m", "humanparse", "images", str(inputs), "--out", str(tmp_path / "out"),
                           "--checkpoint", str(eager_checkpoint), "--save", "persons", "--quiet"],
                          capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    assert done.returncode == 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    # Nothing else: no "Premature end of JPEG file", no OpenCV log, no line wrapped at 80 columns.
    assert len(lines) == 4, lines
    assert sorted(line for line in lines if not line.startswith("parsed")) == [
        f"skipped {inputs / 'cut.jpg'}: cannot read the image (image file is truncated (5 bytes not processed))",
        f"skipped {inputs / 'cut.tiff'}: cannot read the image",
        f"skipped {inputs / 'huge.png'}: 12000x9000 is 108 megapixels, more than the 100 humanparse parses in bounded memory; scale it down first",
    ]
    summary = [line for line in lines if line.startswith("parsed")]
    assert len(summary) == 1 and summary[0].startswith("parsed 1 image ") and summary[0].endswith("3 failed")


def test_sigterm_stops_after_the_image_in_flight_with_every_image_whole(tmp_path, eager_checkpoint) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    inputs = tmp_path / "in"
    inputs.mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for k in range(400):
        cv2.imwrite(str(inputs / f"{k:03d}.png"), rgb)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "humanparse", "images", str(inputs), "--out", str(out), "--checkpoint", str(eager_checkpoint),
                                "--save", "persons,json", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and len(list((out / "json").glob("*.json"))) < 3:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    written = sorted(p.stem for p in (out / "json").glob("*.json"))
    assert 3 <= len(written) < 400 and written == [f"{k:03d}" for k in range(len(written))]
    assert sorted(p.stem for p in (out / "persons").glob("*.png")) == written  # all of an image's files, or none
    assert not [p for p in out.rglob(".*")]  # no temporary
    assert f"parsed {len(written)} images" in stdout


def test_a_second_run_into_the_same_folder_is_refused_naming_the_first(tmp_path, data, eager_checkpoint) -> None:
    """Two runs into one folder both exited 0, each replacing the other's files."""
    from humanparse.io.files import FolderLock

    out = tmp_path / "o"
    out.mkdir()
    with FolderLock(out, None, "images run"):
        second = images(str(data / "images"), "--out", str(out), "--checkpoint", str(eager_checkpoint))
    assert second.exit_code == 1 and "is in use by another images run; let it finish" in second.output
    assert list(out.iterdir()) == []  # nothing touched, no lock file left


def test_a_rerun_into_a_folder_inside_the_inputs_does_not_parse_its_own_outputs(tmp_path, data, eager_checkpoint) -> None:
    """The overlays of the first run were parsed as photos by the second, nesting deeper
    on every rerun."""
    import shutil

    photos = tmp_path / "in"
    photos.mkdir()
    shutil.copy(next((data / "images").iterdir()), photos / "p.jpg")
    for extra in ([], ["--overwrite"]):
        result = images(str(photos), "--out", str(photos / "out"), "--checkpoint", str(eager_checkpoint), *extra)
        assert result.exit_code == 0 and "parsed 1 image" in result.output, result.output
    assert not (photos / "out" / "overlay" / "out").exists()
    empty = images(str(photos), "--out", "", "--checkpoint", str(eager_checkpoint))
    assert empty.exit_code == 2 and "an empty name" in empty.output
