"""The pose-guided parser for real photos: :class:`PoseGuidedParser` (DESIGN §2d).

Per image: persons from a real detector (NanoDet), kept where the pose confirms them; per
person top-down keypoints (MoveNet Thunder) and a soft mask (BlazePose's and the selfie
model's, averaged, on the same upright crop, pasted into the frame); the
mask split into the six Pascal-Person-Part parts by the skeleton
(:func:`~humanparse.modeling.skeleton.part_evidence`), which gives each person's Q and,
summed, the category-level Q; then the paper's Instance CRF with the **mask term** in place
of the box term (ψ_mask(k, (i, j)) = s_i · M_i(k) · Q_ik(j)), the global term and the dense
kernels, so that overlaps and boundaries are settled by the CRF and the image rather than by
the skeleton alone.

It implements the same :class:`~humanparse.modeling.parser.Parser` interface as the holistic
network; its results carry the keypoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import HumanParseError
from ..labels import MIN_KEYPOINT_SCORE, PASCAL_PERSON_PART
from ..ops import scaled_size
from ..pretrained.blazepose import BlazePose
from ..pretrained.crops import paste_masks
from ..pretrained.movenet import MoveNetThunder
from ..pretrained.nanodet import NanoDet
from ..pretrained.selfie import SelfieMasks
from ..structures import Detections, ParsingResult
from .crf import InstanceCRF
from .instances import parsing_result, person_map, upsampled_max
from .parser import ParseOptions, StageClock, StageTimer, detect_persons
from .skeleton import category_q, part_evidence

# Kernel weights of the untrained CRF, chosen by benchmarks/bench_pose_guided_crf.py on 40
# synthetic test images (part AP^r_vol / person AP^r_vol / AP^p_vol / mIoU): the unaries
# alone 8.42 / 24.46 / 11.19 / 26.23; five iterations at the paper's initial (8, 2) lose to
# them (6.08 / 22.84 / 8.71 / 24.71), at (1, 1) 9.08 / 23.79 / 11.56 / 27.52, at (0.5, 0.5)
# 9.07 / 24.30 / 11.58 / 27.65, at (0.25, 0.25) 9.09 / 24.46 / 11.62 / 27.59: from 1 down
# the CRF beats its unaries and the differences are within the noise of 40 images.
BILATERAL_WEIGHT = 0.5
SPATIAL_WEIGHT = 0.5
# The CRF's window reaches this many pixels of its grid beyond the persons' masks.
CRF_MARGIN = 16
# The least share of their own mask a person must win in the CRF to stay a person.
MIN_SHARE = 0.2


def plausible(scores: np.ndarray, keypoints: np.ndarray, min_score: float = MIN_KEYPOINT_SCORE) -> np.ndarray:
    """Which detections the pose confirms as persons: (D,) bool.

    A detection stays with 8 or more keypoints scoring ``min_score``, or with 4 if the
    detector itself is sure (score >= 0.5). On the test photos this drops NanoDet's traffic
    cones, sign post and flag (0.30-0.34, 0-5 keypoints) and keeps every person, portraits
    (7 keypoints at 0.73-0.88) included.
    """
    seen = (keypoints[..., 2] >= min_score).sum(-1) if keypoints.size else np.zeros(len(scores), int)
    return (seen >= 8) | ((scores >= 0.5) & (seen >= 4))


def distinct(masks: torch.Tensor, scores: np.ndarray, max_overlap: float = 0.6) -> np.ndarray:
    """Which detections are persons of their own: (D,) bool. Of two whose soft masks
    (D, H, W) overlap by more than ``max_overlap`` (soft IoU: Σ min / Σ max) the lower-scoring
    goes: box NMS lets such duplicates through (two boxes on one pedestrian, one cut short),
    and the CRF would leave the second a few stray pixels and a track of its own."""
    keep = np.ones(len(scores), bool)
    flat = masks.flatten(1)
    for i in np.argsort(-scores, kind="stable"):
        if not keep[i]:
            continue
        for j in np.flatnonzero(keep):
            if j != i and scores[j] <= scores[i]:
                union = torch.maximum(flat[i], flat[j]).sum()
                if float(torch.minimum(flat[i], flat[j]).sum()) > max_overlap * float(union):
                    keep[j] = False
    return keep


def people_window(masks: torch.Tensor, margin: int, threshold: float = 0.01) -> tuple[int, int, int, int] | None:
    """The rows and columns (y0, y1, x0, x1), end exclusive, of the box around every pixel
    where a soft mask (D, H, W) exceeds ``threshold``, widened by ``margin`` pixels and cut
    to the frame; None when no mask reaches ``threshold``."""
    anywhere = (masks > threshold).any(0) if len(masks) else masks.new_zeros(masks.shape[1:], dtype=torch.bool)
    rows, cols = torch.nonzero(anywhere.any(1)).flatten(), torch.nonzero(anywhere.any(0)).flatten()
    if not len(rows):
        return None
    height, width = anywhere.shape
    return (max(0, int(rows[0]) - margin), min(height, int(rows[-1]) + 1 + margin), max(0, int(cols[0]) - margin), min(width, int(cols[-1]) + 1 + margin))


class PoseGuidedParser(nn.Module):
    """Persons, keypoints and masks from pretrained networks; parts from the skeleton; the
    Instance CRF with the mask term. Pascal-Person-Part labels.

    Args:
        detector: a person detector module (default: NanoDet), called as ``detector(image,
            nms_iou=...)``, whose output is filtered by the options' ``det_threshold`` and
            ``max_people``.
        pose: a top-down keypoint network (default: MoveNet Thunder); if it gives masks as
            well (BlazePose), they are one of the mask sources.
        maskers: more top-down networks giving person masks; all sources are averaged
            (default: the selfie model, and BlazePose unless it is the pose network:
            BlazePose's masks are cleaner, but thin on dark clothes in portraits, where the
            selfie model's are whole; the mean keeps the best of both on the test photos).
        crf: the Instance CRF (default: 5 iterations, the weights above).
        crf_margin: the CRF runs on the box around the persons' masks widened by this many
            pixels of its grid (None: on the whole frame).
    """

    labels = PASCAL_PERSON_PART
    finds_people = True
    follows_people = True
    default_crf_scale = 0.5
    reads = frozenset({"det_threshold", "max_people", "nms_iou", "crf_scale", "crf_iterations"})

    def __init__(
        self,
        detector: nn.Module | None = None,
        pose: nn.Module | None = None,
        maskers: Sequence[nn.Module] | None = None,
        crf: InstanceCRF | None = None,
        crf_margin: int | None = CRF_MARGIN,
    ) -> None:
        super().__init__()
        self.detector = detector if detector is not None else NanoDet(threshold=0.05, max_people=100)
        self.pose = pose if pose is not None else MoveNetThunder()
        if maskers is None:
            maskers = [SelfieMasks()] if isinstance(self.pose, BlazePose) else [BlazePose(), SelfieMasks()]
        self.maskers = nn.ModuleList(maskers)
        self.crf = crf if crf is not None else InstanceCRF(PASCAL_PERSON_PART.num_parts, 5, bilateral_weight=BILATERAL_WEIGHT, spatial_weight=SPATIAL_WEIGHT)
        self.crf_margin = crf_margin

    def detect(self, image: np.ndarray, options: ParseOptions = ParseOptions()) -> Detections:
        """The detector's persons in ``image`` (H, W, 3) uint8 RGB, by the options'
        ``det_threshold`` and ``max_people``, before the pose confirms them."""
        return detect_persons(self.detector, image, options)

    @torch.inference_mode()
    def parse(
        self,
        images: Sequence[np.ndarray],
        detections: Sequence[Detections] | None = None,
        options: ParseOptions = ParseOptions(),
        timer: StageTimer | None = None,
    ) -> list[ParsingResult]:
        """Parse images, each (H, W, 3) uint8 RGB, into results at their size.

        The networks see the full image; part evidence and the CRF run at
        ``options.crf_scale``, and the CRF's probabilities are upsampled before the argmax.
        Stages timed: "detect", "pose", "mask", "parts", "crf".
        """
        if detections is not None and len(detections) != len(images):
            raise HumanParseError(f"{len(images)} images but {len(detections)} detection sets")
        results = []
        for k, image in enumerate(images):
            results.append(self._parse_one(image, None if detections is None else detections[k], options, timer))
        return results

    def _parse_one(self, image: np.ndarray, found: Detections | None, options: ParseOptions, timer: StageTimer | None) -> ParsingResult:
        clock = StageClock(timer)
        height, width = image.shape[:2]
        if found is None:
            found = self.detect(image, options)
            clock.lap("detect")
        found = found.clipped(height, width)
        poses = self.pose(image, found.boxes)
        keep = plausible(found.scores, poses.keypoints)
        found, keypoints = found[keep], poses.keypoints[keep]
        sources = [] if poses.masks is None else [(poses.masks[keep], poses.regions[keep])]
        clock.lap("pose")
        device = self.crf.log_box_weight.device
        grid = scaled_size((height, width), options.crf_scale or self.default_crf_scale)
        fy, fx = grid[0] / height, grid[1] / width
        for masker in self.maskers:
            crops = masker(image, found.boxes)
            sources.append((crops.masks, crops.regions))
        if not sources:
            raise HumanParseError("the pose-guided parser needs a mask source: a pose network that gives masks, or a masker")
        pasted = [paste_masks(crop_masks, regions * np.array([fx, fy, fx, fy], np.float32), *grid) for crop_masks, regions in sources]
        masks = torch.from_numpy(np.mean(pasted, axis=0)).to(device)
        keep = distinct(masks, found.scores)
        found, keypoints, masks = found[keep], keypoints[keep], masks[torch.from_numpy(keep).to(device)]
        clock.lap("mask")
        small = keypoints.copy()
        small[..., 0] *= fx
        small[..., 1] *= fy
        sizes = np.maximum(found.boxes[:, 2] - found.boxes[:, 0], found.boxes[:, 3] - found.boxes[:, 1]) * max(fx, fy)
        person_q = part_evidence(small, masks, sizes)
        q = category_q(person_q, masks)
        clock.lap("parts")
        picture = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float()
        if grid != (height, width):
            picture = F.interpolate(picture[None], grid, mode="area")[0]
        boxes, scores = found.tensors(device)
        probs = q.new_zeros((len(scores) * self.labels.num_parts + 1, *grid))
        probs[0] = 1  # background where no one's mask reaches
        if self.crf_margin is None:
            window = (0, grid[0], 0, grid[1]) if len(scores) else None
        else:
            window = people_window(masks, self.crf_margin)
        if window is not None:
            # The CRF runs where the people are: outside every mask (and the margin) the
            # unaries are background's alone, and what the kernels carry in from there
            # barely moves the labels inside (bench_pose_guided_crf.py measures it).
            y0, y1, x0, x1 = window
            offset = boxes.new_tensor([x0, y0, x0, y0])
            probs[:, y0:y1, x0:x1] = self.crf(
                q[:, y0:y1, x0:x1], picture[:, y0:y1, x0:x1], boxes * boxes.new_tensor([fx, fy, fx, fy]) - offset, scores,
                iterations=options.crf_iterations, masks=masks[:, y0:y1, x0:x1], person_q=person_q[..., y0:y1, x0:x1],
            )
        confidence, labels = upsampled_max(probs, (height, width))
        # A person the CRF leaves a sliver of their mask (crowded out by the others, a mask
        # on the wrong person) is no person of its own: its scraps go to background.
        person = person_map(labels, self.labels.num_parts)  # 1-based, 0 = background
        won = torch.bincount(person.flatten(), minlength=len(scores) + 1)[1:].float()
        area = masks.flatten(1).sum(1) * (height * width) / (grid[0] * grid[1])
        crowded = torch.nonzero(won < MIN_SHARE * area).flatten() + 1
        if len(crowded):
            labels = torch.where(torch.isin(person, crowded), torch.zeros_like(labels), labels)
        result = parsing_result(confidence, labels, boxes, scores, self.labels, keypoints)
        clock.lap("crf")
        return result
