"""Cut the real demo clip (examples/pedestrians.mp4) from OpenCV's vtest.avi.

vtest.avi (795 frames, 768 x 576, 10 fps: pedestrians walking, crossing and passing behind a
lamp post) ships in Debian's opencv-doc package under Apache-2.0 AND BSD-3-Clause (the
package's copyright file, "Files: *"). Development-time tooling:

    apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb opencv-doc
    python tools/make_demo_clip.py opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi

It keeps frames [--start, --start + --frames), scales them to --width (4:3 kept) and encodes
H.264 reproducibly (the same bytes on every run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from humanparse.io.video import VideoReader, VideoWriter  # noqa: E402
from humanparse.pretrained.crops import resize_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="vtest.avi")
    parser.add_argument("--out", type=Path, default=REPO / "examples" / "pedestrians.mp4")
    parser.add_argument("--start", type=int, default=0, help="first frame")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--crf", type=int, default=26)
    args = parser.parse_args()
    with VideoReader(args.source) as reader:
        fps = reader.info.fps
        height = round(args.width * reader.info.height / reader.info.width / 2) * 2
        with VideoWriter(args.out, fps, args.width, height, crf=args.crf, overwrite=True, reproducible=True) as writer:
            for frame in reader:
                if frame.index >= args.start + args.frames:
                    break
                if frame.index >= args.start:
                    writer.write(resize_image(frame.image, args.width, height))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {args.frames} frames at {fps} fps, {args.width}x{height})")


if __name__ == "__main__":
    main()
