"""Coarse part mIoU on real photos with CIHP ground truth, side by side for several parsers.

    python benchmarks/bench_real.py ../shared/realdata/cihp-dev
    python benchmarks/bench_real.py DIR --parsers bodypix-alone,pose-guided --limit 5 --out real.json

DIR holds ``images/NAME.jpg|png`` and ``labels/NAME.png`` (uint8 CIHP category maps, 255 =
unknown edge). The rows: every parser a ``--checkpoint`` name gives
(``humanparse.build.PARSERS``; "bodypix-alone" is BodyPix's own argmax, the baseline of
DESIGN §4) and checkpoint files (their persons from ``--detector``), each run as a user
runs it: ``Predictor.from_checkpoint(name, device="cpu")(image)`` on the image
``read_image`` gives, the result at the image's own size. ``humanparse eval --data DIR
--truth-labels cihp --compare coarse --checkpoint NAME`` gives the same numbers.

Protocol:

* ground truth and prediction are mapped onto the coarse labels (background, head, upper
  body = torso and arms, lower body = legs) by ``humanparse.labels.to_coarse``; CIHP's dress
  and its 255 edges are ignored (``labels.COARSE_GROUPS`` lists the groups);
* one 4 x 4 confusion matrix per row, summed over all images (``metrics.confusion_matrix``),
  ignored ground-truth pixels skipped; per-class IoU = diag / (row + col - diag) and mIoU the
  mean over the 4 classes, **background included** (``metrics.mean_iou``);
* BodyPix alone (``modeling.bodypix_parser.BodyPixAloneParser``): the image resized so that
  its longer side is ``--bodypix-side`` (default: 640, the size the default parser gives
  BodyPix, so that the comparison shows what the persons and the CRF add to the same
  segmentation; aspect kept) goes through ``humanparse.pretrained.bodypix.BodyPix``; its
  person logit and 24 part logits are resampled
  to the image's size (``bodypix.upsample_to``, bilinear, on logits), a pixel is a person where sigmoid(person logit) > 0.5, and then the
  part of the largest logit, grouped as BodyPix's README groups it onto Pascal-Person-Part
  (head {0, 1}, torso {12, 13}, upper arms {2-5}, lower arms {6-11}, upper legs {14-17},
  lower legs {18-23}) and so onto the coarse labels. The size matters: on cihp-dev BodyPix
  alone scores 57.5 mIoU at a longer side of 1280 (the reference DESIGN §4's target was set
  against, 56.7 measured earlier), 68.1 at 640 and 68.6 at 513 (``--bodypix-side``);
* seconds per image: the mean wall time of one call over the images (the first image is
  parsed once beforehand, untimed), rows interleaved image by image so that a shared
  machine's noise falls on all of them alike.

The table gives each row's difference to BodyPix alone (mIoU and per-class IoU, points).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanparse.build import BODYPIX_ALONE, PARSERS  # noqa: E402
from humanparse.data.cihp import IMAGE_SUFFIXES  # noqa: E402
from humanparse.errors import HumanParseError  # noqa: E402
from humanparse.io.images import read_image  # noqa: E402
from humanparse.labels import CIHP, COARSE, to_coarse  # noqa: E402
from humanparse.metrics import confusion_matrix, mean_iou  # noqa: E402
from humanparse.modeling.bodypix_parser import SEGMENT_SIDE, BodyPixAloneParser  # noqa: E402
from humanparse.predictor import Predictor  # noqa: E402

BODYPIX_SIDE = SEGMENT_SIDE

Segment = Callable[[np.ndarray], np.ndarray]  # (H, W, 3) uint8 RGB -> (H, W) coarse labels


def read_pairs(folder: Path, limit: int | None) -> list[tuple[str, Path, Path]]:
    """(name, image, label map ``labels/NAME.png``) for the first ``limit`` images of
    ``folder/images`` (all for None), by name; every image must have its label map."""
    if not (folder / "images").is_dir():
        raise SystemExit(f"{folder}: no images/ folder")
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    pairs = [(p.stem, p, folder / "labels" / f"{p.stem}.png") for p in images]
    missing = [str(label) for _, _, label in pairs if not label.is_file()]
    if not pairs or missing:
        raise SystemExit(f"{folder}: no images in images/" if not pairs else f"no label map for: {', '.join(missing)}")
    return pairs[:limit]


def read_truth(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The CIHP label map at ``path`` on the coarse labels."""
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2 or labels.dtype != np.uint8:
        raise SystemExit(f"{path}: not a single-channel uint8 label map")
    if labels.shape != shape:
        raise SystemExit(f"{path}: {labels.shape[1]}x{labels.shape[0]}, its image {shape[1]}x{shape[0]}")
    return to_coarse(labels, CIHP)


