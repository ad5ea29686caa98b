"""The converted pretrained networks on the CPU, side by side with the same models in native runtimes.

    python benchmarks/bench_pretrained.py [--repeats 30] [--threads N] [--models nanodet,selfie]

For each network in humanparse/models/ it times the torch port under inference mode, batch 1
— as humanparse runs it (``TFGraph.run``: the graph traced for the input's shape) and, for
reference, op by op (``TFGraph.forward``, eager) — against:

* LiteRT (``pip install ai-edge-litert``) running MediaPipe's own .tflite files, for
  blazepose-full (pose_landmark_full.tflite from ``npm pack @mediapipe/pose@0.5.1675469404``)
  and selfie (selfie_segmentation.tflite from ``npm pack @mediapipe/selfie_segmentation@0.1.1675465747``);
  extract the tarballs and pass --pose-tflite / --selfie-tflite, or use the default paths.
  These are Google's float32 weights, not the float16 TF.js ones the port was converted
  from, so the outputs differ a little; the agreement column shows by how much.
* onnxruntime (``pip install onnxruntime onnx``) on the file ``humanparse export --format
  onnx`` writes for the network (humanparse.export: the torch port through the TorchScript
  exporter), so the column compares two runtimes of one model; the agreement column is the
  largest absolute difference over all outputs. BodyPix gets the same row at two sizes.

BodyPix (``bodypix``, a native torch module converted from Coral's int8 TFLite files, not a
graph) is timed as humanparse runs it (``BodyPixNet``, eager; the "eager" column is unused),
against LiteRT running Coral's own .tflite files (google-coral/project-bodypix ``models/``,
--bodypix-dir) on the same uint8 photo (tests/fixtures/photos/grace_hopper.jpg stretched to
the input size): the per-axis file the port was converted from, at its own 1280 × 720 and
with its input resized to 360 × 640, 540 × 960 and 720 × 1280, and the per-tensor file at
its own 720 × 1280 (other weights: their per-tensor rounding). Two more rows at 720 × 1280
time what else was tried: the module traced, frozen and passed through
``torch.jit.optimize_for_inference`` (oneDNN, ReLU6 fused), and the module in bfloat16.
Agreement: person/background agreement and mean |Δ| of the person logits, where the grids
match (the graph pads any input by one pixel, the port to 16k + 1: the same on 16k sizes).

The TF graphs get the same input (smooth random colour blobs) on both sides; every side gets
the same number of threads.
After a warm-up the two are called in turn (A, B, A, B, ...) so that a noisy, shared machine
slows both alike; times are medians in ms per call, and a side whose 90th percentile is over
twice its median is flagged "noisy". ratio = torch (traced) / native: at or below 1.0 the port is no
slower. A runtime or file that is missing, or an export that fails, gives a row saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanparse.io.images import read_image  # noqa: E402
from humanparse.pretrained.bodypix import load_bodypix  # noqa: E402
from humanparse.pretrained.crops import resize_image  # noqa: E402
from humanparse.pretrained.registry import load_network  # noqa: E402
from humanparse.runtime import tune_allocator  # noqa: E402

# name -> (input shape, dtype) of its one placeholder, batch 1.
INPUTS: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
    "nanodet": ((1, 3, 416, 416), torch.float32),
    "movenet-thunder": ((1, 256, 256, 3), torch.int32),
    "movenet-multipose": ((1, 256, 256, 3), torch.int32),
    "blazepose-full": ((1, 256, 256, 3), torch.float32),
    "selfie": ((1, 256, 256, 3), torch.float32),
}
# MediaPipe's releases of two of them: default .tflite path, where to get it, and the outputs
# to compare (the port's key -> label, and whether the tflite gives logits where the TF.js
# graph has a sigmoid, as pose_landmark_full's mask does). The tflite files call their
# outputs Identity_k, so they are matched by shape (unique within each model).
TFLITE: dict[str, tuple[str, str, dict[str, tuple[str, bool]]]] = {
    "blazepose-full": ("/tmp/npm/mp_pose/package/pose_landmark_full.tflite", "npm pack @mediapipe/pose@0.5.1675469404", {"ld_3d": ("landmarks px", False), "activation_segmentation": ("mask", True)}),
    "selfie": ("/tmp/npm/mp_selfie/package/selfie_segmentation.tflite", "npm pack @mediapipe/selfie_segmentation@0.1.1675465747", {"activation_10:0": ("mask", False)}),
}

# BodyPix: (input height, width, .tflite file under --bodypix-dir, what it is), in table order.
BODYPIX_PER_TENSOR = "bodypix_mobilenet_v1_075_1280_720_16_per_tensor_quant.tflite"
BODYPIX_PER_AXIS = "bodypix_mobilenet_v1_075_720_1280_16_quant.tflite"
BODYPIX_RUNS = ((360, 640, BODYPIX_PER_AXIS, "per-axis, resized"), (540, 960, BODYPIX_PER_AXIS, "per-axis, resized"), (720, 1280, BODYPIX_PER_AXIS, "per-axis, resized"),
                (1280, 720, BODYPIX_PER_AXIS, "per-axis"), (720, 1280, BODYPIX_PER_TENSOR, "per-tensor"))
BODYPIX_PHOTO = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "photos" / "grace_hopper.jpg"

Runner = Callable[[], object]
Row = tuple[str, str, str, str, str, str, str, str]  # model, shape, torch, eager, native, runtime, ratio, agreement


def make_input(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Smooth random colour blobs (8x8 noise upsampled): unlike pixel noise, they do not drive
    the masks to all-zero, so the outputs compared below are not trivially equal."""
    nhwc = shape[-1] == 3
    size = shape[1:3] if nhwc else shape[2:]
    coarse = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    x = F.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    x = x.permute(0, 2, 3, 1) if nhwc else x
    return (x * 255).round().to(dtype).contiguous() if dtype == torch.int32 else x.contiguous()


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Mute fds 1 and 2: the ONNX exporter prints the whole graph from C++ when it fails, and
    LiteRT logs its delegate; the exceptions still carry the reasons."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    with tempfile.TemporaryFile() as sink:
        for fd in (1, 2):
            os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


