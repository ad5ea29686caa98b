"""The default parser for real photos and video: :class:`BodyPixParser` (DESIGN §2d).

The paper's pipeline with real networks. Per image:

1. **Persons**: NanoDet's boxes, plus persons BodyPix's own PoseNet maps show where no box
   is (a clearly visible person is not lost because one detector missed them). A person
   must have person pixels, and a plausible pose or a confident box: signs, posts and a
   cloth on the grass stay out.
2. **The category-level part segmenter**: one whole-image BodyPix pass (MobileNetV1,
   stride 16) gives 24 part logits, grouped onto Pascal-Person-Part, and a person
   probability, averaged with the MediaPipe selfie model's on the whole image (one pass
   too). Persons under 120 pixels tall in BodyPix's input get a second, batched BodyPix pass
   over their crops, seen larger, whose maps replace the first's there (the demo clip's
   walkers: two more found of seven in a busy frame, and heads). Q = (1 − p, p · grouped
   parts).
3. **Keypoints**: BodyPix's PoseNet maps decoded (body-pix's multi-person decoder,
   :mod:`humanparse.pretrained.posenet`) and given to the boxes.
4. **The Instance CRF** with the mask term ψ(k, (i, j)) = M_i(k) · Q_k(j), M_i each
   person's share of the person probability: the boxes made soft (a Gaussian fall-off
   outside each box, σ a tenth of its longer side) and weighted by the detection scores,
   normalised over the persons; the global term divides Q among the persons by the same
   shares, so parts just outside a box that was cut short stay with their person; the
   dense kernels settle overlaps and boundaries from the image.
5. **Readout** by marginals: a pixel is a person's where the CRF's background probability
   is below a half; its part is the part with the most probability summed over the
   persons, its person the person with the most probability summed over the parts. (The
   argmax over the D·P + 1 labels hands background every pixel whose person probability is
   split among parts and persons: 6 points of coarse mIoU on the CIHP photos.)

Every stage costs the same whatever the number of persons, except the CRF (L = 6·D + 1
labels) and the readout. It implements :class:`~humanparse.modeling.parser.Parser`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import HumanParseError
from ..labels import MIN_KEYPOINT_SCORE, PASCAL_PERSON_PART
from ..ops import keypoint_boxes, scaled_size
from ..pretrained.bodypix import LABEL_GROUPS, BodyPix, upsample_to
from ..pretrained.crops import paste_masks
from ..pretrained.nanodet import NanoDet
from ..pretrained.posenet import DecodedPoses, assign_poses_to_boxes, decode_poses
from ..pretrained.selfie import SelfieMasks
from ..structures import Detections, ParsingResult
from .crf import InstanceCRF
from .instances import parsing_result, upsampled_max
from .parser import ParseOptions, StageClock, StageTimer, detect_persons

# BodyPix's 24 parts grouped onto Pascal-Person-Part's six (../shared/bodypix/README.md):
# head, torso, upper arms, lower arms (hands included), upper legs, lower legs (feet).
PART_GROUPS: tuple[tuple[int, ...], ...] = LABEL_GROUPS[PASCAL_PERSON_PART.name]  # type: ignore[assignment]
# The longer side of the image BodyPix sees. On the 23 CIHP photos BodyPix alone scores
# coarse mIoU 68.5 at 416, 68.6 at 513, 68.1 at 640, 63.6 at 960, 57.5 at 1280 (people
# filling the frame grow past what it was trained on); at 640 the demo clip's 70-100 px
# walkers still get their parts (and small persons get a second pass, below).
SEGMENT_SIDE = 640
# The CRF's weights, untrained: kernels (bilateral, spatial) 1 and 1; parts of one person
# and two persons penalised 0.1, a person beside background 1, so that persons side together
# against background. On the CIHP photos every setting tried (kernel weights 0.3-5, θα 20-80,
# θβ 8-13, the CRF at full scale) scored within a point of these (docs/pretrained.md).
BILATERAL_WEIGHT = 1.0
SPATIAL_WEIGHT = 1.0
SAME_PERSON_PENALTY = 0.1
OTHER_PERSON_PENALTY = 0.1
BACKGROUND_PENALTY = 1.0
# The mask term and the global term weigh the same: outside every box a pixel is a
# person's where its person probability passes 2/3.
BOX_WEIGHT = 1.0
GLOBAL_WEIGHT = 1.0
# A box's soft edge: σ of the fall-off outside it, over its longer side.
BOX_SOFTNESS = 0.1
# The selfie model sees the whole image at 256 px a side: a person under SELFIE_MIN_HEIGHT of
# those pixels is invisible to it (the demo clip's pedestrians, 25 px there, score 0), one over
# SELFIE_FULL_HEIGHT it segments better than BodyPix (the CIHP photos' people). Its weight in
# the average grows from 0 to SELFIE_WEIGHT between the two, by each person's box height.
SELFIE_MIN_HEIGHT = 32
SELFIE_FULL_HEIGHT = 96
SELFIE_WEIGHT = 0.5
SELFIE_SIZE = 256
# A second, batched BodyPix pass over each small person: a person under SMALL_HEIGHT pixels
# tall in BodyPix's input is a few cells (the demo clip's 70-px walkers are 4-5, their heads
# half a cell); their crop (CROP_MARGIN times the box, CROP_SIZE = 16k + 1 pixels, tall) is
# seen at a scale where the person is about two thirds of its height, and its maps replace
# the whole-image pass's over the crop. At most MAX_CROPS persons, the smallest first.
SMALL_HEIGHT = 120
CROP_MARGIN = 1.5
CROP_SIZE = (161, 97)
MAX_CROPS = 16
# The CRF's window reaches this many pixels of its grid beyond the people.
CRF_MARGIN = 16
# A person of the detector's stays with this share of their box holding person pixels
# (probability above a half) and either a score of 0.5 or a pose of MIN_POSE_KEYPOINTS.
MIN_PERSON_PIXELS = 0.1
MIN_POSE_KEYPOINTS = 5
# A person from the pose maps alone: pose score at least this, MIN_POSE_KEYPOINTS
# confident keypoints, and a box holding MIN_PERSON_PIXELS; scored as the pose.
MIN_POSE_SCORE = 0.3
# The least share of their soft mask a person must win in the CRF to stay a person.
MIN_SHARE = 0.2


def part_probabilities(segments: Tensor, parts: Tensor, selfie: Tensor | None = None, selfie_weight: Tensor | float = 0.5) -> Tensor:
    """Q for the Instance CRF from BodyPix's logits at the CRF's grid.

    Args:
        segments: (H, W) person logit; parts: (24, H, W) part logits (BodyPix's order).
        selfie: (H, W) another person probability in [0, 1] to average with BodyPix's
            (None: BodyPix's alone).
        selfie_weight: the other probability's weight in the average, a number or per
            pixel (H, W), in [0, 1].
    Returns:
        (7, H, W) float: background 1 − p, then p × the grouped part probabilities, with
        p the person probability; sums to one over the channels.
    """
    person = torch.sigmoid(segments)
    if selfie is not None:
        person = person + selfie_weight * (selfie - person)
    fine = torch.softmax(parts, 0)
    grouped = torch.stack([fine[list(group)].sum(0) for group in PART_GROUPS])
    return torch.cat(((1 - person)[None], person[None] * grouped))


def person_shares(boxes: Tensor, scores: Tensor, height: int, width: int, softness: float = BOX_SOFTNESS) -> tuple[Tensor, Tensor]:
    """Each person's share of every pixel, from soft boxes.

    A box reaches g_i(k) = exp(−d² / 2σ²) at a pixel whose centre lies d pixels outside it
    (1 inside), σ = ``softness`` × the box's longer side.

    Args:
        boxes: (D, 4) float x1 y1 x2 y2, pixels of the (height, width) grid; scores: (D,).
    Returns:
        shares (D, H, W): s_i g_i / Σ s g, the persons' shares, summing to one everywhere
        (D ≥ 1); reach (H, W): max_i g_i, how far any box reaches the pixel.
    """
    ys = torch.arange(height, dtype=boxes.dtype, device=boxes.device) + 0.5
    xs = torch.arange(width, dtype=boxes.dtype, device=boxes.device) + 0.5
    dx = torch.maximum(boxes[:, 0:1] - xs, xs - boxes[:, 2:3]).clamp_min(0)  # (D, W)
    dy = torch.maximum(boxes[:, 1:2] - ys, ys - boxes[:, 3:4]).clamp_min(0)  # (D, H)
    sigma = softness * (boxes[:, 2:] - boxes[:, :2]).amax(1).clamp_min(1.0)
    log_reach = -(dy[:, :, None] ** 2 + dx[:, None, :] ** 2) / (2 * sigma[:, None, None] ** 2)
    shares = torch.softmax(log_reach + scores.clamp_min(1e-6).log()[:, None, None], 0)
    return shares, log_reach.amax(0).exp()


def instance_crf(iterations: int = 5) -> InstanceCRF:
    """The Instance CRF with this parser's untrained weights (the constants above)."""
    return InstanceCRF(
        PASCAL_PERSON_PART.num_parts, iterations, box_weight=BOX_WEIGHT, global_weight=GLOBAL_WEIGHT,
        bilateral_weight=BILATERAL_WEIGHT, spatial_weight=SPATIAL_WEIGHT, same_person_penalty=SAME_PERSON_PENALTY,
        other_person_penalty=OTHER_PERSON_PENALTY, background_penalty=BACKGROUND_PENALTY,
    )


def associate(crf: InstanceCRF, q: Tensor, image: Tensor, boxes: Tensor, scores: Tensor, iterations: int | None = None) -> tuple[Tensor, Tensor]:
    """Parts to persons: the Instance CRF with the mask term of the persons' shares.

    Args:
        q: (P+1, H, W) part probabilities; image: (3, H, W) float RGB 0..255; boxes: (D, 4)
            float x1 y1 x2 y2 and scores (D,), all on the same (H, W) grid.
    Returns:
        probs (P·D+1, H, W), the CRF's output, and each person's soft mask (D, H, W): their
        share times the reach of the boxes (see :func:`person_shares`).
    """
    if not len(scores):
        return q.new_ones((1, *q.shape[1:])), q.new_zeros((0, *q.shape[1:]))
    shares, reach = person_shares(boxes, scores, *q.shape[1:])
    masks = shares * reach[None]
    # The scores are in the shares already: the mask term takes them as 1.
    probs = crf(q, image, boxes, torch.ones_like(scores), iterations=iterations, masks=masks, global_share=shares)
    return probs, masks


def marginal_readout(probs: Tensor, num_parts: int, size: tuple[int, int], chunk: int = 8) -> tuple[Tensor, Tensor]:
    """Labels from the CRF's (P·D + 1, h, w) probabilities by marginals, at ``size``.

    Background where its probability is at least a half; elsewhere part j* with the most
    probability summed over the persons and person i* with the most summed over the parts.
    The marginals are upsampled bilinearly to ``size`` (H, W) a few channels at a time.

    Returns:
        confidence (H, W) float: the probability of part j* (summed over the persons), or of
        background; labels (H, W) long: Instance CRF labels (i* − 1)·P + j*, 0 background.
    """
    p = num_parts
    d = (probs.shape[0] - 1) // p
    h, w = probs.shape[1:]
    by_person = probs[1:].reshape(d, p, h, w)

    def up(x: Tensor) -> Tensor:
        return x if (h, w) == tuple(size) else F.interpolate(x[None], size, mode="bilinear", align_corners=False)[0]

    background = up(probs[:1])[0]
    part_conf, part = up(by_person.sum(0)).max(0)
    _, person = upsampled_max(by_person.sum(1), size, chunk)
    is_person = background < 0.5
    labels = torch.where(is_person, person * p + part + 1, torch.zeros_like(part))
    return torch.where(is_person, part_conf, background), labels


class BodyPixParser(nn.Module):
    """BodyPix parts, NanoDet and PoseNet persons, the Instance CRF; Pascal-Person-Part labels.

    Args:
        detector: the person detector (default: NanoDet), called as ``detector(image,
            nms_iou=...)`` and filtered by the options' ``det_threshold`` and ``max_people``.
        segmenter: BodyPix (default: the shipped one).
        selfie: a whole-image person mask averaged with BodyPix's: True the shipped selfie
            model, False none (BodyPix's alone), or a masker module (``masker(image, boxes)
            -> Poses`` with masks, as :class:`~humanparse.pretrained.selfie.SelfieMasks`).
        crf: the Instance CRF (default: 5 iterations, the weights above).
        segment_side: the longer side of the image BodyPix sees, in pixels.
        crf_margin: the CRF runs on the box around the people widened by this many pixels
            of its grid (None: on the whole frame).
    """

    labels = PASCAL_PERSON_PART
    finds_people = True
    follows_people = False
    default_crf_scale = 0.5
    reads = frozenset({"det_threshold", "max_people", "nms_iou", "input_scale", "crf_scale", "crf_iterations"})

    def __init__(
        self,
        detector: nn.Module | None = None,
        segmenter: BodyPix | None = None,
        selfie: nn.Module | bool = True,
        crf: InstanceCRF | None = None,
        segment_side: int = SEGMENT_SIDE,
        crf_margin: int | None = CRF_MARGIN,
    ) -> None:
        super().__init__()
        if segment_side < 32:
            raise HumanParseError(f"segment_side must be at least 32 pixels, got {segment_side}")
        self.detector = detector if detector is not None else NanoDet(threshold=0.05, max_people=100)
        self.segmenter = segmenter if segmenter is not None else BodyPix()
        self.selfie = SelfieMasks(crop_scale=1.0) if selfie is True else selfie or None
        self.crf = crf if crf is not None else instance_crf()
        self.segment_side = segment_side
        self.crf_margin = crf_margin

    def detect(self, image: np.ndarray, options: ParseOptions = ParseOptions()) -> Detections:
        """The detector's persons in ``image`` (H, W, 3) uint8 RGB, by the options'
        ``det_threshold`` and ``max_people``, before the segmentation confirms them."""
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

        BodyPix sees each image at ``segment_side`` × ``options.input_scale`` on its longer
        side; Q, the persons'
        shares and the CRF live on the image scaled by ``options.crf_scale`` (default 0.5),
        and the CRF's marginals are upsampled before the readout. ``detections`` replace the
        detector's boxes (persons from the pose maps are still added). Stages timed:
        "detect", "segment", "pose", "small" (the second pass), "parts", "crf".
        """
        if detections is not None and len(detections) != len(images):
            raise HumanParseError(f"{len(images)} images but {len(detections)} detection sets")
        return [self._parse_one(image, None if detections is None else detections[k], options, timer) for k, image in enumerate(images)]

    def _parse_one(self, image: np.ndarray, found: Detections | None, options: ParseOptions, timer: StageTimer | None) -> ParsingResult:
        clock = StageClock(timer)
        height, width = image.shape[:2]
        if found is None:
            found = self.detect(image, options)
            clock.lap("detect")
        found = found.clipped(height, width)

        device = self.crf.log_box_weight.device
        scale = self.segment_side * options.input_scale / max(height, width)
        size = scaled_size((height, width), scale)
        maps = self.segmenter(image, size)
        grid = scaled_size((height, width), options.crf_scale or self.default_crf_scale)
        fx, fy = grid[1] / width, grid[0] / height
        selfie = None
        if self.selfie is not None:
            whole = self.selfie(image, np.array([[0, 0, width, height]], np.float32))
            selfie = torch.from_numpy(paste_masks(whole.masks, whole.regions * np.array([fx, fy, fx, fy], np.float32), *grid)[0]).to(device)
        clock.lap("segment")

        poses = decode_poses(maps.heatmaps[0].float().cpu().numpy(), maps.short_offsets[0].float().cpu().numpy(), maps.mid_offsets[0].float().cpu().numpy())
        to_image = np.array([width / size[1], height / size[0]], np.float32)
        pose_points = poses.keypoints.copy()
        pose_points[..., :2] = (pose_points[..., :2] + 0.5) * to_image  # input pixel centres -> image pixel edges
        clock.lap("pose")

        up_segments = upsample_to(maps.segments, size, grid)[0].to(device)
        up_parts = upsample_to(maps.parts, size, grid)[0].to(device)
        crops = small_person_crops(found.top(options.det_threshold).boxes, (height, width), scale)
        if len(crops):
            crop_segments, crop_parts = crop_maps(self.segmenter.network, image, crops)
            up_segments = paste_crop_maps(up_segments, crop_segments, crops, (height, width))
            up_parts = paste_crop_maps(up_parts, crop_parts, crops, (height, width))
            clock.lap("small")
        up_segments = up_segments[0]
        found, keypoints = find_persons(found, DecodedPoses(pose_points, poses.scores), torch.sigmoid(up_segments), (height, width))
        boxes, scores = found.tensors(device)
        small_boxes = boxes * boxes.new_tensor([fx, fy, fx, fy])
        shares, reach = person_shares(small_boxes, scores, *grid) if len(scores) else (None, None)
        weight: Tensor | float = 0.0
        if selfie is not None and shares is not None:
            heights = (boxes[:, 3] - boxes[:, 1]) * (SELFIE_SIZE / max(height, width))
            weights = SELFIE_WEIGHT * ((heights - SELFIE_MIN_HEIGHT) / (SELFIE_FULL_HEIGHT - SELFIE_MIN_HEIGHT)).clamp(0, 1)
            weight = (shares * weights[:, None, None]).sum(0)
        q = part_probabilities(up_segments, up_parts, selfie, weight)
        clock.lap("parts")

        probs = q.new_zeros((len(scores) * self.labels.num_parts + 1, *grid))
        probs[0] = 1
        area = q.new_zeros(len(scores))
        if shares is not None and reach is not None:
            masks = shares * reach[None]
            area = (masks * (1 - q[0])).flatten(1).sum(1)
            y0, y1, x0, x1 = (0, grid[0], 0, grid[1]) if self.crf_margin is None else _window(masks, small_boxes, q[0], self.crf_margin, grid)
            picture = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float()
            picture = F.interpolate(picture[None], grid, mode="area")[0] if grid != (height, width) else picture
            offset = small_boxes.new_tensor([x0, y0, x0, y0])
            probs[:, y0:y1, x0:x1], _ = associate(self.crf, q[:, y0:y1, x0:x1], picture[:, y0:y1, x0:x1], small_boxes - offset, scores, options.crf_iterations)
        confidence, labels = marginal_readout(probs, self.labels.num_parts, (height, width))
        # A person the CRF leaves a sliver of their soft mask (crowded out by the others) is
        # no person of its own: its scraps go to background.
        p = self.labels.num_parts
        person = torch.where(labels > 0, (labels - 1) // p + 1, 0)
        won = torch.bincount(person.flatten(), minlength=len(scores) + 1)[1:].float() * (grid[0] * grid[1]) / (height * width)
        crowded = torch.nonzero(won < MIN_SHARE * area).flatten() + 1
        if len(crowded):
            labels = torch.where(torch.isin(person, crowded), torch.zeros_like(labels), labels)
        result = parsing_result(confidence, labels, boxes, scores, self.labels, keypoints)
        clock.lap("crf")
        return result


def small_person_crops(boxes: np.ndarray, image_hw: tuple[int, int], input_scale: float) -> np.ndarray:
    """The crops of the second pass: (C, 4) float32 x1 y1 x2 y2 image pixels, each a
    CROP_SIZE-shaped region CROP_MARGIN times the height of a box (D, 4) whose person is
    under SMALL_HEIGHT pixels tall in BodyPix's input (the image scaled by ``input_scale``),
    centred on the box; the smallest MAX_CROPS."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    heights = boxes[:, 3] - boxes[:, 1]
    small = np.flatnonzero((heights * input_scale < SMALL_HEIGHT) & (heights >= 4))
    small = small[np.argsort(heights[small], kind="stable")][:MAX_CROPS]
    tall = CROP_MARGIN * heights[small]
    wide = tall * CROP_SIZE[1] / CROP_SIZE[0]
    cx, cy = (boxes[small, 0] + boxes[small, 2]) / 2, (boxes[small, 1] + boxes[small, 3]) / 2
    return np.stack([cx - wide / 2, cy - tall / 2, cx + wide / 2, cy + tall / 2], 1).astype(np.float32)


def crop_maps(network: nn.Module, image: np.ndarray, crops: np.ndarray) -> tuple[Tensor, Tensor]:
    """BodyPix's person and part logits over ``crops`` (C, 4) of ``image`` (H, W, 3) uint8
    RGB, in one batch: each crop warped (bilinear, edges replicated) to CROP_SIZE.
    Returns segments (C, 1, h, w) and parts (C, 24, h, w) on the crops' grid."""
    height, width = CROP_SIZE
    batch = np.empty((len(crops), height, width, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(crops):
        sx, sy = width / (x2 - x1), height / (y2 - y1)
        # pixel-edge coordinates: crop pixel u spans (x - x1) * sx in [u, u + 1)
        matrix = np.array([[sx, 0, sx * (0.5 - x1) - 0.5], [0, sy, sy * (0.5 - y1) - 0.5]], np.float64)
        batch[k] = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    device = next(network.parameters()).device
    maps = network(torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float())
    return maps.segments, maps.parts


def paste_crop_maps(full: Tensor, crop: Tensor, crops: np.ndarray, image_hw: tuple[int, int]) -> Tensor:
    """Replace ``full`` (C, h, w), logits upsampled to a grid covering the (H, W) image, with
    ``crop`` (N, C, h', w'), the crops' logits on their BodyPix grids, inside each crop's
    region (later crops over earlier ones); bilinear, with BodyPix's alignment."""
    grid_h, grid_w = full.shape[-2:]
    height, width = image_hw
    out = full.clone()
    cells_h, cells_w = crop.shape[-2:]
    for k, (x1, y1, x2, y2) in enumerate(crops):
        r0, r1 = max(0, int(np.floor(y1 * grid_h / height))), min(grid_h, int(np.ceil(y2 * grid_h / height)))
        c0, c1 = max(0, int(np.floor(x1 * grid_w / width))), min(grid_w, int(np.ceil(x2 * grid_w / width)))
        if r1 <= r0 or c1 <= c0:
            continue
        ys = (torch.arange(r0, r1, dtype=torch.float64) + 0.5) * height / grid_h  # image pixel-edge coordinates
        xs = (torch.arange(c0, c1, dtype=torch.float64) + 0.5) * width / grid_w
        us = ((ys - y1) * CROP_SIZE[0] / (y2 - y1) - 0.5) / 16  # crop cells (cell r on crop pixel 16 r)
        vs = ((xs - x1) * CROP_SIZE[1] / (x2 - x1) - 0.5) / 16
        grid = torch.stack(torch.broadcast_tensors(2 * vs[None, :] / (cells_w - 1) - 1, 2 * us[:, None] / (cells_h - 1) - 1), -1)
        sampled = F.grid_sample(crop[k : k + 1], grid[None].to(crop), mode="bilinear", padding_mode="border", align_corners=True)[0]
        out[:, r0:r1, c0:c1] = sampled.to(out)
    return out


def find_persons(found: Detections, poses: DecodedPoses, person: Tensor, image_hw: tuple[int, int]) -> tuple[Detections, np.ndarray]:
    """The persons to parse: the detector's that the segmentation confirms, plus persons
    from the pose maps where no box is.

    A detection stays if MIN_PERSON_PIXELS of its box are person pixels (probability above
    a half) and it scores 0.5 or has a pose of MIN_POSE_KEYPOINTS confident keypoints. A
    decoded pose no box took becomes a person if it scores MIN_POSE_SCORE, has
    MIN_POSE_KEYPOINTS confident keypoints and the box they span
    (:func:`~humanparse.ops.keypoint_boxes`) holds MIN_PERSON_PIXELS person pixels.

    Args:
        found: the detector's persons, boxes in image pixels.
        poses: the decoded poses, keypoints in image pixels.
        person: (h, w) person probability on a grid covering the (H, W) image.
        image_hw: (H, W).
    Returns:
        The persons (the kept detections first, in their order, then the poses' with the
        pose scores) and their keypoints (D, 17, 3) float32, image pixels (zeros where a
        detection got no pose).
    """
    height, width = image_hw
    assigned = assign_poses_to_boxes(found.boxes, poses)
    # On the host in one copy (the grid is small): a mean per box on the GPU would wait for
    # the device once a box.
    is_person = (person > 0.5).cpu().numpy()
    fy, fx = person.shape[0] / height, person.shape[1] / width

    def person_pixels(box: np.ndarray) -> float:
        x1, y1 = max(0, int(box[0] * fx)), max(0, int(box[1] * fy))
        x2, y2 = max(x1 + 1, int(np.ceil(box[2] * fx))), max(y1 + 1, int(np.ceil(box[3] * fy)))
        region = is_person[y1:y2, x1:x2]
        return float(np.count_nonzero(region)) / region.size if region.size else 0.0

    seen = (assigned.keypoints[..., 2] >= MIN_KEYPOINT_SCORE).sum(1)
    pixels = np.array([person_pixels(box) for box in found.boxes], np.float64)
    keep = (pixels >= MIN_PERSON_PIXELS) & ((found.scores >= 0.5) | (seen >= MIN_POSE_KEYPOINTS))
    boxes, scores, points = [found.boxes[keep]], [found.scores[keep]], [assigned.keypoints[keep]]
    extra = assigned.unmatched[poses.scores[assigned.unmatched] >= MIN_POSE_SCORE]
    if len(extra):
        pose_boxes, placed = keypoint_boxes(poses.keypoints[extra])
        enough = (poses.keypoints[extra, :, 2] >= MIN_KEYPOINT_SCORE).sum(1) >= MIN_POSE_KEYPOINTS
        for k in np.flatnonzero(placed & enough):
            box = np.clip(pose_boxes[k], 0, [width, height, width, height])
            if box[2] - box[0] >= 1 and box[3] - box[1] >= 1 and person_pixels(box) >= MIN_PERSON_PIXELS:
                boxes.append(box[None])
                scores.append(poses.scores[extra[k : k + 1]])
                points.append(poses.keypoints[extra[k : k + 1]])
    return Detections(np.concatenate(boxes), np.concatenate(scores)), np.concatenate(points).astype(np.float32)


def _window(masks: Tensor, boxes: Tensor, background: Tensor, margin: int, grid: tuple[int, int]) -> tuple[int, int, int, int]:
    """Rows and columns (y0, y1, x0, x1), end exclusive, of the box around the people: the
    boxes and every pixel where someone's soft mask meets person probability, widened by
    ``margin`` and cut to the grid. Outside it the unaries are background's alone (the
    kernels carry in too little from there to move a label inside)."""
    anywhere = ((masks > 0.01).any(0)) & (background < 0.5)

    def span(present: Tensor) -> tuple[Tensor, Tensor]:  # first index, last + 1; (n, 0) for none
        index = torch.arange(len(present), device=present.device, dtype=boxes.dtype)
        return torch.where(present, index, len(present)).min(), torch.where(present, index + 1, 0).max()

    (r0, r1), (c0, c1) = span(anywhere.any(1)), span(anywhere.any(0))
    # One copy to the host (a value at a time, each would wait for the GPU).
    y0, x0, y1, x1, r0, r1, c0, c1 = torch.stack((boxes[:, 1].min(), boxes[:, 0].min(), boxes[:, 3].max(), boxes[:, 2].max(), r0, r1, c0, c1)).tolist()
    if r0 < r1:
        y0, y1, x0, x1 = min(y0, r0), max(y1, r1), min(x0, c0), max(x1, c1)
    return (max(0, int(y0) - margin), min(grid[0], int(np.ceil(y1)) + margin), max(0, int(x0) - margin), min(grid[1], int(np.ceil(x1)) + margin))


class BodyPixAloneParser(nn.Module):
    """BodyPix's own segmentation and nothing else: the baseline the default parser is
    measured against (DESIGN §4), category-level only. Per image: resized so that its longer
    side is ``side`` (aspect kept), one BodyPix pass; its person logit and 24 part logits
    resampled to the image's size (:func:`~humanparse.pretrained.bodypix.upsample_to`,
    bilinear on logits); a pixel is a person's where sigmoid(person logit) > 0.5, and then
    the part of the largest logit, grouped onto Pascal-Person-Part (:data:`PART_GROUPS`).
    It finds no persons: results hold parts only (no ids, no instances)."""

    labels = PASCAL_PERSON_PART
    finds_people = True  # it needs no detections; it finds none (detect() is empty)
    follows_people = False
    default_crf_scale = 1.0
    reads: frozenset[str] = frozenset()

    def __init__(self, side: int = SEGMENT_SIDE, bodypix: BodyPix | None = None) -> None:
        super().__init__()
        if side < 1:
            raise HumanParseError(f"BodyPix's input side must be at least 1 pixel, got {side}")
        self.side = side
        self.bodypix = bodypix or BodyPix()
        to_pascal = np.zeros(sum(map(len, PART_GROUPS)), np.uint8)
        for label, group in enumerate(PART_GROUPS, start=1):
            to_pascal[list(group)] = label
        self.to_pascal = to_pascal

    def detect(self, image: np.ndarray, options: ParseOptions = ParseOptions()) -> Detections:
        return Detections.empty()

    @torch.inference_mode()
    def parse(
        self, images: Sequence[np.ndarray], detections: Sequence[Detections] | None = None, options: ParseOptions = ParseOptions(), timer: StageTimer | None = None
    ) -> list[ParsingResult]:
        results = []
        for image in images:
            height, width = image.shape[:2]
            size = scaled_size((height, width), self.side / max(height, width))
            maps = self.bodypix(image, size=size)
            person = upsample_to(maps.segments, size, (height, width))[0, 0] > 0  # sigmoid > 0.5
            part = upsample_to(maps.parts, size, (height, width))[0].argmax(0)
            parts = np.where(person.cpu().numpy(), self.to_pascal[part.cpu().numpy()], 0).astype(np.uint8)
            results.append(ParsingResult(parts, np.zeros((height, width), np.int32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32),
                                         np.zeros(0, np.float32), (), self.labels))
        return results