def parser_row(name: str, detector: str = "builtin") -> Segment:
    """A parser by ``--checkpoint`` name, or a checkpoint file with ``detector``'s persons."""
    predictor = Predictor.from_checkpoint(name, device="cpu", **({"detector": detector} if Path(name).is_file() else {}))

    def segment(image: np.ndarray) -> np.ndarray:
        result = predictor(image)
        return to_coarse(result.parts, result.labels)

    return segment


def bodypix_row(longer_side: int) -> Segment:
    """BodyPix's own argmax (the ``bodypix-alone`` parser) at another input side."""
    predictor = Predictor(BodyPixAloneParser(longer_side), "cpu")

    def segment(image: np.ndarray) -> np.ndarray:
        result = predictor(image)
        return to_coarse(result.parts, result.labels)

    return segment


def scores(confusion: np.ndarray) -> dict[str, float]:
    """mIoU over the 4 coarse classes (background included) and each class's IoU, in %."""
    miou, iou = mean_iou(confusion)
    return {"miou": 100 * miou, **{name: 100 * float(v) for name, v in zip(COARSE.names, iou)}}


def table(rows: dict[str, dict], baseline: str | None) -> str:
    classes = COARSE.names
    head = ["parser", "mIoU", *(f"IoU {c}" for c in classes), "s / image"]
    if baseline is not None:
        head += ["Δ mIoU", *(f"Δ {c}" for c in classes)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        cells = [name, f"{row['miou']:.1f}", *(f"{row[c]:.1f}" for c in classes), f"{row['seconds_per_image']:.3f}"]
        if baseline is not None:
            cells += [f"{row[k] - rows[baseline][k]:+.1f}" for k in ("miou", *classes)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    choices = list(PARSERS)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("data", type=Path, help="folder with images/ and labels/")
    parser.add_argument("--parsers", default=",".join(choices), help=f"comma-separated rows, of: {', '.join(choices)} or checkpoint files (default: all names)")
    parser.add_argument("--detector", default="builtin", help="the persons of the checkpoint-file rows (a --detector text, e.g. nanodet)")
    parser.add_argument("--limit", type=int, help="only the first N images, by name")
    parser.add_argument("--bodypix-side", type=int, default=BODYPIX_SIDE, help="BodyPix alone sees the image with this longer side (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="also write the rows, confusion matrices and notes as JSON here")
    args = parser.parse_args()
    names = [n for n in args.parsers.split(",") if n]
    unknown = [n for n in names if n not in choices and not Path(n).is_file()]
    if unknown or not names:
        parser.error(f"unknown parsers {', '.join(unknown)}; choose from {', '.join(choices)}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    notes: dict[str, str] = {}
    rows: dict[str, Segment] = {}
    for name in names:
        try:
            other_side = name == BODYPIX_ALONE and args.bodypix_side != BODYPIX_SIDE
            rows[name] = bodypix_row(args.bodypix_side) if other_side else parser_row(name, args.detector)
        except HumanParseError as exc:
            notes[name] = f"not run: {exc}"
    pairs = read_pairs(args.data, args.limit)
    confusion = {name: np.zeros((len(COARSE.names),) * 2, np.int64) for name in rows}
    seconds = dict.fromkeys(rows, 0.0)
    first = read_image(pairs[0][1])
    for segment in rows.values():
        segment(first)  # warm-up, untimed
    for k, (stem, image_path, label_path) in enumerate(pairs):
        image = read_image(image_path)
        truth = read_truth(label_path, image.shape[:2])
        for name, segment in rows.items():
            started = time.perf_counter()
            predicted = segment(image)
            seconds[name] += time.perf_counter() - started
            confusion[name] += confusion_matrix(predicted, truth, len(COARSE.names))
        print(f"{k + 1}/{len(pairs)} {stem}", file=sys.stderr, flush=True)

    results = {name: {**scores(confusion[name]), "seconds_per_image": seconds[name] / len(pairs)} for name in rows}
    print(f"{len(pairs)} images of {args.data}; coarse mIoU over background, head, upper and lower body (%)\n")
    print(table(results, BODYPIX_ALONE if BODYPIX_ALONE in results else None))
    for name, note in notes.items():
        print(f"\n{name}: {note}")
    if args.out is not None:
        report = {
            "data": str(args.data),
            "images": [stem for stem, _, _ in pairs],
            "bodypix_side": args.bodypix_side,
            "classes": list(COARSE.names),
            "rows": {name: {**results[name], "confusion": confusion[name].tolist()} for name in rows},
            "notes": notes,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
