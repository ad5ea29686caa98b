"""Files written for a parsed image, in formats other tools read, and read back.

Per image, by kind (``--save``):

* ``parts``: ``parts/<name>.png``, a palette PNG whose pixel values are the part labels
  and whose colours are the label set's palette.
* ``persons``: ``persons/<name>.png``, person (or track) ids as grey levels (16-bit
  when an id exceeds 255).
* ``cihp``: the CIHP result layout its official evaluation reads:
  ``cihp/global_parsing/<name>.png`` (part labels), ``cihp/instance_parsing/<name>.png``
  (part-instance index per pixel, 0 background) with ``<name>.txt`` (``class score`` for
  instance 1, 2, ...), and ``cihp/instance_human/<name>.png`` + ``.txt`` for persons.
* ``overlay``: ``overlay/<name>.jpg``, parts in their colours over the image, each person
  outlined in its own colour with its id.
* ``json``: ``json/<name>.json``: image size, label names, persons (id, box, score, mask
  as COCO RLE, and for parsers with a pose COCO's ``keypoints`` [x, y, v, ...] with
  ``num_keypoints`` and ``keypoint_scores``) and part instances (person, part, name, score,
  RLE). Read back by :func:`read_result_json`, e.g. by ``humanparse eval --predictions``.

:func:`person_record` and :func:`part_record` are the per-person and per-part records of
these files and of the video's ``tracks.json``.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HumanParseError
from ..labels import COCO_KEYPOINTS, MIN_KEYPOINT_SCORE, LabelSet
from ..structures import ParsingResult, PartScore
from . import rle
from .drawing import overlay
from .files import write_files_atomic
from .images import check_pixels, encode_jpeg, encode_png

OUTPUT_KINDS = ("parts", "persons", "cihp", "overlay", "json")
RESULT_FORMAT = "humanparse.result/1"


def palette_png(parts: np.ndarray, labels: LabelSet) -> bytes:
    """(H, W) part labels -> an indexed-colour PNG (values = labels, colours = palette)."""
    return encode_png(parts.astype(np.uint8), labels.palette)


def id_png(ids: np.ndarray) -> bytes:
    """(H, W) non-negative ids -> a grey PNG, 8-bit when they fit, else 16-bit."""
    if ids.min(initial=0) < 0:
        raise HumanParseError("ids must lie in 0..65535 to be written as a PNG")
    return encode_png(ids.astype(_narrowest(int(ids.max(initial=0))), copy=False))


def person_record(result: ParsingResult, k: int) -> dict[str, Any]:
    """The record of the result's k-th person: id, box, score (exact float32 values), mask
    as COCO RLE and, where
    the result has keypoints, COCO's flat ``keypoints`` [x, y, v, ...] (v = 2 for a
    keypoint found, scoring at least ``MIN_KEYPOINT_SCORE``, else 0; x and y are the
    network's estimate either way), ``num_keypoints`` (those found) and ``keypoint_scores``."""
    pid = int(result.ids[k])
    record: dict[str, Any] = {
        "id": pid,
        "box": [_exact(v) for v in result.boxes[k]],
        "score": _exact(result.scores[k]),
        "mask": instance_rle(result, pid),
    }
    points = result.keypoints[k]
    if len(points):
        found = points[:, 2] >= MIN_KEYPOINT_SCORE
        flat: list[float] = []
        for (x, y, _), seen in zip(points.tolist(), found):
            flat += [_exact(x), _exact(y), 2 if seen else 0]
        record["keypoints"] = flat
        record["num_keypoints"] = int(found.sum())
        record["keypoint_scores"] = [_exact(s) for s in points[:, 2]]
    return record


def _exact(value: float | np.floating) -> float:
    """A float32 value as the shortest decimal that reads back as the same float32: result
    files hold exactly what the parser gave, so scoring them equals scoring it live."""
    return float(str(np.float32(value)))


