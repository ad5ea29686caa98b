"""The predictor: typed results that agree with the network's own output, batching, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from humanparse.errors import HumanParseError
from humanparse.modeling.instances import instance_statistics, part_map, person_map
from humanparse.predictor import ParseOptions, Predictor
from humanparse.structures import Detections, Poses
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
    with torch.no_grad():
        out = model(torch.from_numpy(image).permute(2, 0, 1).float()[None], [torch.from_numpy(detections.boxes)], [torch.from_numpy(detections.scores)])
    confidence, labels = out.instances[0].max(0)
    assert np.array_equal(result.parts, part_map(labels, 6).numpy())
    stats = instance_statistics(confidence, labels, out.scores[0], 6)
    present = [d for d in range(len(detections)) if stats.person_counts[d] > 0]
    by_score = sorted(present, key=lambda d: -float(stats.person_scores[d]))
    assert result.scores.tolist() == pytest.approx([float(stats.person_scores[d]) for d in by_score], rel=1e-6)
    detection_index = person_map(labels, 6).numpy()
    for new_id, d in enumerate(by_score, start=1):
        assert np.array_equal(result.persons == new_id, detection_index == d + 1)
        assert np.allclose(result.boxes[new_id - 1], detections.boxes[d])
    assert result.ids.tolist() == list(range(1, len(present) + 1))
    expected = sorted(
        (new_id, j + 1, float(stats.part_scores[d, j]), int(stats.counts[d, j]))
        for new_id, d in enumerate(by_score, start=1)
        for j in range(6)
        if stats.counts[d, j]
    )
    got = [(p.person, p.part, p.score, p.pixels) for p in result.part_instances]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2] for g in got] == pytest.approx([e[2] for e in expected], rel=1e-6)
    assert [g[3] for g in got] == [e[3] for e in expected]
    assert [int(np.count_nonzero(result.part_mask(p.person, p.part))) for p in result.part_instances] == [e[3] for e in expected]


def test_built_in_detector_gives_boxes_in_the_image(model) -> None:
    image, _ = scene_image()
    result = Predictor(model, "cpu", options=ParseOptions(max_people=3))(image)
    assert 1 <= len(result.ids) <= 3
    assert (result.boxes >= 0).all() and (result.boxes[:, [0, 2]] <= 64).all() and (result.boxes[:, [1, 3]] <= 64).all()
    assert set(np.unique(result.persons).tolist()) <= {0, *result.ids.tolist()}


def test_crf_at_half_scale_gives_a_full_size_result_close_to_full_scale(model) -> None:
    image, detections = scene_image()
    full = Predictor(model, "cpu", lambda im, key=None: detections)(image)
    half = Predictor(model, "cpu", lambda im, key=None: detections, ParseOptions(crf_scale=0.5))(image)
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
    assert predictor.timings.images == 6 and predictor.timings.seconds["crf"] > 0 and predictor.timings.seconds["detect_segment"] > 0


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


def test_an_image_over_max_pixels_is_refused_as_the_command_line_refuses_its_file(model) -> None:
    """The API had no bound: a 60000x60000 image took over 6 GB before anything was said."""
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (60000, 60000, 3))
    with pytest.raises(HumanParseError, match="60000x60000 is 3600 megapixels, more than the 100"):
        Predictor(model, "cpu")(huge)


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
    for bad in ({"crf_scale": 0.0}, {"crf_scale": 1.5}, {"input_scale": 0.0}, {"det_threshold": -0.1}, {"max_people": 0}, {"nms_iou": 0.0}, {"crf_iterations": -1}):
        with pytest.raises(HumanParseError):
            ParseOptions(**bad)


def test_input_scale_runs_the_network_on_the_smaller_image_and_reports_full_size_boxes(model) -> None:
    image, _ = scene_image()
    doubled = np.repeat(np.repeat(image, 2, 0), 2, 1)  # area-downsampling by 2 gives `image` back
    small = Predictor(model, "cpu")(image)
    scaled = Predictor(model, "cpu", options=ParseOptions(input_scale=0.5, crf_scale=0.5))(doubled)
    assert scaled.parts.shape == (128, 128)
    assert np.allclose(np.sort(scaled.boxes, 0), np.sort(small.boxes * 2, 0), atol=1e-3)
    # Same network input, same CRF grid: the labels at full size agree with the small ones.
    assert (scaled.parts[::2, ::2] == small.parts).mean() > 0.9


def test_the_synthetic_model_finds_the_people_of_the_synthetic_clip() -> None:
    from pathlib import Path

    from humanparse.io.video import VideoReader

    with VideoReader(Path(__file__).resolve().parents[1] / "examples" / "crossing.mp4", start=2.0) as reader:
        frame = next(iter(reader)).image
    result = Predictor.from_checkpoint("synthetic", device="cpu")(frame)
    assert len(result.ids) >= 2 and (result.persons > 0).mean() > 0.02
    assert {p.part for p in result.part_instances} >= {1, 2}  # heads and torsos at least


def test_the_default_parser_finds_the_pedestrians_of_the_demo_clip_head_above_feet() -> None:
    from pathlib import Path

    from humanparse.io.video import VideoReader
    from humanparse.modeling.skeleton import HEAD, LOWER_LEGS, TORSO, UPPER_LEGS

    with VideoReader(Path(__file__).resolve().parents[1] / "examples" / "pedestrians.mp4", start=12.0) as reader:
        frame = next(iter(reader)).image  # by eye: seven walkers, one far off, one behind the sign
    result = Predictor.from_checkpoint(device="cpu")(frame)
    assert result.labels.name == "pascal-person-part" and result.keypoints.shape[1:] == (17, 3)
    # All seven with BodyPix's second pass over small persons (without it, five: the walker
    # at the right edge and the far one had too few person pixels in the whole-image pass).
    assert len(result.ids) >= 6
    tall = [pid for pid, box in zip(result.ids, result.boxes) if box[3] - box[1] >= 50]
    assert len(tall) >= 5
    with_head = 0
    for pid in tall:  # the far one is 28 px tall: a head of a few pixels or none
        rows = [np.nonzero((result.persons == pid) & np.isin(result.parts, part))[0] for part in (HEAD, TORSO, (UPPER_LEGS, LOWER_LEGS))]
        assert len(rows[1]) and len(rows[2]) and rows[1].mean() < rows[2].mean()
        with_head += bool(len(rows[0])) and rows[0].mean() < rows[1].mean()
    # An 8-px head is half a cell of the whole-image pass; the second pass gives most of them one.
    assert with_head >= len(tall) // 2


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from humanparse.data.synth_video import write_video

    video, _ = write_video(tmp_path_factory.mktemp("clip") / "walk.mp4", 12, seed=3, size=(96, 64))
    return video


def test_stream_yields_tracked_results_in_order_as_the_video_job_writes_them(model, clip, tmp_path) -> None:
    import json

    from humanparse.io import rle
    from humanparse.jobs.video import VideoOptions, parse_video

    predictor = Predictor(model, "cpu")
    with predictor.stream(clip, stride=2, workers=2) as frames:
        streamed = list(frames)
        assert frames.error is None and frames.info.width == 96
        assert set(frames.seconds) >= {"decode", "detect_segment", "crf", "track"}
        assert len(frames.tracker.summaries()) >= 1
    assert [f.index for f in streamed] == [0, 2, 4, 6, 8, 10]
    assert [f.time for f in streamed] == pytest.approx([i / 25 for i in (0, 2, 4, 6, 8, 10)])
    assert all(f.image.shape == (64, 96, 3) and f.result.size == (64, 96) for f in streamed)
    parse_video(predictor, clip, tmp_path, VideoOptions(stride=2))
    written = json.loads((tmp_path / "tracks.json").read_text())["frames"]
    for frame, record in zip(streamed, written, strict=True):
        assert frame.index == record["frame"]
        assert frame.result.ids.tolist() == [track["id"] for track in record["tracks"]]
        for track in record["tracks"]:
            assert np.array_equal(rle.decode(track["mask"]), frame.result.persons == track["id"])


def test_stream_stopped_early_closes_and_untracked_streams_keep_frame_ids(model, clip) -> None:
    predictor = Predictor(model, "cpu")
    stream = predictor.stream(clip, tracker=None)
    first = next(iter(stream))
    stream.close()
    assert first.index == 0 and stream.tracker is None
    assert first.result.ids.tolist() == list(range(1, len(first.result.ids) + 1))
    with pytest.raises(HumanParseError, match="batch and workers"):
        predictor.stream(clip, batch=0)


def test_detect_asks_the_external_detector_by_key_else_the_parser_and_is_timed(model) -> None:
    image, detections = scene_image()
    keys: list = []
    external = Predictor(model, "cpu", lambda im, key=None: keys.append(key) or detections)
    assert external.detect(image, key=7) is detections and keys == [7]
    own = Predictor(model, "cpu", options=ParseOptions(det_threshold=0.2))
    found = own.detect(image)
    assert len(found) and (found.scores >= 0.2).all()
    assert set(own.timings.seconds) == {"detect"} and set(external.timings.seconds) == {"detect"}


def test_a_pose_stage_gives_each_person_its_keypoints_in_person_order(model) -> None:
    image, detections = scene_image()
    asked: list[np.ndarray] = []

    def pose(im: np.ndarray, boxes: np.ndarray) -> Poses:
        asked.append(boxes)
        # a keypoint at each box's centre, its score the box's index, so the order shows
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        keypoints = np.concatenate([np.repeat(centre[:, None], 17, axis=1), np.arange(len(boxes), dtype=np.float32)[:, None, None].repeat(17, 1) / 10], axis=2)
        return Poses(keypoints, boxes)

    predictor = Predictor(model, "cpu", lambda im, key=None: detections, pose=pose)
    result = predictor(image)
    assert len(asked) == 1 and np.array_equal(asked[0], result.boxes)
    assert result.keypoints.shape == (len(result.ids), 17, 3)
    np.testing.assert_allclose(result.keypoints[:, 0, :2], (result.boxes[:, :2] + result.boxes[:, 2:]) / 2)
    np.testing.assert_allclose(result.keypoints[:, 0, 2], np.arange(len(result.ids)) / 10)
    assert "pose" in predictor.timings.seconds
    assert Predictor(model, "cpu", lambda im, key=None: detections)(image).keypoints.shape == (len(result.ids), 0, 3)


def test_an_image_over_max_side_is_parsed_at_the_working_size_and_mapped_back(model) -> None:
    from humanparse.predictor import working_size

    assert working_size(3000, 4000, 1600) == (1200, 1600) and working_size(900, 1600, 1600) == (900, 1600)
    assert working_size(5, 100_000, 32) == (1, 32) and working_size(3000, 4000, None) == (3000, 4000)
    image, detections = scene_image()  # 64 × 64
    big = np.kron(image, np.ones((4, 4, 1), np.uint8))  # 256 × 256, the same scene
    big_boxes = Detections(detections.boxes * 4, detections.scores)
    small = Predictor(model, "cpu", lambda im, key=None: detections)(image)
    bounded = Predictor(model, "cpu", lambda im, key=None: big_boxes, ParseOptions(max_side=64))(big)
    assert bounded.size == (256, 256)
    # Parsed at 64 × 64, as the small image was: the same labels, each pixel a 4 × 4 block.
    assert np.array_equal(bounded.parts, np.kron(small.parts, np.ones((4, 4), np.uint8)))
    assert np.array_equal(bounded.persons, np.kron(small.persons, np.ones((4, 4), np.int32)))
    assert np.allclose(bounded.boxes, small.boxes * 4)
    assert [(p.person, p.part, p.pixels) for p in bounded.part_instances] == [(p.person, p.part, 16 * p.pixels) for p in small.part_instances]
    assert [p.score for p in bounded.part_instances] == pytest.approx([p.score for p in small.part_instances], abs=1e-6)
    with pytest.raises(HumanParseError, match="max_side"):
        ParseOptions(max_side=8)


def test_predict_takes_none_for_an_image_whose_persons_its_detector_finds(model) -> None:
    image, detections = scene_image()
    predictor = Predictor(model, "cpu")
    own, given = predictor.predict([image, image], detections=[None, detections])
    assert np.array_equal(own.persons, predictor(image).persons)
    assert np.array_equal(given.persons, predictor.predict([image], detections=[detections])[0].persons)
    with pytest.raises(HumanParseError, match="a Detections"):
        predictor.predict([image], detections=[detections.boxes])


def test_predict_given_one_image_instead_of_a_list_says_so(model) -> None:
    image, _ = scene_image()
    with pytest.raises(HumanParseError, match=r"a list of images; for one image call the predictor"):
        Predictor(model, "cpu").predict(image)


def test_a_read_only_photo_parses_without_warnings() -> None:
    """np.asarray(PIL.Image.open(...)), the most common way to load an image, is read-only."""
    import warnings
    from pathlib import Path

    from PIL import Image

    from humanparse.modeling.bodypix_parser import BodyPixParser

    with Image.open(Path(__file__).resolve().parent / "fixtures" / "photos" / "camera.jpg") as photo:
        frozen = np.asarray(photo.convert("RGB"))
    assert not frozen.flags.writeable
    predictor = Predictor(BodyPixParser(), "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = predictor(frozen)
    assert np.array_equal(result.persons, predictor(frozen.copy()).persons)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_default_parser_on_cuda_finds_the_cpus_persons_and_parts() -> None:
    """The same persons (each CPU person's mask matched by a CUDA one at IoU >= 0.9) and
    the same part label on at least 99 % of the pixels either device puts in a person, on
    a real frame of the demo clip."""
    from pathlib import Path

    import cv2

    from humanparse.ops import mask_iou

    # OpenCV decodes the frame: the GPU machines lack PyAV (tools/gpu_checks.sh).
    capture = cv2.VideoCapture(str(Path(__file__).resolve().parents[1] / "examples" / "pedestrians.mp4"))
    capture.set(cv2.CAP_PROP_POS_MSEC, 12000)
    ok, bgr = capture.read()
    assert ok
    frame = np.ascontiguousarray(bgr[..., ::-1])
    cpu = Predictor.from_checkpoint(device="cpu")(frame)
    gpu = Predictor.from_checkpoint(device="cuda")(frame)
    assert len(gpu.ids) == len(cpu.ids) >= 6
    masks = lambda result: np.stack([result.persons == pid for pid in result.ids])  # noqa: E731
    assert (mask_iou(masks(cpu), masks(gpu)).max(1) >= 0.9).all()
    person = (cpu.persons > 0) | (gpu.persons > 0)
    assert (cpu.parts[person] == gpu.parts[person]).mean() >= 0.99
