"""Record body-pix's multi-person pose decoder on PoseNet maps, for the decoder port's tests.

Dev-time tooling, run once; users of humanparse never need Node or LiteRT. It builds a set
of cases (PoseNet maps and decoder settings), runs TensorFlow.js body-pix 2.2.1's own
``decodeMultiplePoses`` on each (``record.mjs``) and saves
``tests/fixtures/pretrained/posenet/reference.npz`` (in a folder of its own: the
network recordings are the ``*.npz`` beside it). The cases:

* ``real-*``: BodyPix 2 (MobileNetV1 0.75, stride 16; the per-tensor quantised TFLite model
  of google-coral/project-bodypix, run by LiteRT) on the fixture photos, letterboxed into its
  1280 × 720 input (top left, black elsewhere), the grid cropped to the people: vtest_frame0
  at 1.25× and astronaut at 360 × 360, each with body-pix's defaults and with the settings of
  Coral's decoder model (max 20 poses, threshold 0.2, NMS radius 10 px).
* ``random-*``: random maps, heatmap logits on a few levels (so many scores tie, as a
  quantised network's do), offsets often leading off the grid, several strides and settings.
* ``planted-*``: people drawn on the grid with consistent offsets, overlapping, plus noise.
* ``tiny-*``, ``empty``, ``none-asked``: 1-cell and 1-row grids, no score above the
  threshold, max_poses 0.

Every case's maps are stored as the network gives them: uint8 with a per-tensor scale and
zero point (``value = (q.astype(float32) - float32(zero_point)) * float32(scale)``,
float32), channels first in the layout :func:`humanparse.pretrained.posenet.decode_poses`
takes: heatmaps (17, h, w) logits, short offsets (34, h, w) [y × 17, x × 17], mid offsets
(64, h, w) [forward y × 16, forward x × 16, backward y × 16, backward x × 16]. TF.js gets
the same float32 values channels last, the mid offsets split into displacementFwd (the
first 32) and displacementBwd (the last 32). Keys: ``names`` (N,) the cases; map set j
(cases may share one): ``maps/{j}/heatmaps``, ``maps/{j}/short_offsets``,
``maps/{j}/mid_offsets`` (uint8), ``maps/{j}/quantization`` (3, 2) float32 (scale, zero
point) of the three; case i: ``{i}/maps`` its map set j, ``{i}/params`` float64 (stride,
max_poses, score_threshold, nms_radius), and TF.js's result: ``{i}/keypoints`` (P, 17, 3)
float64 x, y, score and ``{i}/scores`` (P,) float64.

Setup and run (from the repo root; LiteRT, numpy, pillow in a side environment)::

    mkdir -p /tmp/posenetref && cp tools/posenet_reference/package.json /tmp/posenetref/
    (cd /tmp/posenetref && npm install)
    /work/venv-litert/bin/python tools/posenet_reference/record.py \\
        --model /work/shared/bodypix/bodypix_mobilenet_v1_075_1280_720_16_per_tensor_quant.tflite \\
        --node-modules /tmp/posenetref/node_modules
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "tests" / "fixtures" / "photos"
OUT = ROOT / "tests" / "fixtures" / "pretrained" / "posenet" / "reference.npz"
EDGES = ((0, 1), (1, 3), (0, 2), (2, 4), (0, 5), (5, 7), (7, 9), (5, 11), (11, 13), (13, 15), (0, 6), (6, 8), (8, 10), (6, 12), (12, 14), (14, 16))
# body-pix PERSON_INFERENCE_CONFIG, and the custom options of Coral's PosenetDecoderOp in
# bodypix_mobilenet_v1_075_640_480_16_quant_decoder.tflite.
BODYPIX = {"max_poses": 10, "score_threshold": 0.4, "nms_radius": 20.0}
CORAL = {"max_poses": 20, "score_threshold": 0.2, "nms_radius": 10.0}
# A standing person, 17 COCO keypoints (x, y) in units of its height.
PERSON = np.array([
    [0.0, 0.0], [0.03, -0.03], [-0.03, -0.03], [0.07, -0.01], [-0.07, -0.01], [0.12, 0.15],
    [-0.12, 0.15], [0.16, 0.32], [-0.16, 0.32], [0.17, 0.47], [-0.17, 0.47], [0.08, 0.5],
    [-0.08, 0.5], [0.08, 0.72], [-0.08, 0.72], [0.08, 0.93], [-0.08, 0.93],
])


def quantise(maps: np.ndarray) -> tuple[np.ndarray, float, float]:
    """uint8 per-tensor quantisation of float maps: (q, scale, zero_point)."""
    lo, hi = min(float(maps.min()), 0.0), max(float(maps.max()), 1e-3)
    scale = (hi - lo) / 255
    zero_point = float(np.clip(round(-lo / scale), 0, 255))
    return np.clip(np.round(maps / scale + zero_point), 0, 255).astype(np.uint8), scale, zero_point


def dequantise(q: np.ndarray, scale: float, zero_point: float) -> np.ndarray:
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def make_case(name: str, heatmaps: np.ndarray, short_offsets: np.ndarray, mid_offsets: np.ndarray, stride: int, **params: float) -> dict:
    """A case from float maps, quantised per tensor."""
    quantised = [quantise(np.asarray(m, np.float32)) for m in (heatmaps, short_offsets, mid_offsets)]
    return {"name": name, "maps": [q for q, _, _ in quantised], "quantization": np.array([[s, z] for _, s, z in quantised], np.float32), "stride": stride, **params}


def real_cases(model: Path) -> list[dict]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model), num_threads=2)
    interpreter.allocate_tensors()
    (source,) = interpreter.get_input_details()
    height, width = source["shape"][1:3]
    outputs = {d["name"]: d for d in interpreter.get_output_details()}
    cases = []
    # photo, size it is resized to (w, h), grid crop (rows, cols)
    for photo, size, rows, cols in (("vtest_frame0", (960, 720), (8, 30), (16, 58)), ("astronaut", (360, 360), (0, 24), (0, 24))):
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[: size[1], : size[0]] = np.asarray(Image.open(PHOTOS / f"{photo}.jpg").convert("RGB").resize(size, Image.BILINEAR))
        interpreter.set_tensor(source["index"], canvas[None])
        interpreter.invoke()
        maps, quantization = [], []
        for key in ("float_heatmaps", "float_short_offsets", "float_mid_offsets"):
            q = interpreter.get_tensor(outputs[key]["index"])[0, rows[0] : rows[1], cols[0] : cols[1]]
            maps.append(np.ascontiguousarray(q.transpose(2, 0, 1)))
            quantization.append(outputs[key]["quantization"])
        for label, params in (("bodypix", BODYPIX), ("coral", CORAL)):
            cases.append({"name": f"real-{photo}-{label}", "maps": maps, "quantization": np.array(quantization, np.float32), "stride": 16, **params})
    return cases


def planted_maps(rng: np.random.Generator, h: int, w: int, stride: int, people: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maps of people (N, 17, 2) x, y pixels: at every cell each keypoint's offsets point to
    the nearest person's keypoint, heatmaps peak there, displacements join the nearest
    person's keypoints along the skeleton; plus uniform noise of ``noise`` × stride."""
    iy, ix = np.mgrid[0:h, 0:w] * stride
    heat, short, mid = np.full((17, h, w), -6.0), np.zeros((34, h, w)), np.zeros((64, h, w))
    for k in range(17):
        dx = people[:, k, 0, None, None] - ix
        dy = people[:, k, 1, None, None] - iy
        d2 = dx**2 + dy**2
        near = d2.argmin(0)
        pick = lambda a: np.take_along_axis(a, near[None], 0)[0]
        heat[k] = 5.0 - pick(d2) / (0.8 * stride) ** 2
        short[k], short[17 + k] = pick(dy), pick(dx)
    for e, (parent, child) in enumerate(EDGES):
        for source, target, base in ((parent, child, 0), (child, parent, 32)):
            d2 = (people[:, source, 0, None, None] - ix) ** 2 + (people[:, source, 1, None, None] - iy) ** 2
            near = d2.argmin(0)
            step = people[:, target] - people[:, source]
            mid[base + e], mid[base + 16 + e] = step[near, 1], step[near, 0]
    noisy = lambda a: a + rng.uniform(-noise, noise, a.shape) * stride
    return heat + rng.normal(0, 0.3, heat.shape), noisy(short), noisy(mid)


