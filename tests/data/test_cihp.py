"""The CIHP layout: what the generator writes reads back; bad data names the file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from humanparse.data.cihp import load_sample, read_split
from humanparse.data.synth import render_scene, scene_rng, write_image_dataset
from humanparse.errors import HumanParseError


@pytest.fixture
def dataset(tmp_path):
    return write_image_dataset(tmp_path / "d", 3, seed=9, size=(80, 64))


def test_reader_round_trips_the_generator(dataset) -> None:
    ids = read_split(dataset, "train")
    assert ids == ["000000", "000001", "000002"]
    for index, sid in enumerate(ids):
        scene = render_scene(scene_rng(9, index), 64, 80)
        sample = load_sample(dataset, sid, num_labels=7)
        assert np.array_equal(sample.image, scene.image)
        assert np.array_equal(sample.parts, scene.parts) and np.array_equal(sample.persons, scene.persons)
        visible = ~np.isnan(scene.boxes).any(1)
        np.testing.assert_array_equal(sample.boxes, scene.boxes[visible])
        assert sample.person_ids == tuple(int(i) + 1 for i in np.nonzero(visible)[0])


def test_missing_split_names_the_file_and_the_splits_there(dataset) -> None:
    with pytest.raises(HumanParseError, match=r"val_id.txt.*splits here: train"):
        read_split(dataset, "val")


def test_unreadable_image(dataset) -> None:
    (dataset / "images" / "000000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(HumanParseError, match=r"000000.jpg: cannot read"):
        load_sample(dataset, "000000", 7)


def test_label_map_of_the_wrong_size(dataset) -> None:
    cv2.imwrite(str(dataset / "Category_ids" / "000001.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(HumanParseError, match=r"Category_ids/000001.png: label map is 10x10, the image 80x64"):
        load_sample(dataset, "000001", 7)


def test_label_values_outside_the_label_set(dataset) -> None:
    labels = np.zeros((64, 80), np.uint8)
    labels[3, 3] = 9
    cv2.imwrite(str(dataset / "Category_ids" / "000002.png"), labels)
    with pytest.raises(HumanParseError, match=r"000002.png: label 9 is outside the label set \(0..6\)"):
        load_sample(dataset, "000002", 7)


def test_colour_label_maps_are_rejected(dataset) -> None:
    cv2.imwrite(str(dataset / "Human_ids" / "000000.png"), np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8))
    with pytest.raises(HumanParseError, match="one label per pixel"):
        load_sample(dataset, "000000", 7)


def test_cihp_label_set_with_twenty_labels(tmp_path) -> None:
    from humanparse.data.cihp import write_sample, write_split
    from humanparse.labels import CIHP

    parts = np.zeros((8, 8), np.uint8)
    parts[:, :4] = 14  # left arm
    parts[:, 4:] = 19  # right shoe
    persons = np.ones((8, 8), np.uint8)
    ok, jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    write_sample(tmp_path, "x", jpeg.tobytes(), parts, persons)
    write_split(tmp_path, "val", ["x"])
    sample = load_sample(tmp_path, read_split(tmp_path, "val")[0], num_labels=len(CIHP.names))
    assert set(np.unique(sample.parts)) == {14, 19}
    with pytest.raises(HumanParseError, match="outside the label set"):
        load_sample(tmp_path, "x", num_labels=7)
