"""COCO RLE: round trips, and rejection of counts that do not describe the mask."""

from __future__ import annotations

import numpy as np
import pytest

from humanparse.io import rle


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
