"""Detections that another detector wrote to a file.

* :class:`CocoResultsDetector` — a COCO results JSON, for images;
* :class:`MotDetector` — a MOT ``det.txt``, for video.

Boxes come back as (D, 4) float32 x1 y1 x2 y2 pixels, scores (D,) float32.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HumanParseError
from ..structures import Detections

# The person category of COCO, which results files and torchvision's detectors both use.
COCO_PERSON = 1


@dataclass(frozen=True)
class _Rows:
    boxes: list[list[float]]
    scores: list[float]


class CocoResultsDetector:
    """Detections from a COCO results JSON: a list of {"image_id" (or "file_name"),
    "bbox": [x, y, w, h], "score", "category_id"}; only ``category_id`` = person is kept.

    ``key`` is matched against the image id as written, as a file name, or as its stem;
    an image the file does not list has no detections.
    """

    def __init__(self, path: str | Path, person_category: int = COCO_PERSON) -> None:
        self.path = Path(path)
        try:
            rows = json.loads(self.path.read_bytes())  # UTF-8 (or the UTF-16/32 JSON allows)
        except OSError as exc:
            raise HumanParseError(f"{self.path}: cannot read detections ({exc.strerror or exc})") from None
        except UnicodeDecodeError as exc:
            raise HumanParseError(f"{self.path}: cannot read detections (not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise HumanParseError(f"{self.path}: cannot read detections ({exc})") from None
        except RecursionError:
            raise HumanParseError(f"{self.path}: cannot read detections (JSON nested too deeply)") from None
        if not isinstance(rows, list):
            raise HumanParseError(f"{self.path}: a COCO results file is a JSON list of detections")
        self._by_key: dict[str, _Rows] = {}
        for index, row in enumerate(rows):
            where = f"{self.path}: detection {index}"
            if not isinstance(row, dict):
                raise HumanParseError(f"{where} is not an object")
            image = row.get("file_name", row.get("image_id"))
            if image is None or isinstance(image, bool) or not isinstance(image, (str, int)):
                raise HumanParseError(f"{where} has no image_id or file_name")
            if row.get("category_id", person_category) != person_category:
                continue
            box = _box_xywh(row.get("bbox"), where)
            score = _score(row.get("score"), where)
            entry = self._by_key.setdefault(str(image), _Rows([], []))
            entry.boxes.append(box)
            entry.scores.append(score)

    @property
    def keys(self) -> set[str]:
        return set(self._by_key)

    def check_known(self, known: list[str]) -> None:
        """Fail if the file lists images and none is among ``known`` (names or stems): the
        detections are another set's, or name images another way (numeric ids for file
        names), and every image would be parsed with no one in it. A file covering more
        images than ``known`` (a whole data set, a subset parsed) is fine."""
        names = set()
        for k in known:
            path = Path(str(k))
            names |= {str(k), path.name, path.stem, _numeric(path.stem) or path.stem}
        unknown = sorted(k for k in self._by_key if k not in names and Path(k).stem not in names)
        if unknown and len(unknown) == len(self._by_key):
            raise HumanParseError(f"{self.path}: detections for unknown images only, e.g. {', '.join(unknown[:3])}; none of the {len(known)} images is named")

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        if key is None:
            raise HumanParseError(f"{self.path}: file detections need the image's name")
        name = str(key)
        for candidate in (name, Path(name).name, Path(name).stem, _numeric(Path(name).stem)):
            if candidate is not None and candidate in self._by_key:
                rows = self._by_key[candidate]
                return Detections(np.array(rows.boxes, np.float32), np.array(rows.scores, np.float32))
        return Detections.empty()


class MotDetector:
    """Detections from a MOT ``det.txt``: ``frame, id, x, y, w, h, score, ...`` per line,
    comma-separated, frames from 1."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise HumanParseError(f"{self.path}: cannot read detections ({exc.strerror or exc})") from None
        try:
            lines = data.decode("utf-8-sig").split("\n")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise HumanParseError(f"{self.path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); a MOT det.txt is comma-separated text") from None
        self._by_frame: dict[int, _Rows] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{self.path}:{number}"
            fields = [f.strip() for f in line.split(",")]
            if len(fields) < 7:
                raise HumanParseError(f"{where}: expected at least 7 comma-separated fields (frame, id, x, y, w, h, score)")
            try:
                frame_value = float(fields[0])
                x, y, w, h, score = (float(v) for v in fields[2:7])
            except ValueError:
                raise HumanParseError(f"{where}: fields must be numbers") from None
            if not frame_value.is_integer():
                raise HumanParseError(f"{where}: the frame number must be a whole number, got {fields[0]}")
            frame = int(frame_value)
            if frame < 1:
                raise HumanParseError(f"{where}: frames count from 1, got {frame}")
            box = _box_xywh([x, y, w, h], where)
            entry = self._by_frame.setdefault(frame, _Rows([], []))
            entry.boxes.append(box)
            entry.scores.append(_score(score, where))

    @property
    def last_frame(self) -> int:
        return max(self._by_frame, default=0)

    def check_frames(self, frame_count: int) -> None:
        """Fail if the file has detections past the video's last frame."""
        if self.last_frame > frame_count:
            raise HumanParseError(f"{self.path}: detections for frame {self.last_frame}, but the video has {frame_count} frames")

    def __call__(self, image: np.ndarray, key: str | int | None = None) -> Detections:
        if not isinstance(key, int):
            raise HumanParseError(f"{self.path}: MOT detections need the frame number")
        rows = self._by_frame.get(key)
        if rows is None:
            return Detections.empty()
        return Detections(np.array(rows.boxes, np.float32), np.array(rows.scores, np.float32))


def _box_xywh(value: object, where: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise HumanParseError(f"{where}: bbox must be [x, y, w, h]")
    try:
        x, y, w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        raise HumanParseError(f"{where}: bbox values must be numbers") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise HumanParseError(f"{where}: bbox values must be finite")
    if w < 0 or h < 0:
        raise HumanParseError(f"{where}: negative box size {w} x {h}")
    return [x, y, x + w, y + h]


def _score(value: object, where: str) -> float:
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise HumanParseError(f"{where}: score must be a number") from None
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise HumanParseError(f"{where}: score {value} is not in [0, 1]")
    return score


def _numeric(stem: str) -> str | None:
    """'000123' -> '123', for results files whose image ids are the numeric file names."""
    return str(int(stem)) if stem.isdigit() else None
