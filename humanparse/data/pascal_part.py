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

import reprlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io

from ..errors import HumanParseError
from ..interrupts import StopRequests
from ..io.files import new_directory
from ..io.images import read_image, write_png
from ..labels import IGNORE, PASCAL_PERSON_PART
from .cihp import check_sample_id, check_split_name, read_label_png, write_meta, write_sample, write_split

PART_GROUPS: dict[str, int] = {
    **dict.fromkeys(("head", "hair", "leye", "reye", "lear", "rear", "lebrow", "rebrow", "nose", "mouth"), 1),
    **dict.fromkeys(("torso", "neck"), 2),
    **dict.fromkeys(("luarm", "ruarm"), 3),
    **dict.fromkeys(("llarm", "rlarm", "lhand", "rhand"), 4),
    **dict.fromkeys(("luleg", "ruleg"), 5),
    **dict.fromkeys(("llleg", "rlleg", "lfoot", "rfoot"), 6),
}


# Person ids are stored as 8-bit PNGs (Human_ids/), like CIHP's own and as every reader
# reads them (cihp.read_label_png); no image of the release comes near this many people.
MAX_PERSONS = 255


def read_pascal_part_mat(path: str | Path) -> tuple[str, np.ndarray, np.ndarray]:
    """One MAT file -> (image name, parts (H, W) uint8, persons (H, W) uint8).

    The image name is checked to be a plain file name (never a path out of the images'
    folder or the output's); a file that is not in the release's structure, or that holds
    more than ``MAX_PERSONS`` persons with parts, is a HumanParseError naming it."""
    path = Path(path)
    try:
        anno = scipy.io.loadmat(str(path))["anno"][0, 0]
        imname = anno["imname"]
        objects = np.asarray(anno["objects"]).ravel()
    except (OSError, ValueError, KeyError, IndexError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError) as exc:
        raise HumanParseError(f"{path}: not a Pascal-Part annotation ({type(exc).__name__}: {exc})") from None
    name = check_sample_id(_text(imname, f"{path}: imname"), f"{path}: imname")
    if objects.size and not objects.dtype.names:
        raise HumanParseError(f"{path}: objects is not a struct array: not a Pascal-Part annotation")
    shape = None
    parts = persons = None
    pid = 0
    for k, obj in enumerate(objects, start=1):
        where = f"{path}: object {k}"
        cls = _text(_field(obj, "class", where), f"{where} class")
        mask = _mask(_field(obj, "mask", where), f"{where} mask")
        if shape is None:
            shape = mask.shape
            parts = np.zeros(shape, np.uint8)
            persons = np.zeros(shape, np.uint8)
        if mask.shape != shape:
            raise HumanParseError(f"{path}: object masks of different sizes ({mask.shape} and {shape})")
        if cls != "person":
            continue
        part_list = np.asarray(_field(obj, "parts", where)).ravel()
        if part_list.size and not part_list.dtype.names:
            raise HumanParseError(f"{where} parts is not a struct array: not a Pascal-Part annotation")
        drawn = np.zeros(shape, bool)
        for j, part in enumerate(part_list, start=1):
            part_name = _text(_field(part, "part_name", f"{where} part {j}"), f"{where} part {j} name")
            if part_name not in PART_GROUPS:
                raise HumanParseError(f"{path}: unknown person part {part_name!r}")
            part_mask = _mask(_field(part, "mask", f"{where} part {j}"), f"{where} part {part_name!r} mask")
            if part_mask.shape != shape:
                raise HumanParseError(f"{path}: part {part_name!r} mask is {part_mask.shape}, the image {shape}")
            if pid == MAX_PERSONS and part_mask.any():
                raise HumanParseError(f"{path}: more than {MAX_PERSONS} persons with parts; person ids are 8-bit PNGs in the CIHP layout")
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


def _field(record: object, name: str, where: str) -> object:
    """A MAT struct's field; a HumanParseError if ``record`` is no struct with it."""
    if name not in (getattr(getattr(record, "dtype", None), "names", None) or ()):
        raise HumanParseError(f"{where} has no {name!r} field: not a Pascal-Part annotation")
    return record[name]  # type: ignore[index]


def _text(value: object, where: str) -> str:
    """A MAT string (a 1-element char array) as str."""
    flat = np.asarray(value).ravel()
    if flat.size != 1 or not isinstance(flat[0], str):
        raise HumanParseError(f"{where} is not text: not a Pascal-Part annotation")
    return str(flat[0])


