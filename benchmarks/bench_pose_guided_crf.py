"""The untrained Instance CRF of the pose-guided parser: which initial kernel weights, and does
it beat its own unaries?

Runs the pose-guided parser over an annotated split (default: a synthetic test split that it
renders) with the CRF at 0 iterations (the unaries alone: skeleton parts times masks) and at 5
iterations with several (bilateral, spatial) kernel weights, the paper's initial (8, 2) among
them, and prints part AP^r_vol, person AP^r_vol, AP^p_vol and mIoU for each. The networks run
once per image; only the CRF is repeated.

    python benchmarks/bench_pose_guided_crf.py [--data DIR --split test] [--num 40]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from humanparse.data.synth import write_image_dataset
from humanparse.evaluate import evaluate, report_dict
from humanparse.labels import PASCAL_PERSON_PART
from humanparse.modeling.crf import InstanceCRF
from humanparse.modeling.pose_guided import PoseGuidedParser
from humanparse.predictor import Predictor

SETTINGS = [(0, None), (5, (8.0, 2.0)), (5, (4.0, 1.0)), (5, (2.0, 1.0)), (5, (1.0, 1.0)), (5, (0.5, 0.5)), (5, (0.25, 0.25))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="an annotated data set (CIHP layout); default: render a synthetic one")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num", type=int, default=40, help="synthetic images to render")
    parser.add_argument("--size", default="256x256")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            width, height = (int(v) for v in args.size.split("x"))
            root = write_image_dataset(Path(tmp) / "synth", args.num, seed=2, size=(width, height), split=args.split)
        networks = PoseGuidedParser()
        print(f"{root} ({args.split})\n")
        print(f"{'iterations':>10} {'kernels (bil, spa)':>18} {'part AP^r_vol':>13} {'person AP^r_vol':>15} {'AP^p_vol':>8} {'mIoU':>6}")
        for iterations, weights in SETTINGS:
            bilateral, spatial = weights or (1.0, 1.0)
            crf = InstanceCRF(PASCAL_PERSON_PART.num_parts, iterations, bilateral_weight=bilateral, spatial_weight=spatial)
            model = PoseGuidedParser(networks.detector, networks.pose, list(networks.maskers), crf)
            row = report_dict(evaluate(Predictor(model, "cpu"), root, args.split), PASCAL_PERSON_PART)
            label = "-" if weights is None else f"{bilateral:g}, {spatial:g}"
            print(f"{iterations:>10} {label:>18} {row['part_ap_r_vol']:>13} {row['person_ap_r_vol']:>15} {row['ap_p_vol']:>8} {row['miou']:>6}")


if __name__ == "__main__":
    main()
