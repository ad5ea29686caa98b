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


def _synth_at_work(folder: Path, ignore_hangup: bool = False) -> subprocess.Popen:
    """`humanparse synth images` once its first image is written (``ignore_hangup``: started
    as under nohup)."""
    hangup = (lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if ignore_hangup else None
    job = subprocess.Popen([sys.executable, "-m", "humanparse", "synth", "images", str(folder / "out"), "--num", "500" if not ignore_hangup else "40",
                            "--size", "128x128", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=hangup)
    deadline = time.monotonic() + 60
    while not list(folder.glob(".out.partial-*/images/000000.jpg")):
        if job.poll() is not None or time.monotonic() > deadline:
            job.kill()
            raise AssertionError(job.communicate())
        time.sleep(0.01)
    return job


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_the_command_line_reports_a_sigterm_or_a_hangup_as_an_interruption(tmp_path, signum) -> None:
    """SIGHUP (the terminal closed) killed the job, leaving its hidden partial folder."""
    job = _synth_at_work(tmp_path)
    try:
        job.send_signal(signum)
        _, err = job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode == 130 and err.strip() == "interrupted", err
    assert os.listdir(tmp_path) == []


def test_a_job_started_under_nohup_runs_on_after_a_hangup(tmp_path) -> None:
    job = _synth_at_work(tmp_path, ignore_hangup=True)
    try:
        assert job.poll() is None  # still at work when the terminal goes
        job.send_signal(signal.SIGHUP)
        _, err = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 0, err
    assert len(os.listdir(tmp_path / "out" / "images")) == 40