def part_record(result: ParsingResult, part: PartScore, of_person: bool = True) -> dict[str, Any]:
    """The record of one part instance: (its ``person``, with ``of_person``) part, name,
    score, (with ``of_person``, its area in ``pixels``) and mask as COCO RLE. Without
    ``of_person`` it is nested inside its person's record (tracks.json)."""
    head = {"person": part.person} if of_person else {}
    body: dict[str, Any] = {"part": part.part, "name": result.labels.names[part.part], "score": float(part.score)}
    if of_person:
        body["pixels"] = part.pixels
    return {**head, **body, "mask": instance_rle(result, part.person, part.part)}


def instance_rle(result: ParsingResult, person: int, part: int | None = None) -> dict[str, object]:
    """COCO RLE of one person's mask, or of one of their parts, counted inside the person's
    box (``result.regions``) only: a 1080p frame's records cost the people's pixels, not
    the frame's."""
    crop = result.person_crop(person)
    mask = crop.mask if part is None else crop.mask & (result.parts[crop.region] == part)
    return rle.encode(mask, result.size, (crop.top, crop.left))


def result_dict(result: ParsingResult, image_name: str) -> dict[str, Any]:
    """The JSON form of a result; masks as COCO compressed RLE."""
    height, width = result.size
    unowned = np.where(result.persons == 0, result.parts, 0)
    names = result.labels.names
    return {
        "format": RESULT_FORMAT,
        "image": image_name,
        "height": height,
        "width": width,
        "label_set": result.labels.name,
        "labels": list(names),
        "persons": [person_record(result, k) for k in range(len(result.ids))],
        "parts": [part_record(result, p) for p in result.part_instances],
        # Part pixels of no person (a category-level parser's, e.g. bodypix-alone): one mask
        # per label, so that the category map reads back whole.
        "unowned_parts": [{"part": int(k), "mask": rle.encode(unowned == k)} for k in np.unique(unowned[unowned > 0])],
    }


