"""End-to-end speed and memory of `humanparse video` on the CPU, on the real demo clip.

    python benchmarks/bench_video.py [--frames 80] [--skip-memory] [--skip-persons] [--rows 0,3] [--baseline TREE]

Each row is one `humanparse video` process, run as a user runs it (the CLI, default settings
unless the row says otherwise), one after another in this run so that the rows compare on the
same machine at the same time. Clips: `examples/pedestrians.mp4` (real pedestrians, 640×480),
its middle 640×360 band (rows 60-420, cut here, not scaled), the same band enlarged 3 times
to 1920×1080 (bicubic), and a 640×360 synthetic clip. Per
frame, from the run's summary.json: decode (time the loop waited on the decoding thread), the
parser's stages (bodypix: detect, segment, small (BodyPix again on small persons' crops), pose, parts, crf; pose-guided: detect, pose, mask,
parts, crf; holistic: detect_segment, crf),
track and write (overlay drawing, H.264 encoding, JSON, MOTS; in a writer thread, overlapping
the parsing). Peak RSS is the process's own (wait4).

With ``--baseline TREE`` (another checkout of humanparse) every row runs on that tree and on
this one in turn, so that a change's cost is read off adjacent rows of one run.

Memory: the default parser on the real clip at two lengths, each in its own process; peak RSS
should not grow with the length.

Persons: the default parser's time per frame for 1 to 10 persons, on 640×360 frames made of
the real clip's empty street with that many of its pedestrians pasted in (crops of real frames),
in this process, one thread pool, per stage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from humanparse.data.synth_video import write_video  # noqa: E402
from humanparse.io.video import VideoReader, VideoWriter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "pedestrians.mp4"
STAGES = ("decode", "detect", "segment", "small", "pose", "mask", "parts", "detect_segment", "crf", "track", "write")


def cut(source: Path, out: Path, frames: int, rows: tuple[int, int] | None = None, scale: int = 1) -> Path:
    """The first ``frames`` frames of ``source``, optionally only rows [r0, r1), enlarged
    ``scale`` times (bicubic), as H.264."""
    with VideoReader(source) as reader:
        info = reader.info
        height = info.height if rows is None else rows[1] - rows[0]
        writer = VideoWriter(out, info.fps, info.width * scale, height * scale, crf=18, overwrite=True)
        for k, image in enumerate(frame.image for frame in reader):
            if k >= frames:
                break
            image = image if rows is None else image[rows[0] : rows[1]]
            writer.write(image if scale == 1 else cv2.resize(image, (info.width * scale, height * scale), interpolation=cv2.INTER_CUBIC))
        writer.close()
    return out


def run(clip: Path, out: Path, *options: str, code: Path | None = None) -> dict:
    """One `humanparse video` process: its summary (frames, tracks, seconds) and peak RSS.
    ``code``: run the humanparse of this source tree (an older checkout) instead."""
    command = [sys.executable, "-m", "humanparse", "video", str(clip), "--out", str(out), "--overwrite", "--quiet", "--device", "cpu", *options]
    # PYTHONSAFEPATH: `-m` puts the working folder first on sys.path, where it would shadow
    # PYTHONPATH and run this tree's humanparse as the baseline when run from this tree's root.
    # Packages found through PYTHONPATH (a GPU machine's carried wheels) stay, after the tree.
    path = os.pathsep.join([str(code if code is not None else ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT])
    env = {**os.environ, "PYTHONPATH": path, "PYTHONSAFEPATH": "1"}
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    error = child.stderr.read() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{error}")
    summary = json.loads((out / "summary.json").read_text())
    return {"frames": summary["frames"], "tracks": len(summary["tracks"]), "seconds": summary["seconds"], "peak_rss_mb": usage.ru_maxrss / 1024,
            "cuda_peak_mb": summary.get("cuda_peak_mb")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=80, help="frames of each clip")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-frames", type=int, nargs=2, default=(50, 200), help="the two lengths of the real clip")
    parser.add_argument("--skip-persons", action="store_true")
    parser.add_argument("--rows", help="only these rows of the table, by number from 0, comma-separated")
    parser.add_argument("--baseline", type=Path, help="another source tree of humanparse (e.g. `git worktree add /tmp/main main`): "
                        "each row runs on it too, alternating with this one, and its row follows with the ratio")
    args = parser.parse_args()

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    real = cut(DEMO, work / "real-640x480.mp4", args.frames)
    band = cut(DEMO, work / "real-640x360.mp4", args.frames, rows=(60, 420))
    band_1080p = cut(DEMO, work / "real-1920x1080.mp4", args.frames, rows=(60, 420), scale=3)
    synthetic, _ = write_video(work / "synthetic-640x360.mp4", args.frames, seed=3, size=(640, 360))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.frames} frames per clip\n")

    rows = [
        ("real 640x360", band, "bodypix (default)", ()),
        ("real 640x360", band, "bodypix --workers 1", ("--workers", "1")),
        ("real 640x360", band, "bodypix --crf-scale 0.375", ("--crf-scale", "0.375")),
        ("real 640x360", band, "pose-guided (old default)", ("--checkpoint", "pose-guided")),
        ("real 640x360", band, "synthetic", ("--checkpoint", "synthetic")),
        ("real 640x480", real, "bodypix (default)", ()),
        ("real 640x480", real, "pose-guided (old default)", ("--checkpoint", "pose-guided")),
        ("synthetic 640x360", synthetic, "bodypix (default)", ()),
        ("synthetic 640x360", synthetic, "synthetic", ("--checkpoint", "synthetic")),
        ("real 1920x1080", band_1080p, "bodypix (default)", ()),
    ]
    if args.rows:
        rows = [rows[int(k)] for k in args.rows.split(",")]
    if args.baseline is not None:
        # Each row on the baseline tree, then on this one: a noisy machine slows both alike.
        rows = [(name, clip, label + tag, options, code) for name, clip, label, options in rows
                for tag, code in ((" [baseline]", args.baseline.resolve()), ("", None))]
    else:
        rows = [(*row, None) for row in rows]
    results = [run(clip, work / f"out-{k}", *options, code=code) for k, (_, clip, _, options, code) in enumerate(rows)]
    base = results[0]["seconds"]["total"] / results[0]["frames"]
    header = f"{'clip':<18} {'model and options':<40} {'frames/s':>8} {'x first':>7} {'tracks':>6} {'peak MB':>7} " + " ".join(f"{s:>8}" for s in STAGES)
    print(header + "\n" + " " * 91 + "ms per frame")
    for (name, _, model, _, _), result in zip(rows, results):
        seconds, frames = result["seconds"], result["frames"]
        per = seconds["total"] / frames
        cells = " ".join(f"{1000 * seconds[s] / frames:>8.1f}" if s in seconds else f"{'-':>8}" for s in STAGES)
        print(f"{name:<18} {model:<40} {1 / per:>8.2f} {base / per:>7.2f} {result['tracks']:>6} {result['peak_rss_mb']:>7.0f} {cells}")

    if not args.skip_persons:
        persons_table(work)
    if args.skip_memory:
        return
    print("\npeak RSS of the default parser on the real clip (640x480), each length in its own process")
    print(f"{'frames':>6} {'peak RSS (MB)':>13} {'frames/s':>8}")
    for frames in args.memory_frames:
        result = run(cut(DEMO, work / f"real-{frames}.mp4", frames), work / f"memory-{frames}")
        print(f"{result['frames']:>6} {result['peak_rss_mb']:>13.0f} {result['frames'] / result['seconds']['total']:>8.2f}")


def persons_table(work: Path) -> None:
    """Time per frame of the default parser for 1..10 persons on one 640x360 street: the
    clip's empty street (the median of 40 frames: the walkers move on) with n of the real
    walkers NanoDet finds in frame 0 pasted in, side by side."""
    import numpy as np

    from humanparse.modeling.bodypix_parser import BodyPixParser
    from humanparse.pretrained import NanoDet

    with VideoReader(DEMO) as reader:
        frames = [frame.image for frame in reader]
    street = np.median(np.stack(frames[:: max(1, len(frames) // 40)]), 0).astype(np.uint8)[60:420]
    walkers = NanoDet(threshold=0.5)(frames[0]).boxes.round().astype(int)
    crops = [frames[0][y1:y2, x1:x2] for x1, y1, x2, y2 in walkers if y2 - y1 < 200]
    parser = BodyPixParser()
    print(f"\ndefault parser, 640x360 street with n of the clip's {len(crops)} walkers pasted in, repeated: ms per frame (mean of 5 after a warm-up)")
    print(f"{'persons':>7} {'found':>5} {'total':>7} " + " ".join(f"{s:>8}" for s in ("detect", "segment", "small", "pose", "parts", "crf")))
    for n in (1, 2, 4, 6, 8, 10):
        image = street.copy()
        for k in range(n):
            crop = crops[k % len(crops)][:340]
            x, y = 10 + 62 * k, min(360 - crop.shape[0], 120 + 20 * (k % 3))
            image[y : y + crop.shape[0], x : x + min(crop.shape[1], 640 - x)] = crop[:, : 640 - x]
        parser.parse([image])
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        for _ in range(5):
            found = len(parser.parse([image], timer=lambda stage, t: seconds.__setitem__(stage, seconds.get(stage, 0.0) + t))[0].ids)
        total = (time.perf_counter() - started) / 5
        cells = " ".join(f"{1000 * seconds.get(s, 0.0) / 5:>8.1f}" for s in ("detect", "segment", "small", "pose", "parts", "crf"))
        print(f"{n:>7} {found:>5} {1000 * total:>7.1f} {cells}")


if __name__ == "__main__":
    main()
