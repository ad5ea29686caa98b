"""MOTS text, as TrackEval's MOTSChallenge reader takes it.

One line per object and frame: ``frame obj_id class_id img_h img_w rle``, single spaces,
frames from 1, ``class_id`` 2 (pedestrian), ``obj_id = 2000 + track id``, ``rle`` the COCO
compressed RLE of a Fortran-order mask. Masks of one frame must not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HumanParseError
from ..ops import person_regions
from . import rle

PEDESTRIAN = 2


@dataclass(frozen=True)
class MotsObject:
    frame: int  # from 1
    track_id: int  # from 1
    mask: np.ndarray  # (H, W) bool


def frame_lines(frame: int, id_map: np.ndarray, regions: dict[int, tuple[slice, slice]] | None = None) -> list[str]:
    """The MOTS lines of one frame from an (H, W) track-id map (0 = background), in
    increasing id order; ``regions`` where each id lies, if known
    (:func:`~humanparse.ops.person_regions`, found here otherwise)."""
    h, w = id_map.shape
    lines = []
    for track, (rows, cols) in sorted((person_regions(id_map) if regions is None else regions).items()):
        if track >= 1000:
            raise HumanParseError(f"track id {track} does not fit MOTS object ids (at most 999 tracks)")
        counts = rle.encode(id_map[rows, cols] == track, (h, w), (rows.start, cols.start))["counts"]
        lines.append(f"{frame} {PEDESTRIAN * 1000 + track} {PEDESTRIAN} {h} {w} {counts}\n")
    return lines


def read_mots(path: str | Path) -> list[MotsObject]:
    """Parse a MOTS text file, with a clear error naming the line for anything malformed."""
    path = Path(path)
    objects = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(" ")
        try:
            if len(fields) != 6:
                raise ValueError(f"{len(fields)} fields instead of 6")
            frame, obj_id, class_id, h, w = (int(v) for v in fields[:5])
            mask = rle.decode({"size": [h, w], "counts": fields[5]})
        except (ValueError, TypeError) as exc:
            raise HumanParseError(f"{path}:{number}: malformed MOTS line ({exc})") from None
        if class_id != PEDESTRIAN or obj_id // 1000 != class_id:
            raise HumanParseError(f"{path}:{number}: expected class {PEDESTRIAN} and object id {PEDESTRIAN}xxx, got {class_id} {obj_id}")
        objects.append(MotsObject(frame, obj_id % 1000, mask))
    return objects
