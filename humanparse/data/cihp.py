"""The CIHP folder layout, which the synthetic world writes and the readers read.

    images/<id>.jpg            the image
    Category_ids/<id>.png      uint8 part label per pixel (0 background)
    Human_ids/<id>.png         uint8 person id per pixel (0 background)
    Instance_ids/<id>.png      uint8 part-instance id per pixel (0 background)
    Instance_ids/<id>.txt      one line per part instance: "inst_id class human_id"
    <split>_id.txt             the ids of a split, one per line
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HumanParseError
from ..io.images import open_pil, read_image, write_png
from ..labels import IGNORE, LabelSet
from ..ops import person_boxes

FOLDERS = ("images", "Category_ids", "Human_ids", "Instance_ids")
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")  # a sample's image, in the order looked for


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
    check_sample_id(sample_id)
    for name, array in (("part labels", parts), ("person ids", persons)):
        if array.dtype != np.uint8 and array.size and (array.min() < 0 or array.max() > 255):
            raise HumanParseError(f"{sample_id}: {name} outside 0..255 do not fit the 8-bit PNGs of the CIHP layout")
    for folder in FOLDERS:
        (root / folder).mkdir(exist_ok=True)
    (root / "images" / f"{sample_id}.jpg").write_bytes(jpeg)
    instances, rows = instance_ids(parts, persons)
    for folder, array in (("Category_ids", parts), ("Human_ids", persons), ("Instance_ids", instances)):
        write_png(root / folder / f"{sample_id}.png", array.astype(np.uint8))
    (root / "Instance_ids" / f"{sample_id}.txt").write_text("".join(f"{i} {c} {h}\n" for i, c, h in rows))


def write_split(root: Path, split: str, ids: list[str]) -> None:
    """``<split>_id.txt`` in ``root``."""
    (root / f"{check_split_name(split)}_id.txt").write_text("".join(f"{i}\n" for i in ids))


def check_split_name(split: str) -> str:
    """``split`` if it is a plain name (train, val, ...): never a path out of the data set."""
    if not _is_plain_name(split):
        raise HumanParseError(f"a split is a plain name like train or val, got {split!r}")
    return split


def check_sample_id(sample_id: str, where: str = "") -> str:
    """``sample_id`` if it can name a sample's files (``images/<id>.jpg``, ...): a plain file
    name, never a path out of the data set. ``where`` (a file, a file:line) prefixes the error."""
    if not _is_plain_name(sample_id):
        raise HumanParseError(f"{where + ': ' if where else ''}an image id is a plain file name (no folders, not '..'), got {sample_id!r}")
    return sample_id


def _is_plain_name(name: str) -> bool:
    """A name of one file in one folder: not empty, not . or .., no path separator, no NUL or
    other control character (which would also break the one-id-per-line split files)."""
    return isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\") and name.isprintable()


def write_meta(root: Path, labels: LabelSet, **fields: object) -> None:
    """``meta.json``: the data set's label set, which training and evaluation check the
    model's against (:func:`check_label_set`), and any other facts worth keeping."""
    (root / "meta.json").write_text(json.dumps({"label_set": labels.name, **fields}, indent=2) + "\n")


@dataclass(frozen=True)
class Sample:
    """One annotated image: image (H, W, 3) uint8 RGB; parts, persons (H, W) uint8;
    boxes (n, 4) float32 x1 y1 x2 y2 of each person's pixels, in ``person_ids`` order."""

    sample_id: str
    image: np.ndarray
    parts: np.ndarray
    persons: np.ndarray
    person_ids: tuple[int, ...]
    boxes: np.ndarray


def image_folder(root: str | Path) -> str:
    """The folder of a data set's images: ``images/`` (humanparse's own), or ``Images/`` as
    the CIHP release names it."""
    root = Path(root)
    return "Images" if not (root / "images").is_dir() and (root / "Images").is_dir() else "images"


def part_folder(root: str | Path) -> str:
    """The folder of a data set's part label PNGs: CIHP's ``Category_ids/``, or ``labels/``
    for a plain folder of images and label maps (``images/NAME.jpg``, ``labels/NAME.png``,
    as LIP-, ATR- or CIHP-style releases are often kept)."""
    root = Path(root)
    return "labels" if not (root / "Category_ids").is_dir() and (root / "labels").is_dir() else "Category_ids"


def has_splits(root: str | Path) -> bool:
    """Whether the data set lists its samples in split files (``<split>_id.txt``)."""
    return any(Path(root).glob("*_id.txt"))


def list_samples(root: str | Path) -> list[str]:
    """Every sample of a data set without split files: the images (by name) that have a
    part label map; an image without one is an error naming it."""
    root = Path(root)
    folder_of_images = root / image_folder(root)
    images = sorted({p.stem for p in folder_of_images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}) if folder_of_images.is_dir() else []
    if not images:
        raise HumanParseError(f"{root}: no images in {folder_of_images} and no split file (<split>_id.txt)")
    folder = root / part_folder(root)
    missing = [name for name in images if not (folder / f"{name}.png").is_file()]
    if missing:
        raise HumanParseError(f"{folder / missing[0]}.png: part labels not found for the image {missing[0]} ({len(missing)} of {len(images)} images lack theirs)")
    return [check_sample_id(name, str(folder_of_images)) for name in images]


def read_split(root: str | Path, split: str) -> list[str]:
    """The ids listed in ``<root>/<split>_id.txt`` (:func:`read_id_list`)."""
    path = Path(root) / f"{check_split_name(split)}_id.txt"
    if not path.is_file():
        available = sorted(p.name[: -len("_id.txt")] for p in Path(root).glob("*_id.txt"))
        hint = f"; splits here: {', '.join(available)}" if available else ""
        raise HumanParseError(f"missing split file {path}{hint}")
    ids = read_id_list(path)
    if not ids:
        raise HumanParseError(f"split file {path} lists no images")
    return ids


