"""Listing and reading images for inference."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from humanparse.errors import HumanParseError
from humanparse.io.images import list_images, read_image


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "a" / "one.jpg"), np.zeros((4, 5, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "a" / "b" / "two.PNG"), np.zeros((4, 5, 3), np.uint8))
    (tmp_path / "a" / "notes.txt").write_text("not an image list")
    return tmp_path


def test_folders_lists_and_globs(folder) -> None:
    assert [p.name for p in list_images([folder / "a"])] == ["two.PNG", "one.jpg"]
    listing = folder / "list.txt"
    listing.write_text("a/one.jpg\n\na/b/two.PNG\n")
    assert [p.name for p in list_images([listing])] == ["one.jpg", "two.PNG"]
    assert [p.name for p in list_images([str(folder / "**" / "*.jpg")])] == ["one.jpg"]
    assert len(list_images([folder / "a", folder / "a" / "one.jpg"])) == 2  # no duplicates


def test_inputs_that_match_nothing(folder) -> None:
    with pytest.raises(HumanParseError, match="no such file"):
        list_images([folder / "missing.jpg"])
    with pytest.raises(HumanParseError, match="no images found"):
        list_images([str(folder / "*.gif")])
    (folder / "empty").mkdir()
    with pytest.raises(HumanParseError, match="no images found"):
        list_images([folder / "empty"])


def test_grey_rgba_and_16_bit_images_become_uint8_rgb(tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((3, 4), 200, np.uint8))
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((3, 4, 3), 65535, np.uint16))
    assert (read_image(tmp_path / "grey.png") == 200).all()
    assert read_image(tmp_path / "rgba.png")[0, 0].tolist() == [255, 0, 0]
    deep = read_image(tmp_path / "deep.png")
    assert deep.dtype == np.uint8 and (deep == 255).all() and deep.shape == (3, 4, 3)


def test_unreadable_image(tmp_path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(HumanParseError, match="bad.jpg: cannot read"):
        read_image(tmp_path / "bad.jpg")


def test_a_png_that_cannot_be_written_is_a_one_line_error_naming_it(tmp_path) -> None:
    from humanparse.io.images import write_png

    with pytest.raises(HumanParseError, match="cannot write .*a.png"):
        write_png(tmp_path / "missing" / "a.png", np.zeros((2, 2), np.uint8))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_exif_orientation_gives_the_picture_as_pil_displays_it(tmp_path, orientation: int) -> None:
    from PIL import Image, ImageOps

    rng = np.random.default_rng(orientation)
    stored = np.kron(rng.integers(0, 256, (3, 5, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # blocks survive JPEG
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    with Image.open(path) as image:
        displayed = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    read = read_image(path)
    assert read.shape == displayed.shape
    assert np.abs(read.astype(int) - displayed.astype(int)).mean() < 2  # the two JPEG decoders differ slightly


def test_a_gif_in_a_folder_is_listed_and_a_binary_list_is_a_clear_error(tmp_path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.gif")
    assert list_images([tmp_path]) == [tmp_path / "a.gif"]
    assert read_image(tmp_path / "a.gif").shape == (8, 8, 3)
    binary = tmp_path / "list.txt"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(HumanParseError, match="not a text list"):
        list_images([binary])


@pytest.mark.parametrize("size", [(11000, 9200), (20000, 9000)], ids=["over the limit", "over PIL's own bomb limit"])
def test_an_image_over_max_pixels_is_refused_from_its_header_before_decoding(tmp_path, size) -> None:
    from PIL import Image

    from humanparse.io.images import MAX_PIXELS

    path = tmp_path / "huge.png"
    Image.new("1", size).save(path)  # 1 bit a pixel: a few MB to make, 300-540 MB decoded as RGB
    assert path.stat().st_size < 2_000_000 and size[0] * size[1] > MAX_PIXELS
    tracemalloc.start()
    try:
        with pytest.raises(HumanParseError, match=r"huge.png: .*megapixels.*scale it down first") as error:
            read_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(error.value) and peak < 50_000_000  # nothing the size of the image was made


def test_the_largest_allowed_image_is_read(tmp_path, monkeypatch) -> None:
    import humanparse.io.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 64 * 48)
    cv2.imwrite(str(tmp_path / "fits.png"), np.zeros((48, 64, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "over.png"), np.zeros((48, 65, 3), np.uint8))
    assert read_image(tmp_path / "fits.png").shape == (48, 64, 3)
    with pytest.raises(HumanParseError, match="65x48 is 0 megapixels"):
        read_image(tmp_path / "over.png")


def test_a_truncated_jpeg_is_refused_not_parsed_half_grey(tmp_path) -> None:
    from pathlib import Path

    photo = Path(__file__).resolve().parents[1] / "fixtures" / "photos" / "grace_hopper.jpg"
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo.read_bytes()[: photo.stat().st_size // 3])
    with pytest.raises(HumanParseError, match=r"cut.jpg: cannot read the image \(image file is truncated"):
        read_image(cut)
    whole = read_image(photo)  # the same pixels OpenCV decodes
    assert np.array_equal(whole, cv2.imread(str(photo))[..., ::-1])


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_an_image_over_pils_bomb_warning_but_within_max_pixels_reads_quietly(tmp_path, monkeypatch, suffix) -> None:
    """PIL warns of a decompression bomb from 89 megapixels, under humanparse's own bound of
    100 (a 95-megapixel photo printed PIL's warning): scaled down here, PIL's limit set
    under the image's size."""
    import warnings

    from PIL import Image

    cv2.imwrite(str(tmp_path / f"photo{suffix}"), np.full((48, 64, 3), 90, np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 48 * 64 // 2 + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / f"photo{suffix}").shape == (48, 64, 3)


def test_a_damaged_png_is_one_line_of_ours_and_nothing_from_libpng(tmp_path, capfd) -> None:
    """OpenCV's libpng printed "libpng error: Read Error" on stderr beside our error."""
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "whole.png"), image)
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    assert np.array_equal(read_image(tmp_path / "whole.png"), image[..., ::-1])
    with pytest.raises(HumanParseError, match=r"half.png: cannot read the image"):
        read_image(tmp_path / "half.png")
    # A JPEG cut inside its header, which PIL cannot even open, went to OpenCV's libjpeg,
    # which printed "Premature end of JPEG file".
    cv2.imwrite(str(tmp_path / "whole.jpg"), image)
    (tmp_path / "head.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    with pytest.raises(HumanParseError, match=r"head.jpg: cannot read the image \(Truncated File Read\)"):
        read_image(tmp_path / "head.jpg")
    assert capfd.readouterr().err == ""


def test_walking_the_inputs_skips_the_output_folder(folder) -> None:
    out = folder / "a" / "out"
    (out / "overlay").mkdir(parents=True)
    cv2.imwrite(str(out / "overlay" / "one.jpg"), np.zeros((4, 5, 3), np.uint8))
    assert [p.name for p in list_images([folder / "a"], skip=out)] == ["two.PNG", "one.jpg"]
    assert [p.name for p in list_images([str(folder / "a" / "**" / "*.jpg")], skip=out)] == ["one.jpg"]
    assert len(list_images([folder / "a"])) == 3
