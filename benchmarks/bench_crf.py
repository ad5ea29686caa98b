"""Lattice filter and Instance CRF on the CPU, side by side with Krähenbühl's C++ DenseCRF.

    python benchmarks/bench_crf.py [--sizes 521x521,1280x720] [--detections 1,2,4,8]

"script" is the same CRF as ``humanparse export --format torchscript`` writes it
(``modeling/crf_script.ScriptableCRF`` under ``torch.jit.script``: index_add and gathers in
place of sparse products, both lattices built every call), timed in the same interleaved
loop; "new/script" > 1 means the exported CRF is slower than humanparse's.

The C++ reference is `pydensecrf2` (the `pydensecrf` module). If it cannot be imported,
the script builds it once in its own environment (benchmarks/.venv-crf, with access to
this interpreter's packages) and re-runs itself there; if that fails, the C++ columns
are left out with a message. Both sides get the same unary energies (the Instance CRF's
-ln(w1·ψ_box + w2·ψ_global + ε)), the same kernels (θα, θβ, θγ, w⁽¹⁾, w⁽²⁾) and 5
mean-field iterations; the C++ side uses its Potts model, which is where the Instance
CRF's compatibility starts. Times are medians of interleaved repeats, so machine noise
hits both sides alike. The C++ code is single-threaded; PyTorch uses its default threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanparse.modeling.crf import InstanceCRF  # noqa: E402
from humanparse.modeling.crf_script import ScriptableCRF  # noqa: E402
from humanparse.modeling.lattice import PermutohedralLattice  # noqa: E402
from humanparse.runtime import tune_allocator  # noqa: E402

VENV = Path(__file__).resolve().parent / ".venv-crf"


def ensure_reference() -> bool:
    """Import pydensecrf, building it in a side environment (then re-executing) if needed."""
    try:
        import pydensecrf.densecrf  # noqa: F401

        return True
    except ImportError:
        pass
    if os.environ.get("HUMANPARSE_BENCH_REEXEC"):
        return False
    python = VENV / "bin" / "python"
    print(f"pydensecrf not importable; building pydensecrf2 in {VENV} ...", flush=True)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pydensecrf2"], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"could not build pydensecrf2 ({exc}); C++ columns left out", flush=True)
        return False
    os.execve(str(python), [str(python), *sys.argv], {**os.environ, "HUMANPARSE_BENCH_REEXEC": "1"})
    return False  # not reached


def make_inputs(height: int, width: int, detections: int, parts: int = 6, seed: int = 0):
    """A piecewise-smooth image (coloured ellipses on a gradient, mild noise), a plausible Q
    (smooth random logits) and D boxes."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xs / width * 120 + 60, ys / height * 120 + 60, np.full_like(xs, 90)], -1)
    for _ in range(30):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(10, width / 6), rng.uniform(10, height / 4)
        inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 < 1
        image[inside] = rng.uniform(0, 255, 3)
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    logits = torch.from_numpy(rng.normal(0, 3, (1, parts + 1, height // 16 + 1, width // 16 + 1)).astype(np.float32))
    q = torch.softmax(torch.nn.functional.interpolate(logits, size=(height, width), mode="bilinear")[0], 0)
    x1 = rng.uniform(0, width * 0.7, detections)
    y1 = rng.uniform(0, height * 0.5, detections)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0.1, 0.3, detections) * width, y1 + rng.uniform(0.3, 0.5, detections) * height], 1)
    scores = rng.uniform(0.5, 1.0, detections)
    return image, q, torch.from_numpy(boxes).float(), torch.from_numpy(scores).float()


