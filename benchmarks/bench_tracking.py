"""Tracking quality on synthetic test videos: IDF1, ID switches and MOTA, computed by
py-motmetrics (`pip install motmetrics`; a benchmark tool, not a dependency of humanparse).

    python benchmarks/bench_tracking.py [--checkpoint CKPT] [--videos 3] [--frames 100]

Held-out clips (seeds 1001, 1002, ...) of people walking, crossing, occluded and
re-entering are parsed once per frame; the parsed persons are then tracked with the
tracker's variants side by side: mask IoU only, and IoU with appearance re-linking (the
default). For a parser that follows people (pose-guided), one more row is what
`humanparse video` runs: its video pose network (BlazePose), the detector every
``DETECT_EVERY`` frames and each person's crop followed by their keypoints in between,
tracked with appearance. A last row tracks the ground-truth person masks with their ids hidden, which
measures the tracker alone. A hypothesis matches a ground-truth person when their mask IoU
is at least 0.5 (MOTS convention).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanparse.build import DETECT_EVERY  # noqa: E402
from humanparse.data.synth_video import write_video  # noqa: E402
from humanparse.io.video import VideoReader  # noqa: E402
from humanparse.ops import mask_iou  # noqa: E402
from humanparse.predictor import Predictor  # noqa: E402
from humanparse.runtime import tune_allocator  # noqa: E402
from humanparse.structures import ParsingResult  # noqa: E402
from humanparse.tracking import Tracker, TrackerOptions  # noqa: E402


def ground_truth(gt_dir: Path, frames: int) -> list[np.ndarray]:
    from PIL import Image

    return [np.array(Image.open(gt_dir / "Human_ids" / f"{k + 1:06d}.png")).astype(np.int64) for k in range(frames)]


def track(images: list[np.ndarray], results: list[ParsingResult], options: TrackerOptions, appearance: bool) -> list[np.ndarray]:
    """Per frame, the (H, W) track-id map."""
    tracker = Tracker(options)
    return [tracker.update_with_result(result, image if appearance else None).persons for image, result in zip(images, results)]


def oracle(truth: list[np.ndarray], options: TrackerOptions) -> list[np.ndarray]:
    """Track the ground-truth masks, ids hidden (shuffled per frame), IoU only."""
    tracker = Tracker(options)
    rng = np.random.default_rng(0)
    maps = []
    for persons in truth:
        ids = rng.permutation(np.unique(persons[persons > 0]))
        masks = np.stack([persons == i for i in ids]) if len(ids) else np.zeros((0, *persons.shape), bool)
        out = np.zeros_like(persons)
        for mask, tid in zip(masks, tracker.update(masks)):
            out[mask] = tid
        maps.append(out)
    return maps


def accumulate(mm, truth: list[np.ndarray], hypothesis: list[np.ndarray]):
    acc = mm.MOTAccumulator(auto_id=True)
    for gt, hyp in zip(truth, hypothesis):
        gt_ids = [int(i) for i in np.unique(gt[gt > 0])]
        hyp_ids = [int(i) for i in np.unique(hyp[hyp > 0])]
        gt_masks = np.stack([gt == i for i in gt_ids]) if gt_ids else np.zeros((0, *gt.shape), bool)
        hyp_masks = np.stack([hyp == i for i in hyp_ids]) if hyp_ids else np.zeros((0, *hyp.shape), bool)
        iou = mask_iou(gt_masks, hyp_masks) if gt_ids and hyp_ids else np.zeros((len(gt_ids), len(hyp_ids)))
        distance = np.where(iou >= 0.5, 1 - iou, np.nan)
        acc.update(gt_ids, hyp_ids, distance)
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a parser name (default: the default parser; pose-guided, synthetic) or a checkpoint file")
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--crf-scale", type=float, help="default: the model's")
    args = parser.parse_args()
    try:
        import motmetrics as mm
    except ImportError:
        raise SystemExit("this benchmark needs py-motmetrics: pip install motmetrics") from None
    tune_allocator()
    predictor = Predictor.from_checkpoint(args.checkpoint, "auto", input_scale=args.scale, crf_scale=args.crf_scale)
    options = TrackerOptions()
    work = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    follows = predictor.parser.follows_people
    video = Predictor.from_checkpoint(args.checkpoint, "auto", pose="blazepose", input_scale=args.scale, crf_scale=args.crf_scale) if follows else None
    follow_row = f"video: detect every {DETECT_EVERY}, follow"
    rows: dict[str, list] = {"IoU only": [], "IoU + appearance (default)": [], **({follow_row: []} if follows else {}), "ground-truth masks, IoU only": []}
    names = []
    for k in range(args.videos):
        clip, gt_dir = write_video(work / f"test-{k}.mp4", args.frames, seed=1001 + k, size=(640, 360))
        with VideoReader(clip) as reader:
            images = [frame.image for frame in reader]
        results = [predictor(image) for image in images]
        truth = ground_truth(gt_dir, len(images))
        rows["IoU only"].append(accumulate(mm, truth, track(images, results, options, appearance=False)))
        rows["IoU + appearance (default)"].append(accumulate(mm, truth, track(images, results, options, appearance=True)))
        if video is not None:
            with video.stream(clip, tracker=options) as stream:
                rows[follow_row].append(accumulate(mm, truth, [frame.result.persons for frame in stream]))
        rows["ground-truth masks, IoU only"].append(accumulate(mm, truth, oracle(truth, options)))
        names.append(clip.stem)
    metrics = mm.metrics.create()
    print(f"{args.videos} synthetic test clips of {args.frames} frames, 640x360; model {args.checkpoint or 'default'}\n")
    print(f"{'tracker':<30} {'IDF1':>6} {'ID sw.':>6} {'MOTA':>6} {'recall':>6} {'precision':>9}")
    for label, accs in rows.items():
        summary = metrics.compute_many(accs, names=names, metrics=["idf1", "num_switches", "mota", "recall", "precision"], generate_overall=True)
        o = summary.loc["OVERALL"]
        print(f"{label:<30} {100 * o['idf1']:>6.1f} {int(o['num_switches']):>6d} {100 * o['mota']:>6.1f} {100 * o['recall']:>6.1f} {100 * o['precision']:>9.1f}")


if __name__ == "__main__":
    main()
