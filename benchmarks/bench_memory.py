"""Peak memory (RSS), each row its own process: `humanparse images` on large inputs, and
`humanparse eval` on data sets of many images.

    python benchmarks/bench_memory.py [--unbounded] [--skip-images] [--eval-images 30,150,1000] [--baseline TREE] [--limit-mb MB]

Images: each row is one `humanparse images` process (the CLI as a user runs it, measured by
`/usr/bin/time -v`) on one image made here: a real photo (tests/fixtures/photos) enlarged to
4000 × 3000, 8000 × 6000 and 10000 × 10000 (``MAX_PIXELS``, the largest read), an empty
(grey) 8000 × 8000, and a 20000 × 15000 one (300 megapixels, a 1-bit PNG of 1 MB) that is
refused from its header. The default parses images whose longer side exceeds
``ParseOptions.max_side`` at that size and maps the results back (the issue's bound: under
3 GB for any input). ``--unbounded`` adds the 4000 × 3000 photo with ``--max-side 0`` (whole
size, as before the bound: about 15 GB and minutes).

Evaluation: synthetic data sets of 512 × 512 images (``write_image_dataset``) of 30, 150 and
1000 images, scored by `humanparse eval --predictions` on result files made here from the
ground truth (each person's maps shifted by 2 pixels, scores drawn at random: every metric
has misses and false positives to count), and by `humanparse eval --checkpoint synthetic
--detector gt` (the live model, at ``LIVE_OPTIONS`` for speed; up to ``LIVE_IMAGES``: it
parses about one image a second on two cores). Peak RSS is the process's own (wait4); it
should not grow with the number of images. ``--baseline TREE`` runs each evaluation row on
that source tree too (an older checkout, e.g. `git archive HEAD | tar -x -C TREE`), before
this one; ``--limit-mb`` caps each evaluation process's address space, so that a baseline
that keeps every mask stops (its row says ``> limit``) instead of exhausting the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanparse.data.cihp import load_sample, read_split  # noqa: E402
from humanparse.data.synth import write_image_dataset  # noqa: E402
from humanparse.io.results import write_outputs  # noqa: E402
from humanparse.labels import PASCAL_PERSON_PART  # noqa: E402
from humanparse.ops import person_boxes  # noqa: E402
from humanparse.structures import ParsingResult, PartScore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "fixtures" / "photos" / "grace_hopper.jpg"
LIVE_IMAGES = 150  # the live model's rows stop here
# The live rows measure the scoring, not the network: parsed small and fast (about 1 s an image on two cores).
LIVE_OPTIONS = ("--scale", "0.25", "--crf-scale", "0.25", "--crf-iterations", "1")


def peak_mb(image: Path, out: Path, *options: str) -> tuple[float, float, int | None]:
    """(peak RSS in MB, wall seconds, persons found; None where the image was refused, as
    one error line with exit 1) of one `humanparse images` run."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "humanparse", "images", str(image), "--out", str(out), "--quiet", "--device", "cpu", *options]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    if done.returncode == 1 and "megapixels" in done.stderr:
        return peak / 1024, seconds, None
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    persons = len(json.loads((out / "json" / f"{image.stem}.json").read_text())["persons"])
    return peak / 1024, seconds, persons


def images_table(unbounded: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    photo = cv2.imread(str(PHOTO))
    inputs = {}
    for name, size in (("photo 4000x3000", (4000, 3000)), ("photo 8000x6000", (8000, 6000)), ("photo 10000x10000", (10000, 10000))):
        inputs[name] = work / f"{name.replace(' ', '-')}.png"
        cv2.imwrite(str(inputs[name]), cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC))
    inputs["empty 8000x8000"] = work / "empty-8000x8000.png"
    cv2.imwrite(str(inputs["empty 8000x8000"]), np.full((8000, 8000, 3), 128, np.uint8))
    inputs["bomb 20000x15000"] = work / "bomb-20000x15000.png"
    Image.new("1", (20000, 15000)).save(inputs["bomb 20000x15000"])
    rows = [(name, path, ()) for name, path in inputs.items()]
    if unbounded:
        rows.append(("photo 4000x3000", inputs["photo 4000x3000"], ("--max-side", "0")))
    print(f"{'input':<18} {'options':<14} {'peak RSS (MB)':>13} {'seconds':>8} {'persons':>7}")
    for k, (name, path, options) in enumerate(rows):
        peak, seconds, persons = peak_mb(path, work / f"out-{k}", *options)
        found = "refused" if persons is None else persons
        print(f"{name:<18} {' '.join(options) or 'default':<14} {peak:>13.0f} {seconds:>8.1f} {found:>7}")


