"""Pascal-Person-Part from its sources, converted to the CIHP layout.

Two sources:

* the Pascal-Part per-object annotations (Chen et al. 2014): one MAT file per image,
  ``scipy.io.loadmat(f)['anno'][0, 0]`` with ``imname`` and ``objects`` (``class``,
  ``mask``, ``parts`` with ``part_name`` and ``mask``). Person parts are grouped into the
  six classes of Pascal-Person-Part:

  =========== ==========================================================
  head        head, hair, leye, reye, lear, rear, lebrow, rebrow, nose, mouth
  torso       torso, neck
  upper-arms  luarm, ruarm
  lower-arms  llarm, rlarm, lhand, rhand
  upper-legs  luleg, ruleg
  lower-legs  llleg, rlleg, lfoot, rfoot
  =========== ==========================================================

  Every person gets its own id; a person annotated without parts is marked 255 (ignored)
  rather than background. Where people overlap, the later object in the file is drawn
  over the earlier (the annotations carry no depth).

* the common PNG release of the category-level labels: one label PNG per image. Some
  releases order the labels differently (e.g. 1 lower arm, 2 head, 3 upper leg, 4 torso,
  5 lower leg, 6 upper arm), so the conversion takes a label map. It has no person ids:
  good for the category-level (semantic) stage only.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from ..errors import HumanParseError
from ..io.files import new_directory
from ..io.images import write_png
from ..labels import IGNORE, PASCAL_PERSON_PART
from .cihp import check_split_name, read_label_png, write_meta, write_sample, write_split

PART_GROUPS: dict[str, int] = {
    **dict.fromkeys(("head", "hair", "leye", "reye", "lear", "rear", "lebrow", "rebrow", "nose", "mouth"), 1),
    **dict.fromkeys(("torso", "neck"), 2),
    **dict.fromkeys(("luarm", "ruarm"), 3),
    **dict.fromkeys(("llarm", "rlarm", "lhand", "rhand"), 4),
    **dict.fromkeys(("luleg", "ruleg"), 5),
    **dict.fromkeys(("llleg", "rlleg", "lfoot", "rfoot"), 6),
}


def read_pascal_part_mat(path: str | Path) -> tuple[str, np.ndarray, np.ndarray]:
    """One MAT file -> (image name, parts (H, W) uint8, persons (H, W) uint8)."""
    path = Path(path)
    try:
        anno = scipy.io.loadmat(str(path))["anno"][0, 0]
        name = str(np.asarray(anno["imname"]).ravel()[0])
        objects = np.asarray(anno["objects"]).ravel()
    except (OSError, ValueError, KeyError, IndexError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError) as exc:
        raise HumanParseError(f"{path}: not a Pascal-Part annotation ({type(exc).__name__}: {exc})") from None
    shape = None
    parts = persons = None
    pid = 0
    for obj in objects:
        cls = str(np.asarray(obj["class"]).ravel()[0])
        mask = np.asarray(obj["mask"]).astype(bool)
        if shape is None:
            shape = mask.shape
            parts = np.zeros(shape, np.uint8)
            persons = np.zeros(shape, np.uint8)
        if mask.shape != shape:
            raise HumanParseError(f"{path}: object masks of different sizes ({mask.shape} and {shape})")
        if cls != "person":
            continue
        part_list = np.asarray(obj["parts"]).ravel()
        drawn = np.zeros(shape, bool)
        for part in part_list:
            part_name = str(np.asarray(part["part_name"]).ravel()[0])
            if part_name not in PART_GROUPS:
                raise HumanParseError(f"{path}: unknown person part {part_name!r}")
            part_mask = np.asarray(part["mask"]).astype(bool)
            if part_mask.shape != shape:
                raise HumanParseError(f"{path}: part {part_name!r} mask is {part_mask.shape}, the image {shape}")
            parts[part_mask] = PART_GROUPS[part_name]
            persons[part_mask] = pid + 1
            drawn |= part_mask
        if drawn.any():
            pid += 1
        else:
            parts[mask] = IGNORE
            persons[mask] = 0
    if shape is None:
        raise HumanParseError(f"{path}: the annotation has no objects")
    return name, parts, persons


def convert_pascal_part(
    annotations: str | Path,
    images: str | Path,
    out: str | Path,
    split: str = "train",
    ids: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Convert Pascal-Part MAT files (``annotations/*.mat``) with their JPEGs (``images/``)
    into a new CIHP-layout folder. ``ids`` restricts to those image names; images with no
    person are left out."""
    check_split_name(split)
    mats = sorted(Path(annotations).glob("*.mat"))
    if ids is not None:
        wanted = set(ids)
        mats = [m for m in mats if m.stem in wanted]
    if not mats:
        raise HumanParseError(f"no Pascal-Part .mat files in {annotations}" + (" for the requested ids" if ids else ""))
    written = []
    with new_directory(out) as root:
        for k, mat in enumerate(mats):
            name, parts, persons = read_pascal_part_mat(mat)
            if persons.any() or (parts == IGNORE).any():
                image = Path(images) / f"{name}.jpg"
                if not image.is_file():
                    raise HumanParseError(f"{mat}: its image {image} is missing")
                decoded = cv2.imread(str(image), cv2.IMREAD_COLOR)
                if decoded is None:
                    raise HumanParseError(f"{image}: cannot read the image")
                if decoded.shape[:2] != parts.shape:
                    raise HumanParseError(f"{mat}: masks of {parts.shape[1]}x{parts.shape[0]} for the {decoded.shape[1]}x{decoded.shape[0]} image {image}")
                write_sample(root, name, image.read_bytes(), parts, persons)
                written.append(name)
            if progress is not None:
                progress(k + 1, len(mats))
        if not written:
            raise HumanParseError(f"none of the {len(mats)} annotations in {annotations} has a person")
        write_split(root, split, written)
        write_meta(root, PASCAL_PERSON_PART, source="Pascal-Part")
    return Path(out)


