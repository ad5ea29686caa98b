"""Image files: images for inference from files, folders, list files and globs, as uint8
RGB; and the one PNG and JPEG encoder of every image humanparse writes."""

from __future__ import annotations

import contextlib
import glob
import io
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import HumanParseError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# The largest image (and video frame) read: a 100-megapixel photo and its full-size results
# peak at about 2.5 GB (benchmarks/bench_memory.py), under the 3 GB any input must stay in.
MAX_PIXELS = 100_000_000


def list_images(inputs: Sequence[str | Path], skip: str | Path | None = None) -> list[Path]:
    """Expand the inputs into image paths, in a stable order, without duplicates.

    Each input is an image file, a folder (searched recursively, image extensions only),
    a ``.txt`` file listing paths (relative to its folder), or a glob pattern. An input
    that matches nothing is an error naming it. Folders and globs are walked without the
    folder ``skip`` (the run's own output: a rerun would parse its overlays as photos).
    """
    skipped = None if skip is None else Path(skip).resolve()

    def wanted(p: Path) -> bool:
        return p.suffix.lower() in IMAGE_EXTENSIONS and (skipped is None or not p.resolve().is_relative_to(skipped))

    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and wanted(p))
        elif path.is_file() and path.suffix.lower() == ".txt":
            try:
                lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            except (OSError, UnicodeDecodeError) as exc:
                raise HumanParseError(f"{item}: not a text list of image paths ({exc.__class__.__name__})") from None
            matches = [p if p.is_absolute() else path.parent / p for p in map(Path, lines)]
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(str(item)):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if wanted(Path(p)))
        else:
            raise HumanParseError(f"{item}: no such file or folder")
        if not matches:
            raise HumanParseError(f"{item}: no images found")
        found.extend(matches)
    return list(dict.fromkeys(found))


def read_image(path: str | Path) -> np.ndarray:
    """Any image OpenCV reads -> (H, W, 3) uint8 RGB. A damaged or truncated file is a
    HumanParseError.

    Grey images are repeated into three channels, an alpha channel is dropped, 16-bit
    images are scaled to 8 bits, and an EXIF orientation is applied: the array is the
    picture as viewers display it (a phone's portrait photo comes out upright). An image
    of more than ``MAX_PIXELS`` is refused from its header, before it is decoded.
    """
    path = Path(path)
    orientation, kind = _checked_header(path)
    if kind in ("JPEG", "MPO", "PNG"):
        return np.ascontiguousarray(_oriented(_read_pil(path), orientation))
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # (UNCHANGED ignores EXIF: applied below)
    if image is None:
        raise HumanParseError(f"{path}: cannot read the image" if path.is_file() else f"{path}: no such file")
    check_pixels(path, image.shape[0], image.shape[1])  # a format only OpenCV parses
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise HumanParseError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    elif image.shape[2] == 3:
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: a 100-megapixel copy is 300 MB
    else:
        raise HumanParseError(f"{path}: unsupported number of channels {image.shape[2]}")
    return np.ascontiguousarray(_oriented(image, orientation))


def check_pixels(source: str | Path, height: int, width: int) -> None:
    """Refuse an image or video frame of more than ``MAX_PIXELS`` (HumanParseError)."""
    if height * width > MAX_PIXELS:
        raise HumanParseError(f"{source}: {width}x{height} is {height * width / 1e6:.0f} megapixels, more than the "
                              f"{MAX_PIXELS // 1_000_000} humanparse parses in bounded memory; scale it down first")


def _read_pil(path: Path) -> np.ndarray:
    """A JPEG or PNG through PIL, which refuses a truncated file where OpenCV's decoders fill
    the missing rows with grey or print their own errors on stderr ("Premature end of JPEG
    file", "libpng error: Read Error"), and otherwise gives the same pixels as OpenCV: the
    same libjpeg-turbo decoding, 16-bit samples keeping their high byte, grey repeated into
    three channels, alpha dropped."""
    try:
        with open_pil(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = (np.asarray(image, np.uint32) >> 8).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            return np.array(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise HumanParseError(f"{path}: cannot read the image ({exc})") from None


@contextlib.contextmanager
def open_pil(path: str | Path) -> Iterator[Image.Image]:
    """``PIL.Image.open(path)`` (the header read, the pixels decoded when used) under
    humanparse's size bound in place of PIL's: an image of more than ``MAX_PIXELS`` is a
    HumanParseError from its header, before any decoding, and PIL's DecompressionBombWarning
    (printed from 89 megapixels on) is silenced while the image is open. PIL's other errors
    (a file that is no image: OSError) are the caller's to report."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # ours is MAX_PIXELS
        try:
            with Image.open(path) as image:
                check_pixels(path, image.height, image.width)
                yield image
        except Image.DecompressionBombError:  # over twice PIL's own limit: 179 megapixels
            raise HumanParseError(f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, over the "
                                  f"{MAX_PIXELS // 1_000_000} humanparse parses in bounded memory; scale it down first") from None


def _checked_header(path: Path) -> tuple[int, str | None]:
    """The EXIF orientation (1-8; 1 = as stored) and PIL's name of the format, from the
    image's header, after checking its size there; (1, None) for a file PIL cannot parse
    (OpenCV may still read it)."""
    try:
        with open_pil(path) as image:  # reads the header only
            kind = image.format
            try:
                value = image.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001 - a PNG's EXIF may follow a damaged part: its decoder reports that
                value = 1
    except HumanParseError:
        raise
    except Exception:  # noqa: BLE001 - a file PIL cannot parse has no orientation we can use
        # A JPEG or PNG cut short in its header still goes to PIL, for PIL's one-line error:
        # OpenCV's libjpeg would print "Premature end of JPEG file" to stderr first.
        try:
            with open(path, "rb") as handle:
                head = handle.read(8)
        except OSError:
            return 1, None
        return 1, next((name for name, magic in _SIGNATURES if head.startswith(magic)), None)
    return (value if isinstance(value, int) and 1 <= value <= 8 else 1), kind


_SIGNATURES = (("JPEG", b"\xff\xd8\xff"), ("PNG", b"\x89PNG\r\n\x1a\n"))


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
