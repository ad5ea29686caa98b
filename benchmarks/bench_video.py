"""End-to-end speed and memory of `humanparse video` on the CPU.

    python benchmarks/bench_video.py [--checkpoint CKPT] [--frames 60] [--skip-memory]

Speed: a 640×360 synthetic clip (people walking and crossing) parsed by the light model
(MobileNetV3, built-in detector) with the CRF at full and at reduced resolution, measured
side by side in one run, with one worker on both threads and with two workers on one
thread each; per frame: decode (time the loop waited on the decoding thread),
detect + segment, CRF, track, write (overlay drawing, H.264 encoding, JSON, MOTS).

Memory: the same job on 1080p clips of two lengths, each in its own process; peak RSS
should not grow with the length.

The checkpoint defaults to the model shipped with the package; without one, a freshly
built light model is used with detections from the clip's ground truth (a MOT file), so
that the CRF sees as many people as a trained detector would give it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanparse.config import ModelConfig  # noqa: E402
from humanparse.data.synth_video import write_video  # noqa: E402
from humanparse.errors import HumanParseError  # noqa: E402
from humanparse.modeling.checkpoints import default_checkpoint, save_checkpoint  # noqa: E402
from humanparse.modeling.holistic import build_model  # noqa: E402
from humanparse.ops import person_boxes  # noqa: E402
from humanparse.runtime import tune_allocator  # noqa: E402

STAGES = ("decode", "detect_segment", "crf", "track", "write")


def ground_truth_detections(gt_dir: Path, out: Path) -> Path:
    """MOT det.txt from the clip's person-id maps."""
    from PIL import Image

    lines = []
    for png in sorted((gt_dir / "Human_ids").glob("*.png")):
        frame = int(png.stem)
        _, boxes = person_boxes(np.array(Image.open(png)))
        for x1, y1, x2, y2 in boxes.astype(int).tolist():
            lines.append(f"{frame},-1,{x1},{y1},{x2 - x1},{y2 - y1},0.9,-1,-1,-1")
    out.write_text("\n".join(lines) + "\n")
    return out


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def run_job(checkpoint: Path, detector: str, clip: Path, out: Path, crf_scale: float, input_scale: float = 1.0, workers: int = 1) -> dict:
    """One `parse_video` in this process; returns the summary's timings and the resident
    memory after every 10th frame."""
    from humanparse.detectors import DetectorSpec
    from humanparse.jobs.video import VideoOptions, parse_video
    from humanparse.predictor import Predictor

    external = DetectorSpec.parse(detector).build()
    predictor = Predictor.from_checkpoint(checkpoint, "cpu", external, crf_scale=crf_scale, input_scale=input_scale)
    rss: list[float] = []

    def sample(done: int, total: int | None) -> None:
        if done % 10 == 0:
            rss.append(round(current_rss_mb()))

    summary = parse_video(predictor, clip, out, VideoOptions(overwrite=True, workers=workers), progress=sample)
    return {"frames": summary.frames, "tracks": len(summary.tracks), "rss_mb": rss, **summary.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", nargs=5, metavar=("CKPT", "DETECTOR", "CLIP", "OUT", "SCALE"), help=argparse.SUPPRESS)
    parser.add_argument("--memory-frames", type=int, nargs=2, default=(20, 80), help="the two 1080p clip lengths")
    args = parser.parse_args()
    tune_allocator()
    if args.child:
        ckpt, detector, clip, out, scale = args.child
        timings = run_job(Path(ckpt), detector, Path(clip), Path(out), float(scale), float(scale), workers=2)
        timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(timings))
        return

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    clip, gt = write_video(work / "clip.mp4", args.frames, seed=3, size=(640, 360))
    checkpoint = args.checkpoint
    detector = "builtin"
    if checkpoint is None:
        try:
            checkpoint = default_checkpoint()
        except HumanParseError:
            checkpoint = save_checkpoint(build_model(ModelConfig(backbone="mobilenet_v3_large", output_stride=16)), work / "fresh.pt")
            detector = f"file:{ground_truth_detections(gt, work / 'det.txt')}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {checkpoint.name}, detector {detector.split(':')[0]}")
    print(f"640x360 synthetic clip, {args.frames} frames\n")

    # (--scale, --crf-scale, --workers); with two workers each frame's stage times are those
    # of one worker on one thread, so they add up to more than the wall time per frame.
    settings = [(scale, crf, workers) for scale, crf in ((1.0, 1.0), (1.0, 0.5), (0.5, 0.5)) for workers in (1, 2)]
    rows = {setting: run_job(checkpoint, detector, clip, work / f"out-{setting}", setting[1], setting[0], setting[2]) for setting in settings}
    base = rows[settings[0]]["total"] / rows[settings[0]]["frames"]
    print(f"{'--scale':>7} {'--crf-scale':>11} {'--workers':>9} {'frames/s':>8} {'× first':>7} {'tracks':>6} " + " ".join(f"{s + ' ms':>17}" for s in STAGES))
    for (scale, crf_scale, workers), t in rows.items():
        per = t["total"] / t["frames"]
        print(f"{scale:>7} {crf_scale:>11} {workers:>9} {1 / per:>8.1f} {base / per:>7.2f} {t['tracks']:>6} " + " ".join(f"{1000 * t[s] / t['frames']:>17.1f}" for s in STAGES))

    if args.skip_memory:
        return
    print("\npeak RSS, 1920x1080, --scale 0.5 --crf-scale 0.5 --workers 2, each length in its own process")
    print(f"{'frames':>6} {'peak RSS (MB)':>13} {'frames/s':>8}  RSS after every 10th frame (MB)")
    for frames in args.memory_frames:
        long_clip, long_gt = write_video(work / f"hd-{frames}.mp4", frames, seed=5, size=(1920, 1080))
        det = detector if detector == "builtin" else f"file:{ground_truth_detections(long_gt, work / f'hd-{frames}.txt')}"
        command = [sys.executable, __file__, "--child", str(checkpoint), det, str(long_clip), str(work / f"hd-out-{frames}"), "0.5"]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(f"{frames:>6} {result['peak_rss_mb']:>13.0f} {result['frames'] / result['total']:>8.2f}  {result['rss_mb']}")


if __name__ == "__main__":
    main()
