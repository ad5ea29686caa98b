"""SIGTERM, like Ctrl-C, stops synth and the conversions before their next image: the
output never appears, and no hidden partial folder or file is left beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from .test_pascal_part import H, W, box_mask, write_mat

# Each job is called with a progress callback that sends this process SIGTERM after the
# first unit of work; a KeyboardInterrupt out of the job is the clean stop (exit 130).
SCRIPT = """
import os, signal, sys
from pathlib import Path
here = Path(sys.argv[1])

def progress(done, total):
    if done == 1:
        os.kill(os.getpid(), signal.SIGTERM)

try:{call}
except KeyboardInterrupt:
    sys.exit(130)
"""

JOBS = {
    "synth images": """
    from humanparse.data.synth import write_image_dataset
    write_image_dataset(here / "out", 5, 0, (32, 32), progress=progress)""",
    "synth video": """
    from humanparse.data.synth_video import write_video
    write_video(here / "out.mp4", 5, 0, (32, 32), progress=progress)""",
    "convert pascal-part": """
    from humanparse.data.pascal_part import convert_pascal_part
    convert_pascal_part(here / "ann", here / "img", here / "out", progress=progress)""",
    "convert png": """
    import humanparse.data.pascal_part as pascal_part
    read_label_png = pascal_part.read_label_png

    def read_and_report(path, shape):  # this job has no progress callback
        labels = read_label_png(path, shape)
        progress(1, 3)
        return labels

    pascal_part.read_label_png = read_and_report
    pascal_part.convert_png_release(here / "img", here / "lab", here / "out")""",
}


def sources(folder: Path) -> set[str]:
    """Three annotated images in the Pascal-Part release's form and the PNG release's."""
    for name in ("ann", "img", "lab"):
        (folder / name).mkdir()
    for k in range(3):
        name = f"2008_00000{k}"
        write_mat(folder / "ann" / f"{name}.mat", name, [("person", box_mask(0, 12, 0, 6), [("head", box_mask(0, 2, 1, 4))])])
        cv2.imwrite(str(folder / "img" / f"{name}.jpg"), np.full((H, W, 3), 128, np.uint8))
        cv2.imwrite(str(folder / "lab" / f"{name}.png"), np.ones((H, W), np.uint8))
    return set(os.listdir(folder))


@pytest.mark.parametrize("job", JOBS)
def test_sigterm_stops_cleanly_and_leaves_nothing(tmp_path, job) -> None:
    before = sources(tmp_path)
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(call=JOBS[job]), str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 130, done.stderr
    assert set(os.listdir(tmp_path)) == before  # no output, no .out.partial-*, no hidden .mp4


def test_the_command_line_reports_a_sigterm_as_an_interruption(tmp_path) -> None:
    job = subprocess.Popen([sys.executable, "-m", "humanparse", "synth", "images", str(tmp_path / "out"), "--num", "500", "--size", "128x128", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".out.partial-*/images/000000.jpg")):  # at work
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.05)
        job.send_signal(signal.SIGTERM)
        _, err = job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode == 130 and err.strip() == "interrupted", err
    assert os.listdir(tmp_path) == []