def _mask(value: object, where: str) -> np.ndarray:
    """A MAT mask (H, W) of numbers as bool; a HumanParseError for anything else."""
    mask = np.asarray(value)
    if mask.ndim != 2 or mask.size == 0 or mask.dtype.kind not in "biuf":
        raise HumanParseError(f"{where} is {mask.dtype} of shape {mask.shape}, not a 2-D mask: not a Pascal-Part annotation")
    return mask.astype(bool)


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
    person are left out. The folder appears only once complete: a bad file, Ctrl-C or
    SIGTERM (noted, and acted on before the next file) leave nothing behind."""
    check_split_name(split)
    mats = sorted(Path(annotations).glob("*.mat"))
    if ids is not None:
        wanted = {check_sample_id(i, "ids") for i in ids}
        missing = sorted(wanted - {m.stem for m in mats})
        if missing:  # a typo would otherwise shrink the data set without a word
            raise HumanParseError(f"{len(missing)} of the {len(wanted)} requested ids have no .mat file in {annotations}: {reprlib.repr(missing)}")
        mats = [m for m in mats if m.stem in wanted]
    if not mats:
        raise HumanParseError(f"no Pascal-Part .mat files in {annotations}" + (" for the requested ids" if ids else ""))
    written: dict[str, Path] = {}
    with StopRequests() as stops, new_directory(out) as root:
        for k, mat in enumerate(mats):
            if stops.requested:
                raise KeyboardInterrupt  # new_directory removes the partial folder
            name, parts, persons = read_pascal_part_mat(mat)
            if name in written:
                raise HumanParseError(f"{mat}: image {name!r} is annotated by {written[name]} too")
            if persons.any() or (parts == IGNORE).any():
                image = Path(images) / f"{name}.jpg"
                if not image.is_file():
                    raise HumanParseError(f"{mat}: its image {image} is missing")
                decoded = read_image(image)  # as the data set's readers and `images` read it
                if decoded.shape[:2] != parts.shape:
                    raise HumanParseError(f"{mat}: masks of {parts.shape[1]}x{parts.shape[0]} for the {decoded.shape[1]}x{decoded.shape[0]} image {image}")
                write_sample(root, name, image.read_bytes(), parts, persons)
                written[name] = mat
            if progress is not None:
                progress(k + 1, len(mats))
        if not written:
            raise HumanParseError(f"none of the {len(mats)} annotations in {annotations} has a person")
        write_split(root, split, list(written))
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
        if src in mapping and mapping[src] != dst:
            raise HumanParseError(f"label map maps {src} twice, to {mapping[src]} and to {dst}")
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
    without person ids (``Human_ids/`` stays absent). The folder appears only once
    complete, as for :func:`convert_pascal_part`."""
    check_split_name(split)
    pngs = sorted(Path(labels).glob("*.png"))
    if not pngs:
        raise HumanParseError(f"no label PNGs in {labels}")
    for png in pngs:
        check_sample_id(png.stem, str(png.parent))  # the id, quoted: the file name may hold a line break
    valid = np.zeros(256, bool)
    valid[: len(PASCAL_PERSON_PART.names)] = valid[IGNORE] = True
    table = np.arange(256, dtype=np.uint8)
    for src, dst in (label_map or {}).items():
        if not valid[dst]:
            raise HumanParseError(f"label map {src}:{dst}: Pascal-Person-Part labels are 0..{len(PASCAL_PERSON_PART.names) - 1} and {IGNORE} (void)")
        table[src] = dst
    with StopRequests() as stops, new_directory(out) as root:
        (root / "images").mkdir()
        (root / "Category_ids").mkdir()
        for png in pngs:
            if stops.requested:
                raise KeyboardInterrupt  # new_directory removes the partial folder
            image = Path(images) / f"{png.stem}.jpg"
            if not image.is_file():
                raise HumanParseError(f"{png}: its image {image} is missing")
            decoded = read_image(image)
            values = table[read_label_png(png, decoded.shape[:2])]
            outside = np.unique(values[~valid[values]])
            if len(outside):
                raise HumanParseError(f"{png}: value {outside[0]} is no Pascal-Person-Part label; map it with --label-map {outside[0]}:PART")
            shutil.copyfile(image, root / "images" / image.name)
            write_png(root / "Category_ids" / png.name, values.astype(np.uint8))
        write_split(root, split, [p.stem for p in pngs])
        write_meta(root, PASCAL_PERSON_PART, source="category-level label PNGs")
    return Path(out)
