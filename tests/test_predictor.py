"""The one inference path: typed results that agree with the network's own output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from humanparse.errors import HumanParseError
from humanparse.modeling.instances import extract_instances, part_map, person_map
from humanparse.predictor import Predictor, PredictorOptions, _upsampled_max
from humanparse.structures import Detections
from tests.scenes import eager_parser, two_people


@pytest.fixture(scope="module")
def model():
    return eager_parser()


def scene_image() -> tuple[np.ndarray, Detections]:
    scene = two_people()
    return scene.image.permute(1, 2, 0).numpy().astype(np.uint8), Detections(scene.boxes.numpy(), scene.scores.numpy())


def test_result_is_the_crf_labelling_with_persons_numbered_by_score(model) -> None:
    image, detections = scene_image()
    result = Predictor(model, "cpu", lambda im, key=None: detections)(image)
    out = model(torch.from_numpy(image).permute(2, 0, 1).float()[None], [torch.from_numpy(detections.boxes)], [torch.from_numpy(detections.scores)])
    labels = out.instances[0].argmax(0)
    assert np.array_equal(result.parts, part_map(labels, 6).numpy())
    persons, parts = extract_instances(out.instances[0], out.boxes[0], out.scores[0], 6)
    by_score = sorted(persons, key=lambda p: -p.score)
    assert result.scores.tolist() == pytest.approx([p.score for p in by_score], rel=1e-6)
    detection_index = person_map(labels, 6).numpy()
    for new_id, person in enumerate(by_score, start=1):
        assert np.array_equal(result.persons == new_id, detection_index == person.person)
        assert np.allclose(result.boxes[new_id - 1], detections.boxes[person.person - 1])
    assert result.ids.tolist() == list(range(1, len(persons) + 1))
    old_to_new = {p.person: k for k, p in enumerate(by_score, start=1)}
    expected = sorted((old_to_new[p.person], p.part, p.score, int(p.mask.sum())) for p in parts)
    got = [(p.person, p.part, p.score, p.pixels) for p in result.part_instances]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2] for g in got] == pytest.approx([e[2] for e in expected], rel=1e-6)
    assert [g[3] for g in got] == [e[3] for e in expected]


def test_built_in_detector_gives_boxes_in_the_image(model) -> None:
    image, _ = scene_image()
    result = Predictor(model, "cpu", options=PredictorOptions(max_people=3))(image)
    assert 1 <= len(result.ids) <= 3
    assert (result.boxes >= 0).all() and (result.boxes[:, [0, 2]] <= 64).all() and (result.boxes[:, [1, 3]] <= 64).all()
    assert set(np.unique(result.persons).tolist()) <= {0, *result.ids.tolist()}


def test_upsampled_max_equals_the_max_of_the_whole_upsampled_stack() -> None:
    probs = torch.rand(37, 9, 13)
    value, index = _upsampled_max(probs, (20, 31), chunk=8)
    full = F.interpolate(probs[None], (20, 31), mode="bilinear", align_corners=False)[0]
    assert torch.equal(value, full.max(0).values) and torch.equal(index, full.argmax(0))


def test_crf_at_half_scale_gives_a_full_size_result_close_to_full_scale(model) -> None:
    image, detections = scene_image()
    full = Predictor(model, "cpu", lambda im, key=None: detections)(image)
    half = Predictor(model, "cpu", lambda im, key=None: detections, PredictorOptions(crf_scale=0.5))(image)
    assert half.parts.shape == full.parts.shape == (64, 64)
    assert (half.parts == full.parts).mean() > 0.8


def test_a_batch_gives_what_single_images_give(model) -> None:
    image, _ = scene_image()
    other = np.ascontiguousarray(image[:, ::-1])
    wide = np.ascontiguousarray(np.concatenate([image, image], 1))
    predictor = Predictor(model, "cpu")
    batch = predictor.predict([image, wide, other])
    for got, single in zip(batch, [image, wide, other]):
        want = predictor(single)
        assert np.array_equal(got.persons, want.persons) and np.array_equal(got.parts, want.parts)
        assert np.allclose(got.scores, want.scores, atol=1e-5)
    assert predictor.timings.images == 6 and predictor.timings.crf > 0 and predictor.timings.detect_segment > 0


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (3, 700), (700, 3)])
def test_odd_image_sizes(model, shape) -> None:
    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    box = Detections(np.array([[0, 0, shape[1], shape[0]]], np.float32), np.array([0.9], np.float32))
    result = Predictor(model, "cpu", lambda im, key=None: box)(image)
    assert result.parts.shape == result.persons.shape == shape


@pytest.mark.parametrize(
    "image", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((0, 8, 3), np.uint8)]
)
def test_images_that_are_not_uint8_rgb_are_refused(model, image) -> None:
    with pytest.raises(HumanParseError, match="image"):
        Predictor(model, "cpu")(image)


def test_relabel_renames_persons_everywhere(model) -> None:
    image, detections = scene_image()
    result = Predictor(model, "cpu", lambda im, key=None: detections)(image)
    renamed = result.relabel([7, 3])
    assert renamed.ids.tolist() == [3, 7]
    assert np.array_equal(renamed.persons == 7, result.persons == 1) and np.array_equal(renamed.persons == 3, result.persons == 2)
    assert renamed.scores.tolist() == [result.scores[1], result.scores[0]]
    assert {p.person for p in renamed.part_instances} == {3, 7}
    with pytest.raises(HumanParseError, match="distinct"):
        result.relabel([4, 4])


def test_options_are_checked() -> None:
    for bad in ({"crf_scale": 0.0}, {"crf_scale": 1.5}, {"det_threshold": -0.1}, {"max_people": 0}):
        with pytest.raises(HumanParseError):
            PredictorOptions(**bad)


def test_input_scale_runs_the_network_on_the_smaller_image_and_reports_full_size_boxes(model) -> None:
    image, _ = scene_image()
    doubled = np.repeat(np.repeat(image, 2, 0), 2, 1)  # area-downsampling by 2 gives `image` back
    small = Predictor(model, "cpu")(image)
    scaled = Predictor(model, "cpu", options=PredictorOptions(input_scale=0.5, crf_scale=0.5))(doubled)
    assert scaled.parts.shape == (128, 128)
    assert np.allclose(np.sort(scaled.boxes, 0), np.sort(small.boxes * 2, 0), atol=1e-3)
    # Same network input, same CRF grid: the labels at full size agree with the small ones.
    assert (scaled.parts[::2, ::2] == small.parts).mean() > 0.9


def test_the_shipped_default_model_finds_the_people_of_the_demo_clip() -> None:
    from pathlib import Path

    from click.testing import CliRunner

    from humanparse.cli import main
    from humanparse.io.video import VideoReader

    with VideoReader(Path(__file__).resolve().parents[1] / "examples" / "crossing.mp4", start=2.0) as reader:
        _, frame = next(iter(reader))
    result = Predictor.from_checkpoint(device="cpu")(frame)
    assert len(result.ids) >= 2 and (result.persons > 0).mean() > 0.02
    assert {p.part for p in result.part_instances} >= {1, 2}  # heads and torsos at least
    assert "the default, shipped with humanparse" in CliRunner().invoke(main, ["info"], env={"COLUMNS": "300"}).output
