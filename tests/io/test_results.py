"""Result files: what is written reads back, in our reader and in other tools' terms."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from humanparse.errors import HumanParseError
from humanparse.io import rle
from humanparse.io.drawing import overlay
from humanparse.io.results import cihp_files, id_png, palette_png, read_result_json, result_dict, write_outputs
from humanparse.labels import PASCAL_PERSON_PART
from humanparse.predictor import Predictor
from humanparse.structures import Detections, ParsingResult
from tests.scenes import eager_parser, two_people


@pytest.fixture(scope="module")
def parsed():
    scene = two_people()
    image = scene.image.permute(1, 2, 0).numpy().astype(np.uint8)
    detections = Detections(scene.boxes.numpy(), scene.scores.numpy())
    return image, Predictor(eager_parser(), "cpu", lambda im, key=None: detections)(image).relabel([5, 300])


def test_palette_png_holds_labels_as_values_and_the_palette_as_colours() -> None:
    parts = np.random.default_rng(0).integers(0, 7, (9, 11)).astype(np.uint8)
    with Image.open(io.BytesIO(palette_png(parts, PASCAL_PERSON_PART))) as image:
        assert image.mode == "P"
        assert np.array_equal(np.array(image), parts)
        assert np.array_equal(np.array(image.convert("RGB")), np.array(PASCAL_PERSON_PART.palette, np.uint8)[parts])


@pytest.mark.parametrize("top", [200, 1000])
def test_id_png_round_trips_8_and_16_bit(top) -> None:
    ids = np.random.default_rng(1).integers(0, top, (6, 7))
    with Image.open(io.BytesIO(id_png(ids))) as image:
        assert np.array_equal(np.array(image).astype(np.int64), ids)
        assert image.mode == ("L" if top <= 256 else "I;16")


def test_json_round_trip_gives_the_same_result(parsed) -> None:
    _, result = parsed
    data = json.loads(json.dumps(result_dict(result, "x")))
    assert [p["id"] for p in data["persons"]] == [5, 300]
    for person in data["persons"]:
        assert np.array_equal(rle.decode(person["mask"]), result.persons == person["id"])
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.json"
        path.write_text(json.dumps(data))
        back = read_result_json(path, PASCAL_PERSON_PART)
    assert np.array_equal(back.parts, result.parts) and np.array_equal(back.persons, result.persons)
    assert back.ids.tolist() == result.ids.tolist()
    assert np.allclose(back.boxes, result.boxes, atol=0.01) and np.allclose(back.scores, result.scores, atol=1e-5)
    assert [(p.person, p.part, p.pixels) for p in back.part_instances] == [(p.person, p.part, p.pixels) for p in result.part_instances]


def test_every_mask_record_is_pycocotools_encoding_of_the_whole_mask(parsed) -> None:
    """Records are encoded inside each person's box; the counts must be those of the whole
    frame's mask, as pycocotools writes them."""
    from pycocotools import mask as coco_mask

    def whole(mask: np.ndarray) -> str:
        return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii")

    _, result = parsed
    data = result_dict(result, "x")
    assert [p["mask"]["counts"] for p in data["persons"]] == [whole(result.persons == pid) for pid in result.ids]
    assert [p["mask"]["counts"] for p in data["parts"]] == [whole(result.part_mask(p.person, p.part)) for p in result.part_instances]
    assert all(p["mask"]["size"] == list(result.size) for p in data["persons"] + data["parts"])


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: d["persons"][0]["mask"].update(counts="zz"), "not a readable"),
        (lambda d: d["persons"][0]["mask"].update(size=[3, 3]), "3x3"),
        (lambda d: d["parts"][0].update(part=9), "not in the label set"),
        (lambda d: d["persons"][1].update(id=d["persons"][0]["id"]), "distinct"),
        (lambda d: d.pop("height"), "not a readable"),
        (lambda d: d.update(labels=["background", "x"]), "labels"),
        (lambda d: d["persons"][0].update(box=[50, 10, 20, 40]), r"box \[50.0, 10.0, 20.0, 40.0\] ends before it starts"),
        (lambda d: d["persons"][0].update(box=[1, 2, 3]), "not 4"),
    ],
)
def test_malformed_result_files_are_clear_errors(tmp_path, parsed, corrupt, message) -> None:
    data = json.loads(json.dumps(result_dict(parsed[1], "x")))
    corrupt(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(HumanParseError, match=message):
        read_result_json(path, PASCAL_PERSON_PART)


def test_cihp_layout_is_consistent(parsed) -> None:
    _, result = parsed
    files = cihp_files(result, "img")
    instances = np.array(Image.open(io.BytesIO(files["instance_parsing/img.png"])))
    lines = files["instance_parsing/img.txt"].decode().splitlines()
    assert instances.max() == len(lines) == len(result.part_instances)
    for k, (line, part) in enumerate(zip(lines, result.part_instances), start=1):
        cls, score = line.split()
        assert int(cls) == part.part and float(score) == pytest.approx(part.score, abs=1e-6)
        assert np.array_equal(instances == k, result.part_mask(part.person, part.part))
    humans = np.array(Image.open(io.BytesIO(files["instance_human/img.png"])))
    assert np.array_equal(humans == 2, result.persons == 300)  # second line of the .txt
    assert np.array_equal(np.array(Image.open(io.BytesIO(files["global_parsing/img.png"]))), result.parts)


def test_overlay_outlines_each_person_in_its_colour(parsed) -> None:
    image, result = parsed
    drawn = overlay(image, result)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert not np.array_equal(drawn, image)


def test_write_outputs_writes_each_kind_and_nothing_else(tmp_path, parsed) -> None:
    image, result = parsed
    written = write_outputs(tmp_path, "sub/img", image, result, ("parts", "json"))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == ["json/sub/img.json", "parts/sub/img.png"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == ["json/sub/img.json", "parts/sub/img.png"]


def with_keypoints(result):
    """The result with a made-up pose: keypoint j of person k at (2j + k, 3k + 1), the
    second-to-last one found unsure (score 0.1), the last one not at all."""
    points = np.zeros((len(result.ids), 17, 3), np.float32)
    for k in range(len(result.ids)):
        points[k, :, 0] = 2 * np.arange(17) + k
        points[k, :, 1] = 3 * k + 1
        points[k, :, 2] = 0.9
        points[k, -2, 2] = 0.1
        points[k, -1] = 0
    return replace(result, keypoints=points)


def test_keypoints_are_written_as_coco_and_read_back(tmp_path, parsed) -> None:
    image, result = parsed
    posed = with_keypoints(result)
    record = result_dict(posed, "a")
    first = record["persons"][0]
    # found: scoring at least MIN_KEYPOINT_SCORE (0.3), visible (v = 2); the unsure one keeps its place
    assert len(first["keypoints"]) == 51 and first["num_keypoints"] == 15
    assert first["keypoints"][:3] == [0.0, 1.0, 2] and first["keypoints"][-6:] == [30.0, 1.0, 0, 0, 0, 0]
    assert first["keypoint_scores"][0] == np.float32(0.9) and first["keypoint_scores"][-1] == 0
    write_outputs(tmp_path, "a", image, posed, ("json",))
    back = read_result_json(tmp_path / "json" / "a.json", PASCAL_PERSON_PART)
    assert np.array_equal(back.keypoints, posed.keypoints)  # exact, every keypoint
    # A result without a pose writes no keypoint fields at all.
    assert "keypoints" not in result_dict(result, "a")["persons"][0]


def test_overlay_draws_the_skeleton_of_a_posed_result(parsed) -> None:
    image, result = parsed
    plain, posed = overlay(image, result), overlay(image, with_keypoints(result))
    changed = (plain != posed).any(2)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 20
    # Only along the keypoints' rows (y = 1 and y = 4, joints a few pixels round).
    assert ys.max() <= 4 + 5


def test_a_result_without_persons_round_trips(tmp_path) -> None:
    empty = ParsingResult(np.zeros((5, 7), np.uint8), np.zeros((5, 7), np.int32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32),
                          np.zeros(0, np.float32), (), PASCAL_PERSON_PART)
    write_outputs(tmp_path, "none", np.zeros((5, 7, 3), np.uint8), empty, ("json",))
    back = read_result_json(tmp_path / "json" / "none.json", PASCAL_PERSON_PART)
    assert back.size == (5, 7) and len(back.ids) == 0 and back.keypoints.shape == (0, 0, 3)


def test_scores_and_boxes_read_back_exactly(tmp_path, parsed) -> None:
    """Rounded scores would reorder near ties and move AP: the files hold the exact values."""
    image, result = parsed
    rng = np.random.default_rng(5)
    noisy = replace(result, scores=rng.random(len(result.ids)).astype(np.float32), boxes=np.sort(rng.random((len(result.ids), 2, 2)) * 50, axis=1).reshape(-1, 4).astype(np.float32),
                    part_instances=tuple(replace(p, score=float(rng.random())) for p in result.part_instances))
    write_outputs(tmp_path, "exact", image, noisy, ("json",))
    back = read_result_json(tmp_path / "json" / "exact.json", PASCAL_PERSON_PART)
    assert np.array_equal(back.scores, noisy.scores) and np.array_equal(back.boxes, noisy.boxes)
    assert [p.score for p in back.part_instances] == [p.score for p in noisy.part_instances]


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: d["persons"][0].update(score=float("nan")), "person 5's score holds nan"),
        (lambda d: d["parts"][0].update(score=float("nan")), "its score holds nan"),
        (lambda d: d["parts"][0].update(score=1e9), r"outside \[0, 1\]"),
        (lambda d: d["parts"][-1].update(score=-1e9), r"outside \[0, 1\]"),
        (lambda d: d["persons"][1].update(score=1.5), r"outside \[0, 1\]"),
        (lambda d: d["persons"][0]["box"].__setitem__(2, float("nan")), "box holds nan"),
        (lambda d: d["persons"][1]["box"].__setitem__(0, float("-inf")), "box holds -inf"),
        (lambda d: d["persons"][1]["box"].__setitem__(3, 1e300), "box holds 1e[+]300"),  # infinite as float32
        (lambda d: d["persons"][0].update(box=[1, 2, 3]), "not 4"),
        (lambda d: d["persons"][0].update(score=10**400), "not a readable"),  # too large for a float
        (lambda d: d.update(height=1e400), "not a readable"),  # infinite, as JSON reads 1e400
        (lambda d: d["persons"][0].update(id=2**40), "distinct and in 1.."),
        (lambda d: d["parts"].append(dict(d["parts"][0])), "listed twice"),
        (lambda d: d["persons"][0]["mask"].update(counts=10**9), "counts must be a string"),
    ],
)
def test_non_finite_numbers_and_scores_outside_0_1_are_refused(tmp_path, parsed, corrupt, message) -> None:
    """JSON holds NaN, Infinity and numbers of any size: read as scores and boxes they would
    be ranked and matched (issue 23), so they are refused, naming the file."""
    data = json.loads(json.dumps(result_dict(parsed[1], "x")))
    corrupt(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(HumanParseError, match=message) as caught:
        read_result_json(path, PASCAL_PERSON_PART)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_file_of_another_image_or_size_is_refused_before_any_mask_is_decoded(tmp_path, parsed, monkeypatch) -> None:
    """A 300-byte file claiming 30000 x 30000 pixels (its masks one run each: valid RLE) once
    cost 5.9 GB before its error: its size is checked against the image's first."""
    data = json.loads(json.dumps(result_dict(parsed[1], "x")))
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data))
    assert read_result_json(path, PASCAL_PERSON_PART, size=parsed[1].size, image="x").size == parsed[1].size
    decoded = []
    monkeypatch.setattr(rle, "decode", lambda counts: decoded.append(counts))
    huge = {"size": [30000, 30000], "counts": "0"}  # never read
    bomb = {**data, "height": 30000, "width": 30000, "persons": [{**p, "mask": huge} for p in data["persons"]], "parts": []}
    path.write_text(json.dumps(bomb))
    with pytest.raises(HumanParseError, match="30000x30000, the image 64x64"):
        read_result_json(path, PASCAL_PERSON_PART, size=(64, 64))
    with pytest.raises(HumanParseError, match="megapixels"):  # without a size to check: the bound of every image read
        read_result_json(path, PASCAL_PERSON_PART)
    path.write_text(json.dumps({**data, "persons": [{**data["persons"][0], "mask": huge}]}))
    with pytest.raises(HumanParseError, match="a mask is 30000x30000, the image 64x64"):
        read_result_json(path, PASCAL_PERSON_PART)
    path.write_text(json.dumps(data))
    with pytest.raises(HumanParseError, match="the result of image 'x', not of 'y'"):
        read_result_json(path, PASCAL_PERSON_PART, image="y")
    assert decoded == []
