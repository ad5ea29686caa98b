"""A procedural multi-person world with exact ground truth (Pascal-Person-Part labels).

People are articulated 2-D skeletons (torso lean, shoulder and elbow, hip and knee
angles within joint limits) in sampled poses — standing, walking, arms raised, arms
crossed, bending — rendered part by part as shaded, textured shapes in clothing and skin
colours, so that colour alone does not give the part. Scenes hold 0 to 10 people from
about 40 px tall to larger than the frame, overlapping in depth order, cut by the image
border and by foreground objects, over clutter that includes limb-like distractors, with
lighting changes, blur, noise and JPEG artefacts.

Every pixel's part label and person id come from the same primitives as its colour, so
the ground truth is exact. Sampling is driven by one ``numpy.random.Generator``: the same
seed gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import HumanParseError
from ..interrupts import StopRequests
from ..io.drawing import contact_sheet, ground_truth_panel
from ..io.files import new_directory
from ..io.images import encode_jpeg, write_png
from ..labels import PASCAL_PERSON_PART
from ..ops import person_boxes
from ..version import __version__
from .cihp import write_meta, write_sample, write_split

# Pascal-Person-Part labels.
HEAD, TORSO, UPPER_ARM, LOWER_ARM, UPPER_LEG, LOWER_LEG = 1, 2, 3, 4, 5, 6

SKIN_TONES = np.array([[255, 224, 196], [234, 192, 160], [198, 134, 99], [141, 85, 56], [92, 56, 40]], np.float32)


@dataclass(frozen=True)
class SceneConfig:
    """What a scene may contain; defaults pose the paper's problems at realistic rates."""

    max_people: int = 8
    min_height: int = 40  # pixels, the smallest person
    max_height_ratio: float = 1.4  # tallest person / image height: people larger than the frame
    occluder_rate: float = 0.4  # chance of foreground objects in a scene
    distractors: int = 14  # clutter shapes in the background, some limb-like
    jpeg_quality: tuple[int, int] = (40, 95)
    noise_sigma: tuple[float, float] = (0.0, 8.0)
    blur_rate: float = 0.3


@dataclass(frozen=True)
class Scene:
    """One rendered scene.

    image: (H, W, 3) uint8 RGB. parts: (H, W) uint8 labels 0..6. persons: (H, W) uint8 ids,
    0 background, 1..n in depth order (1 farthest). boxes: (n, 4) float32 x1 y1 x2 y2 of
    each person's visible pixels (a row of NaN for a person fully hidden). jpeg: the
    encoded image, whose decoding is exactly ``image``.
    """

    jpeg: bytes
    image: np.ndarray
    parts: np.ndarray
    persons: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True)
class _Shape:
    """A capsule (two points and a radius) or a polygon, with one part label."""

    part: int
    points: np.ndarray  # (2, 2) capsule ends or (K, 2) polygon
    radius: float  # 0 for a polygon


@dataclass(frozen=True)
class _Garment:
    colour: np.ndarray  # (3,) float32 RGB
    pattern: int  # 0 plain, 1 stripes, 2 checks, 3 speckle
    period: float  # pixels
    angle: float


@dataclass(frozen=True)
class Appearance:
    """Everything about a person that stays the same from frame to frame."""

    proportions: np.ndarray  # (7,) multipliers of the body's segment lengths and widths
    facing: float  # 1 = facing the camera, small = seen from the side
    far_side: int  # 0 or 1: which arm and leg are farther from the camera
    skin: np.ndarray
    hair: np.ndarray
    shirt: _Garment
    sleeves: _Garment
    trousers: _Garment
    long_sleeves: bool
    shorts: bool


