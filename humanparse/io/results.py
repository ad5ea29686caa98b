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
  as COCO RLE) and part instances (person, part, name, score, RLE). Read back by
  :func:`read_result_json`, e.g. by ``humanparse eval --predictions``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import HumanParseError
from ..labels import LabelSet
from ..predictor import ParsingResult, PartScore
from . import rle
from .drawing import person_colours
from .files import write_bytes_atomic

OUTPUT_KINDS = ("parts", "persons", "cihp", "overlay", "json")
RESULT_FORMAT = "humanparse.result/1"


def palette_png(parts: np.ndarray, labels: LabelSet) -> bytes:
    """(H, W) part labels -> an indexed-colour PNG (values = labels, colours = palette)."""
    image = Image.fromarray(parts.astype(np.uint8), mode="P")
    palette = [c for colour in labels.palette for c in colour]
    image.putpalette(palette + [0] * (768 - len(palette)))
    return _png(image)


def id_png(ids: np.ndarray) -> bytes:
    """(H, W) non-negative ids -> a grey PNG, 8-bit when they fit, else 16-bit."""
    if ids.max(initial=0) > 65535 or ids.min(initial=0) < 0:
        raise HumanParseError("ids must lie in 0..65535 to be written as a PNG")
    if ids.max(initial=0) <= 255:
        return _png(Image.fromarray(ids.astype(np.uint8), mode="L"))
    return _png(Image.fromarray(ids.astype(np.uint16)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def overlay(image: np.ndarray, result: ParsingResult, alpha: float = 0.55) -> np.ndarray:
    """(H, W, 3) uint8 RGB: part colours blended over the image, persons outlined with ids."""
    palette = np.array(result.labels.palette, np.uint8)
    colour = palette[result.parts]
    out = image.copy()
    fg = result.parts > 0
    out[fg] = (alpha * colour[fg] + (1 - alpha) * image[fg]).astype(np.uint8)
    if len(result.ids) == 0:
        return out
    colours = person_colours(int(result.ids.max()))
    thickness = max(1, round(min(image.shape[:2]) / 300))
    for pid in result.ids.tolist():
        mask = (result.persons == pid).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        rgb = tuple(int(c) for c in colours[pid])
        cv2.drawContours(out, contours, -1, rgb, thickness, cv2.LINE_AA)
        ys, xs = np.nonzero(mask)
        if len(ys):
            x, y = int(xs.min()), max(int(ys.min()) - 4, 10)
            cv2.putText(out, str(pid), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thickness, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.putText(out, str(pid), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thickness, rgb, thickness, cv2.LINE_AA)
    return out


def result_dict(result: ParsingResult, image_name: str) -> dict[str, Any]:
    """The JSON form of a result; masks as COCO compressed RLE."""
    height, width = result.size
    names = result.labels.names
    return {
        "format": RESULT_FORMAT,
        "image": image_name,
        "height": height,
        "width": width,
        "label_set": result.labels.name,
        "labels": list(names),
        "persons": [
            {"id": int(pid), "box": [round(float(v), 2) for v in box], "score": round(float(score), 5), "mask": rle.encode(result.persons == pid)}
            for pid, box, score in zip(result.ids.tolist(), result.boxes, result.scores)
        ],
        "parts": [
            {"person": p.person, "part": p.part, "name": names[p.part], "score": round(p.score, 5), "pixels": p.pixels, "mask": rle.encode(result.part_mask(p.person, p.part))}
            for p in result.part_instances
        ],
    }


def read_result_json(path: str | Path, labels: LabelSet) -> ParsingResult:
    """A result written by :func:`write_outputs` (or by another model in the same format)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        height, width = int(data["height"]), int(data["width"])
        if data.get("labels") is not None and list(data["labels"]) != list(labels.names):
            raise HumanParseError(f"{path}: its labels {data['labels']} are not those of {labels.name}")
        parts = np.zeros((height, width), np.uint8)
        persons = np.zeros((height, width), np.int32)
        ids, boxes, scores = [], [], []
        for person in data["persons"]:
            mask = _mask(person["mask"], height, width, path)
            pid = int(person["id"])
            if pid < 1 or pid in ids:
                raise HumanParseError(f"{path}: person ids must be distinct and positive, got {pid}")
            persons[mask] = pid
            ids.append(pid)
            boxes.append([float(v) for v in person["box"]])
            scores.append(float(person["score"]))
        part_instances = []
        for part in data["parts"]:
            number, pid = int(part["part"]), int(part["person"])
            if not 1 <= number <= labels.num_parts or pid not in ids:
                raise HumanParseError(f"{path}: part {number} of person {pid} is not in the label set or the persons")
            mask = _mask(part["mask"], height, width, path)
            parts[mask] = number
            part_instances.append(PartScore(pid, number, float(part["score"]), int(mask.sum())))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HumanParseError(f"{path}: not a readable result file ({exc})") from None
    order = np.argsort(ids, kind="stable")
    return ParsingResult(
        parts, persons, np.array(ids, np.int64)[order], np.array(boxes, np.float32).reshape(-1, 4)[order],
        np.array(scores, np.float32)[order], tuple(sorted(part_instances, key=lambda p: (p.person, p.part))), labels,
    )


def _mask(data: Any, height: int, width: int, path: Path) -> np.ndarray:
    mask = rle.decode(data)
    if mask.shape != (height, width):
        raise HumanParseError(f"{path}: a mask is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}")
    return mask


def cihp_files(result: ParsingResult, name: str) -> dict[str, bytes]:
    """The CIHP result layout: relative path -> file contents."""
    instance_ids = np.zeros(result.size, np.int32)
    instance_lines = []
    for k, p in enumerate(result.part_instances, start=1):
        instance_ids[result.part_mask(p.person, p.part)] = k
        instance_lines.append(f"{p.part} {p.score:.6f}\n")
    human_lines = [f"1 {score:.6f}\n" for score in result.scores.tolist()]
    # instance_human values are the person's line in the .txt, 1..N in id order (track ids
    # in video need not be contiguous).
    table = np.zeros(int(result.ids.max(initial=0)) + 1, np.int32)
    table[result.ids] = np.arange(1, len(result.ids) + 1)
    human_ids_map = table[result.persons]
    return {
        f"global_parsing/{name}.png": id_png(result.parts),
        f"instance_parsing/{name}.png": id_png(instance_ids),
        f"instance_parsing/{name}.txt": "".join(instance_lines).encode(),
        f"instance_human/{name}.png": id_png(human_ids_map),
        f"instance_human/{name}.txt": "".join(human_lines).encode(),
    }


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise HumanParseError("JPEG encoding failed")
    return data.tobytes()


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
    written = []
    for relative, data in files.items():
        path = out / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, data)
        except OSError as exc:
            raise HumanParseError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return written