def synthetic_cases() -> list[dict]:
    rng = np.random.default_rng(20240611)
    cases = []
    for i in range(8):
        h, w = int(rng.integers(3, 11)), int(rng.integers(3, 15))
        stride = int(rng.choice([8, 16, 32]))
        levels = int(rng.integers(4, 12))
        heat = (rng.integers(0, levels, (17, h, w)) - levels / 2) * 0.9
        short = rng.integers(-6, 7, (34, h, w)) * stride / 4
        mid = rng.integers(-16, 17, (64, h, w)) * stride / 4
        params = {"max_poses": int(rng.integers(3, 30)), "score_threshold": float(rng.choice([0.0, 0.1, 0.3, 0.5, 0.7])), "nms_radius": float(rng.choice([0.5, 1.0, 2.0])) * stride}
        cases.append(make_case(f"random-{i}", heat, short, mid, stride, **params))
    for i, (h, w, stride, n) in enumerate(((16, 24, 16, 4), (14, 14, 8, 3), (10, 30, 16, 6))):
        heights = rng.uniform(0.3, 0.9, n) * h * stride
        feet = rng.uniform([0, 0.5], [1, 1], (n, 2)) * [w * stride, h * stride]
        people = PERSON[None] * heights[:, None, None] + (feet - [0, 0.93] * heights[:, None])[:, None, :]
        away = rng.random(n) < 0.3  # facing away: left and right swap sides
        people[away, :, 0] = 2 * people[away, :1, 0] - people[away, :, 0]
        if i == 0:
            people[1] = people[0] + [6.0, 4.0]  # a second person almost on the first: NMS
        heat, short, mid = planted_maps(rng, h, w, stride, people, noise=0.05 * i)
        cases.append(make_case(f"planted-{i}", heat, short, mid, stride, **(CORAL if i == 1 else BODYPIX)))
    for h, w in ((1, 1), (1, 6), (5, 1), (2, 2)):
        heat = rng.normal(0, 2, (17, h, w))
        short, mid = rng.uniform(-20, 20, (34, h, w)), rng.uniform(-40, 40, (64, h, w))
        cases.append(make_case(f"tiny-{h}x{w}", heat, short, mid, 16, max_poses=10, score_threshold=0.2, nms_radius=4.0))
    cases.append(make_case("empty", np.full((17, 6, 7), -3.0), rng.normal(0, 5, (34, 6, 7)), rng.normal(0, 5, (64, 6, 7)), 16, **BODYPIX))
    cases.append(make_case("none-asked", rng.normal(0, 2, (17, 6, 7)), rng.normal(0, 5, (34, 6, 7)), rng.normal(0, 5, (64, 6, 7)), 16, max_poses=0, score_threshold=0.1, nms_radius=20.0))
    return cases