def sample_appearance(rng: np.random.Generator) -> Appearance:
    shirt = _garment(rng)
    return Appearance(
        proportions=rng.uniform(0.9, 1.1, 7),
        facing=float(rng.uniform(0.35, 1.0)),
        far_side=int(rng.integers(0, 2)),
        skin=(SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.85, 1.1)).astype(np.float32),
        hair=np.array([rng.uniform(10, 90), rng.uniform(10, 70), rng.uniform(5, 50)], np.float32),
        shirt=shirt,
        sleeves=shirt if rng.random() < 0.6 else _garment(rng),
        trousers=_garment(rng),
        long_sleeves=bool(rng.random() < 0.5),
        shorts=bool(rng.random() < 0.3),
    )


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _sample_pose(rng: np.random.Generator) -> dict[str, float]:
    """Joint angles in radians. Arm and leg angles are from straight down, positive away
    from the body's midline; elbows and knees bend one way only (joint limits)."""
    kind = rng.choice(["stand", "walk", "raise", "cross", "bend", "wave"], p=[0.2, 0.3, 0.12, 0.12, 0.12, 0.14])
    pose = {
        "lean": rng.normal(0, 0.06),
        "l_shoulder": rng.uniform(0.05, 0.35), "r_shoulder": rng.uniform(0.05, 0.35),
        "l_elbow": rng.uniform(0.0, 0.4), "r_elbow": rng.uniform(0.0, 0.4),
        "l_hip": rng.uniform(0.0, 0.12), "r_hip": rng.uniform(0.0, 0.12),
        "l_knee": rng.uniform(0.0, 0.15), "r_knee": rng.uniform(0.0, 0.15),
    }
    if kind == "walk":
        swing = rng.uniform(0.2, 0.5)
        pose.update(l_hip=swing, r_hip=-swing, l_knee=rng.uniform(0.1, 0.6), r_knee=rng.uniform(0.0, 0.3),
                    l_shoulder=-swing * 0.6, r_shoulder=swing * 0.6)
    elif kind == "raise":
        pose.update(l_shoulder=rng.uniform(2.2, 3.0), r_shoulder=rng.uniform(2.2, 3.0), l_elbow=rng.uniform(0, 0.5), r_elbow=rng.uniform(0, 0.5))
    elif kind == "cross":
        pose.update(l_shoulder=rng.uniform(-0.5, -0.2), r_shoulder=rng.uniform(-0.5, -0.2), l_elbow=rng.uniform(1.6, 2.2), r_elbow=rng.uniform(1.6, 2.2))
    elif kind == "bend":
        pose.update(lean=rng.choice([-1, 1]) * rng.uniform(0.4, 0.9), l_knee=rng.uniform(0.2, 0.8), r_knee=rng.uniform(0.2, 0.8),
                    l_shoulder=rng.uniform(-0.4, 0.4), r_shoulder=rng.uniform(-0.4, 0.4))
    elif kind == "wave":
        pose.update(r_shoulder=rng.uniform(1.4, 2.6), r_elbow=rng.uniform(0.8, 1.8))
    return pose


def person_shapes(look: Appearance, hip: np.ndarray, height: float, pose: dict[str, float]) -> list[_Shape]:
    """The parts of one person, in drawing order (back to front), hips at ``hip`` (x, y)."""
    k = look.proportions
    torso_len = 0.30 * height * k[0]
    shoulder_w = 0.11 * height * k[1] * look.facing
    hip_w = 0.075 * height * k[2] * look.facing
    up_arm, low_arm = 0.17 * height * k[3], 0.16 * height * k[3]
    thigh, shin = 0.24 * height * k[4], 0.25 * height * k[4]
    limb_r = 0.035 * height * k[5]
    head_r = 0.065 * height * k[6]
    up = _rot(np.array([0.0, -1.0]), pose["lean"])
    side = np.array([-up[1], up[0]])  # the body's right, in image terms
    neck = hip + up * torso_len
    shapes: list[_Shape] = []
    legs, arms = [], []
    for sign, name in ((-1, "l"), (1, "r")):
        hip_j = hip + sign * side * hip_w
        thigh_dir = _rot(np.array([0.0, 1.0]), -sign * pose[f"{name}_hip"])
        knee = hip_j + thigh_dir * thigh
        ankle = knee + _rot(thigh_dir, sign * pose[f"{name}_knee"]) * shin
        legs.append([_Shape(UPPER_LEG, np.stack([hip_j, knee]), limb_r * 1.35), _Shape(LOWER_LEG, np.stack([knee, ankle]), limb_r * 1.1)])
        shoulder = neck + sign * side * shoulder_w
        arm_dir = _rot(_rot(np.array([0.0, 1.0]), pose["lean"]), -sign * pose[f"{name}_shoulder"])
        elbow = shoulder + arm_dir * up_arm
        wrist = elbow + _rot(arm_dir, -sign * pose[f"{name}_elbow"]) * low_arm
        arms.append([_Shape(UPPER_ARM, np.stack([shoulder, elbow]), limb_r), _Shape(LOWER_ARM, np.stack([elbow, wrist]), limb_r * 0.85)])
    torso = np.stack([
        neck - side * shoulder_w * 1.15, neck + side * shoulder_w * 1.15,
        hip + side * hip_w * 1.35, hip - side * hip_w * 1.35,
    ])
    neck_shape = _Shape(TORSO, np.stack([neck, neck + up * head_r * 0.6]), limb_r * 0.9)
    head = _Shape(HEAD, np.stack([neck + up * head_r * 1.3, neck + up * head_r * 1.6]), head_r)
    far = look.far_side
    crossed = pose["l_elbow"] > 1.2 and pose["r_elbow"] > 1.2
    shapes += legs[far] + arms[far] * (not crossed) + legs[1 - far]
    shapes += [_Shape(TORSO, torso, 0.0), neck_shape, head]
    shapes += arms[1 - far] + arms[far] * crossed
    return shapes


