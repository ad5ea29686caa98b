"""The procedural world: determinism, exact and consistent ground truth, safe writing."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from humanparse.cli import main
from humanparse.data import synth
from humanparse.data.cihp import instance_ids
from humanparse.data.synth import SceneConfig, background, render_scene, scene_rng, write_image_dataset
from humanparse.errors import HumanParseError


def digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_image_k_independent_of_count(tmp_path) -> None:
    a = write_image_dataset(tmp_path / "a", 4, seed=7, size=(96, 80))
    b = write_image_dataset(tmp_path / "b", 4, seed=7, size=(96, 80))
    c = write_image_dataset(tmp_path / "c", 2, seed=7, size=(96, 80))
    d = write_image_dataset(tmp_path / "d", 4, seed=8, size=(96, 80))
    assert digest(a) == digest(b)
    assert digest(c)["images/000001.jpg"] == digest(a)["images/000001.jpg"]
    assert digest(d)["images/000000.jpg"] != digest(a)["images/000000.jpg"]


@pytest.mark.parametrize("index", range(12))
def test_ground_truth_is_consistent(index: int) -> None:
    scene = render_scene(scene_rng(3, index), 120, 160)
    assert scene.image.shape == (120, 160, 3) and scene.image.dtype == np.uint8
    # Every person pixel has a part and every part pixel a person.
    assert np.array_equal(scene.parts > 0, scene.persons > 0)
    assert scene.parts.max() <= 6
    for pid in range(1, len(scene.boxes) + 1):
        ys, xs = np.nonzero(scene.persons == pid)
        box = scene.boxes[pid - 1]
        if len(xs) == 0:
            assert np.isnan(box).all()
            continue
        # Boxes are the tight boxes of each person's visible pixels.
        assert (box[0], box[1], box[2], box[3]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert np.array_equal(cv2.imdecode(np.frombuffer(scene.jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], scene.image)


def test_background_is_a_deterministic_float_image() -> None:
    image = background(np.random.default_rng(4), 30, 50, SceneConfig())
    assert image.shape == (30, 50, 3) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 255
    np.testing.assert_array_equal(image, background(np.random.default_rng(4), 30, 50, SceneConfig()))


def test_instance_ids_are_unique_per_person_and_part() -> None:
    scene = render_scene(scene_rng(5, 0), 200, 200)
    instances, rows = instance_ids(scene.parts, scene.persons)
    pairs = {(int(h), int(c)) for h, c in zip(scene.persons[scene.parts > 0], scene.parts[scene.parts > 0])}
    assert len(rows) == len(pairs) == len({r[0] for r in rows})
    for inst, part, person in rows:
        mask = instances == inst
        assert np.array_equal(mask, (scene.parts == part) & (scene.persons == person))
    assert np.array_equal(instances > 0, scene.parts > 0)


def test_scenes_pose_the_papers_problems() -> None:
    overlaps = truncated = crowded = empty = 0
    sizes = []
    for index in range(60):
        scene = render_scene(scene_rng(11, index), 128, 128)
        boxes = scene.boxes[~np.isnan(scene.boxes).any(1)]
        crowded += len(boxes) >= 5
        empty += len(scene.boxes) == 0
        sizes += list(boxes[:, 3] - boxes[:, 1])
        truncated += any(b[0] == 0 or b[1] == 0 or b[2] == 128 or b[3] == 128 for b in boxes)
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                w = min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0])
                h = min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1])
                overlaps += w > 0 and h > 0
    assert overlaps >= 20 and truncated >= 20 and crowded >= 3 and empty >= 1
    assert min(sizes) < 40 and max(sizes) >= 120


def test_files_read_back_to_the_rendered_scene(tmp_path) -> None:
    root = write_image_dataset(tmp_path / "out", 3, seed=2, size=(64, 48), split="val", preview=True)
    assert (root / "val_id.txt").read_text().split() == ["000000", "000001", "000002"]
    assert cv2.imread(str(root / "preview.png")) is not None
    for index in range(3):
        scene = render_scene(scene_rng(2, index), 48, 64)
        sid = f"{index:06d}"
        assert (root / "images" / f"{sid}.jpg").read_bytes() == scene.jpeg
        assert np.array_equal(cv2.imread(str(root / "Category_ids" / f"{sid}.png"), cv2.IMREAD_UNCHANGED), scene.parts)
        assert np.array_equal(cv2.imread(str(root / "Human_ids" / f"{sid}.png"), cv2.IMREAD_UNCHANGED), scene.persons)
        rows = [tuple(map(int, line.split())) for line in (root / "Instance_ids" / f"{sid}.txt").read_text().splitlines()]
        assert rows == instance_ids(scene.parts, scene.persons)[1]


def test_never_overwrites_and_leaves_nothing_half_written(tmp_path, monkeypatch) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(HumanParseError, match="already exists"):
        write_image_dataset(existing, 2, seed=0, size=(32, 32))
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return original(*args, **kwargs)

    original = synth.write_sample
    monkeypatch.setattr(synth, "write_sample", failing)
    with pytest.raises(OSError):
        write_image_dataset(tmp_path / "new", 5, seed=0, size=(32, 32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]


def test_cli_writes_a_dataset_and_rejects_bad_input(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["synth", "images", str(tmp_path / "d"), "--num", "2", "--size", "40x30", "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "d" / "images").iterdir())) == 2
    again = runner.invoke(main, ["synth", "images", str(tmp_path / "d"), "--num", "2"])
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output
    bad = runner.invoke(main, ["synth", "images", str(tmp_path / "e"), "--size", "40"])
    assert bad.exit_code == 2 and "WIDTHxHEIGHT" in bad.output
    assert not (tmp_path / "e").exists()


def test_a_full_disk_is_one_line_and_leaves_no_partial_data_set(tmp_path) -> None:
    """A real write failure (RLIMIT_FSIZE, EFBIG; a full disk gives ENOSPC the same way)."""
    import resource
    import subprocess
    import sys

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    command = [sys.executable, "-m", "humanparse", "synth", "images", str(tmp_path / "d"), "--num", "2", "--size", "256x256", "--quiet"]
    done = subprocess.run(command, preexec_fn=small_files, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not list(tmp_path.iterdir())  # neither the data set nor its staging folder


@pytest.mark.parametrize("seed", [-1, 1.5, "7"])
def test_a_seed_numpy_cannot_take_is_a_one_line_error(tmp_path, seed) -> None:
    with pytest.raises(HumanParseError, match=f"--seed must be a whole number of 0 or more, got {seed}"):
        write_image_dataset(tmp_path / "out", 1, seed, (16, 16))
    assert not (tmp_path / "out").exists()


def test_the_command_line_refuses_a_negative_seed_in_one_line(tmp_path) -> None:
    result = CliRunner().invoke(main, ["synth", "images", str(tmp_path / "out"), "--num", "1", "--size", "16x16", "--seed", "-1"])
    assert result.exit_code == 1 and result.output == "Error: --seed must be a whole number of 0 or more, got -1\n"
    assert list(tmp_path.iterdir()) == []


def test_a_numpy_integer_seed_is_written_to_meta_as_a_number(tmp_path) -> None:
    import json

    out = write_image_dataset(tmp_path / "out", 1, np.int64(3), (16, 16))
    assert json.loads((out / "meta.json").read_text())["seed"] == 3