def run_tfjs(cases: list[dict], node_modules: Path) -> list[list[dict]]:
    headers, chunks, offset = [], [], 0
    for case in cases:
        heat, short, mid = (dequantise(q, s, z) for q, (s, z) in zip(case["maps"], case["quantization"]))
        h, w = heat.shape[1:]
        for part in (heat, short, mid[:32], mid[32:]):
            chunks.append(np.ascontiguousarray(part.transpose(1, 2, 0)).ravel())
        headers.append({"h": h, "w": w, "offset": offset, "stride": case["stride"], "max_poses": case["max_poses"], "score_threshold": case["score_threshold"], "nms_radius": case["nms_radius"]})
        offset += sum(c.size for c in chunks[-4:])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cases.json").write_text(json.dumps(headers))
        np.concatenate(chunks).astype("<f4").tofile(tmp / "maps.bin")
        subprocess.run(["node", str(Path(__file__).with_name("record.mjs")), str(node_modules), str(tmp / "cases.json"), str(tmp / "maps.bin"), str(tmp / "out.json")], check=True)
        return json.loads((tmp / "out.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="BodyPix 2 TFLite model with 1280 x 720 input")
    parser.add_argument("--node-modules", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    cases = real_cases(args.model) + synthetic_cases()
    results = run_tfjs(cases, args.node_modules)
    arrays: dict[str, np.ndarray] = {"names": np.array([c["name"] for c in cases])}
    stored: list[int] = []  # ids of the map sets stored, so cases sharing maps share them
    for i, (case, poses) in enumerate(zip(cases, results)):
        if id(case["maps"]) not in stored:
            j = len(stored)
            stored.append(id(case["maps"]))
            for key, q in zip(("heatmaps", "short_offsets", "mid_offsets"), case["maps"]):
                arrays[f"maps/{j}/{key}"] = q
            arrays[f"maps/{j}/quantization"] = case["quantization"]
        arrays[f"{i}/maps"] = np.array(stored.index(id(case["maps"])))
        arrays[f"{i}/params"] = np.array([case["stride"], case["max_poses"], case["score_threshold"], case["nms_radius"]], np.float64)
        arrays[f"{i}/keypoints"] = np.array([p["keypoints"] for p in poses], np.float64).reshape(-1, 17, 3)
        arrays[f"{i}/scores"] = np.array([p["score"] for p in poses], np.float64)
        print(f"{case['name']:28s} grid {case['maps'][0].shape[1]}x{case['maps'][0].shape[2]}: {len(poses)} poses")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"{args.out}: {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