def read_id_list(path: str | Path) -> list[str]:
    """The image ids in a UTF-8 text file, one a line (blank lines and the lines' outer
    spaces ignored): a split's ``<split>_id.txt``, or the images to convert. Each is checked
    to be a plain file name (:func:`check_sample_id`); an unreadable file, one that is not
    UTF-8 text, or an id that is a path is a HumanParseError naming the file and line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HumanParseError(f"{path}: cannot read the list of image ids ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise HumanParseError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); a list of image ids is a text file, one id a line") from None
    ids = []
    for number, line in enumerate(text.split("\n"), start=1):
        sample_id = line.strip()
        if sample_id:
            ids.append(check_sample_id(sample_id, f"{path}:{number}"))
    return ids


def load_sample(root: str | Path, sample_id: str, num_labels: int) -> Sample:
    """Read one image and its ground truth, checking them against each other.

    ``num_labels`` is P+1 of the label set; part values must lie in 0..P (255 = ignore).
    A dataset without a ``Human_ids/`` folder is category-level only (persons None).
    """
    root = Path(root)
    image_path = _find_image(root, check_sample_id(sample_id))
    # read_image, as `humanparse images` reads a photo: the same pixels (EXIF orientation
    # applied, as OpenCV's IMREAD_COLOR did), its size checked from the header, and a
    # truncated JPEG refused where OpenCV fills it with grey and prints to stderr.
    image = read_image(image_path)
    labels = root / part_folder(root) / f"{sample_id}.png"
    parts = read_label_png(labels, image.shape[:2])
    bad = (parts >= num_labels) & (parts != IGNORE)
    if bad.any():
        raise HumanParseError(f"{labels}: label {int(parts[bad].max())} is outside the label set (0..{num_labels - 1})")
    if not (root / "Human_ids").is_dir():
        return Sample(sample_id, image, parts, None, (), np.zeros((0, 4), np.float32))
    persons = read_label_png(root / "Human_ids" / f"{sample_id}.png", image.shape[:2])
    ids, boxes = person_boxes(persons)
    return Sample(sample_id, image, parts, persons, tuple(ids.tolist()), boxes)


def check_samples(root: str | Path, ids: list[str]) -> None:
    """Fail now, naming the first missing file, if a listed sample lacks its image, its
    part labels or (where the set has ``Human_ids/``) its person ids: a check of names only,
    so that a long run does not stop hours in when the bad sample is drawn. What the files
    hold is checked as each is read (:func:`load_sample`)."""
    root = Path(root)
    folders = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    parts = part_folder(root)
    images = image_folder(root)
    present = {name: {f.name for f in (root / name).iterdir()} if name in folders else set() for name in (images, parts, "Human_ids")}
    for sample_id in ids:
        if not any(f"{sample_id}{ext}" in present[images] for ext in IMAGE_SUFFIXES):
            raise HumanParseError(f"{root / images / sample_id}.jpg: image not found (listed in the split)")
        if f"{sample_id}.png" not in present[parts]:
            raise HumanParseError(f"{root / parts / sample_id}.png: part labels not found (listed in the split)")
        if "Human_ids" in folders and f"{sample_id}.png" not in present["Human_ids"]:
            raise HumanParseError(f"{root / 'Human_ids' / sample_id}.png: person ids not found (listed in the split)")


def _find_image(root: Path, sample_id: str) -> Path:
    folder = root / image_folder(root)
    for ext in IMAGE_SUFFIXES:
        path = folder / f"{sample_id}{ext}"
        if path.is_file():
            return path
    raise HumanParseError(f"{folder / sample_id}.jpg: image not found")


def read_label_png(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A label PNG's values: grey levels, or palette indices for an indexed-colour PNG
    (VOC-style releases); OpenCV would turn the latter into colours, so Pillow reads it.

    Its size is checked against the image's ``shape`` (H, W) from the header, before the
    pixels are decoded, and against the bound of every image read (``io.images.MAX_PIXELS``)."""
    if not path.is_file():
        raise HumanParseError(f"{path}: label map not found")
    try:
        with open_pil(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise HumanParseError(f"{path}: a label map must hold one label per pixel, not {im.mode} colours")
            if (im.height, im.width) != tuple(shape):
                raise HumanParseError(f"{path}: label map is {im.width}x{im.height}, the image {shape[1]}x{shape[0]}")
            labels = np.array(im)
    except (OSError, ValueError) as exc:
        raise HumanParseError(f"{path}: cannot read the label map ({exc})") from None
    if labels.dtype != np.uint8:
        if labels.max() > 255 or labels.min() < 0:
            raise HumanParseError(f"{path}: label values outside 0..255")
        labels = labels.astype(np.uint8)
    return labels


def named_label_set(root: str | Path) -> str | None:
    """The label set a data set names in its ``meta.json`` (None without one)."""
    meta = Path(root) / "meta.json"
    if not meta.is_file():
        return None
    try:
        named = json.loads(meta.read_text()).get("label_set")
    except (OSError, ValueError, AttributeError) as exc:
        raise HumanParseError(f"{meta}: cannot read ({exc})") from None
    if named is not None and not isinstance(named, str):
        raise HumanParseError(f"{meta}: label_set must be a name, got {named!r}")
    return named


def check_label_set(root: str | Path, labels: LabelSet, source: str) -> None:
    """A data set that names its label set (meta.json) must use the model's."""
    named = named_label_set(root)
    if named is not None and named != labels.name:
        raise HumanParseError(f"{root} is labelled with {named!r} but {source} uses {labels.name!r} ({labels.num_parts} parts)")
