"""Result files: what is written reads back, in our reader and in other tools' terms."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from humanparse.errors import HumanParseError
from humanparse.io import rle
from humanparse.io.results import (
    cihp_files,
    id_png,
    overlay,
    palette_png,
    read_result_json,
    result_dict,
    write_outputs,
)
from humanparse.labels import PASCAL_PERSON_PART
from humanparse.predictor import Predictor
from humanparse.structures import Detections
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


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: d["persons"][0]["mask"].update(counts="zz"), "not a readable"),
        (lambda d: d["persons"][0]["mask"].update(size=[3, 3]), "3x3"),
        (lambda d: d["parts"][0].update(part=9), "not in the label set"),
        (lambda d: d["persons"][1].update(id=d["persons"][0]["id"]), "distinct"),
        (lambda d: d.pop("height"), "not a readable"),
        (lambda d: d.update(labels=["background", "x"]), "labels"),
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
