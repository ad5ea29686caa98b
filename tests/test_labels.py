"""Label sets as data: the coarse grouping that maps of different label sets are compared on."""

from __future__ import annotations

import numpy as np
import pytest

from humanparse.errors import HumanParseError
from humanparse.labels import ATR, CIHP, COARSE, COARSE_GROUPS, IGNORE, LABEL_SETS, LIP, PASCAL_PERSON_PART, LabelSet, coarse_table, to_coarse

BACKGROUND, HEAD, UPPER, LOWER = range(4)


def test_coarse_label_set_is_background_head_upper_lower() -> None:
    assert COARSE.names == ("background", "head", "upper-body", "lower-body")


def test_every_built_in_label_set_has_a_coarse_grouping() -> None:
    for name, label_set in LABEL_SETS.items():
        assert len(COARSE_GROUPS[name]) == len(label_set.names)
        assert set(COARSE_GROUPS[name]) <= {BACKGROUND, HEAD, UPPER, LOWER, IGNORE}


def test_pascal_person_part_map_groups_onto_coarse() -> None:
    # background, head, torso, upper arms, lower arms, upper legs, lower legs; then ignore
    labels = np.array([[0, 1, 2, 3], [4, 5, 6, IGNORE]], np.uint8)
    expected = np.array([[BACKGROUND, HEAD, UPPER, UPPER], [UPPER, LOWER, LOWER, IGNORE]], np.uint8)
    out = to_coarse(labels, PASCAL_PERSON_PART)
    assert out.dtype == np.uint8 and np.array_equal(out, expected)


@pytest.mark.parametrize(
    ("names", "coarse"),
    [
        (("background",), BACKGROUND),
        (("hat", "hair", "sunglasses", "face"), HEAD),
        (("glove", "upper-clothes", "coat", "torso-skin", "scarf", "left-arm", "right-arm"), UPPER),
        (("socks", "pants", "skirt", "left-leg", "right-leg", "left-shoe", "right-shoe"), LOWER),
    ],
)
def test_cihp_labels_group_by_name(names: tuple[str, ...], coarse: int) -> None:
    labels = np.array([[CIHP.names.index(n) for n in names]], np.uint8)
    assert (to_coarse(labels, CIHP) == coarse).all()


@pytest.mark.parametrize(
    ("label_set", "names", "coarse"),
    [
        (LIP, ("hat", "hair", "sunglasses", "face"), HEAD),
        (LIP, ("glove", "upper-clothes", "coat", "scarf", "left-arm", "right-arm"), UPPER),
        (LIP, ("socks", "pants", "skirt", "left-leg", "right-leg", "left-shoe", "right-shoe"), LOWER),
        (LIP, ("dress", "jumpsuits"), IGNORE),
        (ATR, ("hat", "hair", "sunglasses", "face"), HEAD),
        (ATR, ("upper-clothes", "scarf", "left-arm", "right-arm"), UPPER),
        (ATR, ("skirt", "pants", "left-leg", "right-leg", "left-shoe", "right-shoe"), LOWER),
        (ATR, ("dress", "belt", "bag"), IGNORE),
    ],
    ids=lambda v: v.name if isinstance(v, LabelSet) else None,
)
def test_lip_and_atr_labels_group_by_name(label_set: LabelSet, names: tuple[str, ...], coarse: int) -> None:
    labels = np.array([[label_set.names.index(n) for n in names]], np.uint8)
    assert (to_coarse(labels, label_set) == coarse).all()


def test_lip_and_atr_have_their_releases_label_orders() -> None:
    """LIP differs from CIHP at label 10 alone; ATR's 18 labels in its own order."""
    assert [k for k, (a, b) in enumerate(zip(LIP.names, CIHP.names)) if a != b] == [10] and LIP.names[10] == "jumpsuits"
    assert ATR.names.index("belt") == 8 and ATR.names.index("face") == 11 and ATR.names.index("bag") == 16 and len(ATR.names) == 18
    assert ATR.palette[:7] == PASCAL_PERSON_PART.palette  # the VOC colour map, as Pascal's own colours are


def test_cihp_dress_and_unknown_edges_stay_ignored() -> None:
    dress = CIHP.names.index("dress")
    labels = np.array([[0, dress, 13], [IGNORE, 9, dress]], np.uint8)
    expected = np.array([[BACKGROUND, IGNORE, HEAD], [IGNORE, LOWER, IGNORE]], np.uint8)
    assert np.array_equal(to_coarse(labels, CIHP), expected)


def test_values_outside_the_label_set_are_ignored_whatever_the_integer_type() -> None:
    labels = np.array([-1, 0, 6, 7, 254, 255, 256, 1000], np.int64)
    expected = np.array([IGNORE, BACKGROUND, LOWER, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE], np.uint8)
    out = to_coarse(labels, PASCAL_PERSON_PART)
    assert out.dtype == np.uint8 and np.array_equal(out, expected)


def test_empty_map_maps_to_an_empty_map() -> None:
    assert to_coarse(np.zeros((0, 5), np.uint8), CIHP).shape == (0, 5)


def test_coarse_table_has_256_entries_ignoring_labels_past_the_set() -> None:
    table = coarse_table(PASCAL_PERSON_PART)
    assert table.shape == (256,) and table.dtype == np.uint8
    assert table[:7].tolist() == [0, 1, 2, 2, 2, 3, 3] and (table[7:] == IGNORE).all()


def test_label_set_without_a_grouping_or_float_maps_are_refused() -> None:
    custom = LabelSet("custom", ("background", "a"), ((0, 0, 0), (1, 2, 3)))
    with pytest.raises(HumanParseError, match="custom"):
        to_coarse(np.zeros((2, 2), np.uint8), custom)
    with pytest.raises(HumanParseError, match="integers"):
        to_coarse(np.zeros((2, 2), np.float32), PASCAL_PERSON_PART)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"palette": [[0, 0, 300]]}, r"colour \[0, 0, 300\] is not three integers in 0..255"),
        ({"palette": [[0, 0, 0.5]]}, r"colour \[0, 0, 0.5\] is not three integers"),
        ({"palette": [[0, 0]]}, r"is not three integers"),
        ({"names": ["background", "head", "head"]}, r"label names must be distinct"),
        ({"names": ["background", *(f"p{i}" for i in range(300))]}, r"301 labels; at most 255 fit an 8-bit label map beside void"),
    ],
)
def test_a_label_set_that_no_8_bit_map_or_palette_can_hold_is_refused(change, message) -> None:
    """A hand-edited checkpoint's label set: 300 labels would wrap in every uint8 map, and a
    colour of 300 would wrap in the overlay."""
    data = PASCAL_PERSON_PART.to_dict()
    if "palette" in change:
        data["palette"] = change["palette"] + data["palette"][1:]
    if "names" in change:
        data["names"] = change["names"]
        data["palette"] = (data["palette"] * 50)[: len(change["names"])]
    with pytest.raises(HumanParseError, match=message):
        LabelSet.from_dict(data)
    assert LabelSet.from_dict(PASCAL_PERSON_PART.to_dict()) == PASCAL_PERSON_PART
