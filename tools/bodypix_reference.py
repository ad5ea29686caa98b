"""Record BodyPix's int8 TFLite outputs on real photos: tests/fixtures/pretrained/bodypix.npz.

Development-time tooling, run once with a Python that has LiteRT (``pip install
ai-edge-litert opencv-python-headless numpy``; no torch, no humanparse needed):

    python tools/bodypix_reference.py bodypix_mobilenet_v1_075_720_1280_16_quant.tflite

The file is the one ``tools/convert_bodypix.py`` converted (google-coral/project-bodypix,
per-axis quantisation, input 1 × 1280 × 720 × 3 uint8 RGB). Each photo of
tests/fixtures/photos is letterboxed into the model's input as BodyPix's own
``padAndResizeTo`` does: scaled to fit, keeping its aspect (cv2.resize, area averaging when
shrinking, bilinear when enlarging, as ``humanparse.pretrained.crops.resize_image``),
centred on black. The test rebuilds that input from the photo and the stored placement.

Stored per photo (outputs dequantised, ``(q - zero_point) * scale``; grid h × w = 81 × 46):
``{photo}/placement`` (top, left, height, width of the photo in the input),
``{photo}/input_mean`` (per channel, to tell a different JPEG decoder from a wrong port),
``{photo}/segments`` (h, w) float16 person logits, ``{photo}/parts`` (h, w) uint8 argmax of
the 24 part logits and ``{photo}/parts_margin`` float16 (best minus second-best logit),
``{photo}/peaks`` (17, 2) int16 (row, col) of each keypoint heatmap's maximum and
``{photo}/peak_logits`` (17,) float32, and ``{photo}/offsets_at_peaks`` (17, 132) float16:
the short (34), mid (64) and long (34) offsets at those 17 cells. For the first photo also
``{photo}/part_logits`` (24, h, w) float16. About 120 KB in all.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "grace_hopper", "vtest_frame0", "camera")
SHA256 = "6abaed4ad9080cafd327d0f03fd23f0c46d4409b75b6e23abde9a35582067696"  # bodypix_mobilenet_v1_075_720_1280_16_quant.tflite
OUTPUTS = ("float_segments", "float_part_heatmaps", "float_heatmaps", "float_short_offsets", "float_mid_offsets", "float_long_offsets")


def letterbox(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``image`` scaled to fit (height, width) and centred on black; and its (top, left,
    height, width) there."""
    scale = min(height / image.shape[0], width / image.shape[1])
    h, w = round(image.shape[0] * scale), round(image.shape[1] * scale)
    shrink = w < image.shape[1] or h < image.shape[0]
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    top, left = (height - h) // 2, (width - w) // 2
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[top : top + h, left : left + w] = resized
    return canvas, (top, left, h, w)


def main() -> None:
    from ai_edge_litert.interpreter import Interpreter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tflite", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "pretrained" / "bodypix.npz")
    args = parser.parse_args()
    digest = hashlib.sha256(args.tflite.read_bytes()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{args.tflite}: sha256 {digest}, expected {SHA256} (bodypix_mobilenet_v1_075_720_1280_16_quant.tflite)")
    interpreter = Interpreter(model_path=str(args.tflite), num_threads=2)
    interpreter.allocate_tensors()
    (source,) = interpreter.get_input_details()
    height, width = (int(v) for v in source["shape"][1:3])
    details = {d["name"]: d for d in interpreter.get_output_details()}
    record: dict[str, np.ndarray] = {"input_hw": np.array([height, width], np.int32), "tflite_sha256": np.array(digest)}
    for k, photo in enumerate(PHOTOS):
        image = cv2.cvtColor(cv2.imread(str(REPO / "tests" / "fixtures" / "photos" / f"{photo}.jpg")), cv2.COLOR_BGR2RGB)
        x, placement = letterbox(image, height, width)
        interpreter.set_tensor(source["index"], x[None])
        interpreter.invoke()
        out = {}
        for name in OUTPUTS:
            q = interpreter.get_tensor(details[name]["index"])[0].astype(np.float32)
            scale, zero = details[name]["quantization"]
            out[name] = ((q - zero) * scale).transpose(2, 0, 1)  # (C, h, w)
        parts = out["float_part_heatmaps"]
        top2 = np.sort(parts, axis=0)[-2:]
        heatmaps = out["float_heatmaps"]
        peaks = np.array([np.unravel_index(m.argmax(), m.shape) for m in heatmaps], np.int16)
        offsets = np.concatenate([out["float_short_offsets"], out["float_mid_offsets"], out["float_long_offsets"]])
        record.update({
            f"{photo}/placement": np.array(placement, np.int32),
            f"{photo}/input_mean": x.reshape(-1, 3).mean(0),
            f"{photo}/segments": out["float_segments"][0].astype(np.float16),
            f"{photo}/parts": parts.argmax(0).astype(np.uint8),
            f"{photo}/parts_margin": (top2[1] - top2[0]).astype(np.float16),
            f"{photo}/peaks": peaks,
            f"{photo}/peak_logits": heatmaps.max(axis=(1, 2)).astype(np.float32),
            f"{photo}/offsets_at_peaks": offsets[:, peaks[:, 0], peaks[:, 1]].T.astype(np.float16),
        })
        if k == 0:
            record[f"{photo}/part_logits"] = parts.astype(np.float16)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **record)
    partial = args.out.with_name(f".{args.out.name}.partial")  # never a half-written fixture
    partial.write_bytes(buffer.getvalue())
    partial.replace(args.out)
    print(f"{args.out}: {len(buffer.getvalue()) / 1e3:.0f} KB, {len(PHOTOS)} photos at {height} x {width}")


if __name__ == "__main__":
    main()
