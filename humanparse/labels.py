"""Label sets are data: names, a palette and the left/right pairs that mirroring swaps.

Also the values every label map shares: :data:`IGNORE` (pixels no loss or metric counts),
the COCO-17 keypoints with their skeleton, the order of every result's keypoints, and the
:data:`COARSE` label set (background, head, upper body, lower body) that maps of different
label sets are compared on (:func:`to_coarse`)."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import HumanParseError

# The label of pixels that no loss and no metric counts: unannotated people, padding.
IGNORE = 255

# COCO's 17 person keypoints, in COCO's order: the order of ParsingResult.keypoints.
COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# A keypoint scoring at least this counts as found: drawn, and visible (v = 2) in the JSON.
MIN_KEYPOINT_SCORE = 0.3
# COCO's skeleton: pairs of 0-based keypoint indices joined when drawn.
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of part labels; index 0 is always background.

    `palette` holds one (r, g, b) triple per label, `mirror_pairs` the (left, right) label
    index pairs that a horizontal flip swaps.
    """

    name: str
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    mirror_pairs: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.names) < 2 or self.names[0] != "background":
            raise HumanParseError(f"label set {self.name!r}: label 0 must be 'background' and at least one part must follow")
        if len(self.names) > 255:  # 255 marks void pixels in every 8-bit label map
            raise HumanParseError(f"label set {self.name!r}: {len(self.names)} labels; at most 255 fit an 8-bit label map beside void (255)")
        if len(set(self.names)) != len(self.names) or not all(isinstance(n, str) and n for n in self.names):
            raise HumanParseError(f"label set {self.name!r}: label names must be distinct, non-empty strings")
        if len(self.palette) != len(self.names):
            raise HumanParseError(f"label set {self.name!r}: {len(self.palette)} colours for {len(self.names)} labels")
        for colour in self.palette:
            if len(colour) != 3 or not all(_is_byte(c) for c in colour):
                raise HumanParseError(f"label set {self.name!r}: colour {list(colour)} is not three integers in 0..255")
        for a, b in self.mirror_pairs:
            if not (0 < a < len(self.names) and 0 < b < len(self.names)) or a == b:
                raise HumanParseError(f"label set {self.name!r}: bad mirror pair ({a}, {b})")

    @property
    def num_parts(self) -> int:
        """P, the number of part labels (background excluded)."""
        return len(self.names) - 1

    def mirror_table(self) -> list[int]:
        """Lookup table mapping each label to its mirror image (identity where unpaired)."""
        table = list(range(len(self.names)))
        for a, b in self.mirror_pairs:
            table[a], table[b] = b, a
        return table

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so that a checkpoint loads with `weights_only=True`."""
        return {
            "name": self.name,
            "names": list(self.names),
            "palette": [list(c) for c in self.palette],
            "mirror_pairs": [list(p) for p in self.mirror_pairs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabelSet":
        try:
            return cls(
                name=str(d["name"]),
                names=tuple(str(n) for n in d["names"]),
                palette=tuple(tuple(c) for c in d["palette"]),
                mirror_pairs=tuple((int(p[0]), int(p[1])) for p in d.get("mirror_pairs", [])),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise HumanParseError(f"malformed label set: {exc}") from None


def _is_byte(value: Any) -> bool:
    """An integer (of any integer type, not a float that happens to be whole) in 0..255."""
    try:
        return 0 <= operator.index(value) <= 255
    except TypeError:
        return False


PASCAL_PERSON_PART = LabelSet(
    name="pascal-person-part",
    names=("background", "head", "torso", "upper-arms", "lower-arms", "upper-legs", "lower-legs"),
    palette=((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128)),
)

CIHP = LabelSet(
    name="cihp",
    names=(
        "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat",
        "socks", "pants", "torso-skin", "scarf", "skirt", "face", "left-arm", "right-arm",
        "left-leg", "right-leg", "left-shoe", "right-shoe",
    ),
    palette=(
        (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85),
        (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0),
        (0, 0, 255), (51, 170, 221), (0, 255, 255), (85, 255, 170), (170, 255, 85),
        (255, 255, 0), (255, 170, 0),
    ),
    mirror_pairs=((14, 15), (16, 17), (18, 19)),
)

# LIP (Gong et al., 2017) and ATR (Liang et al., 2015), for scoring on their category-level
# maps: the label orders of their releases (as Self-Correction Human Parsing lists them).
# LIP is CIHP's list with "jumpsuits" where CIHP has "torso-skin", and CIHP's colours.
LIP = LabelSet(
    name="lip",
    names=CIHP.names[:10] + ("jumpsuits",) + CIHP.names[11:],
    palette=CIHP.palette,
    mirror_pairs=CIHP.mirror_pairs,
)


def _voc_palette(count: int) -> tuple[tuple[int, int, int], ...]:
    """The Pascal VOC colour map (a label's bits spread over R, G, B from the top bit down),
    which the human-parsing releases without colours of their own draw with."""
    colours = []
    for label in range(count):
        r = g = b = 0
        bits = label
        for place in range(7, -1, -1):
            r, g, b = r | (bits & 1) << place, g | (bits >> 1 & 1) << place, b | (bits >> 2 & 1) << place
            bits >>= 3
        colours.append((r, g, b))
    return tuple(colours)


ATR = LabelSet(
    name="atr",
    names=(
        "background", "hat", "hair", "sunglasses", "upper-clothes", "skirt", "pants", "dress", "belt",
        "left-shoe", "right-shoe", "face", "left-leg", "right-leg", "left-arm", "right-arm", "bag", "scarf",
    ),
    palette=_voc_palette(18),
    mirror_pairs=((9, 10), (12, 13), (14, 15)),
)

LABEL_SETS: dict[str, LabelSet] = {ls.name: ls for ls in (PASCAL_PERSON_PART, CIHP, LIP, ATR)}


def get_label_set(name: str) -> LabelSet:
    """Look a built-in label set up by name (`pascal-person-part`, `cihp`, `lip`, `atr`)."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise HumanParseError(f"unknown label set {name!r}; known: {', '.join(sorted(LABEL_SETS))}") from None


# Head, upper body (torso and arms) and lower body (legs): the parts every label set can be
# grouped onto, so that maps of different label sets (CIHP ground truth, Pascal-Person-Part
# predictions) are compared on the same classes.
COARSE = LabelSet(
    name="coarse",
    names=("background", "head", "upper-body", "lower-body"),
    palette=((0, 0, 0), (128, 0, 0), (0, 128, 0), (0, 0, 128)),
)

# Per label set (by name), the coarse label of each of its labels; IGNORE where a label
# belongs to no group. CIHP: head = hat, hair, sunglasses, face; upper body = glove, upper
# clothes, coat, torso skin, scarf, arms; lower body = socks, pants, skirt, legs, shoes; a
# dress spans both and is ignored. LIP: CIHP's, its jumpsuits ignored as the dress is. ATR:
# likewise, with the belt (on the line between the groups) and the bag (carried anywhere)
# ignored.
COARSE_GROUPS: dict[str, tuple[int, ...]] = {
    PASCAL_PERSON_PART.name: (0, 1, 2, 2, 2, 3, 3),
    CIHP.name: (0, 1, 1, 2, 1, 2, IGNORE, 2, 3, 3, 2, 2, 3, 1, 2, 2, 3, 3, 3, 3),
    LIP.name: (0, 1, 1, 2, 1, 2, IGNORE, 2, 3, 3, IGNORE, 2, 3, 1, 2, 2, 3, 3, 3, 3),
    ATR.name: (0, 1, 1, 1, 2, 3, 3, IGNORE, IGNORE, 3, 3, 1, 3, 3, 2, 2, IGNORE, 2),
}


def coarse_table(label_set: LabelSet) -> np.ndarray:
    """(256,) uint8 lookup table from ``label_set``'s labels to :data:`COARSE` labels:
    IGNORE for labels outside the set, for IGNORE itself and for labels in no group.
    Raises HumanParseError for a label set with no coarse grouping."""
    groups = COARSE_GROUPS.get(label_set.name)
    if groups is None:
        raise HumanParseError(f"label set {label_set.name!r} has no coarse grouping; known: {', '.join(sorted(COARSE_GROUPS))}")
    if len(groups) != len(label_set.names):
        raise HumanParseError(f"label set {label_set.name!r}: {len(label_set.names)} labels, but its coarse grouping has {len(groups)}")
    table = np.full(256, IGNORE, np.uint8)
    table[: len(groups)] = groups
    return table


def to_coarse(labels: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """Map an integer label map of ``label_set`` onto :data:`COARSE` labels.

    Args:
        labels: (H, W) (or any shape) integer labels of ``label_set``; IGNORE (255) where
            unknown.

    Returns:
        Same shape, uint8: 0 background, 1 head, 2 upper body, 3 lower body, IGNORE for
        IGNORE, labels in no coarse group (CIHP's dress) and values outside the set.
    """
    table = coarse_table(label_set)
    labels = np.asarray(labels)
    if labels.dtype == np.uint8:
        return table[labels]
    if not np.issubdtype(labels.dtype, np.integer):
        raise HumanParseError(f"label maps hold integers, got {labels.dtype}")
    inside = (labels >= 0) & (labels < len(table))
    return np.where(inside, table[np.where(inside, labels, IGNORE)], np.uint8(IGNORE)).astype(np.uint8)
