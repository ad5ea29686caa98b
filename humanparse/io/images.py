"""Images for inference: from files, folders, list files and globs, as uint8 RGB."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import HumanParseError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


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
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
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

    Grey images are repeated into three channels, an alpha channel is dropped, and 16-bit
    images are scaled to 8 bits.
    """
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
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
    return np.ascontiguousarray(image[..., ::-1])
