"""Part evidence from a skeleton: each person's soft mask split into the six Pascal-Person-Part
parts by distance to the skeleton's pieces (:func:`part_evidence`), and the category-level Q
of all persons together (:func:`category_q`).

Pieces, in COCO-17 keypoints: the head is a disc around the face keypoints; the torso the
shoulder–hip quadrilateral (without the hips, 1.6 shoulder widths down from the shoulders,
less surely); upper arms shoulder–elbow, lower arms elbow–wrist and the hand
beyond; upper legs hip–knee, lower legs knee–ankle and the foot beyond. A piece's evidence at
a pixel falls off as a Gaussian of the distance to it, its width a share of the person's size,
weighted by the keypoints' confidence, and never below a flat floor. A piece whose keypoints
are missing gets that floor alone: far from every seen piece all parts are equally likely, so
that the Instance CRF and the image decide there rather than the skeleton being wrong.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..labels import MIN_KEYPOINT_SCORE

HEAD, TORSO, UPPER_ARMS, LOWER_ARMS, UPPER_LEGS, LOWER_LEGS = 1, 2, 3, 4, 5, 6
FACE = (0, 1, 2, 3, 4)
# part -> its segments (keypoint a, keypoint b, how far past b it reaches, as a share of a-b)
SEGMENTS: dict[int, tuple[tuple[int, int, float], ...]] = {
    UPPER_ARMS: ((5, 7, 0.0), (6, 8, 0.0)),
    LOWER_ARMS: ((7, 9, 0.35), (8, 10, 0.35)),  # the hand beyond the wrist
    UPPER_LEGS: ((11, 13, 0.0), (12, 14, 0.0)),
    LOWER_LEGS: ((13, 15, 0.2), (14, 16, 0.2)),  # the foot beyond the ankle
}
NUM_PARTS = 6


def _segment_distance(px: Tensor, py: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Distance of each pixel (px, py) to the segment a-b (2,), in pixels."""
    ab = b - a
    length2 = float((ab * ab).sum())
    if length2 < 1e-6:
        return torch.hypot(px - a[0], py - a[1])
    t = (((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / length2).clamp(0, 1)
    return torch.hypot(px - (a[0] + t * ab[0]), py - (a[1] + t * ab[1]))


def _polygon_distance(px: Tensor, py: Tensor, corners: Tensor) -> Tensor:
    """Distance to a convex polygon (K, 2) in order: 0 inside, else to its nearest edge."""
    sides = list(zip(corners, corners.roll(-1, 0)))
    edges = torch.stack([_segment_distance(px, py, a, b) for a, b in sides]).amin(0)
    # inside: the same side of every edge (either winding)
    crosses = torch.stack([(b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0]) for a, b in sides])
    inside = (crosses >= 0).all(0) | (crosses <= 0).all(0)
    return torch.where(inside, torch.zeros_like(edges), edges)


def part_evidence(
    keypoints: np.ndarray,
    masks: Tensor,
    sizes: np.ndarray,
    min_score: float = MIN_KEYPOINT_SCORE,
    falloff: float = 0.08,
    uncertain: float = 0.1,
) -> Tensor:
    """Each person's mask split into parts.

    Args:
        keypoints: (D, 17, 3) float x, y (pixels of the masks' frame) and score, COCO-17.
        masks: (D, H, W) float person probabilities in [0, 1].
        sizes: (D,) float each person's size in pixels (the longer side of its box): the
            evidence's width is ``falloff`` times it.
        min_score: a keypoint scoring less is missing.
        uncertain: the flat evidence of a part whose keypoints are missing, and the least of
            a seen one, against its keypoints' confidence on the piece itself.

    Returns:
        (D, 6, H, W) float: person i's part j probability, summing over parts to its mask.
    """
    d, h, w = masks.shape
    out = masks.new_zeros((d, NUM_PARTS, h, w))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=masks.dtype, device=masks.device) + 0.5, torch.arange(w, dtype=masks.dtype, device=masks.device) + 0.5, indexing="ij")
    for i in range(d):
        region = torch.nonzero(masks[i] > 1e-3)
        if not len(region):
            continue
        (y0, x0), (y1, x1) = region.amin(0).tolist(), (region.amax(0) + 1).tolist()
        px, py = xs[y0:y1, x0:x1], ys[y0:y1, x0:x1]
        points = torch.as_tensor(keypoints[i], dtype=masks.dtype, device=masks.device)
        seen = points[:, 2] >= min_score
        sigma = max(float(falloff * sizes[i]), 1.0)
        pieces: list[list[Tensor]] = [[] for _ in range(NUM_PARTS)]

        def shown(distance: Tensor, confidence: Tensor) -> Tensor:
            # never below the flat level of a missing part: far from every seen piece,
            # all parts are equally likely
            return (float(confidence.clamp(max=1)) * torch.exp(-0.5 * (distance / sigma) ** 2)).clamp(min=uncertain)

        face = [k for k in FACE if seen[k]]
        if face:
            centre = points[face, :2].mean(0)
            spread = float((points[face, :2] - centre).norm(dim=1).max())
            width = float((points[5, :2] - points[6, :2]).norm()) if bool(seen[5] and seen[6]) else 0.0
            radius = max(1.3 * spread, 0.3 * width, sigma)
            pieces[HEAD - 1].append(shown((torch.hypot(px - centre[0], py - centre[1]) - radius).clamp(min=0), points[face, 2].mean()))
        torso = [k for k in (5, 6, 12, 11) if seen[k]]  # in order round the quadrilateral
        if torso == [5, 6]:
            # Hips unseen (a portrait, or hidden): the torso still runs below the shoulders,
            # about 1.6 shoulder widths (adult proportions), less surely.
            left, right = points[5, :2], points[6, :2]
            across = right - left
            down = torch.stack([-across[1], across[0]])
            down = down if float(down[1]) >= 0 else -down
            corners = torch.stack([left, right, right + 1.6 * down, left + 1.6 * down])
            pieces[TORSO - 1].append(shown(_polygon_distance(px, py, corners), 0.7 * points[torso, 2].min()))
        elif len(torso) >= 3:
            pieces[TORSO - 1].append(shown(_polygon_distance(px, py, points[torso, :2]), points[torso, 2].min()))
        elif len(torso) == 2:
            pieces[TORSO - 1].append(shown(_segment_distance(px, py, points[torso[0], :2], points[torso[1], :2]), points[torso, 2].min()))
        for part, segments in SEGMENTS.items():
            for a, b, beyond in segments:
                if seen[a] and seen[b]:
                    end = points[b, :2] + beyond * (points[b, :2] - points[a, :2])
                    pieces[part - 1].append(shown(_segment_distance(px, py, points[a, :2], end), torch.minimum(points[a, 2], points[b, 2])))
        flat = px.new_full(px.shape, uncertain)
        evidence = torch.stack([torch.stack(found).amax(0) if found else flat for found in pieces])
        share = evidence / evidence.sum(0, keepdim=True)
        out[i, :, y0:y1, x0:x1] = share * masks[i, y0:y1, x0:x1]
    return out


def category_q(person_q: Tensor, masks: Tensor) -> Tensor:
    """The category-level Q of all persons: (7, H, W), background where no mask covers,
    the parts' shares of the masks elsewhere.

    Args:
        person_q: (D, 6, H, W) from :func:`part_evidence`. masks: (D, H, W) in [0, 1].
    """
    background = torch.prod(1 - masks, dim=0) if len(masks) else masks.new_ones(masks.shape[1:])
    total = masks.sum(0).clamp(min=1e-6)
    parts = person_q.sum(0) / total * (1 - background)
    return torch.cat([background[None], parts], 0)
