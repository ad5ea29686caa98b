"""Pictures for people to look at: result overlays, contact sheets, charts."""

from __future__ import annotations

import cv2
import numpy as np

from ..labels import COCO_SKELETON, MIN_KEYPOINT_SCORE, LabelSet
from ..ops import CroppedMask
from ..structures import ParsingResult

_BAND_ROWS = 256


def person_colours(count: int) -> np.ndarray:
    """(count + 1, 3) uint8 RGB, 0 black, then well-separated hues (golden-angle steps)."""
    if count == 0:
        return np.zeros((1, 3), np.uint8)
    hues = (np.arange(count) * 0.618034 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(count, 200, np.uint8), np.full(count, 255, np.uint8)], 1)[None]
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    return np.concatenate([np.zeros((1, 3), np.uint8), rgb])


def overlay(image: np.ndarray, result: ParsingResult, alpha: float = 0.55, min_keypoint_score: float = MIN_KEYPOINT_SCORE) -> np.ndarray:
    """(H, W, 3) uint8 RGB: part colours blended over the image, each person outlined in
    its own colour with its id, and its skeleton (the keypoints scoring at least
    ``min_keypoint_score`` and the COCO bones between them) where the result has keypoints."""
    palette = np.array(result.labels.palette, np.uint8)
    out = image.copy()

    def blend(where: tuple[slice, slice], fg: np.ndarray) -> int:
        out[where][fg] = (alpha * palette[result.parts[where][fg]] + (1 - alpha) * image[where][fg]).astype(np.uint8)
        return int(np.count_nonzero(fg))

    # Each person's parts inside their box: a frame's people, not the whole frame.
    crops = {pid: result.person_crop(pid) for pid in result.regions}
    blended = sum(blend(crop.region, crop.mask & (result.parts[crop.region] > 0)) for crop in crops.values())
    if blended < np.count_nonzero(result.parts):
        # Parts of no person (a category-level parser's), a band of rows at a time: the float
        # blend of a whole large photo took 1 GB.
        for top in range(0, image.shape[0], _BAND_ROWS):
            rows = (slice(top, top + _BAND_ROWS), slice(None))
            blend(rows, (result.persons[rows] == 0) & (result.parts[rows] > 0))
    if len(result.ids) == 0:
        return out
    colours = person_colours(int(result.ids.max()))
    thickness = max(1, round(min(image.shape[:2]) / 300))
    for k, pid in enumerate(result.ids.tolist()):
        crop = crops.get(pid, CroppedMask.EMPTY)  # the box of the person's pixels; 0 x 0 for none
        x, top, height, width = crop.left, crop.top, *crop.mask.shape
        rgb = tuple(int(c) for c in colours[pid])
        contours = cv2.findContours(crop.mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x, top))[0] if crop.area else ()
        # Outlines, joints and bones in proportion to the person, so that a small walker's
        # parts stay visible under them.
        line = max(1, min(thickness, height // 80))
        cv2.drawContours(out, contours, -1, rgb, line, cv2.LINE_AA)
        if result.keypoints.shape[1]:
            _skeleton(out, result.keypoints[k], rgb, line, min_keypoint_score)
        if height:
            text = str(pid)
            (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thickness, thickness + 2)
            origin = label_origin((x, top, x + width, top + height), (text_w, text_h), image.shape[:2])
            cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thickness, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thickness, rgb, thickness, cv2.LINE_AA)
    return out


def label_origin(box: tuple[int, int, int, int], text: tuple[int, int], image_hw: tuple[int, int], pad: int = 2) -> tuple[int, int]:
    """Where a person's id goes (cv2.putText's bottom-left origin, pixels): centred at the
    top of its box ``(x1, y1, x2, y2)``, inside the box, and wholly inside the image, so
    that it reads as this person's and is never cut off at an edge or drawn over what
    stands above them. ``text``: (width, height) of the label in pixels."""
    x1, y1, x2, _ = box
    height, width = image_hw
    text_w, text_h = text
    x = min(max((x1 + x2 - text_w) // 2, pad), max(width - text_w - pad, 0))
    y = min(max(y1 + text_h + pad, text_h + pad), height - pad)
    return int(x), int(y)


def _skeleton(out: np.ndarray, keypoints: np.ndarray, rgb: tuple[int, int, int], thickness: int, min_score: float) -> None:
    """Draw one person's (K, 3) keypoints: white joints ringed in its colour, bones in it."""
    visible = keypoints[:, 2] >= min_score
    points = [(int(round(x)), int(round(y))) for x, y in keypoints[:, :2]]
    for a, b in COCO_SKELETON:
        if a < len(points) and b < len(points) and visible[a] and visible[b]:
            cv2.line(out, points[a], points[b], rgb, thickness, cv2.LINE_AA)
    for point, shown in zip(points, visible):
        if shown:
            cv2.circle(out, point, thickness + 1, rgb, -1, cv2.LINE_AA)
            cv2.circle(out, point, thickness, (255, 255, 255), -1, cv2.LINE_AA)


def ground_truth_panel(image: np.ndarray, parts: np.ndarray, persons: np.ndarray, labels: LabelSet) -> np.ndarray:
    """(H, 3W, 3) uint8 RGB: the image with person outlines, the part map, the person map."""
    palette = np.array(labels.palette, np.uint8)
    count = int(persons.max())
    colours = person_colours(count)
    outlined = image.copy()
    for pid in range(1, count + 1):
        mask = (persons == pid).astype(np.uint8)
        if mask.any():
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(outlined, contours, -1, colours[pid].tolist(), 1)
    return np.concatenate([outlined, palette[parts], colours[persons]], 1)


def contact_sheet(panels: list[np.ndarray], columns: int = 4, gap: int = 4) -> np.ndarray:
    """Tile equally sized (H, W, 3) uint8 panels into one image, row by row."""
    h, w = panels[0].shape[:2]
    rows = -(-len(panels) // columns)
    sheet = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, np.uint8)
    for k, panel in enumerate(panels):
        r, c = divmod(k, columns)
        sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = panel
    return sheet


def line_chart(series: dict[str, list[tuple[float, float]]], title: str = "", width: int = 640, height: int = 360) -> np.ndarray:
    """Curves of (x, y) points on shared axes, with a legend: (height, width, 3) uint8 RGB.

    A small plotter of its own so that training needs no plotting library; axes span the
    data's range, with five labelled ticks on each.
    """
    canvas = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 64, 16, 28, 36
    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (225, 225, 225)
    cv2.putText(canvas, title, (left, 18), font, 0.5, black, 1, cv2.LINE_AA)
    points = [p for values in series.values() for p in values]
    if not points:
        cv2.putText(canvas, "no data", (width // 2 - 30, height // 2), font, 0.5, black, 1, cv2.LINE_AA)
        return canvas
    xs, ys = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    x0, x1 = xs.min(), max(xs.max(), xs.min() + 1)
    y0, y1 = ys.min(), ys.max()
    pad = 0.05 * (y1 - y0) if y1 > y0 else max(abs(y0) * 0.05, 1e-3)
    y0, y1 = y0 - pad, y1 + pad

    def pixel(x: float, y: float) -> tuple[int, int]:
        return (
            int(round(left + (x - x0) / (x1 - x0) * (width - left - right))),
            int(round(height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))),
        )

    for k in range(5):
        fx, fy = x0 + k / 4 * (x1 - x0), y0 + k / 4 * (y1 - y0)
        px, _ = pixel(fx, y0)
        _, py = pixel(x0, fy)
        cv2.line(canvas, (left, py), (width - right, py), grey, 1)
        cv2.line(canvas, (px, top), (px, height - bottom), grey, 1)
        cv2.putText(canvas, f"{fy:.3g}", (4, py + 4), font, 0.4, black, 1, cv2.LINE_AA)
        cv2.putText(canvas, f"{fx:.0f}", (px - 10, height - bottom + 16), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), black, 1)
    colours = person_colours(len(series))
    for k, (name, values) in enumerate(series.items()):
        colour = tuple(int(c) for c in colours[k + 1])
        if values:
            line = np.array([pixel(x, y) for x, y in values], np.int32)
            cv2.polylines(canvas, [line], False, colour, 2, cv2.LINE_AA)
        cv2.putText(canvas, name, (width - right - 170, top + 16 + 16 * k), font, 0.45, colour, 1, cv2.LINE_AA)
    return canvas
