"""Evaluation of a model on an annotated data set (paper Sec. 4.1): AP^r of part
instances and of persons at IoU 0.1…0.9 with AP^r_vol, person parsing AP^p and PCP, mIoU
of the category-level part map, and box AP of the built-in detector."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .cihp import load_sample, read_split
from .detection import Detector
from .errors import HumanParseError
from .instances import extract_instances, part_map
from .labels import LabelSet
from .metrics import BoxAP, InstanceAP, ParsingAP, box_ap, confusion_matrix, instance_ap, mean_iou, parsing_ap
from .model import HolisticParser


@dataclass(frozen=True)
class EvalReport:
    images: int
    parts: InstanceAP  # classes are part labels 1..P
    persons: InstanceAP  # one class
    parsing: ParsingAP
    miou: float
    class_iou: np.ndarray  # (P+1,) NaN for classes absent from both
    boxes: BoxAP | None  # the built-in detector's, when it gave the detections


def evaluate(
    model: HolisticParser,
    root: str | Path,
    split: str = "val",
    detector: Detector | None = None,
    crf_iterations: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    ids: list[str] | None = None,
) -> EvalReport:
    """Run the model over a split (or the given ``ids`` of the data set) and score it.
    ``detector`` None uses the built-in head."""
    ids = read_split(root, split) if ids is None else ids
    labels = model.labels
    num_labels = len(labels.names)
    device = next(model.parameters()).device
    model.eval()
    part_images, person_images, parsing_images, box_preds, box_truth = [], [], [], [], []
    confusion = np.zeros((num_labels, num_labels), np.int64)
    for k, sample_id in enumerate(ids):
        sample = load_sample(root, sample_id, num_labels)
        if sample.persons is None:
            raise HumanParseError(f"{root}: instance-level evaluation needs person ids (Human_ids/)")
        image = torch.from_numpy(sample.image).permute(2, 0, 1).float()[None].to(device)
        with torch.no_grad():
            if detector is None:
                out = model(image, crf_iterations=crf_iterations)
            else:
                boxes, scores = detector(sample.image, key=sample_id).tensors(device)
                out = model(image, [boxes], [scores], crf_iterations=crf_iterations)
        probs, boxes, scores = out.instances[0], out.boxes[0], out.scores[0]
        pred_persons, pred_parts = extract_instances(probs, boxes, scores, labels.num_parts)
        truth_parts, truth_persons, truth_parsings = _ground_truth(sample.parts, sample.persons)
        part_images.append(([(p.part, p.mask, p.score) for p in pred_parts], truth_parts))
        person_images.append(([(1, p.mask, p.score) for p in pred_persons], truth_persons))
        predicted_map = part_map(probs.argmax(0), labels.num_parts).cpu().numpy()
        parsing_images.append(([(np.where(p.mask, predicted_map, 0), p.score) for p in pred_persons], truth_parsings))
        confusion += confusion_matrix(predicted_map, sample.parts, num_labels)
        if detector is None:
            box_preds.append((boxes.cpu().numpy(), scores.cpu().numpy()))
            box_truth.append(sample.boxes)
        if progress is not None:
            progress(k + 1, len(ids))
    miou, class_iou = mean_iou(confusion)
    return EvalReport(
        images=len(ids),
        parts=instance_ap(part_images),
        persons=instance_ap(person_images),
        parsing=parsing_ap(parsing_images, num_labels),
        miou=miou,
        class_iou=class_iou,
        boxes=box_ap(box_preds, box_truth) if detector is None else None,
    )


def _ground_truth(parts: np.ndarray, persons: np.ndarray):
    """Part instances [(part, mask)], persons [(1, mask)] and person parsings [(H, W) map]."""
    part_instances, person_instances, parsings = [], [], []
    for pid in np.unique(persons[persons > 0]):
        mine = (persons == pid) & (parts != 255)
        person_instances.append((1, mine))
        parsings.append(np.where(mine, parts, 0).astype(np.int64))
        for part in np.unique(parts[mine]):
            if part > 0:
                part_instances.append((int(part), mine & (parts == part)))
    return part_instances, person_instances, parsings


def report_dict(report: EvalReport, labels: LabelSet) -> dict[str, Any]:
    """The report as plain JSON data; AP values in percent, NaN as null."""

    def pct(value: float) -> float | None:
        return None if value is None or np.isnan(value) else round(100 * float(value), 2)

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
        "class_iou": {name: pct(v) for name, v in zip(labels.names, report.class_iou)},
        "box_ap": None if report.boxes is None else {"ap": pct(report.boxes.ap), "ap50": pct(report.boxes.ap50), "ap75": pct(report.boxes.ap75)},
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
