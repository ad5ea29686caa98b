"""Augmentation keeps image, labels and boxes aligned; mirroring swaps left and right."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from humanparse.data.augment import AugmentConfig, augment
from humanparse.data.synth import render_scene, scene_rng
from humanparse.labels import CIHP, PASCAL_PERSON_PART

GEOMETRY_ONLY = AugmentConfig(hue=0, saturation=0, value=0, blur_rate=0)


def encoded_scene(index: int):
    """A synthetic scene whose image encodes its labels: R = 30·part, G = 25·person."""
    scene = render_scene(scene_rng(21, index), 96, 128)
    image = np.zeros(scene.image.shape, np.uint8)
    image[..., 0] = scene.parts * 30
    image[..., 1] = scene.persons * 25  # at most 10 people: no uint8 overflow
    return scene, image


@pytest.mark.parametrize("seed", range(6))
def test_labels_stay_aligned_with_the_pixels(seed: int) -> None:
    scene, image = encoded_scene(seed)
    out = augment(np.random.default_rng(seed), image, scene.parts, scene.persons, np.zeros((0, 4)), PASCAL_PERSON_PART, GEOMETRY_ONLY)
    assert out.image.shape[:2] == out.parts.shape == out.persons.shape
    valid = out.parts != 255
    # Away from region edges, where bilinear resampling mixes colours, the image decodes
    # to exactly the resampled labels.
    part_inner = ndimage.minimum_filter(out.parts, 3) == ndimage.maximum_filter(out.parts, 3)
    person_inner = ndimage.minimum_filter(out.persons, 3) == ndimage.maximum_filter(out.persons, 3)
    inner = valid & part_inner & person_inner
    assert inner.sum() > 0.5 * valid.sum()
    decoded_parts = np.round(out.image[..., 0] / 30.0)
    decoded_persons = np.round(out.image[..., 1] / 25.0)
    assert np.mean(decoded_parts[inner] == out.parts[inner]) > 0.995
    assert np.mean(decoded_persons[inner] == out.persons[inner]) > 0.995


@pytest.mark.parametrize("seed", range(6))
def test_boxes_follow_the_people(seed: int) -> None:
    scene, _ = encoded_scene(seed)
    visible = ~np.isnan(scene.boxes).any(1)
    out = augment(np.random.default_rng(seed), scene.image, scene.parts, scene.persons, scene.boxes[visible], PASCAL_PERSON_PART)
    for box, pid in zip(out.boxes, np.nonzero(visible)[0] + 1):
        ys, xs = np.nonzero(out.persons == pid)
        if len(xs):
            # The transformed box contains every pixel of its person (one pixel of slack
            # for nearest-neighbour resampling).
            assert xs.min() >= box[0] - 1 and xs.max() + 1 <= box[2] + 1
            assert ys.min() >= box[1] - 1 and ys.max() + 1 <= box[3] + 1


def test_scale_and_rotation_ranges() -> None:
    scene, _ = encoded_scene(0)
    sizes = []
    for seed in range(40):
        out = augment(np.random.default_rng(seed), scene.image, scene.parts, scene.persons, np.zeros((0, 4)), PASCAL_PERSON_PART)
        sizes.append(out.image.shape[0] / 96)
    assert 0.5 <= min(sizes) < 0.75 and 1.5 < max(sizes) <= 2.0


def test_mirroring_swaps_left_and_right_labels() -> None:
    parts = np.zeros((20, 30), np.uint8)
    parts[5:15, 2:8] = 14  # CIHP left arm, on the left of the image
    persons = (parts > 0).astype(np.uint8)
    image = np.zeros((20, 30, 3), np.uint8)
    mirror_only = AugmentConfig(scale=(1.0, 1.0), rotation=0, hue=0, saturation=0, value=0, blur_rate=0)
    flipped = None
    for seed in range(20):  # mirroring is a coin toss
        out = augment(np.random.default_rng(seed), image, parts, persons, np.array([[2.0, 5.0, 8.0, 15.0]]), CIHP, mirror_only)
        if (out.parts == 15).any():
            flipped = out
            break
    assert flipped is not None
    assert (flipped.parts[5:15, 22:28] == 15).all() and not (flipped.parts == 14).any()
    np.testing.assert_allclose(flipped.boxes[0], [22.0, 5.0, 28.0, 15.0])
