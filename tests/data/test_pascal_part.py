"""Pascal-Part MAT annotations and the PNG release, converted and read back."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

from humanparse.cli import main
from humanparse.data.cihp import load_sample, read_split
from humanparse.data.pascal_part import convert_pascal_part, parse_label_map, read_pascal_part_mat
from humanparse.errors import HumanParseError

H, W = 12, 16


def box_mask(y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def write_mat(path, name: str, objects: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]]) -> None:
    """A MAT file in the structure of the Pascal-Part release."""
    part_dtype = [("part_name", "O"), ("mask", "O")]
    obj_dtype = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
    rows = []
    for cls, mask, parts in objects:
        part_array = np.array(parts, dtype=part_dtype).reshape(1, -1) if parts else np.zeros((0, 0))
        rows.append((cls, 15, mask, part_array))
    scipy.io.savemat(str(path), {"anno": {"imname": name, "objects": np.array(rows, dtype=obj_dtype).reshape(1, -1)}})


@pytest.fixture
def pascal(tmp_path):
    ann, img = tmp_path / "Annotations_Part", tmp_path / "JPEGImages"
    ann.mkdir()
    img.mkdir()
    write_mat(ann / "2008_000001.mat", "2008_000001", [
        ("person", box_mask(0, 12, 0, 6), [
            ("head", box_mask(0, 2, 1, 4)), ("leye", box_mask(1, 2, 1, 2)), ("neck", box_mask(2, 3, 2, 3)),
            ("torso", box_mask(3, 6, 1, 5)), ("lhand", box_mask(6, 7, 0, 1)), ("luleg", box_mask(6, 9, 1, 3)),
            ("rfoot", box_mask(11, 12, 3, 5)),
        ]),
        ("dog", box_mask(8, 12, 10, 16), []),
        ("person", box_mask(0, 6, 7, 10), []),  # annotated without parts
        ("person", box_mask(4, 10, 11, 14), [("ruarm", box_mask(4, 6, 11, 12)), ("rlleg", box_mask(7, 10, 12, 14))]),
    ])
    write_mat(ann / "2008_000002.mat", "2008_000002", [("cat", box_mask(0, 5, 0, 5), [])])
    for name in ("2008_000001", "2008_000002"):
        cv2.imwrite(str(img / f"{name}.jpg"), np.full((H, W, 3), 128, np.uint8))
    return ann, img


def test_parts_are_grouped_into_the_six_classes(pascal) -> None:
    ann, _ = pascal
    name, parts, persons = read_pascal_part_mat(ann / "2008_000001.mat")
    assert name == "2008_000001"
    assert parts[1, 1] == 1 and parts[0, 3] == 1  # leye drawn as head, head as head
    assert parts[2, 2] == 2 and parts[4, 2] == 2  # neck and torso
    assert parts[6, 0] == 4 and parts[7, 1] == 5 and parts[11, 4] == 6  # hand, upper leg, foot
    assert parts[4, 11] == 3 and parts[8, 13] == 6  # the third object's arm and lower leg
    assert persons[4, 2] == 1 and persons[8, 13] == 2  # the part-less person takes no id
    assert (parts[0:6, 7:10] == 255).all() and (persons[0:6, 7:10] == 0).all()  # ...and is ignored
    assert parts[10, 14] == 0  # the dog is background
    assert np.array_equal(persons > 0, (parts > 0) & (parts != 255))


def test_conversion_writes_the_cihp_layout_and_reads_back(pascal, tmp_path) -> None:
    ann, img = pascal
    out = convert_pascal_part(ann, img, tmp_path / "ppp", split="val")
    assert read_split(out, "val") == ["2008_000001"]  # the image without people is left out
    sample = load_sample(out, "2008_000001", num_labels=7)
    _, parts, persons = read_pascal_part_mat(ann / "2008_000001.mat")
    assert np.array_equal(sample.parts, parts) and np.array_equal(sample.persons, persons)
    assert sample.person_ids == (1, 2)


def test_bad_annotations(pascal, tmp_path) -> None:
    ann, img = pascal
    (ann / "broken.mat").write_bytes(b"garbage")
    with pytest.raises(HumanParseError, match="broken.mat: not a Pascal-Part annotation"):
        convert_pascal_part(ann, img, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    (ann / "broken.mat").unlink()
    write_mat(ann / "2008_000003.mat", "2008_000003", [("person", box_mask(0, 2, 0, 2), [("tail", box_mask(0, 1, 0, 1))])])
    with pytest.raises(HumanParseError, match="unknown person part 'tail'"):
        convert_pascal_part(ann, img, tmp_path / "y")


def test_png_release_with_a_label_map(tmp_path) -> None:
    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    cv2.imwrite(str(images / "a.jpg"), np.zeros((H, W, 3), np.uint8))
    values = np.zeros((H, W), np.uint8)
    values[0:3] = 2  # head in the release's order
    values[3:6] = 4  # torso
    palette_png = Image.fromarray(values, mode="P")
    palette_png.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128] + [0] * 750)
    palette_png.save(labels / "a.png")  # an indexed-colour PNG: its indices are the labels
    result = CliRunner().invoke(main, ["data", "convert", "png", str(tmp_path / "out"), "--images", str(images), "--labels", str(labels), "--label-map", "1:4,2:1,3:5,4:2,5:6,6:3"])
    assert result.exit_code == 0, result.output
    sample = load_sample(tmp_path / "out", "a", num_labels=7)
    assert sample.persons is None
    assert (sample.parts[0:3] == 1).all() and (sample.parts[3:6] == 2).all() and (sample.parts[6:] == 0).all()


def test_label_map_syntax() -> None:
    assert parse_label_map("1:4, 2:1") == {1: 4, 2: 1}
    with pytest.raises(HumanParseError, match="SOURCE:TARGET"):
        parse_label_map("1-4")


def test_cli_converts_pascal_part(pascal, tmp_path) -> None:
    ann, img = pascal
    result = CliRunner().invoke(main, ["data", "convert", "pascal-part", str(tmp_path / "o"), "--annotations", str(ann), "--images", str(img), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "Instance_ids" / "2008_000001.txt").is_file()


def test_conversions_refuse_paths_as_splits_masks_of_another_size_and_labels_outside_the_set(pascal, tmp_path) -> None:
    ann, img = pascal
    for split in ("../escape", str(tmp_path / "abs"), ".."):
        with pytest.raises(HumanParseError, match="plain name"):
            convert_pascal_part(ann, img, tmp_path / "s", split=split)
    assert not (tmp_path / "s").exists() and not list(tmp_path.glob("escape*")) and not list(tmp_path.glob("abs*"))
    cv2.imwrite(str(img / "2008_000001.jpg"), np.full((H + 4, W, 3), 128, np.uint8))
    with pytest.raises(HumanParseError, match="masks of"):
        convert_pascal_part(ann, img, tmp_path / "sized")
    assert not (tmp_path / "sized").exists()

    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    cv2.imwrite(str(images / "a.jpg"), np.zeros((H, W, 3), np.uint8))
    values = np.zeros((H, W), np.uint8)
    values[0:3] = 2
    values[3:6] = 42
    Image.fromarray(values).save(labels / "a.png")
    convert = ["data", "convert", "png", str(tmp_path / "out"), "--images", str(images), "--labels", str(labels)]
    mapped_outside = CliRunner().invoke(main, [*convert, "--label-map", "2:99,42:1"])
    assert mapped_outside.exit_code != 0 and "2:99" in mapped_outside.output and "Traceback" not in mapped_outside.output
    unmapped = CliRunner().invoke(main, convert)
    assert unmapped.exit_code != 0 and "value 42" in unmapped.output
    assert not (tmp_path / "out").exists()
    assert CliRunner().invoke(main, [*convert, "--label-map", "42:1"]).exit_code == 0
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["label_set"] == "pascal-person-part"


def files_under(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("name", ["../../../x", "../x", "/tmp/x", "a/b", "a\\b", "..", ".", "a\nb", "a\tb"])
def test_image_names_that_are_paths_are_refused_before_anything_is_written(tmp_path, name) -> None:
    ann, img = tmp_path / "a" / "b" / "ann", tmp_path / "a" / "b" / "img"
    ann.mkdir(parents=True)
    img.mkdir()
    write_mat(ann / "m.mat", name, [("person", box_mask(0, 12, 0, 6), [("head", box_mask(0, 2, 1, 4))])])
    cv2.imwrite(str(tmp_path / "x.jpg"), np.full((H, W, 3), 128, np.uint8))  # what ../../../x would read
    before = files_under(tmp_path)
    with pytest.raises(HumanParseError, match=r"m.mat: imname: an image id is a plain file name"):
        convert_pascal_part(ann, img, tmp_path / "a" / "b" / "out")
    assert files_under(tmp_path) == before
    result = CliRunner().invoke(main, ["data", "convert", "pascal-part", str(tmp_path / "a" / "b" / "out"), "--annotations", str(ann), "--images", str(img), "--quiet"])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert files_under(tmp_path) == before


def test_ids_that_are_paths_are_refused(pascal, tmp_path) -> None:
    from humanparse.data.cihp import read_id_list

    ann, img = pascal
    with pytest.raises(HumanParseError, match=r"ids: an image id is a plain file name.*'../2008_000001'"):
        convert_pascal_part(ann, img, tmp_path / "o", ids=["2008_000001", "../2008_000001"])
    listing = tmp_path / "ids.txt"
    listing.write_text("2008_000001\n\n  ../x \n")
    with pytest.raises(HumanParseError, match=r"ids.txt:3: an image id is a plain file name.*'../x'"):
        read_id_list(listing)
    listing.write_bytes("2008_000001\n2008_00000\xe9\n".encode("latin-1"))
    with pytest.raises(HumanParseError, match=r"ids.txt:2: not UTF-8 text \(byte 0xe9\)"):
        read_id_list(listing)
    listing.write_text("x\0y\n")
    with pytest.raises(HumanParseError, match=r"ids.txt:1: an image id is a plain file name"):
        read_id_list(listing)
    listing.write_bytes("\ufeff2008_000001\r\n 2008_000002 \n".encode())  # a BOM, CRLF, spaces: fine
    assert read_id_list(listing) == ["2008_000001", "2008_000002"]
    assert not (tmp_path / "o").exists()


def write_struct(path, anno: dict) -> None:
    scipy.io.savemat(str(path), {"anno": anno})


def objects_of(**fields) -> np.ndarray:
    """One object with just these fields."""
    return np.array([tuple(fields.values())], dtype=[(k, "O") for k in fields]).reshape(1, -1)


@pytest.mark.parametrize(
    "anno, message",
    [
        ({"imname": "x", "objects": objects_of(mask=box_mask(0, 5, 0, 5))}, "object 1 has no 'class' field"),
        ({"imname": "x", "objects": 5}, "objects is not a struct array"),
        ({"imname": "x", "objects": objects_of(**{"class": "person"})}, "object 1 has no 'mask' field"),
        ({"imname": "x", "objects": objects_of(**{"class": "person", "mask": box_mask(0, 5, 0, 5)})}, "object 1 has no 'parts' field"),
        ({"imname": "x", "objects": objects_of(**{"class": "person", "mask": box_mask(0, 5, 0, 5), "parts": 7})}, "object 1 parts is not a struct array"),
        ({"imname": 5, "objects": objects_of(**{"class": "dog", "mask": box_mask(0, 5, 0, 5)})}, "imname is not text"),
        ({"imname": "x", "objects": objects_of(**{"class": 3, "mask": box_mask(0, 5, 0, 5)})}, "object 1 class is not text"),
        ({"imname": "x", "objects": objects_of(**{"class": "dog", "mask": np.zeros((0, 0))})}, "object 1 mask is float64 of shape"),
        ({"imname": "x", "objects": objects_of(**{"class": "dog", "mask": "abc"})}, "object 1 mask is <U3"),
        ({"imname": "x", "objects": objects_of(**{"class": "person", "mask": box_mask(0, 5, 0, 5),
                                                  "parts": objects_of(mask=box_mask(0, 1, 0, 1))})}, "object 1 part 1 has no 'part_name' field"),
    ],
    ids=["no class", "objects = 5", "no mask", "no parts", "parts = 7", "numeric imname", "numeric class", "empty mask", "text mask", "no part_name"],
)
def test_damaged_annotations_are_one_line_errors(tmp_path, anno, message) -> None:
    write_struct(tmp_path / "x.mat", anno)
    with pytest.raises(HumanParseError, match=rf"x.mat: {message}") as error:
        read_pascal_part_mat(tmp_path / "x.mat")
    assert "\n" not in str(error.value)


def crowd(path, count: int, size: int = 20) -> None:
    """``count`` one-pixel persons, each with a head."""
    objects = []
    for k in range(count):
        mask = np.zeros((size, size), np.uint8)
        mask.flat[k] = 1
        objects.append(("person", mask, [("head", mask)]))
    write_mat(path, path.stem, objects)


def test_up_to_255_persons_keep_their_ids_and_more_are_refused_not_wrapped(tmp_path) -> None:
    (tmp_path / "ann").mkdir()
    (tmp_path / "img").mkdir()
    crowd(tmp_path / "ann" / "full.mat", 255)
    cv2.imwrite(str(tmp_path / "img" / "full.jpg"), np.zeros((20, 20, 3), np.uint8))
    out = convert_pascal_part(tmp_path / "ann", tmp_path / "img", tmp_path / "out")
    sample = load_sample(out, "full", num_labels=7)
    assert sample.person_ids == tuple(range(1, 256)) and sample.persons.flat[254] == 255
    crowd(tmp_path / "ann" / "over.mat", 300)
    with pytest.raises(HumanParseError, match="over.mat: more than 255 persons with parts; person ids are 8-bit"):
        read_pascal_part_mat(tmp_path / "ann" / "over.mat")


def test_two_annotations_of_one_image_are_refused(pascal, tmp_path) -> None:
    ann, img = pascal
    write_mat(ann / "copy.mat", "2008_000001", [("person", box_mask(0, 2, 0, 2), [("head", box_mask(0, 1, 0, 1))])])
    with pytest.raises(HumanParseError, match=r"copy.mat: image '2008_000001' is annotated by .*2008_000001.mat too"):
        convert_pascal_part(ann, img, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_label_png_whose_name_is_no_image_id_is_refused(tmp_path) -> None:
    from humanparse.data.pascal_part import convert_png_release

    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    cv2.imwrite(str(images / "a\nb.jpg"), np.zeros((H, W, 3), np.uint8))
    cv2.imwrite(str(labels / "a\nb.png"), np.zeros((H, W), np.uint8))
    with pytest.raises(HumanParseError, match=r"lab: an image id is a plain file name .*'a\\nb'") as error:
        convert_png_release(images, labels, tmp_path / "out")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_requested_ids_without_an_annotation_are_named_not_skipped(pascal, tmp_path) -> None:
    """A typo in --ids used to shrink the data set without a word."""
    ann, img = pascal
    with pytest.raises(HumanParseError, match=r"1 of the 2 requested ids have no .mat file in .*: \['2008_00001'\]"):
        convert_pascal_part(ann, img, tmp_path / "o", ids=["2008_000001", "2008_00001"])
    assert not (tmp_path / "o").exists()
    assert convert_pascal_part(ann, img, tmp_path / "o", ids=["2008_000001"]) == tmp_path / "o"


def test_a_label_map_that_contradicts_itself_is_refused() -> None:
    from humanparse.data.pascal_part import parse_label_map

    with pytest.raises(HumanParseError, match="label map maps 1 twice, to 2 and to 3"):
        parse_label_map("1:2,1:3")
    assert parse_label_map("1:2, 1:2,3:4") == {1: 2, 3: 4}
