"""BodyPix's native torch port gives what Coral's int8 TFLite model gives (outputs recorded once
by tools/bodypix_reference.py with LiteRT), on any input size, with the documented geometry."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from humanparse.errors import CheckpointError, HumanParseError
from humanparse.io.images import read_image
from humanparse.pretrained import BodyPix, BodyPixNet
from humanparse.pretrained.bodypix import HEADS, PARTS, BodyPixMaps, cell_centres, grid_size, load_bodypix, upsample_to
from humanparse.pretrained.crops import resize_image
from humanparse.pretrained.registry import NETWORKS, network_path, network_spec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDING = np.load(FIXTURES / "pretrained" / "bodypix.npz")
PHOTOS = ("astronaut", "grace_hopper", "vtest_frame0", "camera")
PER_AXIS_SHA256 = "6abaed4ad9080cafd327d0f03fd23f0c46d4409b75b6e23abde9a35582067696"


@pytest.fixture(scope="module")
def net() -> BodyPixNet:
    return load_bodypix()[0]


@pytest.fixture(scope="module")
def ported(net) -> dict[str, BodyPixMaps]:
    """The port's maps on each recorded photo, letterboxed into the TFLite model's 1280 x 720
    input as the recording tool did (scaled to fit, centred on black)."""
    height, width = (int(v) for v in RECORDING["input_hw"])
    maps = {}
    for photo in PHOTOS:
        top, left, h, w = (int(v) for v in RECORDING[f"{photo}/placement"])
        x = np.zeros((height, width, 3), np.uint8)
        x[top : top + h, left : left + w] = resize_image(read_image(FIXTURES / "photos" / f"{photo}.jpg"), w, h)
        # the same input as recorded (a different JPEG decoder would show here first)
        np.testing.assert_allclose(x.reshape(-1, 3).mean(0), RECORDING[f"{photo}/input_mean"], atol=0.5)
        with torch.inference_mode():
            maps[photo] = net(torch.from_numpy(x).permute(2, 0, 1)[None].float())
    return maps


@pytest.mark.parametrize("photo", PHOTOS)
def test_person_logits_match_the_int8_tflite_model(ported, photo):
    # Measured: mean |logit difference| 0.091, 0.096, 0.068, 0.259 and person/background
    # agreement 99.19, 99.28, 99.97, 99.79 % (astronaut, grace_hopper, vtest_frame0, camera).
    ours = ported[photo].segments[0, 0].numpy()
    theirs = RECORDING[f"{photo}/segments"].astype(np.float32)
    assert ours.shape == theirs.shape == (81, 46)
    assert np.abs(ours - theirs).mean() <= 0.35
    assert ((ours > 0) == (theirs > 0)).mean() >= 0.985


@pytest.mark.parametrize("photo", PHOTOS)
def test_part_labels_match_where_the_tflite_model_sees_a_person(ported, photo):
    # Measured: 97.92, 98.04, 100, 96.77 % of person cells; 100 % of those whose best part
    # beats the second by more than 0.5 (the int8 model's own rounding decides the rest).
    person = RECORDING[f"{photo}/segments"].astype(np.float32) > 0
    same = ported[photo].parts[0].argmax(0).numpy() == RECORDING[f"{photo}/parts"]
    assert person.sum() > 0
    assert same[person].mean() >= 0.95
    clear = person & (RECORDING[f"{photo}/parts_margin"].astype(np.float32) > 0.5)
    assert same[clear].mean() >= 0.99


def test_part_logits_match_the_int8_tflite_model(ported):
    # Measured on the astronaut: mean |difference| 0.077 over all 24 x 81 x 46 logits.
    theirs = RECORDING["astronaut/part_logits"].astype(np.float32)
    assert np.abs(ported["astronaut"].parts[0].numpy() - theirs).mean() <= 0.15


@pytest.mark.parametrize("photo", PHOTOS)
def test_confident_keypoints_peak_on_the_same_cell(ported, photo):
    # Every keypoint whose heatmap peaks above logit 2 (score 0.88) peaks on the same cell or
    # a neighbour (measured: all on the same cell but one, one cell away; below that two
    # maxima of similar height can swap).
    heatmaps = ported[photo].heatmaps[0].numpy()
    peaks, logits = RECORDING[f"{photo}/peaks"], RECORDING[f"{photo}/peak_logits"]
    confident = np.flatnonzero(logits >= 2.0)
    assert len(confident) >= 3
    for k in confident:
        row, col = np.unravel_index(heatmaps[k].argmax(), heatmaps[k].shape)
        assert max(abs(row - peaks[k, 0]), abs(col - peaks[k, 1])) <= 1, k
        assert abs(heatmaps[k].max() - logits[k]) <= 1.5, k


@pytest.mark.parametrize("photo", PHOTOS)
def test_offsets_at_the_keypoint_peaks_match(ported, photo):
    # Short, mid and long offsets (input pixels) at the 17 recorded peaks. Measured mean
    # |difference|: short 0.34-0.61, mid 0.40-0.69, long 0.35-0.90 pixels.
    maps = ported[photo]
    peaks = RECORDING[f"{photo}/peaks"]
    ours = torch.cat([maps.short_offsets, maps.mid_offsets, maps.long_offsets], dim=1)[0].numpy()[:, peaks[:, 0], peaks[:, 1]].T
    difference = np.abs(ours - RECORDING[f"{photo}/offsets_at_peaks"].astype(np.float32))
    for name, columns in (("short", slice(0, 34)), ("mid", slice(34, 98)), ("long", slice(98, 132))):
        assert difference[:, columns].mean() <= 1.25, name


@pytest.mark.parametrize("size", [(1, 1), (15, 17), (16, 16), (17, 33), (100, 150), (368, 640)])
def test_any_input_size_gives_the_documented_grid(net, size):
    x = torch.rand(2, 3, *size) * 255
    with torch.inference_mode():
        maps = net(x)
    h, w = grid_size(size)
    assert (h, w) == (-(-(size[0] - 1) // 16) + 1, -(-(size[1] - 1) // 16) + 1)
    assert [tuple(m.shape) for m in maps] == [(2, channels, h, w) for _, channels in HEADS]
    assert all(m.dtype == torch.float32 and m.is_contiguous() and torch.isfinite(m).all() for m in maps)


def test_an_input_is_padded_with_mid_grey_at_the_bottom_and_right(net):
    # 368 x 640 -> 369 x 641 (16 k + 1): the graph's own one row and column of zeros after
    # normalisation, i.e. pixel value 128.
    x = torch.rand(1, 3, 368, 640) * 255
    with torch.inference_mode():
        plain, padded = net(x), net(F.pad(x, (0, 1, 0, 1), value=128.0))
    for a, b in zip(plain, padded):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_cell_centres_lie_on_every_sixteenth_pixel_from_the_first():
    """A mirror-symmetric network (each 3 x 3 filter averaged with its mirror image) sees a
    mirrored 16 k + 1 input on the mirrored grid only if cell c is centred on pixel 16 c:
    the padding is then symmetric, with no half-cell shift."""
    net = load_bodypix()[0]
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3):
                module.weight.copy_((module.weight + module.weight.flip(-1)) / 2)
    x = torch.rand(1, 3, 65, 16 * 7 + 1) * 255
    with torch.inference_mode():
        maps, mirrored = net(x), net(x.flip(-1))
    assert maps.segments.std() > 0.1  # not a constant map
    for a, b in zip(maps, mirrored):
        torch.testing.assert_close(a.flip(-1), b, rtol=1e-4, atol=1e-3)
    ys, xs = cell_centres(5, 8, (65, 113))
    assert ys.tolist() == [0.5, 16.5, 32.5, 48.5, 64.5] and xs[-1] == 112.5
    ys, xs = cell_centres(5, 8, (65, 113), image_hw=(130, 226))
    assert ys.tolist() == [1.0, 33.0, 65.0, 97.0, 129.0] and xs[1] == 33.0


@pytest.mark.parametrize(("input_hw", "out_hw"), [((65, 113), (65, 113)), ((720, 1280), (360, 640)), ((368, 640), (1080, 1920)), ((17, 17), (5, 3))])
def test_upsampled_maps_put_each_cell_on_its_input_pixel(input_hw, out_hw):
    # A map whose value is each cell's input row (16 r) and column (16 c): bilinear
    # resampling of a ramp is exact, so each output pixel reads its own input coordinate.
    h, w = grid_size(input_hw)
    rows = (torch.arange(h, dtype=torch.float64) * 16)[:, None].expand(h, w)
    cols = (torch.arange(w, dtype=torch.float64) * 16)[None, :].expand(h, w)
    out = upsample_to(torch.stack([rows, cols])[None], input_hw, out_hw)
    assert out.shape == (1, 2, *out_hw)
    expected_rows = ((torch.arange(out_hw[0], dtype=torch.float64) + 0.5) * input_hw[0] / out_hw[0] - 0.5).clamp(0, 16 * (h - 1))
    expected_cols = ((torch.arange(out_hw[1], dtype=torch.float64) + 0.5) * input_hw[1] / out_hw[1] - 0.5).clamp(0, 16 * (w - 1))
    torch.testing.assert_close(out[0, 0, :, 0], expected_rows)
    torch.testing.assert_close(out[0, 1, 0, :], expected_cols)


def test_the_module_traces_and_the_trace_takes_other_sizes(net):
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic
        traced = torch.jit.trace(net, torch.rand(1, 3, 64, 96) * 255)
        x = torch.rand(1, 3, 50, 130) * 255
        for a, b in zip(BodyPixMaps(*traced(x)), net(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_it_runs_in_float64(net):
    x = torch.rand(1, 3, 40, 56, dtype=torch.float64) * 255
    double = load_bodypix()[0].double()
    with torch.inference_mode():
        wide, single = double(x), net(x.float())
    for a, b in zip(wide, single):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a.float(), b, rtol=1e-3, atol=1e-3)


def test_every_parameter_gets_a_gradient():
    net = load_bodypix()[0].train()
    maps = net(torch.rand(1, 3, 33, 49) * 255)
    sum(m.square().mean() for m in maps).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_the_wrapper_runs_an_image_at_a_given_size():
    image = read_image(FIXTURES / "photos" / "vtest_frame0.jpg")  # 576 x 768
    bodypix = BodyPix()
    maps = bodypix(image, size=(368, 640))
    assert maps.parts.shape == (1, len(PARTS), 24, 41) and not maps.parts.requires_grad
    assert bodypix(image[:100, :200]).segments.shape == (1, 1, 8, 14)
    person = upsample_to(maps.segments, (368, 640), image.shape[:2])[0, 0].sigmoid() > 0.5
    assert person.shape == image.shape[:2]
    assert person[240:320, 640:684].float().mean() > 0.3  # a pedestrian drawn by eye (people.json)
    with pytest.raises(HumanParseError, match="uint8"):
        bodypix(image.astype(np.float32))
    with pytest.raises(HumanParseError, match="size"):
        bodypix(image, size=(0, 640))


def test_the_checkpoint_loads_as_plain_tensors_and_carries_its_provenance():
    data = torch.load(network_path("bodypix"), weights_only=True)
    meta = data["meta"]
    assert meta["license"] == NETWORKS["bodypix"].license == "Apache-2.0"
    assert meta["source_sha256"] == PER_AXIS_SHA256 and meta["upstream_commit"] == "a46c428d729741c82f64550d742b2c65fe92999b"
    assert "dequantised" in meta["changes"]
    assert {t.dtype for t in data["state_dict"].values()} == {torch.float16}
    assert set(data["state_dict"]) == set(BodyPixNet().state_dict())
    docs = (Path(__file__).resolve().parents[2] / "docs" / "pretrained.md").read_text()
    assert hashlib.sha256(network_path("bodypix").read_bytes()).hexdigest() in docs and PER_AXIS_SHA256 in docs


def test_other_files_are_refused_and_bodypix_is_no_tf_graph():
    with pytest.raises(CheckpointError, match="not a BodyPix checkpoint"):
        load_bodypix(network_path("selfie"))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_bodypix("no-such-bodypix.pt")
    with pytest.raises(CheckpointError, match="native torch module"):
        network_spec("bodypix")