def read_result_json(path: str | Path, labels: LabelSet, size: tuple[int, int] | None = None, image: str | None = None) -> ParsingResult:
    """A result written by :func:`write_outputs` (or by another model in the same format).

    ``size`` (height, width) and ``image`` (its name), where given, are what the file must
    describe (its ``image`` field, where it has one): both are checked before any mask is
    decoded, so a small file claiming a huge image costs nothing. Without ``size`` the image
    may have at most ``MAX_PIXELS``. Every number must be finite, every score in [0, 1],
    every box four numbers. Any fault is a HumanParseError naming the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise HumanParseError(f"{path}: not a result file (a JSON object)")
        height, width = int(data["height"]), int(data["width"])
        if image is not None and "image" in data and data["image"] != image:
            raise HumanParseError(f"{path}: the result of image {reprlib.repr(data['image'])}, not of {image!r}")
        if size is not None and (height, width) != tuple(size):
            raise HumanParseError(f"{path}: the result is {width}x{height}, the image {size[1]}x{size[0]}")
        if height < 1 or width < 1:
            raise HumanParseError(f"{path}: the result is {width}x{height}; width and height must be positive")
        check_pixels(path, height, width)
        if data.get("labels") is not None and list(data["labels"]) != list(labels.names):
            raise HumanParseError(f"{path}: its labels {reprlib.repr(data['labels'])} are not those of {labels.name}")
        parts = np.zeros((height, width), np.uint8)
        persons = np.zeros((height, width), np.int32)
        ids, boxes, scores, keypoints, known = [], [], [], [], set()
        for person in data["persons"]:
            pid = int(person["id"])
            if not 1 <= pid <= MAX_PERSON_ID or pid in known:
                raise HumanParseError(f"{path}: person ids must be distinct and in 1..{MAX_PERSON_ID}, got {pid}")
            box = [_finite(v, f"person {pid}'s box", path) for v in person["box"]]
            if len(box) != 4:
                raise HumanParseError(f"{path}: person {pid}'s box has {len(box)} numbers, not 4 (x1 y1 x2 y2)")
            if box[2] < box[0] or box[3] < box[1]:  # box AP would score it as an empty box
                raise HumanParseError(f"{path}: person {pid}'s box {box} ends before it starts (x1 y1 x2 y2)")
            scores.append(_score(person["score"], f"person {pid}'s score", path))
            keypoints.append(_keypoints(person, pid, path))
            persons[_mask(person["mask"], height, width, path)] = pid
            ids.append(pid)
            known.add(pid)
            boxes.append(box)
        part_instances, listed = [], set()
        for part in data["parts"]:
            number, pid = int(part["part"]), int(part["person"])
            if not 1 <= number <= labels.num_parts or pid not in known:
                raise HumanParseError(f"{path}: part {number} of person {pid} is not in the label set or the persons")
            if (pid, number) in listed:
                raise HumanParseError(f"{path}: part {number} of person {pid} is listed twice")
            listed.add((pid, number))
            score = _score(part["score"], f"part {number} of person {pid}: its score", path)
            mask = _mask(part["mask"], height, width, path)
            parts[mask] = number
            part_instances.append(PartScore(pid, number, score, int(mask.sum())))
        for part in data.get("unowned_parts", []):  # absent from files of earlier versions
            number = int(part["part"])
            if not 1 <= number <= labels.num_parts:
                raise HumanParseError(f"{path}: unowned part {number} is not in the label set")
            mask = _mask(part["mask"], height, width, path)
            if (persons[mask] != 0).any():
                raise HumanParseError(f"{path}: unowned part {number} covers a person's pixels")
            parts[mask] = number
    except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise HumanParseError(f"{path}: not a readable result file ({str(exc)[:200]})") from None
    if len({len(k) for k in keypoints}) > 1:
        raise HumanParseError(f"{path}: some persons have keypoints and some do not")
    order = np.argsort(ids, kind="stable")
    return ParsingResult(
        parts, persons, np.array(ids, np.int64)[order], np.array(boxes, np.float32).reshape(-1, 4)[order],
        np.array(scores, np.float32)[order], tuple(sorted(part_instances, key=lambda p: (p.person, p.part))), labels,
        np.array(keypoints, np.float32).reshape(len(ids), len(keypoints[0]) if keypoints else 0, 3)[order],
    )


# Person ids of a result read back: they must fit its int32 person map.
MAX_PERSON_ID = 2**31 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _finite(value: Any, what: str, path: Path) -> float:
    """A number that stays finite as the float32 a result holds."""
    number = float(value)
    if not (math.isfinite(number) and abs(number) <= _FLOAT32_MAX):
        raise HumanParseError(f"{path}: {what} holds {number}, not a finite number")
    return number


def _score(value: Any, what: str, path: Path) -> float:
    number = _finite(value, what, path)
    if not 0 <= number <= 1:
        raise HumanParseError(f"{path}: {what} is {number}, outside [0, 1]")
    return number


def _keypoints(person: dict[str, Any], pid: int, path: Path) -> list[list[float]]:
    """(K, 3) x, y, score of a person record (K = 0 without keypoints)."""
    if "keypoints" not in person:
        return []
    flat, scores = person["keypoints"], person["keypoint_scores"]
    k = len(COCO_KEYPOINTS)
    if len(flat) != 3 * k or len(scores) != k:
        raise HumanParseError(f"{path}: a person's keypoints must be {k} (x, y, v) triples with {k} scores")
    where = f"person {pid}'s keypoints"
    return [[_finite(flat[3 * j], where, path), _finite(flat[3 * j + 1], where, path), _score(scores[j], f"{where}: a score", path)] for j in range(k)]


def _mask(data: Any, height: int, width: int, path: Path) -> np.ndarray:
    """A mask's COCO RLE, its size and counts checked against the image before decoding."""
    mask_height, mask_width = (int(v) for v in data["size"])
    if (mask_height, mask_width) != (height, width):
        raise HumanParseError(f"{path}: a mask is {mask_width}x{mask_height}, the image {width}x{height}")
    if not isinstance(data["counts"], str):
        raise HumanParseError(f"{path}: a mask's RLE counts must be a string (COCO compressed RLE), not {type(data['counts']).__name__}")
    return rle.decode(data)


