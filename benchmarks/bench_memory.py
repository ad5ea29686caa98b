"""Peak memory of `humanparse images` on large inputs, default settings, by `/usr/bin/time -v`.

    python benchmarks/bench_memory.py [--unbounded]

Each row is one `humanparse images` process (the CLI as a user runs it) on one image made
here: a real photo (tests/fixtures/photos) enlarged to 4000 × 3000, 8000 × 6000 and
10000 × 10000 (``MAX_PIXELS``, the largest read), an empty (grey) 8000 × 8000, and a
20000 × 15000 one (300 megapixels, a 1-bit PNG of 1 MB) that is refused from its header.
The default parses images whose longer side exceeds ``ParseOptions.max_side`` at that size
and maps the results back (the issue's bound: under 3 GB for any input). ``--unbounded`` adds the 4000 × 3000 photo with ``--max-side 0`` (whole
size, as before the bound: about 15 GB and minutes).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "fixtures" / "photos" / "grace_hopper.jpg"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unbounded", action="store_true", help="also the 4000x3000 photo at full size (slow, ~15 GB)")
    args = parser.parse_args()
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
    if args.unbounded:
        rows.append(("photo 4000x3000", inputs["photo 4000x3000"], ("--max-side", "0")))
    print(f"{'input':<18} {'options':<14} {'peak RSS (MB)':>13} {'seconds':>8} {'persons':>7}")
    for k, (name, path, options) in enumerate(rows):
        peak, seconds, persons = peak_mb(path, work / f"out-{k}", *options)
        found = "refused" if persons is None else persons
        print(f"{name:<18} {' '.join(options) or 'default':<14} {peak:>13.0f} {seconds:>8.1f} {found:>7}")


if __name__ == "__main__":
    main()
