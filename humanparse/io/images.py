"""Image files: images for inference from files, folders, list files and globs, as uint8
RGB; and the one PNG and JPEG encoder of every image humanparse writes."""

from __future__ import annotations

import glob
import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import HumanParseError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def list_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand the inputs into image paths, in a stable order, without duplicates.

    Each input is an image file, a folder (searched recursively, image extensions only),
    a ``.txt`` file listing paths (relative to its folder), or a glob pattern. An input
    that matches nothing is an error naming it.
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file() and path.suffix.lower() == ".txt":
            try:
                lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            except (OSError, UnicodeDecodeError) as exc:
                raise HumanParseError(f"{item}: not a text list of image paths ({exc.__class__.__name__})") from None
            matches = [p if p.is_absolute() else path.parent / p for p in map(Path, lines)]
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(str(item)):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS)
        else:
            raise HumanParseError(f"{item}: no such file or folder")
        if not matches:
            raise HumanParseError(f"{item}: no images found")
        found.extend(matches)
    return list(dict.fromkeys(found))


def read_image(path: str | Path) -> np.ndarray:
    """Any image OpenCV reads -> (H, W, 3) uint8 RGB.

    Grey images are repeated into three channels, an alpha channel is dropped, 16-bit
    images are scaled to 8 bits, and an EXIF orientation is applied: the array is the
    picture as viewers display it (a phone's portrait photo comes out upright).
    """
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # (UNCHANGED ignores EXIF: applied below)
    if image is None:
        raise HumanParseError(f"{path}: cannot read the image" if path.is_file() else f"{path}: no such file")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise HumanParseError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[..., :3]
    elif image.shape[2] != 3:
        raise HumanParseError(f"{path}: unsupported number of channels {image.shape[2]}")
    return np.ascontiguousarray(_oriented(image[..., ::-1], _exif_orientation(path)))


def _exif_orientation(path: Path) -> int:
    """The EXIF orientation tag (1-8; 1 = as stored) of an image file, 1 if it has none."""
    try:
        with Image.open(path) as image:
            value = image.getexif().get(0x0112, 1)  # reads the header only
    except Exception:  # noqa: BLE001 - a file PIL cannot parse has no orientation we can use
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _oriented(image: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W, C) as stored -> as displayed, for EXIF orientation 1-8 (TIFF 6.0 tag 274)."""
    if orientation in (5, 6, 7, 8):
        image = image.transpose(1, 0, 2)  # 5 is this alone
        if orientation == 6:
            image = image[:, ::-1]
        elif orientation == 7:
            image = image[::-1, ::-1]
        elif orientation == 8:
            image = image[::-1]
        return image
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    return image


def encode_png(array: np.ndarray, palette: Sequence[tuple[int, int, int]] | None = None) -> bytes:
    """PNG file contents of (H, W, 3) uint8 RGB, (H, W) uint8 grey or (H, W) uint16 grey;
    with ``palette`` (one RGB triple per value), (H, W) uint8 values as an indexed-colour
    PNG whose pixel values stay the values (label maps) and whose colours are the palette."""
    if palette is not None:
        if array.ndim != 2 or array.dtype != np.uint8:
            raise HumanParseError(f"a palette PNG needs (H, W) uint8 values, got {array.shape} {array.dtype}")
        image = Image.fromarray(array, mode="P")
        flat = [c for colour in palette for c in colour]
        image.putpalette(flat + [0] * (768 - len(flat)))
    elif array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        image = Image.fromarray(array, mode="L" if array.ndim == 2 else "RGB")
    elif array.dtype == np.uint16 and array.ndim == 2:
        image = Image.fromarray(array)
    else:
        raise HumanParseError(f"cannot write a PNG of {array.shape} {array.dtype}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write :func:`encode_png` of ``array`` to ``path`` (inside a folder being built; the
    folder, not the file, is what appears atomically). A failed write is a HumanParseError
    naming the file."""
    try:
        Path(path).write_bytes(encode_png(array))
    except OSError as exc:
        raise HumanParseError(f"cannot write {path}: {exc.strerror or exc}") from None


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG file contents of (H, W, 3) uint8 RGB."""
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise HumanParseError("JPEG encoding failed")
    return data.tobytes()
