"""Evaluation of a model on an annotated data set (paper Sec. 4.1): AP^r of part
instances and of persons at IoU 0.1…0.9 with AP^r_vol, person parsing AP^p and PCP, mIoU
of the category-level part map, and box AP of the persons' boxes.

Category-level ground truth (part maps without person ids: LIP, ATR, CIHP's
``Category_ids`` alone, or a folder of ``images/`` and ``labels/``) gives the mIoU and the
per-class IoU alone. Across label sets (a Pascal-Person-Part model on CIHP maps),
``compare="coarse"`` maps both the predictions and the ground truth onto the coarse groups
head / upper body / lower body (:func:`humanparse.labels.to_coarse`) and scores those.

Every score comes from :class:`~humanparse.structures.ParsingResult`\\ s: those a
:class:`~humanparse.predictor.Predictor` gives (:func:`evaluate`) or those written to files
(:func:`evaluate_predictions`; the files hold the exact scores and boxes), so both give
the same report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .data.cihp import Sample, check_samples, has_splits, list_samples, load_sample, named_label_set, read_split
from .errors import HumanParseError
from .io.files import check_writable, write_bytes_atomic
from .io.images import encode_png
from .io.results import read_result_json
from .labels import COARSE, COARSE_GROUPS, IGNORE, LabelSet, get_label_set, to_coarse
from .metrics import BoxAP, InstanceAP, InstanceAPAccumulator, ParsingAP, ParsingAPAccumulator, box_ap, confusion_matrix, mean_iou
from .structures import ParsingResult

if TYPE_CHECKING:
    from .predictor import Predictor


COMPARISONS = ("labels", "coarse")  # on the model's own labels, or on the coarse groups
NO_INSTANCES = {
    "labels": "instance metrics need person ids (Human_ids/)",
    "coarse": "instance metrics need ground truth in the model's label set",
}


@dataclass(frozen=True)
class EvalReport:
    images: int
    parts: InstanceAP | None  # classes are part labels 1..P; None: category-level evaluation
    persons: InstanceAP | None  # one class
    parsing: ParsingAP | None
    miou: float
    class_iou: np.ndarray  # (C,) NaN for classes absent from both
    boxes: BoxAP | None  # of the persons' boxes in the results
    classes: LabelSet | None = None  # the classes of miou and class_iou (None: the model's labels)
    note: str = ""  # why the instance metrics are missing, where they are


def evaluate(
    predictor: Predictor,
    root: str | Path,
    split: str = "val",
    progress: Callable[[int, int], None] | None = None,
    ids: list[str] | None = None,
    compare: str = "labels",
    truth_labels: LabelSet | None = None,
) -> EvalReport:
    """Run the predictor over a split (or the given ``ids`` of the data set) and score what
    it gives: the same results, through the same code, as `humanparse images` writes, so
    that scoring live and scoring the written files (:func:`evaluate_predictions`) agree.
    Box AP scores the boxes of the persons in the results (detections that won no pixel
    are not in a result).

    A data set without split files is scored whole (:func:`~humanparse.data.cihp.list_samples`).
    ``compare``: "labels" (the ground truth is in the model's label set) or "coarse" (both
    mapped onto the coarse groups; category-level). ``truth_labels``: the ground truth's label
    set where its ``meta.json`` names none (the model's, by default, with "labels")."""
    from .detectors.files import CocoResultsDetector  # here: scoring files (evaluate_predictions) needs no torch

    truth = _truth_labels(root, predictor.labels, compare, truth_labels, "the model")
    ids = _sample_ids(root, split) if ids is None else ids
    check_samples(root, ids)  # a missing file fails now, not after the images before it
    if isinstance(predictor.detector, CocoResultsDetector):
        predictor.detector.check_known(ids)  # another split's detections would score zero
    scores = _Scores(predictor.labels, truth, compare, instance_truth(root, compare))
    for k, sample_id in enumerate(ids):
        sample = load_sample(root, sample_id, len(truth.names))
        _add_result(scores, sample, predictor(sample.image, key=sample_id))
        if progress is not None:
            progress(k + 1, len(ids))
    return scores.report()


def _sample_ids(root: str | Path, split: str) -> list[str]:
    return read_split(root, split) if has_splits(root) else list_samples(root)


def instance_truth(root: str | Path, compare: str = "labels") -> bool:
    """Whether instance metrics can be computed: person ids, and the model's labels."""
    return compare == "labels" and (Path(root) / "Human_ids").is_dir()


def _truth_labels(root: str | Path, model: LabelSet, compare: str, given: LabelSet | None, source: str) -> LabelSet:
    """The ground truth's label set: ``given``, else the one its meta.json names, checked
    against the model's for ``compare``."""
    if compare not in COMPARISONS:
        raise HumanParseError(f"unknown comparison {compare!r}; choose from {', '.join(COMPARISONS)}")
    named = named_label_set(root)
    if given is not None and named is not None and given.name != named:
        raise HumanParseError(f"{root} names its label set {named!r} (meta.json), not {given.name!r}")
    truth = given or (get_label_set(named) if named is not None else None)
    if compare == "labels":
        truth = truth or model
        if truth.name != model.name:
            raise HumanParseError(f"{root} is labelled with {truth.name!r}, {source} with {model.name!r} ({model.num_parts} parts); "
                                  "score both on the coarse groups head / upper body / lower body with --compare coarse")
        return truth
    if truth is None:
        raise HumanParseError(f"{root} does not name its label set (no meta.json): give it, e.g. --truth-labels cihp")
    for labels in (model, truth):
        if labels.name not in COARSE_GROUPS:
            raise HumanParseError(f"the label set {labels.name!r} has no coarse grouping; known: {', '.join(COARSE_GROUPS)}")
    return truth


def _add_result(scores: "_Scores", sample: Sample, result: ParsingResult) -> None:
    scores.add(
        sample,
        [(p.part, result.part_mask(p.person, p.part), p.score) for p in result.part_instances],
        [(result.person_mask(pid), float(score)) for pid, score in zip(result.ids.tolist(), result.scores)],
        result.parts,
        (result.boxes, result.scores),
    )


def evaluate_predictions(
    predictions: str | Path,
    root: str | Path,
    labels: LabelSet,
    split: str = "val",
    progress: Callable[[int, int], None] | None = None,
    compare: str = "labels",
    truth_labels: LabelSet | None = None,
) -> EvalReport:
    """Score result files written earlier (``humanparse images ... --save json``, or any
    model's output in that format): ``<predictions>/json/<id>.json`` for every id of the
    split, each of that image (its ``image`` field) and of its size, with finite numbers and
    scores in [0, 1] (:func:`~humanparse.io.results.read_result_json`). The persons' boxes
    and scores get a box AP. ``compare`` and ``truth_labels`` as for :func:`evaluate`."""

    truth = _truth_labels(root, labels, compare, truth_labels, "the results")
    ids = _sample_ids(root, split)
    folder = Path(predictions) / "json"
    missing = [i for i in ids if not (folder / f"{i}.json").is_file()]
    if missing:
        raise HumanParseError(f"{folder} has no result for {len(missing)} of the {len(ids)} images of {split!r}, e.g. {missing[0]}.json")
    scores = _Scores(labels, truth, compare, instance_truth(root, compare))
    for k, sample_id in enumerate(ids):
        sample = load_sample(root, sample_id, len(truth.names))
        _add_result(scores, sample, read_result_json(folder / f"{sample_id}.json", labels, size=sample.parts.shape, image=sample_id))
        if progress is not None:
            progress(k + 1, len(ids))
    return scores.report()


class _Scores:
    """The metrics gathered image by image. Each image is reduced at once to what the
    metrics need of it (per prediction its score and hits, a confusion matrix, boxes), so
    that memory does not grow with the number of images by their masks."""

    def __init__(self, model: LabelSet, truth: LabelSet, compare: str = "labels", instances: bool = True) -> None:
        self.model, self.truth, self.compare, self.instances = model, truth, compare, instances
        self.classes = COARSE if compare == "coarse" else model
        num_labels = len(self.classes.names)
        self.num_labels = num_labels
        self.images = 0
        self.parts = InstanceAPAccumulator()
        self.persons = InstanceAPAccumulator()
        self.parsings = ParsingAPAccumulator(num_labels)
        self.box_preds: list[tuple[list, list]] = []  # per image (D, 4) boxes and (D,) scores
        self.box_truth: list[list] = []  # per image (G, 4)
        self.confusion = np.zeros((num_labels, num_labels), np.int64)

    def add(self, sample: Sample, parts: list, persons: list, predicted_map: np.ndarray, boxes: tuple[np.ndarray, np.ndarray]) -> None:
        """parts: [(part, mask, score)]; persons: [(mask, score)]; predicted_map: (H, W)
        category-level parts; boxes: (D, 4) and (D,) detections."""
        self.images += 1
        if self.compare == "coarse":
            self.confusion += confusion_matrix(to_coarse(predicted_map, self.model), to_coarse(sample.parts, self.truth), self.num_labels)
        else:
            self.confusion += confusion_matrix(predicted_map, sample.parts, self.num_labels)
        if not self.instances:
            return
        truth_parts, truth_persons, truth_parsings = ground_truth(sample.parts, sample.persons)
        self.parts.add(parts, truth_parts)
        self.persons.add([(1, mask, score) for mask, score in persons], truth_persons)
        self.parsings.add([(np.where(mask, predicted_map, 0), score) for mask, score in persons], truth_parsings)
        # As plain lists: no array per image kept among the images' large buffers (see InstanceAPAccumulator).
        self.box_preds.append((boxes[0].tolist(), boxes[1].tolist()))
        self.box_truth.append(sample.boxes.tolist())

    def report(self) -> EvalReport:
        miou, class_iou = mean_iou(self.confusion)
        if not self.instances:
            return EvalReport(self.images, None, None, None, miou, class_iou, None, self.classes, NO_INSTANCES[self.compare])
        return EvalReport(
            images=self.images,
            parts=self.parts.result(),
            persons=self.persons.result(),
            parsing=self.parsings.result(),
            miou=miou,
            class_iou=class_iou,
            boxes=box_ap(self.box_preds, self.box_truth),
            classes=self.classes,
        )


def ground_truth(parts: np.ndarray, persons: np.ndarray) -> tuple[list, list, list]:
    """The instances an annotated image holds, as the metrics take them.

    Args:
        parts: (H, W) integer part labels (IGNORE = unannotated); persons: (H, W) ids.

    Returns:
        Part instances [(part, mask)], persons [(1, mask)] and person parsings [(H, W)
        int64 part map of the person, 0 elsewhere].

    Void (IGNORE) pixels of a person, as in Parsing R-CNN's evaluation: they are in the
    person's mask (person AP^r), in no part's mask (part AP^r), and stay IGNORE in the
    person's parsing, which the AP^p/PCP confusion matrix skips.
    """
    part_instances, person_instances, parsings = [], [], []
    for pid in np.unique(persons[persons > 0]):
        mine = persons == pid
        person_instances.append((1, mine))
        parsings.append(np.where(mine, parts, 0).astype(np.int64))
        for part in np.unique(parts[mine]):
            if 0 < part != IGNORE:
                part_instances.append((int(part), mine & (parts == part)))
    return part_instances, person_instances, parsings


def report_dict(report: EvalReport, labels: LabelSet) -> dict[str, Any]:
    """The report as plain JSON data; AP values in percent, NaN as null."""

    def pct(value: float) -> float | None:
        return None if value is None or np.isnan(value) else round(100 * float(value), 2)

    classes = report.classes or labels
    if report.parts is None or report.persons is None or report.parsing is None or report.boxes is None:
        return {
            "images": report.images,
            "classes": classes.name,
            "miou": pct(report.miou),
            "class_iou": {name: pct(v) for name, v in zip(classes.names, report.class_iou)},
            "note": report.note,
        }
    thresholds = [f"{t:.1f}" for t in report.parts.thresholds]
    return {
        "images": report.images,
        "part_ap_r": {t: pct(v) for t, v in zip(thresholds, report.parts.mean)},
        "part_ap_r_vol": pct(report.parts.vol),
        "part_ap_r_per_class": {labels.names[c]: {t: pct(v) for t, v in zip(thresholds, values)} for c, values in report.parts.per_class.items()},
        "person_ap_r": {t: pct(v) for t, v in zip(thresholds, report.persons.mean)},
        "person_ap_r_vol": pct(report.persons.vol),
        "ap_p_50": pct(report.parsing.at(0.5)),
        "ap_p_vol": pct(report.parsing.vol),
        "pcp_50": pct(report.parsing.pcp50),
        "miou": pct(report.miou),
        "class_iou": {name: pct(v) for name, v in zip(classes.names, report.class_iou)},
        "box_ap": {"ap": pct(report.boxes.ap), "ap50": pct(report.boxes.ap50), "ap75": pct(report.boxes.ap75)},
    }


def ap_heatmap(report: EvalReport, labels: LabelSet, cell: int = 48) -> np.ndarray:
    """The paper's Fig. 5: per-class AP^r (rows) by IoU threshold (columns), (H, W, 3) uint8 RGB."""
    classes = sorted(report.parts.per_class)
    label_width = 8 * max(len(labels.names[c]) for c in classes) + 16 if classes else 80
    rows, cols = len(classes), len(report.parts.thresholds)
    canvas = np.full((cell * (rows + 1), label_width + cell * cols, 3), 255, np.uint8)
    for r, cls in enumerate(classes):
        cv2.putText(canvas, labels.names[cls], (4, cell * r + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for c, value in enumerate(report.parts.per_class[cls]):
            shade = cv2.applyColorMap(np.array([[int(255 * value)]], np.uint8), cv2.COLORMAP_VIRIDIS)[0, 0][::-1]
            x0, y0 = label_width + c * cell, r * cell
            canvas[y0 : y0 + cell - 2, x0 : x0 + cell - 2] = shade
            colour = (255, 255, 255) if value < 0.6 else (0, 0, 0)
            cv2.putText(canvas, f"{100 * value:.0f}", (x0 + 8, y0 + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    for c, t in enumerate(report.parts.thresholds):
        cv2.putText(canvas, f"{t:.1f}", (label_width + c * cell + 10, cell * rows + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def check_eval_outputs(report_path: str | Path | None, heatmap_path: str | Path | None, overwrite: bool = False) -> None:
    """Refuse, before any evaluation and without creating anything, the report (JSON) and
    heatmap (PNG) destinations that would fail or lose data: the same file for both, a
    folder, an existing file unless ``overwrite``, a path through a file, or a folder that
    cannot be written (its nearest existing folder is probed: :func:`write_report` makes
    the missing ones only once there is a report to write)."""
    named = [(what, Path(path)) for what, path in (("report", report_path), ("heatmap", heatmap_path)) if path is not None]
    if len(named) == 2 and named[0][1].resolve() == named[1][1].resolve():
        raise HumanParseError(f"the report and the heatmap would both be written to {named[0][1]}; give them different files")
    for what, path in named:
        if path.is_dir():
            raise HumanParseError(f"{path} is a folder; give a file name for the {what}")
        if path.exists() and not overwrite:
            raise HumanParseError(f"{path} already exists; choose another file for the {what} or pass --overwrite")
        check_writable(path.parent, create=False, what=f"{what} {path}")


def write_report(report: EvalReport, labels: LabelSet, report_path: str | Path | None = None, heatmap_path: str | Path | None = None) -> None:
    """Write the report as JSON (:func:`report_dict`) and the heatmap as a PNG
    (:func:`ap_heatmap`), each atomically, making missing folders; a failure (a full disk)
    is a HumanParseError naming the file."""
    files = []
    if report_path is not None:
        files.append((Path(report_path), (json.dumps(report_dict(report, labels), indent=2) + "\n").encode()))
    if heatmap_path is not None:
        files.append((Path(heatmap_path), encode_png(ap_heatmap(report, labels))))
    for path, data in files:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, data)
        except OSError as exc:
            raise HumanParseError(f"cannot write {path}: {exc.strerror or exc}") from None
