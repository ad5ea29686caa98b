"""Part segmenter forward time per backbone on the CPU.

    python benchmarks/bench_segmenter.py [--size 521x521] [--repeats 3]

Random weights (timing does not depend on them), batch 1, inference mode. Times are
medians of interleaved repeats; the ratio column is relative to the fastest backbone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanparse.modeling.backbones import BACKBONES  # noqa: E402
from humanparse.modeling.segmenter import build_segmenter  # noqa: E402
from humanparse.runtime import tune_allocator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="521x521")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output-stride", type=int, default=8)
    args = parser.parse_args()
    tune_allocator()
    width, height = (int(v) for v in args.size.split("x"))
    image = torch.rand(1, 3, height, width) * 255
    models = {name: build_segmenter(name, num_classes=7, output_stride=args.output_stride).eval() for name in BACKBONES}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for model in models.values():
            model(image)  # warm-up
        for _ in range(args.repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(image)
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    fastest = min(medians.values())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {width}x{height}, output stride {args.output_stride}\n")
    print(f"{'backbone':>20} {'params (M)':>10} {'seconds':>8} {'× fastest':>9}")
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name:>20} {params:10.1f} {medians[name]:8.3f} {medians[name] / fastest:9.2f}")


if __name__ == "__main__":
    main()
