"""BodyPix 2 as a native torch module: :class:`BodyPixNet`, :class:`BodyPix`, :class:`BodyPixMaps`.

BodyPix 2 (Google, Apache-2.0; TensorFlow.js ``tfjs-models``) with a MobileNetV1 backbone
at width 0.75 and output stride 16 gives, in one bottom-up pass over the whole image, a
person/background logit, 24 body-part logits and PoseNet's multi-person pose maps (17
keypoint heatmaps, short, mid and long offsets) on a grid of 16-pixel cells. The weights are
Coral's int8 TFLite release (google-coral/project-bodypix), dequantised once to float by
``tools/convert_bodypix.py``; provenance and the agreement with the int8 original are in
docs/pretrained.md.

The network is the TFLite graph op for op, as plain ``nn.Conv2d`` layers: a 3 × 3 stride-2
convolution, 13 depthwise-separable blocks (3 × 3 depthwise, 1 × 1 pointwise; stride 2 in
blocks 2, 4 and 6; no dilation: blocks 12 and 13 run at stride 1 and dilation 1, as the
graph has them), ReLU6 after every backbone convolution (batch norm folded), and seven
1 × 1 heads without activation (six here: the two displacement heads, which the graph
concatenates, as one).

Geometry. The graph pads its 720 × 1280 input by one zero row and column (bottom and
right, after normalisation) to 721 × 1281 = 16k + 1 pixels a side; on such sizes TF's
"SAME" padding of every 3 × 3 convolution, stride 1 or 2, is one pixel on each side, so it
is plain symmetric padding. :class:`BodyPixNet` does the same for any input size: it pads
(H, W) at the bottom and right to the next 16k + 1 (:func:`grid_size`), so for every input

* the grid is ``h = ceil((H - 1) / 16) + 1`` by ``w = ceil((W - 1) / 16) + 1`` cells
  (720 × 1280 → 46 × 81, 360 × 640 → 24 × 41, 368 × 640 → 24 × 41, 369 → 24, 370 → 25);
* cell (r, c) is centred on input pixel (row 16 r, column 16 c), at (16 r + 0.5, 16 c + 0.5)
  in pixel-edge coordinates (pixel i spans [i, i + 1)): :func:`cell_centres`; the last row
  or column may lie in the padding, up to 16 pixels past the image;
* :func:`upsample_to` resamples a map bilinearly to any output size with that alignment.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, HumanParseError
from ..io.weights import load_marked
from .crops import resize_image
from .registry import NETWORKS, network_path

STRIDE = 16
FORMAT = "humanparse.bodypix"
VERSION = 1
# The uint8 input's quantisation in the TFLite graph: real = (q - 128) * (1 / 128).
INPUT_ZERO_POINT = 128.0
INPUT_SCALE = 1.0 / 128.0
STEM_CHANNELS = 24
# (in, out, stride) of MobileNetV1's depthwise-separable blocks 1..13 at width 0.75, as the
# graph has them (blocks 12 and 13 keep 384 channels and stride 1 for output stride 16).
BLOCKS: tuple[tuple[int, int, int], ...] = ((24, 48, 1), (48, 96, 2), (96, 96, 1), (96, 192, 2), (192, 192, 1), (192, 384, 2)) + ((384, 384, 1),) * 7
# The heads, in the order of BodyPixMaps' fields, and their channels.
HEADS: tuple[tuple[str, int], ...] = (("segments", 1), ("parts", 24), ("heatmaps", 17), ("short_offsets", 34), ("mid_offsets", 64), ("long_offsets", 34))
PARTS = (
    "left_face", "right_face", "left_upper_arm_front", "left_upper_arm_back", "right_upper_arm_front", "right_upper_arm_back",
    "left_lower_arm_front", "left_lower_arm_back", "right_lower_arm_front", "right_lower_arm_back", "left_hand", "right_hand",
    "torso_front", "torso_back", "left_upper_leg_front", "left_upper_leg_back", "right_upper_leg_front", "right_upper_leg_back",
    "left_lower_leg_front", "left_lower_leg_back", "right_lower_leg_front", "right_lower_leg_back", "left_foot", "right_foot",
)

# BodyPix's 24 parts grouped onto each label set's parts, in the label set's order
# (background excluded): the parts of a label, or None for a label BodyPix has no part for.
# The groups of a label set partition the 24 parts, so that grouped probabilities sum to
# BodyPix's own (../shared/bodypix/README.md groups them onto Pascal-Person-Part: head, torso,
# upper arms, lower arms with hands, upper legs, lower legs with feet). CIHP: the faces are
# its face, the torso its upper clothes (the commonest cover of a torso), each arm with its
# hand its left or right arm, the upper legs its pants, each lower leg its left or right
# leg and each foot its shoe; hat, hair, glove, sunglasses, dress, coat, socks, torso skin,
# scarf and skirt have no BodyPix part and are learned from nothing.
LABEL_GROUPS: dict[str, tuple[tuple[int, ...] | None, ...]] = {
    "pascal-person-part": ((0, 1), (12, 13), (2, 3, 4, 5), (6, 7, 8, 9, 10, 11), (14, 15, 16, 17), (18, 19, 20, 21, 22, 23)),
    "cihp": (
        None, None, None, None,  # hat, hair, glove, sunglasses
        (12, 13), None, None, None,  # upper-clothes, dress, coat, socks
        (14, 15, 16, 17), None, None, None,  # pants, torso-skin, scarf, skirt
        (0, 1), (2, 3, 6, 7, 10), (4, 5, 8, 9, 11),  # face, left-arm, right-arm
        (18, 19), (20, 21), (22,), (23,),  # left-leg, right-leg, left-shoe, right-shoe
    ),
}


class BodyPixMaps(NamedTuple):
    """BodyPix's outputs for a batch: (B, C, h, w) tensors on the grid of :func:`grid_size`,
    in the input's floating dtype (float32 normally), channels in the TFLite outputs' order.

    A NamedTuple (immutable, fields by name) so that the network traces and exports to ONNX;
    a traced module returns the plain 6-tuple, ``BodyPixMaps(*outputs)`` names it again.

    * ``segments`` (B, 1, h, w): person logit (TFLite ``float_segments``); sigmoid → P(person).
    * ``parts`` (B, 24, h, w): body-part logits (``float_part_heatmaps``) in the order of
      :data:`PARTS` (0 left face … 23 right foot); softmax over the 24 → part probabilities,
      meaningful where the cell is a person.
    * ``heatmaps`` (B, 17, h, w): keypoint logits (``float_heatmaps``), COCO-17 order (nose,
      left eye, right eye, left ear, right ear, left/right shoulder, elbow, wrist, hip, knee,
      ankle); sigmoid → keypoint score.
    * ``short_offsets`` (B, 34, h, w): ``float_short_offsets``, input pixels from the cell
      centre to each keypoint; by PoseNet's layout channels 0–16 the y offsets of keypoints
      0–16, channels 17–33 the x offsets.
    * ``mid_offsets`` (B, 64, h, w): ``float_mid_offsets``, the graph's concatenation of
      ``displacement_fwd_2`` (channels 0–31) and ``displacement_bwd_2`` (32–63): PoseNet's
      displacements along the 16 skeleton edges, parent → child then child → parent, each
      16 y then 16 x by PoseNet's layout.
    * ``long_offsets`` (B, 34, h, w): ``float_long_offsets`` (the graph's ``embedding_2``),
      from the cell to each of the person's 17 keypoints, 17 y then 17 x by PoseNet's
      layout (BodyPix uses them to assign pixels to poses).

    The y-before-x layouts are PoseNet's (tfjs-models ``getOffsetPoint``,
    ``getDisplacement``); the graph names the tensors but not their channels.
    """

    segments: torch.Tensor
    parts: torch.Tensor
    heatmaps: torch.Tensor
    short_offsets: torch.Tensor
    mid_offsets: torch.Tensor
    long_offsets: torch.Tensor


def grid_size(input_hw: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) grid of BodyPix on an (H, W) input: ``ceil((H - 1) / 16) + 1`` by
    ``ceil((W - 1) / 16) + 1`` (the input padded at the bottom and right to 16 (h - 1) + 1
    by 16 (w - 1) + 1 pixels)."""
    return tuple((side + STRIDE - 2) // STRIDE + 1 for side in input_hw)  # type: ignore[return-value]


def cell_centres(h: int, w: int, input_hw: tuple[int, int], image_hw: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The centres of an (h, w) grid's cells: ys (h,) and xs (w,) float32, pixel-edge
    coordinates. In the (H, W) network input cell (r, c) is centred on pixel (16 r, 16 c),
    at (16 r + 0.5, 16 c + 0.5); with ``image_hw`` (the size of the image that was resized to
    ``input_hw``) the centres are given in that image's pixels, scaled by image / input."""
    image_hw = image_hw or input_hw
    ys = (torch.arange(h, dtype=torch.float32) * STRIDE + 0.5) * (image_hw[0] / input_hw[0])
    xs = (torch.arange(w, dtype=torch.float32) * STRIDE + 0.5) * (image_hw[1] / input_hw[1])
    return ys, xs


def upsample_to(maps: torch.Tensor, input_hw: tuple[int, int], out_hw: tuple[int, int]) -> torch.Tensor:
    """Resample ``maps`` (B, C, h, w), BodyPix's grid on an ``input_hw`` input, to (B, C,
    H', W') for an ``out_hw`` image (the input itself, or the image that was resized to
    ``input_hw``), bilinearly (on logits: apply sigmoid/softmax after), with BodyPix's
    alignment: cell (r, c) sits on input pixel (16 r, 16 c), so output pixel (i, j) reads
    the grid at ((i + 0.5) H / H' - 0.5) / 16, ((j + 0.5) W / W' - 0.5) / 16, clamped to
    the grid's edge cells."""
    h, w = maps.shape[-2:]

    def normalised(out: int, size: int, cells: int) -> torch.Tensor:
        grid = ((torch.arange(out, dtype=torch.float64, device=maps.device) + 0.5) * (size / out) - 0.5) / STRIDE
        return (2 * grid / (cells - 1) - 1 if cells > 1 else grid * 0).to(maps.dtype)

    ys, xs = normalised(out_hw[0], input_hw[0], h), normalised(out_hw[1], input_hw[1], w)
    grid = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)  # (H', W', 2) x, y
    return F.grid_sample(maps, grid[None].expand(maps.shape[0], -1, -1, -1), mode="bilinear", padding_mode="border", align_corners=True)


class SeparableBlock(nn.Module):
    """MobileNetV1's depthwise-separable block: 3 × 3 depthwise (stride 1 or 2, padding 1),
    1 × 1 pointwise, each followed by ReLU6 (batch norm folded into the biases)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.pointwise(F.relu6(self.depthwise(x), inplace=True)), inplace=True)


class BodyPixNet(nn.Module):
    """BodyPix 2, MobileNetV1 0.75, output stride 16: ``net(x) -> BodyPixMaps``.

    ``x``: (B, 3, H, W) float RGB with values in 0..255, any H, W ≥ 1. Normalised inside as
    the TFLite graph's uint8 input quantisation implies, ``(x - 128) / 128``, then padded
    with zeros at the bottom and right to 16k + 1 pixels a side (the graph pads 720 × 1280
    by one row and column); the outputs lie on the grid of :func:`grid_size`, cell (r, c)
    centred on input pixel (16 r, 16 c) (module docstring, :func:`upsample_to`).

    Freshly built it holds random weights; :func:`load_bodypix` (or :class:`BodyPix`) loads
    the shipped ones.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(SeparableBlock(*block) for block in BLOCKS)
        self.heads = nn.ModuleDict({name: nn.Conv2d(BLOCKS[-1][1], channels, 1) for name, channels in HEADS})

    def forward(self, x: torch.Tensor) -> BodyPixMaps:
        height, width = x.shape[-2:]
        x = (x - INPUT_ZERO_POINT) * INPUT_SCALE
        # to 16k + 1 a side; (side + 14) // 16 = ceil((side - 1) / 16) with no negative floor
        # division, which ONNX's integer Div would truncate
        x = F.pad(x, (0, (width + STRIDE - 2) // STRIDE * STRIDE + 1 - width, 0, (height + STRIDE - 2) // STRIDE * STRIDE + 1 - height))
        # channels-last: oneDNN's depthwise convolutions run several times faster on it
        x = F.relu6(self.conv0(x.contiguous(memory_format=torch.channels_last)), inplace=True)
        for block in self.blocks:
            x = block(x)
        # the six 1 x 1 heads as one convolution: one pass over the features, not six
        heads = self.heads.values()
        maps = F.conv2d(x, torch.cat([head.weight for head in heads]), torch.cat([head.bias for head in heads]))
        return BodyPixMaps(*(m.contiguous() for m in maps.split([head.out_channels for head in heads], dim=1)))


def load_bodypix(weights: str | Path = "bodypix") -> tuple[BodyPixNet, dict]:
    """The shipped BodyPix (``"bodypix"``) or a checkpoint written by
    ``tools/convert_bodypix.py``, as a float32 :class:`BodyPixNet` in eval mode, and the
    checkpoint's meta (provenance). CheckpointError for anything else."""
    path = network_path(str(weights)) if str(weights) in NETWORKS else Path(weights)
    data = load_marked(path, "BodyPix checkpoint", FORMAT, VERSION)
    net = BodyPixNet()
    try:
        net.load_state_dict({key: value.float() for key, value in data["state_dict"].items()})
    except (RuntimeError, AttributeError, KeyError) as exc:
        raise CheckpointError(f"{path}: its weights do not fit BodyPixNet: {str(exc).splitlines()[0][:200]}") from None
    return net.eval(), data.get("meta", {})


class BodyPix(nn.Module):
    """BodyPix on a whole image: ``bodypix(image, size=None) -> BodyPixMaps`` (batch of one).

    ``image``: (H, W, 3) uint8 RGB. ``size``: (H', W') the network sees the image at
    (stretched, area averaging when shrinking, bilinear when enlarging); None: as it is.
    Sizes of 16k + 1 pixels a side need no padding, the first and last cells then sit on the
    first and last pixels (Coral's 720 × 1280 is padded by one). To bring a map back to the
    image:
    ``upsample_to(maps.parts, size, image.shape[:2])``; cell centres in image pixels:
    ``cell_centres(h, w, size, image.shape[:2])``.

    Args:
        weights: ``"bodypix"`` (shipped) or a converted checkpoint. device: where it runs.
    """

    def __init__(self, weights: str | Path = "bodypix", device: str | torch.device = "cpu") -> None:
        super().__init__()
        network, self.meta = load_bodypix(weights)
        self.network = network.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @torch.inference_mode()
    def forward(self, image: np.ndarray, size: tuple[int, int] | None = None) -> BodyPixMaps:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            raise HumanParseError(f"BodyPix takes an (H, W, 3) uint8 RGB image, got {getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}")
        if size is not None:
            if len(size) != 2 or not all(isinstance(side, (int, np.integer)) and side >= 1 for side in size):
                raise HumanParseError(f"BodyPix input size must be two positive whole numbers (height, width), got {size!r}")
            image = resize_image(image, int(size[1]), int(size[0]))
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None]
        return self.network(x.to(self.network.conv0.weight.dtype))

