"""Synthetic video: people walking with a gait cycle, crossing, entering and leaving.

Walkers keep their appearance and their id for the whole clip; they move at their own
speed and direction at their own depth (smaller = farther = drawn first), swing arms and
legs in a gait cycle whose frequency follows their speed, pass behind fixed foreground
objects, and the camera pans slowly. The clip is encoded as H.264 with PyAV; the ground
truth (per-frame part and person-id maps, MOTS text of the person tracks) goes beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HumanParseError
from ..interrupts import StopRequests
from ..io.files import new_directory
from ..io.images import write_png
from ..io.mots import frame_lines
from ..io.video import VideoWriter
from ..labels import PASCAL_PERSON_PART
from ..version import __version__
from .synth import Appearance, SceneConfig, background, check_seed, draw_person, sample_appearance


@dataclass(frozen=True)
class VideoConfig:
    people: tuple[int, int] = (3, 7)  # walkers in a clip, inclusive
    fps: int = 25
    camera_speed: float = 0.6  # pixels per frame at most (and one frame width over the clip)
    occluders: int = 1  # fixed foreground objects
    noise_sigma: float = 2.0


@dataclass(frozen=True)
class _Walker:
    look: Appearance
    height: float  # pixels
    hip_y: float  # image row of the hips
    start_x: float  # world x of the hips at frame 0
    speed: float  # pixels per frame, signed
    phase: float
    cadence: float  # gait cycles per frame


def _walkers(rng: np.random.Generator, height: int, width: int, pan: float, config: VideoConfig) -> list[_Walker]:
    count = int(rng.integers(config.people[0], config.people[1] + 1))
    walkers = []
    for _ in range(count):
        person_h = float(np.exp(rng.uniform(math.log(0.25 * height), math.log(0.95 * height))))
        direction = rng.choice([-1.0, 1.0])
        speed = direction * rng.uniform(0.004, 0.012) * person_h  # body heights per frame
        # Start inside the view or just outside it, heading in.
        start = rng.uniform(-0.2, 1.2) * (width + pan)
        if rng.random() < 0.4:
            start = -0.15 * person_h if direction > 0 else width + pan + 0.15 * person_h
        walkers.append(_Walker(
            look=sample_appearance(rng),
            height=person_h,
            hip_y=float(np.clip(height * 0.35 + person_h * 0.5 + rng.normal(0, 0.03 * height), 0.3 * height, 1.1 * height)),
            start_x=float(start),
            speed=float(speed),
            phase=float(rng.uniform(0, 2 * math.pi)),
            cadence=float(abs(speed) / (0.7 * person_h)),  # one stride ≈ 0.7 body heights
        ))
    return sorted(walkers, key=lambda w: w.height)  # far (small) people first


def gait_pose(phase: float) -> dict[str, float]:
    """Joint angles of a walk at gait phase (radians): legs swing in opposition, the arms
    against the legs, the knee bends most when its leg swings forward."""
    swing = 0.35 * math.sin(phase)
    return {
        "lean": 0.04,
        "l_hip": swing, "r_hip": -swing,
        "l_knee": 0.1 + 0.5 * max(0.0, math.sin(phase + 0.6)), "r_knee": 0.1 + 0.5 * max(0.0, -math.sin(phase + 0.6)),
        "l_shoulder": -0.6 * swing, "r_shoulder": 0.6 * swing,
        "l_elbow": 0.25, "r_elbow": 0.25,
    }


def write_video(
    out: str | Path,
    frames: int,
    seed: int,
    size: tuple[int, int],
    config: VideoConfig = VideoConfig(),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, Path]:
    """Render a clip to ``out`` (an .mp4) and its ground truth to ``<stem>_gt/`` beside it.

    The ground-truth folder holds ``Category_ids/%06d.png`` and ``Human_ids/%06d.png``
    (frames from 1; person ids persist through the clip), ``gt.txt`` (MOTS text) and
    ``meta.json``. Both appear only once complete (an error, Ctrl-C or SIGTERM, noted and
    acted on before the next frame, leave neither); existing outputs are never replaced.
    """
    out = Path(out)
    width, height = size
    if out.suffix.lower() != ".mp4":
        raise HumanParseError(f"the video must be an .mp4 file, got {out.name}")
    if frames < 1:
        raise HumanParseError(f"--frames must be at least 1, got {frames}")
    seed = check_seed(seed)
    if width % 2 or height % 2:
        raise HumanParseError(f"H.264 needs an even width and height, got {width}x{height}")
    if out.exists():
        raise HumanParseError(f"{out} already exists; choose another output")
    gt_dir = out.with_name(f"{out.stem}_gt")
    rng = np.random.default_rng([seed, 1_000_003])
    # The camera pans over at most one frame width in a clip: the panned world, drawn up
    # front, stays within twice the frame however long the clip (--frames 1e8 asked for 57 GB).
    camera_speed = min(config.camera_speed, width / frames)
    pan = camera_speed * frames
    world = background(rng, height, width + int(math.ceil(pan)) + 1, SceneConfig())
    walkers = _walkers(rng, height, width, pan, config)
    pan_speed = rng.uniform(-1, 1) * camera_speed
    occluders = [(rng.uniform(0, width + pan), rng.uniform(0.04, 0.1) * width, rng.uniform(0, 255, 3)) for _ in range(config.occluders)]
    with StopRequests() as stops, new_directory(gt_dir) as gt_root:
        (gt_root / "Category_ids").mkdir()
        (gt_root / "Human_ids").mkdir()
        # The same seed must give the same bytes.
        writer = VideoWriter(out, config.fps, width, height, crf=18, reproducible=True)
        try:
            with open(gt_root / "gt.txt", "w") as mots:
                for t in range(frames):
                    if stops.requested:
                        raise KeyboardInterrupt  # the writer and new_directory remove what was written
                    # World x of the view's left edge: it sweeps at most 0..pan over the clip.
                    shift = pan / 2 + pan_speed * (t - frames / 2)
                    x0 = int(round(shift))
                    image = world[:, x0 : x0 + width].copy()
                    parts = np.zeros((height, width), np.uint8)
                    persons = np.zeros((height, width), np.uint8)
                    for pid, walker in enumerate(walkers, start=1):
                        hip = np.array([walker.start_x + walker.speed * t - x0, walker.hip_y])
                        pose = gait_pose(walker.phase + 2 * math.pi * walker.cadence * t)
                        draw_person(rng, image, parts, persons, pid, walker.look, hip, walker.height, pose)
                    for world_x, w, colour in occluders:
                        left = int(world_x - x0)
                        lo, hi = max(left, 0), min(left + int(w), width)
                        if lo < hi:
                            image[:, lo:hi] = colour
                            parts[:, lo:hi] = 0
                            persons[:, lo:hi] = 0
                    image = image + rng.normal(0, config.noise_sigma, image.shape).astype(np.float32)
                    writer.write(np.clip(image, 0, 255).astype(np.uint8))
                    name = f"{t + 1:06d}.png"
                    write_png(gt_root / "Category_ids" / name, parts)
                    write_png(gt_root / "Human_ids" / name, persons)
                    mots.writelines(frame_lines(t + 1, persons))
                    if progress is not None:
                        progress(t + 1, frames)
            meta = {
                "generator": "humanparse.synth_video", "humanparse_version": __version__, "seed": seed,
                "size": [width, height], "frames": frames, "fps": config.fps, "people": len(walkers),
                "label_set": PASCAL_PERSON_PART.name, "video": out.name,
            }
            (gt_root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            writer.close()
        except BaseException:
            writer.discard()
            raise
    return out, gt_dir
