"""A training set of a parser's own outputs on video frames, for distilling it into the
holistic network (one forward pass in place of the default parser's several networks).

    python tools/make_distill_set.py examples/pedestrians.mp4 data/distill --held-out 40

Every frame of the video goes through the parser (``--checkpoint``, default: the default
parser) as `humanparse images` would parse it; its part map and person ids become the
frame's ground truth in the CIHP layout (``images/``, ``Category_ids/``, ``Human_ids/``,
``Instance_ids/``, ``meta.json``). The last ``--held-out`` frames are the ``test`` split, the
others ``train``: held out by time, so that a distilled model is measured on frames it did
not see (the demo clip's walkers still pass through both). The folder appears only once
complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanparse.build import DEFAULT_PARSER, build_predictor  # noqa: E402
from humanparse.data.cihp import write_meta, write_sample, write_split  # noqa: E402
from humanparse.io.files import new_directory  # noqa: E402
from humanparse.io.images import encode_jpeg  # noqa: E402
from humanparse.io.video import VideoReader  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("video", type=Path)
    parser.add_argument("out", type=Path, help="the new data set's folder")
    parser.add_argument("--checkpoint", default=DEFAULT_PARSER, help="the parser to distil (default: %(default)s)")
    parser.add_argument("--held-out", type=int, default=40, help="the last N frames are the test split (default: %(default)s)")
    args = parser.parse_args()
    predictor = build_predictor(args.checkpoint, device="cpu")
    ids: list[str] = []
    with new_directory(args.out) as root, VideoReader(args.video) as frames:
        for index, _, image in frames:
            result = predictor(image)
            sample_id = f"{index:06d}"
            write_sample(root, sample_id, encode_jpeg(image, quality=95), result.parts, result.persons)
            ids.append(sample_id)
            print(f"{len(ids)} frames, {len(result.ids)} persons in the last", end="\r", file=sys.stderr, flush=True)
        if not 0 < args.held_out < len(ids):
            raise SystemExit(f"--held-out must leave frames to train on: {len(ids)} frames, {args.held_out} held out")
        write_split(root, "train", ids[: -args.held_out])
        write_split(root, "test", ids[-args.held_out :])
        write_meta(root, predictor.labels, source=f"{args.checkpoint} on {args.video.name}", distilled_from=args.checkpoint)
    print(f"\nwrote {args.out}: {len(ids) - args.held_out} train, {args.held_out} test frames", file=sys.stderr)


if __name__ == "__main__":
    main()