def _shape_mask(shape: _Shape, height: int, width: int) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The shape's pixels as a (y0, x0, y1, x1) window and a bool mask of it; None if off-image."""
    pts = shape.points
    pad = shape.radius + 1
    x0, y0 = np.floor(pts.min(0) - pad).astype(int)
    x1, y1 = np.ceil(pts.max(0) + pad).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    local = np.round((pts - [x0, y0]) * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    if shape.radius > 0:
        cv2.line(mask, tuple(local[0]), tuple(local[1]), 1, max(1, int(round(2 * shape.radius))), cv2.LINE_8, shift=4)
        for end in local:
            cv2.circle(mask, tuple(end), int(round(shape.radius * 16)), 1, -1, cv2.LINE_8, shift=4)
    else:
        cv2.fillPoly(mask, [local], 1, cv2.LINE_8, shift=4)
    return (y0, x0, y1, x1), mask.astype(bool)


def _texture(garment: _Garment, ys: np.ndarray, xs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) float colours of a garment over a pixel window, with its pattern."""
    base = np.broadcast_to(garment.colour, ys.shape + (3,)).astype(np.float32)
    if garment.pattern == 0:
        return base
    u = xs * math.cos(garment.angle) + ys * math.sin(garment.angle)
    if garment.pattern == 1:
        factor = 0.75 + 0.25 * np.sign(np.sin(2 * math.pi * u / garment.period))
    elif garment.pattern == 2:
        v = -xs * math.sin(garment.angle) + ys * math.cos(garment.angle)
        factor = 0.8 + 0.2 * np.sign(np.sin(2 * math.pi * u / garment.period) * np.sin(2 * math.pi * v / garment.period))
    else:
        factor = 1.0 + rng.normal(0, 0.12, ys.shape)
    return base * factor[..., None].astype(np.float32)


def _paint(image: np.ndarray, window: tuple[int, int, int, int], mask: np.ndarray, colour: np.ndarray, shade_axis: np.ndarray | None) -> None:
    """Composite colours (h, w, 3) into the image window under mask, shaded like a cylinder."""
    y0, x0, y1, x1 = window
    if shade_axis is not None:
        ys, xs = np.mgrid[y0:y1, x0:x1]
        (ax, ay), (bx, by) = shade_axis
        length = math.hypot(bx - ax, by - ay) or 1.0
        across = ((xs - ax) * (by - ay) - (ys - ay) * (bx - ax)) / length  # signed distance to the axis
        radius = max(np.abs(across[mask]).max(), 1.0) if mask.any() else 1.0
        colour = colour * (1.0 - 0.35 * np.clip(across / radius, -1, 1) ** 2)[..., None]
    region = image[y0:y1, x0:x1]
    region[mask] = colour[mask]


def render_scene(rng: np.random.Generator, height: int, width: int, config: SceneConfig = SceneConfig()) -> Scene:
    """Sample and render one scene of ``height`` × ``width`` pixels."""
    if height < 8 or width < 8:
        raise HumanParseError(f"synthetic images must be at least 8×8 pixels, got {width}×{height}")
    image = background(rng, height, width, config)
    parts = np.zeros((height, width), np.uint8)
    persons = np.zeros((height, width), np.uint8)
    count = int(min(rng.choice(np.arange(0, config.max_people + 3), p=_people_weights(config.max_people + 2)), 255))
    # Far people first: sample heights, draw from smallest (farthest) to largest.
    max_h = config.max_height_ratio * height
    heights = np.sort(np.exp(rng.uniform(math.log(config.min_height), math.log(max(max_h, config.min_height + 1)), count)))
    for pid, person_h in enumerate(heights, start=1):
        hip = np.array([rng.uniform(-0.1, 1.1) * width, rng.uniform(0.2, 1.15) * height])
        # Bring most people mostly into the frame; some stay truncated at the border.
        hip[1] = min(hip[1], height + 0.2 * person_h) if rng.random() < 0.8 else hip[1]
        draw_person(rng, image, parts, persons, pid, sample_appearance(rng), hip, person_h, _sample_pose(rng))
    if rng.random() < config.occluder_rate:
        for _ in range(int(rng.integers(1, 3))):
            _occluder(rng, image, parts, persons)
    jpeg, image = _camera(rng, image, config)
    boxes = np.full((count, 4), np.nan, np.float32)
    visible, visible_boxes = person_boxes(persons)
    boxes[visible - 1] = visible_boxes
    return Scene(jpeg, image, parts, persons, boxes)


def draw_person(
    rng: np.random.Generator,
    image: np.ndarray,
    parts: np.ndarray,
    persons: np.ndarray,
    pid: int,
    look: Appearance,
    hip: np.ndarray,
    height: float,
    pose: dict[str, float],
) -> None:
    """Paint one person over image (float32 RGB) and stamp its labels and id, in place."""
    img_h, img_w = parts.shape
    for shape in person_shapes(look, hip, height, pose):
        drawn = _shape_mask(shape, img_h, img_w)
        if drawn is None:
            continue
        window, mask = drawn
        y0, x0, y1, x1 = window
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        skin = np.broadcast_to(look.skin, ys.shape + (3,)).astype(np.float32)
        if shape.part == HEAD:
            colour = skin.copy()
            colour[ys < shape.points.mean(0)[1] - 0.2 * shape.radius] = look.hair  # hair on top
        elif shape.part == TORSO:
            colour = _texture(look.shirt, ys, xs, rng)
        elif shape.part == UPPER_ARM:
            colour = _texture(look.sleeves, ys, xs, rng)
        elif shape.part == LOWER_ARM:
            colour = _texture(look.sleeves, ys, xs, rng) if look.long_sleeves else skin
        elif shape.part == UPPER_LEG:
            colour = _texture(look.trousers, ys, xs, rng)
        else:
            colour = skin if look.shorts else _texture(look.trousers, ys, xs, rng)
        _paint(image, window, mask, colour, shape.points if shape.radius > 0 else None)
        parts[y0:y1, x0:x1][mask] = shape.part
        persons[y0:y1, x0:x1][mask] = pid


def _people_weights(n: int) -> np.ndarray:
    """Mostly 1–4 people, sometimes none, sometimes a crowd."""
    w = np.array([0.4] + [1.0 / (1 + 0.25 * max(i - 3, 0)) ** 2 for i in range(1, n + 1)])
    return w / w.sum()


def _garment(rng: np.random.Generator) -> _Garment:
    return _Garment(
        colour=rng.uniform(20, 235, 3).astype(np.float32),
        pattern=int(rng.choice(4, p=[0.45, 0.25, 0.15, 0.15])),
        period=float(rng.uniform(3, 12)),
        angle=float(rng.uniform(0, math.pi)),
    )


def background(rng: np.random.Generator, height: int, width: int, config: SceneConfig) -> np.ndarray:
    """A lit gradient with clutter: boxes, blobs and limb-like capsules in skin and cloth colours.

    Returns (height, width, 3) float32 RGB in 0..255, with ``config.distractors // 2`` to
    ``config.distractors`` clutter shapes.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    t = (xs / width * rng.uniform(-1, 1) + ys / height * rng.uniform(-1, 1))[..., None]
    image = a + (b - a) * (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    image = image.astype(np.float32)
    for _ in range(int(rng.integers(config.distractors // 2, config.distractors + 1))):
        kind = rng.random()
        colour = SKIN_TONES[rng.integers(len(SKIN_TONES))] if rng.random() < 0.3 else rng.uniform(0, 255, 3)
        size = rng.uniform(0.03, 0.25) * min(height, width)
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        if kind < 0.4:  # limb-like: a capsule, the shape of an arm or a leg
            angle = rng.uniform(0, math.pi)
            end = (int(centre[0] + size * math.cos(angle)), int(centre[1] + size * math.sin(angle)))
            cv2.line(image, centre, end, colour.tolist(), max(2, int(size * rng.uniform(0.12, 0.3))), cv2.LINE_AA)
        elif kind < 0.7:
            cv2.rectangle(image, centre, (int(centre[0] + size), int(centre[1] + size * rng.uniform(0.3, 2))), colour.tolist(), -1)
        else:
            cv2.ellipse(image, centre, (int(size / 2), int(size / 2 * rng.uniform(0.3, 1))), rng.uniform(0, 180), 0, 360, colour.tolist(), -1, cv2.LINE_AA)
    return image


def _occluder(rng: np.random.Generator, image: np.ndarray, parts: np.ndarray, persons: np.ndarray) -> None:
    """A foreground object (a post, a box, a plant pot) hiding whatever is behind it."""
    height, width = parts.shape
    w = int(rng.uniform(0.05, 0.25) * width)
    h = int(rng.uniform(0.1, 0.6) * height)
    x0 = int(rng.uniform(-0.05, 1.0) * width)
    y0 = height - h if rng.random() < 0.6 else int(rng.uniform(0, height - h))
    x0, x1 = max(x0, 0), min(x0 + w, width)
    y0, y1 = max(y0, 0), min(y0 + h, height)
    if x0 >= x1 or y0 >= y1:
        return
    colour = rng.uniform(0, 255, 3)
    shade = np.linspace(0.7, 1.1, x1 - x0, dtype=np.float32)[None, :, None]
    image[y0:y1, x0:x1] = colour * shade
    parts[y0:y1, x0:x1] = 0
    persons[y0:y1, x0:x1] = 0


def _camera(rng: np.random.Generator, image: np.ndarray, config: SceneConfig) -> tuple[bytes, np.ndarray]:
    """Lighting, blur, sensor noise and JPEG compression -> the JPEG bytes and their uint8 RGB."""
    height, width = image.shape[:2]
    gain = rng.uniform(0.6, 1.3)
    ramp = np.linspace(rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2), width, dtype=np.float32)[None, :, None]
    image = image * gain * ramp + rng.uniform(-20, 20)
    if rng.random() < config.blur_rate:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    sigma = rng.uniform(*config.noise_sigma)
    if sigma > 0:
        image = image + rng.normal(0, sigma, image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    encoded = encode_jpeg(image, quality)
    return encoded, cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)[..., ::-1].copy()


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """Each image has its own stream, so image k is the same whatever the count."""
    return np.random.default_rng([seed, index])


def check_seed(seed: int) -> int:
    """``seed`` if it is a whole number of 0 or more (what numpy seeds a generator with)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise HumanParseError(f"--seed must be a whole number of 0 or more, got {seed}")
    return int(seed)


def write_image_dataset(
    out: str | Path,
    num: int,
    seed: int,
    size: tuple[int, int],
    config: SceneConfig = SceneConfig(),
    split: str = "train",
    preview: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``num`` scenes of ``size`` = (width, height) into a new CIHP-layout folder.

    Writes ``meta.json`` with the generator settings and, with ``preview``, ``preview.png``:
    a contact sheet of the first 16 images with their ground truth. ``progress(done,
    total)`` is called after each image. The folder appears only once complete: an error,
    Ctrl-C or SIGTERM (noted, and acted on before the next image) leave nothing behind.
    """
    width, height = size
    if num < 1:
        raise HumanParseError(f"--num must be at least 1, got {num}")
    seed = check_seed(seed)
    if not split.isidentifier():
        raise HumanParseError(f"split name {split!r} must be a plain word")
    panels = []
    with StopRequests() as stops, new_directory(out) as root:
        ids = []
        for index in range(num):
            if stops.requested:
                raise KeyboardInterrupt  # new_directory removes the partial folder
            scene = render_scene(scene_rng(seed, index), height, width, config)
            sample_id = f"{index:06d}"
            write_sample(root, sample_id, scene.jpeg, scene.parts, scene.persons)
            ids.append(sample_id)
            if preview and index < 16:
                panels.append(ground_truth_panel(scene.image, scene.parts, scene.persons, PASCAL_PERSON_PART))
            if progress is not None:
                progress(index + 1, num)
        write_split(root, split, ids)
        write_meta(root, PASCAL_PERSON_PART, generator="humanparse.synth", humanparse_version=__version__, seed=seed,
                   size=[width, height], num=num, config=dataclasses.asdict(config))
        if preview:
            write_png(root / "preview.png", contact_sheet(panels))
    return Path(out)
