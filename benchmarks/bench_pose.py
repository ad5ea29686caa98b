"""Which keypoints: MoveNet Thunder and BlazePose (full), top-down per person, against
PoseNet's bottom-up keypoints from BodyPix's maps (what the default parser uses: its one
whole-image pass gives them, decoded by body-pix's decoder and given to the boxes).

All run on the same person boxes (drawn by eye, so the detector plays no part) of the real
test photos: three portraits (upper bodies) and the pedestrians of a vtest.avi frame (whole
bodies); with ``--video`` also the NanoDet boxes of every 25th frame of a clip. Per network:

* ms per person (crops batched as each network allows), measured interleaved; for PoseNet the
  whole-image BodyPix pass and the decoding over the persons (in the default parser the pass
  is paid for the parts anyway: the keypoints cost the decoding, 1-2 ms an image);
* found: the share of persons with at least 8 of the 17 keypoints scoring >= 0.3;
* in box: the share of keypoints scoring >= 0.3 that lie inside the person's box (+5 %);
* flip: the mean distance, over keypoints scoring >= 0.3 both times, between the keypoints of
  the image and those of its mirror image (mirrored back, left and right swapped), over the
  box height — a self-consistency measure that needs no ground truth;
* nose: the distance to the nose marked by eye on the portraits, over the box height.

    python benchmarks/bench_pose.py [--video vtest.avi]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from humanparse.io.images import read_image
from humanparse.modeling.bodypix_parser import SEGMENT_SIDE
from humanparse.ops import scaled_size
from humanparse.pretrained import BlazePose, BodyPix, MoveNetThunder, NanoDet
from humanparse.pretrained.posenet import assign_poses_to_boxes, decode_poses
from humanparse.structures import Poses

PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "photos"
# Persons drawn by eye (boxes; the nose on the portraits): tests/fixtures/photos/people.json
_MARKED = json.loads((PHOTOS / "people.json").read_text())
PEOPLE: dict[str, list[list[float]]] = _MARKED["boxes"]
NOSES: dict[str, list[float]] = _MARKED["noses"]
# COCO-17 index of each keypoint's mirror (left <-> right)
FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


class PoseNetKeypoints:
    """PoseNet's keypoints for given boxes, as the default parser gets them: BodyPix on the
    whole image at SEGMENT_SIDE, its maps decoded, the poses given to the boxes."""

    def __init__(self) -> None:
        self.bodypix = BodyPix()

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> Poses:
        height, width = image.shape[:2]
        size = scaled_size((height, width), SEGMENT_SIDE / max(height, width))
        maps = self.bodypix(image, size)
        poses = decode_poses(maps.heatmaps[0].numpy(), maps.short_offsets[0].numpy(), maps.mid_offsets[0].numpy())
        keypoints = poses.keypoints.copy()
        keypoints[..., :2] = (keypoints[..., :2] + 0.5) * np.array([width / size[1], height / size[0]], np.float32)
        poses = type(poses)(keypoints, poses.scores)
        return Poses(assign_poses_to_boxes(boxes, poses).keypoints, np.asarray(boxes, np.float32).reshape(-1, 4))


def mirrored(estimator, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    width = image.shape[1]
    flipped = boxes.copy()
    flipped[:, [0, 2]] = width - boxes[:, [2, 0]]
    keypoints = estimator(np.ascontiguousarray(image[:, ::-1]), flipped).keypoints[:, FLIP]
    keypoints[..., 0] = width - keypoints[..., 0]
    return keypoints


def scenes(video: Path | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = [(name, read_image(PHOTOS / name), np.array(boxes, np.float32)) for name, boxes in PEOPLE.items()]
    if video is not None:
        from humanparse.io.video import VideoReader

        detector = NanoDet(threshold=0.5)
        with VideoReader(video, stride=25) as reader:
            for frame in reader:
                found = detector(frame.image)
                if len(found):
                    out.append((f"{video.name}#{frame.index}", frame.image, found.boxes))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="also the NanoDet persons of every 25th frame of this clip")
    args = parser.parse_args()
    estimators = {"movenet-thunder": MoveNetThunder(), "blazepose-full": BlazePose(), "posenet (bodypix)": PoseNetKeypoints()}
    data = scenes(args.video)
    stats = {name: {"ms": [], "found": [], "inbox": [], "flip": [], "nose": []} for name in estimators}
    for scene, image, boxes in data:
        for name, estimator in estimators.items():  # interleaved, scene by scene
            estimator(image, boxes)  # warm
            started = time.perf_counter()
            keypoints = estimator(image, boxes).keypoints
            stats[name]["ms"].append(1000 * (time.perf_counter() - started) / len(boxes))
            back = mirrored(estimator, image, boxes)
            for k, box in enumerate(boxes):
                height = box[3] - box[1]
                seen = keypoints[k, :, 2] >= 0.3
                stats[name]["found"].append(seen.sum() >= 8)
                m = 0.05 * height
                x, y = keypoints[k, seen, 0], keypoints[k, seen, 1]
                stats[name]["inbox"].extend(((x >= box[0] - m) & (x <= box[2] + m) & (y >= box[1] - m) & (y <= box[3] + m)).tolist())
                both = seen & (back[k, :, 2] >= 0.3)
                if both.any():
                    stats[name]["flip"].append(float(np.linalg.norm(keypoints[k, both, :2] - back[k, both, :2], axis=1).mean() / height))
                if scene in NOSES:
                    stats[name]["nose"].append(float(np.hypot(*(keypoints[k, 0, :2] - NOSES[scene])) / height))
    persons = sum(len(boxes) for _, _, boxes in data)
    print(f"{len(data)} scenes, {persons} persons (boxes by eye on the photos{', NanoDet on the video' if args.video else ''})\n")
    print(f"{'network':<18} {'ms/person':>9} {'found':>6} {'in box':>7} {'flip':>6} {'nose':>6}")
    for name, s in stats.items():
        print(f"{name:<18} {np.median(s['ms']):9.1f} {np.mean(s['found']):6.0%} {np.mean(s['inbox']):7.0%} {np.mean(s['flip']):6.3f} {np.mean(s['nose']):6.3f}")


if __name__ == "__main__":
    main()