def write_predictions(root: Path, out: Path, seed: int = 0) -> None:
    """`humanparse images --save json` files for every image of ``root``'s val split, made
    from its ground truth: each map shifted 2 pixels right and down, random scores."""
    rng = np.random.default_rng(seed)
    for sample_id in read_split(root, "val"):
        sample = load_sample(root, sample_id, len(PASCAL_PERSON_PART.names))
        parts = np.roll(np.where(sample.parts == 255, 0, sample.parts), (2, 2), (0, 1)).astype(np.uint8)
        persons = np.roll(sample.persons, (2, 2), (0, 1)).astype(np.int32)
        ids, boxes = person_boxes(persons)
        part_instances = tuple(
            PartScore(int(pid), int(part), float(rng.random()), int(((persons == pid) & (parts == part)).sum()))
            for pid in ids for part in np.unique(parts[persons == pid]) if part > 0
        )
        result = ParsingResult(parts, persons, ids, boxes, rng.random(len(ids)).astype(np.float32), part_instances, PASCAL_PERSON_PART)
        write_outputs(out, sample_id, sample.image, result, ("json",))


def eval_peak(arguments: list[str], code: Path | None, limit_mb: int | None) -> tuple[float, float, str]:
    """(peak RSS in MB, wall seconds, "" or why it stopped) of one `humanparse eval` process,
    on this tree or on ``code``, its address space capped at ``limit_mb``."""
    command = [sys.executable, "-m", "humanparse", "eval", *arguments, "--quiet"]
    if limit_mb:
        command = ["prlimit", f"--as={limit_mb << 20}", "--", *command]
    # PYTHONSAFEPATH: `-m` puts the working folder first on sys.path, where it would shadow
    # PYTHONPATH and run this tree's humanparse as the baseline when run from this tree's root.
    env = {**os.environ, "PYTHONPATH": str(code if code is not None else ROOT), "PYTHONSAFEPATH": "1"}
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    error = child.stderr.read() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) == 0:
        return usage.ru_maxrss / 1024, seconds, ""
    if limit_mb and re.search(r"MemoryError|Unable to allocate|bad_alloc|Cannot allocate memory", error):
        return usage.ru_maxrss / 1024, seconds, f"stopped: out of its {limit_mb} MB of address space"
    raise SystemExit(f"{' '.join(command)} failed:\n{error[-2000:]}")


def eval_table(sizes: list[int], baseline: Path | None, limit_mb: int | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-memory-eval-"))
    trees = ([("baseline", baseline.resolve())] if baseline is not None else []) + [("this tree", None)]
    print(f"\n{'evaluation':<30} {'images':>6} {'tree':<10} {'peak RSS (MB)':>13} {'seconds':>8}")
    for n in sizes:
        data = write_image_dataset(work / f"data-{n}", n, seed=1, size=(512, 512), split="val")
        predictions = work / f"predictions-{n}"
        write_predictions(data, predictions)
        rows = [("--predictions", ["--data", str(data), "--predictions", str(predictions)])]
        if n <= LIVE_IMAGES:
            rows.append(("--checkpoint synthetic (live)", ["--data", str(data), "--checkpoint", "synthetic", "--detector", "gt", "--device", "cpu", *LIVE_OPTIONS]))
        for name, arguments in rows:
            for tree, code in trees:
                peak, seconds, stopped = eval_peak(arguments, code, limit_mb)
                print(f"{name:<30} {n:>6} {tree:<10} {peak:>13.0f} {seconds:>8.1f} {stopped}", flush=True)
        shutil.rmtree(work / f"data-{n}")
        shutil.rmtree(predictions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unbounded", action="store_true", help="also the 4000x3000 photo at full size (slow, ~15 GB)")
    parser.add_argument("--skip-images", action="store_true", help="only the evaluation rows")
    parser.add_argument("--eval-images", default="30,150,1000", help="the sizes of the evaluated data sets, comma-separated (empty: none)")
    parser.add_argument("--baseline", type=Path, help="another source tree of humanparse: each evaluation row runs on it too")
    parser.add_argument("--limit-mb", type=int, help="cap each evaluation process's address space at this many MB")
    args = parser.parse_args()
    if not args.skip_images:
        images_table(args.unbounded)
    sizes = [int(n) for n in args.eval_images.split(",") if n.strip()]
    if sizes:
        eval_table(sizes, args.baseline, args.limit_mb)


if __name__ == "__main__":
    main()