def parse_label_map(text: str) -> dict[int, int]:
    """``"1:4,2:1,..."`` (source value: Pascal-Person-Part label) -> dict; unlisted values keep theirs."""
    mapping = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            src, dst = (int(v) for v in item.split(":"))
        except ValueError:
            raise HumanParseError(f"label map entry {item!r} is not SOURCE:TARGET") from None
        if not (0 <= src <= 255 and 0 <= dst <= 255):
            raise HumanParseError(f"label map entry {item!r} is outside 0..255")
        mapping[src] = dst
    return mapping


def convert_png_release(
    images: str | Path,
    labels: str | Path,
    out: str | Path,
    label_map: dict[int, int] | None = None,
    split: str = "train",
) -> Path:
    """Category-level label PNGs (``labels/<name>.png``) with their JPEGs -> CIHP layout
    without person ids (``Human_ids/`` stays absent)."""
    check_split_name(split)
    pngs = sorted(Path(labels).glob("*.png"))
    if not pngs:
        raise HumanParseError(f"no label PNGs in {labels}")
    valid = np.zeros(256, bool)
    valid[: len(PASCAL_PERSON_PART.names)] = valid[IGNORE] = True
    table = np.arange(256, dtype=np.uint8)
    for src, dst in (label_map or {}).items():
        if not valid[dst]:
            raise HumanParseError(f"label map {src}:{dst}: Pascal-Person-Part labels are 0..{len(PASCAL_PERSON_PART.names) - 1} and {IGNORE} (void)")
        table[src] = dst
    with new_directory(out) as root:
        (root / "images").mkdir()
        (root / "Category_ids").mkdir()
        for png in pngs:
            image = Path(images) / f"{png.stem}.jpg"
            if not image.is_file():
                raise HumanParseError(f"{png}: its image {image} is missing")
            decoded = cv2.imread(str(image), cv2.IMREAD_COLOR)
            if decoded is None:
                raise HumanParseError(f"{image}: cannot read the image")
            values = table[read_label_png(png, decoded.shape[:2])]
            outside = np.unique(values[~valid[values]])
            if len(outside):
                raise HumanParseError(f"{png}: value {outside[0]} is no Pascal-Person-Part label; map it with --label-map {outside[0]}:PART")
            shutil.copyfile(image, root / "images" / image.name)
            write_png(root / "Category_ids" / png.name, values.astype(np.uint8))
        write_split(root, split, [p.stem for p in pngs])
        write_meta(root, PASCAL_PERSON_PART, source="category-level label PNGs")
    return Path(out)
