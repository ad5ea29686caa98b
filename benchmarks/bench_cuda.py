"""The whole `humanparse video` on a CUDA device beside the CPU, the default parser alone
per frame, then the Instance CRF and the segmenters alone (synchronised, median of repeats).

    python benchmarks/bench_cuda.py [--frames 80] [--skip-video] [--skip-parser] [--skip-parts]

Video: the real demo clip's 640 x 360 band (rows 60-420 of examples/pedestrians.mp4) and
the same frames enlarged 3 times to 1920 x 1080, each run as a user runs it (one
`humanparse video` process a row, default settings, `--device cuda` or `--device cpu`),
frames/s and ms per frame of each stage from its summary.json, the GPU's peak memory
(torch.cuda.max_memory_allocated, in summary.json on CUDA) and the process's peak RSS.
Without CUDA only the CPU rows run; without PyAV (a GPU machine that lacks it) the video
rows are left out. Parser: `Predictor` on the same frames decoded by OpenCV, one frame
at a time after one warm-up frame (no tracking, no writing; needs no PyAV): frames/s, ms
per stage (on CUDA a stage's time includes waiting for earlier kernels only where it
copies to the host) and the GPU's peak memory. The parts: CRF and segmenters alone, CUDA
only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crf import make_inputs  # noqa: E402

from humanparse.modeling.crf import InstanceCRF  # noqa: E402
from humanparse.modeling.segmenter import build_segmenter  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "examples" / "pedestrians.mp4"


def timed(fn, repeats: int = 5) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def video(frames: int) -> None:
    """`humanparse video` rows: clip x device, per-stage ms per frame."""
    from bench_video import STAGES, cut, run  # PyAV: not on every GPU machine
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    with tempfile.TemporaryDirectory(prefix="bench-cuda-") as folder:
        work = Path(folder)
        clips = {"real 640x360": cut(DEMO, work / "band.mp4", frames, rows=(60, 420)),
                 "real 1920x1080": cut(DEMO, work / "band-1080p.mp4", frames, rows=(60, 420), scale=3)}
        print(f"{frames} frames a clip; default settings\n")
        header = f"{'clip':<15} {'device':<6} {'frames/s':>8} {'GPU MB':>7} {'RSS MB':>7} " + " ".join(f"{s:>8}" for s in STAGES)
        print(header + "\n" + " " * 48 + "ms per frame")
        for name, clip in clips.items():
            for k, device in enumerate(devices):
                result = run(clip, work / f"out-{name.split()[-1]}-{device}", "--device", device)
                seconds, count = result["seconds"], result["frames"]
                gpu = f"{result['cuda_peak_mb']:7.0f}" if result["cuda_peak_mb"] is not None else f"{'-':>7}"
                cells = " ".join(f"{1000 * seconds[s] / count:>8.1f}" if s in seconds else f"{'-':>8}" for s in STAGES)
                print(f"{name:<15} {device:<6} {count / seconds['total']:>8.2f} {gpu} {result['peak_rss_mb']:>7.0f} {cells}")
    print()


def read_frames(path: Path, count: int, rows: tuple[int, int], scale: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``path`` as (H, W, 3) uint8 RGB, rows [r0, r1) only,
    enlarged ``scale`` times (bicubic), decoded by OpenCV."""
    capture, frames = cv2.VideoCapture(str(path)), []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        image = bgr[rows[0] : rows[1], :, ::-1]
        if scale != 1:
            image = cv2.resize(image, (image.shape[1] * scale, image.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
        frames.append(np.ascontiguousarray(image))
    capture.release()
    return frames


def parser_rows(count: int) -> None:
    """The default parser alone, frame by frame, on each device."""
    from humanparse.predictor import Predictor

    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    stages = ("detect", "segment", "small", "pose", "parts", "crf")
    print(f"the default parser alone, {count} frames, one at a time\n")
    print(f"{'clip':<15} {'device':<6} {'frames/s':>8} {'GPU MB':>7} " + " ".join(f"{s:>8}" for s in stages) + "\n" + " " * 40 + "ms per frame")
    for name, scale in (("real 640x360", 1), ("real 1920x1080", 3)):
        frames = read_frames(DEMO, count + 1, (60, 420), scale)
        for device in devices:
            predictor = Predictor.from_checkpoint(device=device)
            predictor(frames[0])  # weights to the device, kernels chosen
            predictor.timings.reset()
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for frame in frames[1:]:
                predictor(frame)
            total = time.perf_counter() - start
            gpu = f"{torch.cuda.max_memory_allocated() / 2**20:7.0f}" if device == "cuda" else f"{'-':>7}"
            seconds, n = predictor.timings.seconds, len(frames) - 1
            cells = " ".join(f"{1000 * seconds[s] / n:>8.1f}" if s in seconds else f"{'-':>8}" for s in stages)
            print(f"{name:<15} {device:<6} {n / total:>8.2f} {gpu} {cells}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=80, help="frames of each video clip")
    parser.add_argument("--skip-video", action="store_true")
    parser.add_argument("--skip-parser", action="store_true", help="no rows of the parser alone")
    parser.add_argument("--skip-parts", action="store_true", help="no CRF and segmenter rows")
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"torch {torch.__version__}, {name}")
    if not args.skip_video:
        try:
            import av  # noqa: F401  humanparse video decodes and encodes with it
        except ModuleNotFoundError:
            print("no PyAV: the video rows are left out\n")
        else:
            video(args.frames)
    if not args.skip_parser:
        parser_rows(args.frames)
    if not torch.cuda.is_available() or args.skip_parts:
        return
    dev = torch.device("cuda")
    print(f"{'size':>9} {'D':>2} {'L':>3} | {'CRF new size':>12} {'CRF repeat':>10} {'fwd+bwd':>8}")
    crf = InstanceCRF(num_parts=6).to(dev)
    for width, height in ((521, 521), (1280, 720)):
        for d in (1, 2, 4, 8):
            image, q, boxes, scores = make_inputs(height, width, d)
            image_t = torch.from_numpy(image).permute(2, 0, 1).float().contiguous().to(dev)
            q, boxes, scores = q.to(dev), boxes.to(dev), scores.to(dev)

            def new_size():
                crf._spatial_cache = None
                with torch.no_grad():
                    crf(q, image_t, boxes, scores)

            def repeat():
                with torch.no_grad():
                    crf(q, image_t, boxes, scores)

            def train_step():
                qq = q.clone().requires_grad_()
                crf(qq, image_t, boxes, scores).log().mean().backward()

            print(f"{width}x{height:<4} {d:>2} {6 * d + 1:>3} | {timed(new_size):12.4f} {timed(repeat):10.4f} {timed(train_step):8.4f}")
    print(f"\n{'backbone':>20} {'521x521 fwd (s)':>15}")
    x = torch.rand(1, 3, 521, 521, device=dev) * 255
    for name in ("resnet101", "resnet50", "resnet18", "mobilenet_v3_large"):
        model = build_segmenter(name, num_classes=7).to(dev).eval()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            print(f"{name:>20} {timed(lambda: model(x)):15.4f}")


if __name__ == "__main__":
    main()
