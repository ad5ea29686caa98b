"""Instance CRF and segmenter timings on a CUDA device (synchronised, median of repeats).

    python benchmarks/bench_cuda.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crf import make_inputs  # noqa: E402

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


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(dev)}\n")
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
