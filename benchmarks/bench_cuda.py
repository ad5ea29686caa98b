"""The whole `humanparse video` on a CUDA device beside the CPU, then the Instance CRF and
the segmenters alone (synchronised, median of repeats).

    python benchmarks/bench_cuda.py [--frames 80] [--skip-parts]

Video: the real demo clip's 640 x 360 band (rows 60-420 of examples/pedestrians.mp4) and
the same frames enlarged 3 times to 1920 x 1080, each run as a user runs it (one
`humanparse video` process a row, default settings, `--device cuda` or `--device cpu`),
frames/s and ms per frame of each stage from its summary.json, the GPU's peak memory
(torch.cuda.max_memory_allocated, in summary.json on CUDA) and the process's peak RSS.
Without CUDA only the CPU rows run. The parts: CRF and segmenters alone, CUDA only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crf import make_inputs  # noqa: E402
from bench_video import DEMO, STAGES, cut, run  # noqa: E402

from humanparse.modeling.crf import InstanceCRF  # noqa: E402
from humanparse.modeling.segmenter import build_segmenter  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=80, help="frames of each video clip")
    parser.add_argument("--skip-video", action="store_true")
    parser.add_argument("--skip-parts", action="store_true", help="no CRF and segmenter rows")
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"torch {torch.__version__}, {name}")
    if not args.skip_video:
        video(args.frames)
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
