"""COCO RLE: round trips, and rejection of counts that do not describe the mask."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from humanparse.io import rle


def _pycocotools(mask: np.ndarray) -> dict[str, object]:
    """The reference: pycocotools' encoder over the whole mask."""
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def test_whole_masks_encode_as_pycocotools_does() -> None:
    rng = np.random.default_rng(0)
    edge_cases = [np.zeros((3, 4), bool), np.ones((3, 4), bool), np.eye(4, dtype=bool), np.zeros((1, 1), bool), np.ones((1, 7), bool)]
    for corner in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        single = np.zeros((5, 6), bool)
        single[corner] = True
        edge_cases.append(single)
    randoms = [rng.random((int(rng.integers(1, 15)), int(rng.integers(1, 15)))) < rng.choice([0.05, 0.5, 0.95]) for _ in range(400)]
    for mask in edge_cases + randoms:
        assert rle.encode(mask) == _pycocotools(mask)


def test_a_crop_placed_in_its_image_encodes_as_the_whole_mask() -> None:
    rng = np.random.default_rng(1)
    for _ in range(600):
        height, width = (int(v) for v in rng.integers(1, 15, 2))
        top, left = int(rng.integers(0, height + 1)), int(rng.integers(0, width + 1))
        bottom, right = int(rng.integers(top, height + 1)), int(rng.integers(left, width + 1))
        whole = np.zeros((height, width), bool)
        whole[top:bottom, left:right] = rng.random((bottom - top, right - left)) < rng.choice([0.0, 0.3, 1.0])
        assert rle.encode(whole[top:bottom, left:right], (height, width), (top, left)) == _pycocotools(whole)


@pytest.mark.parametrize("offset", [(-1, 0), (0, -1), (3, 0), (0, 4)])
def test_a_crop_that_does_not_fit_its_image_is_refused(offset: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        rle.encode(np.ones((2, 2), bool), (4, 5), offset)


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_and_run_lengths(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) < rng.random()
    encoded = rle.encode(mask)
    assert encoded["size"] == list(mask.shape)
    assert np.array_equal(rle.decode(encoded), mask)
    # Runs alternate background / foreground over the Fortran-order pixels.
    flat = mask.flatten(order="F")
    expected, value, count = [], False, 0
    for pixel in flat:
        if pixel == value:
            count += 1
        else:
            expected.append(count)
            value, count = pixel, 1
    expected.append(count)
    assert rle.run_lengths(encoded["counts"]) == expected


def test_invalid_counts_are_rejected() -> None:
    good = rle.encode(np.ones((4, 4), bool))
    for counts in ("?", "~", good["counts"] + "1", ""):
        with pytest.raises(ValueError):
            rle.decode({"size": [4, 4], "counts": counts})


def test_counts_that_are_not_a_compressed_string_are_refused() -> None:
    """bytes(5) is five zero bytes and a list is COCO's uncompressed form: neither was refused."""
    for counts in (5, [16], None):
        with pytest.raises(ValueError, match="compressed string"):
            rle.decode({"size": [4, 4], "counts": counts})
    good = rle.encode(np.eye(4, dtype=bool))
    assert np.array_equal(rle.decode({"size": [4, 4], "counts": good["counts"].encode()}), np.eye(4, dtype=bool))
