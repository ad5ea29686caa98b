"""The CIHP folder layout, which the synthetic world writes and the readers read.

    images/<id>.jpg            the image
    Category_ids/<id>.png      uint8 part label per pixel (0 background)
    Human_ids/<id>.png         uint8 person id per pixel (0 background)
    Instance_ids/<id>.png      uint8 part-instance id per pixel (0 background)
    Instance_ids/<id>.txt      one line per part instance: "inst_id class human_id"
    <split>_id.txt             the ids of a split, one per line
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import HumanParseError

FOLDERS = ("images", "Category_ids", "Human_ids", "Instance_ids")


def instance_ids(parts: np.ndarray, persons: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Number the (person, part) segments 1..K in person, then part order.

    Returns the (H, W) uint8 instance map and the rows (inst_id, part, person).
    """
    key = persons.astype(np.int64) * 256 + parts.astype(np.int64)
    present = np.unique(key[(persons > 0) & (parts > 0)])
    if len(present) > 255:
        raise HumanParseError(f"{len(present)} part instances do not fit a uint8 instance map")
    lookup = np.zeros(int(key.max()) + 1, np.uint8)
    lookup[present] = np.arange(1, len(present) + 1)
    rows = [(k + 1, int(v % 256), int(v // 256)) for k, v in enumerate(present)]
    return lookup[key], rows


def write_sample(root: Path, sample_id: str, jpeg: bytes, parts: np.ndarray, persons: np.ndarray) -> None:
    """Write one image and its ground truth under ``root`` (a folder being built)."""
    for folder in FOLDERS:
        (root / folder).mkdir(exist_ok=True)
    (root / "images" / f"{sample_id}.jpg").write_bytes(jpeg)
    instances, rows = instance_ids(parts, persons)
    for folder, array in (("Category_ids", parts), ("Human_ids", persons), ("Instance_ids", instances)):
        if not cv2.imwrite(str(root / folder / f"{sample_id}.png"), array.astype(np.uint8)):
            raise HumanParseError(f"cannot write {root / folder / sample_id}.png")
    (root / "Instance_ids" / f"{sample_id}.txt").write_text("".join(f"{i} {c} {h}\n" for i, c, h in rows))


def write_split(root: Path, split: str, ids: list[str]) -> None:
    (root / f"{split}_id.txt").write_text("".join(f"{i}\n" for i in ids))