def interleaved_ms(runners: dict[str, Runner], warmup: int, repeats: int) -> dict[str, list[float]]:
    """ms per call of each runner, called in turn so that drifts in machine load hit all."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def short_reason(exc: BaseException) -> str:
    """One line from an exception whose message may hold a whole TorchScript graph."""
    text = " ".join(str(exc).split())
    if "because it is not constant" in text:  # the legacy exporter's "make sizes static" error
        op = re.search(r"= (\w+::\w+)", text)
        kind = re.search(r"containing node has kind '([\w:]+)'", text)
        text = f"a traced {op.group(1) if op else 'value'} feeds a {kind.group(1) if kind else 'node'} that ONNX needs constant (a size or padding)"
    return f"{type(exc).__name__}: {text[:110]}"


def unavailable(module: str, package: str) -> str | None:
    """Why ``module`` cannot be imported, or None if it can."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        return f"not installed (pip install {package})" if exc.name == module.split(".")[0] else short_reason(exc)
    except ImportError as exc:  # installed but broken, e.g. built against another numpy
        return short_reason(exc)
    return None


def litert_runner(path: Path, x: np.ndarray, threads: int) -> tuple[Runner, dict[tuple[int, ...], np.ndarray]]:
    """A LiteRT call (input copy, invoke, output copies) and its outputs keyed by shape."""
    from ai_edge_litert.interpreter import Interpreter

    with silenced():
        interp = Interpreter(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    if tuple(inp["shape"]) != x.shape or inp["dtype"] != x.dtype:
        raise ValueError(f"{path.name} takes {tuple(inp['shape'])} {np.dtype(inp['dtype'])}, not {x.shape} {x.dtype}")
    outs = interp.get_output_details()

    def run() -> list[np.ndarray]:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return [interp.get_tensor(o["index"]) for o in outs]

    return run, {r.shape: r for r in run()}


def ort_session(path: Path, threads: int):
    """An onnxruntime CPU session of the file ``path`` on ``threads`` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle ORT workers otherwise spin after each run, taking the cores from the torch call
    # that follows it in the interleaved loop.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_runner(name: str, x: torch.Tensor, threads: int, folder: Path) -> tuple[Runner, list[np.ndarray]]:
    """``humanparse export``'s ONNX file of network ``name``, opened in onnxruntime; a call
    on ``x`` and its outputs."""
    from humanparse.export import export_network

    path = folder / f"{name}.onnx"
    with silenced():
        exported = export_network(name, path, "onnx")
    session = ort_session(path, threads)
    feed = {exported.input_name: x.numpy()}
    return (lambda: session.run(None, feed)), session.run(None, feed)


def litert_agreement(path: Path, name: str, x: torch.Tensor, ref: dict[str, np.ndarray], threads: int) -> tuple[Runner, str]:
    """The LiteRT call for ``name`` and how far its outputs are from the port's."""
    native, outs = litert_runner(path, x.numpy(), threads)
    diffs = []
    for key, (label, logits) in TFLITE[name][2].items():
        theirs = outs[ref[key].shape].astype(np.float64)
        theirs = 0.5 * (1 + np.tanh(theirs / 2)) if logits else theirs  # a sigmoid that cannot overflow
        diffs.append(f"{label} {np.abs(theirs - ref[key]).max():.2g}")
    return native, "max|Δ| " + ", ".join(diffs) + " (Google's fp32 tflite)"


def bench_model(name: str, args: argparse.Namespace, tflite_paths: dict[str, Path]) -> list[Row]:
    shape, dtype = INPUTS[name]
    graph = load_network(name)
    x = make_input(shape, dtype)
    with torch.inference_mode():
        ref = {k: v.numpy() for k, v in graph(x).items()}

    def torch_call() -> object:  # what humanparse's wrappers call: the traced graph
        with torch.inference_mode():
            return graph.run(x)

    def eager_call() -> object:  # the op-by-op executor itself
        with torch.inference_mode():
            return graph(x)

    shape_s = "x".join(map(str, shape)) + (" i32" if dtype == torch.int32 else "")
    rows: list[Row] = []

    def timed(runtime: str, native: Runner, agreement: str) -> None:
        times = interleaved_ms({"torch": torch_call, "eager": eager_call, "native": native}, args.warmup, args.repeats)
        ms = {side: statistics.median(t) for side, t in times.items()}
        # A shared VM can stall one side for seconds (seen here: torch at 2 threads on 2 CPUs
        # running 50x slower for tens of seconds); flag a side whose slow tail is far out.
        for side, t in times.items():
            if len(t) >= 5 and statistics.quantiles(t, n=10)[-1] > 2 * ms[side]:
                agreement += f"  [noisy: {side} p90 > 2x median]"
        rows.append((name, shape_s, f"{ms['torch']:.2f}", f"{ms['eager']:.2f}", f"{ms['native']:.2f}", runtime, f"{ms['torch'] / ms['native']:.2f}", agreement))

    def failed(runtime: str, why: str) -> None:
        rows.append((name, shape_s, "-", "-", "-", runtime, "-", why))

    if name in TFLITE:
        path = tflite_paths[name]
        why = unavailable("ai_edge_litert.interpreter", "ai-edge-litert")
        if why:
            failed("LiteRT", why)
        elif not path.is_file():
            failed("LiteRT", f"no {path} ({TFLITE[name][1]}, extract)")
        else:
            try:
                timed("LiteRT", *litert_agreement(path, name, x, ref, args.threads))
            except Exception as exc:  # noqa: BLE001  a bad file or an API change: say so, go on
                failed("LiteRT", short_reason(exc))

    why = unavailable("onnxruntime", "onnxruntime") or unavailable("onnx", "onnx")  # the exporter needs onnx
    if why:
        failed("onnxruntime", why)
        return rows
    with tempfile.TemporaryDirectory() as folder:
        try:
            native, outs = onnx_runner(name, x, args.threads, Path(folder))
        except Exception as exc:  # noqa: BLE001  an export that fails gets a row saying why
            failed("onnxruntime", "export failed: " + short_reason(exc))
            return rows
        diff = max(float(np.abs(o - r).max()) for o, r in zip(outs, ref.values()))
        timed("onnxruntime", native, f"max|Δ| {diff:.2g} (humanparse export --format onnx)")
    return rows


def bodypix_litert(path: Path, image: np.ndarray, threads: int) -> tuple[Runner, np.ndarray]:
    """A LiteRT call of a BodyPix .tflite file on ``image`` (H, W, 3) uint8, its input
    resized to the image's size if it differs, and the dequantised person logits (h, w)."""
    from ai_edge_litert.interpreter import Interpreter

    with silenced():
        interp = Interpreter(model_path=str(path), num_threads=threads)
        (inp,) = interp.get_input_details()
        if tuple(inp["shape"][1:3]) != image.shape[:2]:
            interp.resize_tensor_input(inp["index"], [1, *image.shape])
        interp.allocate_tensors()
    outs = interp.get_output_details()
    (segments,) = [o for o in outs if o["name"] == "float_segments"]
    x = image[None]

    def run() -> list[np.ndarray]:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return [interp.get_tensor(o["index"]) for o in outs]

    run()
    scale, zero = segments["quantization"]
    return run, (interp.get_tensor(segments["index"])[0, ..., 0].astype(np.float32) - zero) * scale


def bench_bodypix(args: argparse.Namespace) -> list[Row]:
    net, _ = load_bodypix()
    photo = read_image(BODYPIX_PHOTO)
    why = unavailable("ai_edge_litert.interpreter", "ai-edge-litert")
    rows: list[Row] = []
    for height, width, file, what in BODYPIX_RUNS:
        image = resize_image(photo, width, height)
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        variants: dict[str, Callable[[torch.Tensor], object]] = {"bodypix": net}
        if (height, width, file) == (720, 1280, BODYPIX_PER_AXIS):
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                variants["bodypix frozen"] = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
            half = load_bodypix()[0].to(torch.bfloat16)
            variants["bodypix bf16"] = lambda x, half=half: half(x.to(torch.bfloat16))
        shape_s = f"{height}x{width}x3 u8"
        path = args.bodypix_dir / file
        for name, module in variants.items():
            def torch_call(module=module) -> object:
                with torch.inference_mode():
                    return module(x)

            failure = why or (None if path.is_file() else f"no {path} (google-coral/project-bodypix models/)")
            if failure:
                times = interleaved_ms({"torch": torch_call}, args.warmup, args.repeats)
                rows.append((name, shape_s, f"{statistics.median(times['torch']):.2f}", "-", "-", "LiteRT", "-", failure))
                continue
            try:
                native, theirs = bodypix_litert(path, image, args.threads)
            except Exception as exc:  # noqa: BLE001  a bad file or an API change: say so, go on
                rows.append((name, shape_s, "-", "-", "-", "LiteRT", "-", short_reason(exc)))
                continue
            with torch.inference_mode():
                ours = module(x)[0][0, 0].float().numpy()
            agreement = (f"person {100 * ((ours > 0) == (theirs > 0)).mean():.2f} %, |Δlogit| {np.abs(ours - theirs).mean():.3f}" if ours.shape == theirs.shape
                         else f"grids differ ({ours.shape[0]}x{ours.shape[1]} vs {theirs.shape[0]}x{theirs.shape[1]})")
            times = interleaved_ms({"torch": torch_call, "native": native}, args.warmup, args.repeats)
            ms = {side: statistics.median(t) for side, t in times.items()}
            for side, t in times.items():
                if len(t) >= 5 and statistics.quantiles(t, n=10)[-1] > 2 * ms[side]:
                    agreement += f"  [noisy: {side} p90 > 2x median]"
            rows.append((name, shape_s, f"{ms['torch']:.2f}", "-", f"{ms['native']:.2f}", f"LiteRT {what}", f"{ms['torch'] / ms['native']:.2f}", agreement))
    rows += bodypix_onnx(net, photo, args)
    return rows


def bodypix_onnx(net: torch.nn.Module, photo: np.ndarray, args: argparse.Namespace) -> list[Row]:
    """BodyPix as humanparse runs it against onnxruntime on ``humanparse export``'s file
    (one file, any input size), at 360 x 640 and 720 x 1280."""
    why = unavailable("onnxruntime", "onnxruntime") or unavailable("onnx", "onnx")
    if why:
        return [("bodypix", "-", "-", "-", "-", "onnxruntime", "-", why)]
    from humanparse.export import export_network

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bodypix.onnx"
        with silenced():
            export_network("bodypix", path, "onnx")
        session = ort_session(path, args.threads)
        for height, width in ((360, 640), (720, 1280)):
            x = torch.from_numpy(resize_image(photo, width, height)).permute(2, 0, 1)[None].float().contiguous()
            feed = {"image": x.numpy()}
            with torch.inference_mode():
                ref = [m.numpy() for m in net(x)]
            diff = max(float(np.abs(a - b).max()) for a, b in zip(session.run(None, feed), ref))

            def torch_call(x=x) -> object:
                with torch.inference_mode():
                    return net(x)

            times = interleaved_ms({"torch": torch_call, "native": lambda feed=feed: session.run(None, feed)}, args.warmup, args.repeats)
            ms = {side: statistics.median(t) for side, t in times.items()}
            rows.append(("bodypix", f"{height}x{width}x3 f32", f"{ms['torch']:.2f}", "-", f"{ms['native']:.2f}", "onnxruntime",
                         f"{ms['torch'] / ms['native']:.2f}", f"max|Δ| {diff:.2g} (humanparse export --format onnx)"))
    return rows


def line(row: Row, widths: tuple[int, ...] = (17, 19, 8, 8, 9, 11, 5)) -> str:
    """A table row: the first two columns left-aligned, the numbers right, agreement last."""
    cells = (f"{v:<{w}}" if i < 2 else f"{v:>{w}}" for i, (v, w) in enumerate(zip(row, widths)))
    return " ".join(cells) + f"  {row[-1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join([*INPUTS, "bodypix"]), help="comma-separated subset of: " + ", ".join([*INPUTS, "bodypix"]))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--pose-tflite", type=Path, default=Path(TFLITE["blazepose-full"][0]))
    parser.add_argument("--selfie-tflite", type=Path, default=Path(TFLITE["selfie"][0]))
    parser.add_argument("--bodypix-dir", type=Path, default=Path("/work/shared/bodypix"), help="google-coral/project-bodypix's models/ folder")
    args = parser.parse_args()
    tuned = tune_allocator()  # as the command line does, so torch runs as it would there
    torch.set_num_threads(args.threads)
    versions = [f"torch {torch.__version__}"]
    for dist in ("onnxruntime", "onnx", "ai-edge-litert"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} not installed")
    print(f"{', '.join(versions)}; {args.threads} threads each ({os.cpu_count()} CPUs), allocator tuned: {tuned}")
    print(f"median ms per call of {args.repeats} interleaved calls after {args.warmup} warm-up calls\n")

    tflite_paths = {"blazepose-full": args.pose_tflite, "selfie": args.selfie_tflite}
    header: Row = ("model", "input", "torch ms", "eager ms", "native ms", "native", "ratio", "output agreement")
    print(line(header))
    print("-" * 100)
    for name in args.models.split(","):
        if name not in INPUTS and name != "bodypix":
            parser.error(f"unknown model {name!r}; choose from {', '.join([*INPUTS, 'bodypix'])}")
        for row in bench_bodypix(args) if name == "bodypix" else bench_model(name, args, tflite_paths):
            print(line(row), flush=True)
    print("\nratio = torch / native; ≤ 1.00 means the torch port is no slower.")


if __name__ == "__main__":
    main()