def time_call(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="521x521,1280x720")
    parser.add_argument("--detections", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    have_reference = ensure_reference()
    tuned = tune_allocator()
    if have_reference:
        import pydensecrf.densecrf as dcrf

    torch.manual_seed(0)
    crf = InstanceCRF(num_parts=6, iterations=args.iterations).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks TorchScript deprecated
        scripted = torch.jit.script(ScriptableCRF(crf))
    k_b, k_s = crf.log_kernel_weights.exp().tolist()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, allocator tuned: {tuned}; C++ reference: {'pydensecrf2' if have_reference else 'not available'}")
    print(f"θα={crf.theta_alpha} θβ={crf.theta_beta} θγ={crf.theta_gamma} w1={k_b:g} w2={k_s:g}, {args.iterations} iterations, median of {args.repeats}\n")
    header = (
        f"{'size':>9} {'D':>2} {'L':>3} | {'build':>7} {'filter':>7} | {'ours new':>8} {'ours rep':>8} {'C++':>8} "
        f"{'C++/new':>9} {'C++/rep':>9} | {'script':>8} {'new/script':>10}"
    )
    print(header)
    print("-" * len(header))
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        for d in (int(v) for v in args.detections.split(",")):
            image, q, boxes, scores = make_inputs(height, width, d)
            labels = 6 * d + 1
            image_t = torch.from_numpy(image).permute(2, 0, 1).float().contiguous()
            ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
            feats = torch.cat((torch.stack((xs, ys), -1).reshape(-1, 2) / crf.theta_alpha, image_t.reshape(3, -1).t() / crf.theta_beta), 1)
            values = torch.rand(height * width, labels)
            build = time_call(lambda: PermutohedralLattice(feats), args.repeats)
            lattice = PermutohedralLattice(feats)
            filt = time_call(lambda: lattice.filter(values), args.repeats)

            with torch.no_grad():
                unary = -crf(q, image_t, boxes, scores, iterations=0).clamp_min(1e-12).log()  # softmax(-U) = Q0
            unary_np = np.ascontiguousarray(unary.reshape(labels, -1).numpy())

            def ours_new_size():
                crf._spatial_cache = None  # count the full cost of a new image size
                with torch.no_grad():
                    crf(q, image_t, boxes, scores)

            def ours_same_size():  # video frames, or a data set at one size
                with torch.no_grad():
                    crf(q, image_t, boxes, scores)

            def reference():
                dense = dcrf.DenseCRF2D(width, height, labels)
                dense.setUnaryEnergy(unary_np)
                dense.addPairwiseGaussian(sxy=crf.theta_gamma, compat=k_s)
                dense.addPairwiseBilateral(sxy=crf.theta_alpha, srgb=crf.theta_beta, rgbim=image, compat=k_b)
                dense.inference(args.iterations)

            def exported():
                with torch.no_grad():
                    scripted(q, image_t, boxes, scores)

            new_t, same_t, ref_t, script_t = [], [], [], []
            for _ in range(args.repeats):
                new_t += time_call(ours_new_size, 1)
                same_t += time_call(ours_same_size, 1)
                script_t += time_call(exported, 1)
                if have_reference:
                    ref_t += time_call(reference, 1)
            new, same = statistics.median(new_t), statistics.median(same_t)
            if have_reference:
                ref = statistics.median(ref_t)
                ref_cols = f"{ref:8.3f} {ref / new:9.2f} {ref / same:9.2f}"
            else:
                ref_cols = f"{'-':>8} {'-':>9} {'-':>9}"
            script = statistics.median(script_t)
            print(f"{size:>9} {d:>2} {labels:>3} | {statistics.median(build):7.3f} {statistics.median(filt):7.3f} | {new:8.3f} {same:8.3f} {ref_cols}"
                  f" | {script:8.3f} {new / script:10.2f}")
    print(
        "\nseconds. build / filter: the 5-D bilateral lattice of the image and one filtering of L channels on it."
        "\nours new: an image of a new size (both lattices built); ours rep: the same size again, as in video,"
        "\nwhere the spatial lattice is reused. C++/x > 1 means the Instance CRF is faster than the C++ DenseCRF."
    )


if __name__ == "__main__":
    main()
