"""Pictures for people to look at: label overlays and contact sheets."""

from __future__ import annotations

import cv2
import numpy as np

from .labels import LabelSet


def person_colours(count: int) -> np.ndarray:
    """(count + 1, 3) uint8 RGB, 0 black, then well-separated hues (golden-angle steps)."""
    if count == 0:
        return np.zeros((1, 3), np.uint8)
    hues = (np.arange(count) * 0.618034 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(count, 200, np.uint8), np.full(count, 255, np.uint8)], 1)[None]
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    return np.concatenate([np.zeros((1, 3), np.uint8), rgb])


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


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG file contents."""
    ok, encoded = cv2.imencode(".png", image[..., ::-1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()
