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


def test_ids_and_splits_that_are_paths_are_refused(dataset, tmp_path) -> None:
    import shutil

    # The files '../x' would name (<root>/x.jpg, <root>/x.png), outside the data set's folders,
    # and a sample whose id starts with '..' (a name, not a path: fine).
    shutil.copy(dataset / "images" / "000000.jpg", dataset / "x.jpg")
    shutil.copy(dataset / "Human_ids" / "000000.png", dataset / "x.png")
    shutil.copy(dataset / "images" / "000000.jpg", dataset / "images" / "..x.jpg")
    for folder in ("Category_ids", "Human_ids"):
        shutil.copy(dataset / folder / "000000.png", dataset / folder / "..x.png")
    for bad in ("../x", "/tmp/x", "..", "", "a\0b"):
        with pytest.raises(HumanParseError, match="an image id is a plain file name"):
            load_sample(dataset, bad, 7)
    assert load_sample(dataset, "..x", 7).persons is not None
    (dataset / "val_id.txt").write_text("000001\n../x\n")
    with pytest.raises(HumanParseError, match=r"val_id.txt:2: an image id is a plain file name.*'../x'"):
        read_split(dataset, "val")
    (tmp_path / "escape_id.txt").write_text("000001\n")
    with pytest.raises(HumanParseError, match="a split is a plain name"):
        read_split(dataset, "../escape")


def test_a_split_file_that_is_not_text_is_a_one_line_error(dataset) -> None:
    (dataset / "val_id.txt").write_bytes(b"000001\n\xff\xfe000002\n")
    with pytest.raises(HumanParseError, match=r"val_id.txt:2: not UTF-8 text \(byte 0xff\)"):
        read_split(dataset, "val")


def test_person_ids_over_255_are_refused_not_wrapped(tmp_path) -> None:
    from humanparse.data.cihp import write_sample

    persons = np.zeros((8, 8), np.int64)
    persons[0, 0], persons[1, 1] = 1, 300
    parts = (persons > 0).astype(np.uint8)
    with pytest.raises(HumanParseError, match="x: person ids outside 0..255 do not fit the 8-bit PNGs"):
        write_sample(tmp_path, "x", b"", parts, persons)
    assert list(tmp_path.iterdir()) == []


def test_a_label_map_over_pils_bomb_warning_size_reads_quietly_and_one_over_ours_is_refused(dataset, monkeypatch) -> None:
    """PIL warns of a decompression bomb from 89 megapixels; humanparse reads images up to
    MAX_PIXELS (100) and refuses larger ones, label maps alike. Scaled down here: PIL's
    limit is set below the 80x64 label maps, ours at or just below their size."""
    import warnings

    from PIL import Image

    from humanparse.io import images

    expected = load_sample(dataset, "000001", 7)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 80 * 64 // 2 + 1)  # a warning, not PIL's error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sample = load_sample(dataset, "000001", 7)
    assert np.array_equal(sample.parts, expected.parts) and np.array_equal(sample.persons, expected.persons)
    monkeypatch.setattr(images, "MAX_PIXELS", 80 * 64 - 1)
    # The image first, from its header: OpenCV's decoder would take a gigapixel (3 GB).
    with pytest.raises(HumanParseError, match=r"images/000001.jpg: 80x64 is 0 megapixels, more than .*scale it down first"):
        load_sample(dataset, "000001", 7)
    from humanparse.data.cihp import read_label_png

    with pytest.raises(HumanParseError, match=r"Category_ids/000001.png: 80x64 is 0 megapixels, more than .*scale it down first"):
        read_label_png(dataset / "Category_ids" / "000001.png", (64, 80))


def test_a_100_megapixel_label_map_reads_without_a_warning(tmp_path) -> None:
    import warnings

    from PIL import Image

    from humanparse.data.cihp import read_label_png

    Image.new("L", (10_000, 10_000), 3).save(tmp_path / "big.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = read_label_png(tmp_path / "big.png", (10_000, 10_000))
    assert labels.shape == (10_000, 10_000) and labels[-1, -1] == 3
    del labels
    with pytest.raises(HumanParseError, match=r"big.png: label map is 10000x10000, the image 10x10"):
        read_label_png(tmp_path / "big.png", (10, 10))  # from the header, not decoded


def test_a_plain_folder_of_images_and_label_maps_is_a_data_set_listed_whole(tmp_path) -> None:
    from humanparse.data.cihp import has_splits, list_samples, part_folder

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for name in ("b", "a"):
        cv2.imwrite(str(tmp_path / "images" / f"{name}.jpg"), np.zeros((4, 6, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "labels" / f"{name}.png"), np.ones((4, 6), np.uint8))
    assert part_folder(tmp_path) == "labels" and not has_splits(tmp_path) and list_samples(tmp_path) == ["a", "b"]
    assert load_sample(tmp_path, "a", 7).parts.max() == 1 and load_sample(tmp_path, "a", 7).persons is None
    cv2.imwrite(str(tmp_path / "images" / "c.jpg"), np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(HumanParseError, match=r"labels/c.png: part labels not found for the image c \(1 of 3 images lack theirs\)"):
        list_samples(tmp_path)


def test_the_cihp_release_with_its_images_in_Images_is_read_as_it_is(dataset, tmp_path) -> None:
    """CIHP keeps its photos in Images/ (capital I); only images/ was looked in."""
    import shutil

    from humanparse.data.cihp import check_samples

    release = tmp_path / "Training"
    shutil.copytree(dataset, release)
    (release / "images").rename(release / "Images")
    ids = read_split(release, "train")
    check_samples(release, ids)
    assert np.array_equal(load_sample(release, ids[0], 7).image, load_sample(dataset, ids[0], 7).image)