def cihp_files(result: ParsingResult, name: str) -> dict[str, bytes]:
    """The CIHP result layout: relative path -> file contents."""
    instance_ids = np.zeros(result.size, _narrowest(len(result.part_instances)))
    instance_lines = []
    for k, p in enumerate(result.part_instances, start=1):
        instance_ids[result.part_mask(p.person, p.part)] = k
        instance_lines.append(f"{p.part} {p.score:.6f}\n")
    human_lines = [f"1 {score:.6f}\n" for score in result.scores.tolist()]
    # instance_human values are the person's line in the .txt, 1..N in id order (track ids
    # in video need not be contiguous).
    table = np.zeros(int(result.ids.max(initial=0)) + 1, _narrowest(len(result.ids)))
    table[result.ids] = np.arange(1, len(result.ids) + 1)
    human_ids_map = table[result.persons]
    return {
        f"global_parsing/{name}.png": id_png(result.parts),
        f"instance_parsing/{name}.png": id_png(instance_ids),
        f"instance_parsing/{name}.txt": "".join(instance_lines).encode(),
        f"instance_human/{name}.png": id_png(human_ids_map),
        f"instance_human/{name}.txt": "".join(human_lines).encode(),
    }


def _narrowest(largest: int) -> type[np.unsignedinteger]:
    """The PNG pixel type for ids up to ``largest`` (full-size int32 maps of a large photo
    cost 200 MB each)."""
    if largest > 65535:
        raise HumanParseError("ids must lie in 0..65535 to be written as a PNG")
    return np.uint8 if largest <= 255 else np.uint16


def existing_outputs(out: Path, names: Sequence[str], kinds: tuple[str, ...] = OUTPUT_KINDS) -> list[Path]:
    """The files under ``out`` that writing ``kinds`` for ``names`` would replace (each
    kind's main file: its CIHP set is known by ``global_parsing``)."""
    main = {"parts": "parts/{}.png", "persons": "persons/{}.png", "cihp": "cihp/global_parsing/{}.png", "overlay": "overlay/{}.jpg", "json": "json/{}.json"}
    return [path for name in names for kind in kinds if (path := out / main[kind].format(name)).exists()]


def write_outputs(out: Path, name: str, image: np.ndarray, result: ParsingResult, kinds: tuple[str, ...] = OUTPUT_KINDS) -> list[Path]:
    """Write the chosen kinds of files for one image under ``out``; ``name`` may hold
    sub-folders (``a/b``). Each file is written atomically. Returns the paths written."""
    files: dict[str, bytes] = {}
    if "parts" in kinds:
        files[f"parts/{name}.png"] = palette_png(result.parts, result.labels)
    if "persons" in kinds:
        files[f"persons/{name}.png"] = id_png(result.persons)
    if "cihp" in kinds:
        files.update({f"cihp/{k}": v for k, v in cihp_files(result, name).items()})
    if "overlay" in kinds:
        files[f"overlay/{name}.jpg"] = encode_jpeg(overlay(image, result))
    if "json" in kinds:
        files[f"json/{name}.json"] = (json.dumps(result_dict(result, name), separators=(",", ":")) + "\n").encode()
    paths = {out / relative: data for relative, data in files.items()}
    try:
        write_files_atomic(paths)  # all of this image's files, or none of them, are new
    except OSError as exc:
        raise HumanParseError(f"cannot write the results of {name} under {out}: {exc.strerror or exc}") from None
    return list(paths)
