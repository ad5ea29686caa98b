"""Evaluation of a model on a data set: every metric reported, files written."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from humanparse.cli import main
from humanparse.config import CRFConfig, ModelConfig
from humanparse.data.synth import write_image_dataset
from humanparse.detectors import GroundTruthDetector
from humanparse.errors import HumanParseError
from humanparse.evaluate import evaluate, ground_truth, report_dict
from humanparse.metrics import BoxAP, box_ap
from humanparse.modeling.checkpoints import save_checkpoint
from humanparse.modeling.holistic import build_model
from humanparse.predictor import Predictor


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_image_dataset(tmp_path_factory.mktemp("eval") / "d", 3, seed=6, size=(64, 48), split="val")


def test_ground_truth_instances_from_the_maps() -> None:
    parts = np.array([[1, 1, 2, 0], [3, 255, 2, 1]])
    persons = np.array([[1, 1, 1, 0], [2, 2, 1, 2]])
    part_instances, person_instances, parsings = ground_truth(parts, persons)
    assert sorted((c, int(m.sum())) for c, m in part_instances) == [(1, 1), (1, 2), (2, 2), (3, 1)]
    # Parsing R-CNN's convention: the void pixel is person 2's, in none of their parts, and
    # void in their parsing (which AP^p's confusion matrix skips).
    assert [int(m.sum()) for _, m in person_instances] == [4, 3]
    assert parsings[1].tolist() == [[0, 0, 0, 0], [3, 255, 0, 1]]


def test_report_has_every_metric(data) -> None:
    model = build_model(ModelConfig(backbone="resnet18", output_stride=16, crf=CRFConfig(iterations=1)))
    with_gt = evaluate(Predictor(model, "cpu", GroundTruthDetector(data)), data, "val")
    builtin = evaluate(Predictor(model, "cpu"), data, "val")
    assert with_gt.images == builtin.images == 3
    # Box AP scores the persons' boxes, whichever detector found them.
    assert isinstance(with_gt.boxes, BoxAP) and isinstance(builtin.boxes, BoxAP)
    for report in (with_gt, builtin):
        d = report_dict(report, model.labels)
        json.dumps(d)
        assert set(d["part_ap_r"]) == {f"{t / 10:.1f}" for t in range(1, 10)}
        for key in ("part_ap_r_vol", "person_ap_r_vol", "ap_p_50", "ap_p_vol", "pcp_50", "miou"):
            assert d[key] is None or 0 <= d[key] <= 100, key


def test_cli_writes_the_report_and_the_heatmap(tmp_path, data) -> None:
    ckpt = save_checkpoint(build_model(ModelConfig(backbone="resnet18", output_stride=16, crf=CRFConfig(iterations=1))), tmp_path / "m.pt")
    result = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(ckpt), "--detector", "gt", "--out", str(tmp_path / "r.json"), "--heatmap", str(tmp_path / "ap.png"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == 3 and set(report["box_ap"]) == {"ap", "ap50", "ap75"}
    assert cv2.imread(str(tmp_path / "ap.png")) is not None
    missing = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(ckpt), "--split", "test", "--quiet"])
    assert missing.exit_code == 1 and "missing split file" in missing.output


def test_eval_refuses_another_label_set_and_detections_of_other_images(tmp_path, data, eager_checkpoint) -> None:
    import shutil

    cihp_labelled = tmp_path / "cihp"
    shutil.copytree(data, cihp_labelled)
    meta = json.loads((cihp_labelled / "meta.json").read_text())
    (cihp_labelled / "meta.json").write_text(json.dumps({**meta, "label_set": "cihp"}))
    wrong = CliRunner().invoke(main, ["eval", "--data", str(cihp_labelled), "--checkpoint", str(eager_checkpoint), "--detector", "gt", "--quiet"])
    assert wrong.exit_code == 1 and "labelled with 'cihp'" in wrong.output and "Traceback" not in wrong.output

    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"image_id": "not_in_this_split", "bbox": [1, 1, 20, 20], "score": 0.9, "category_id": 1}]))
    unknown = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(eager_checkpoint), "--detector", f"file:{other}", "--quiet"])
    assert unknown.exit_code == 1 and "unknown images" in unknown.output and "not_in_this_split" in unknown.output


def test_an_unwritable_report_destination_fails_before_the_evaluation(tmp_path, data, eager_checkpoint) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # (root, as CI runs, writes through permissions: a file in the way and a read-only file system instead)
    for flag, target in (("--out", blocker / "r.json"), ("--heatmap", blocker / "ap.png"), ("--out", tmp_path), ("--out", "/proc/humanparse-r.json")):
        result = CliRunner().invoke(main, ["eval", "--data", str(data), "--checkpoint", str(eager_checkpoint), "--detector", "gt", flag, str(target), "--quiet"])
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert "part AP^r" not in result.output, target  # refused before evaluating


def test_void_pixels_of_a_person_count_for_their_mask_and_not_against_their_parsing() -> None:
    from humanparse.metrics import instance_ap, parsing_ap

    parts = np.array([[1, 1, 2, 2], [255, 255, 2, 2], [0, 0, 0, 0]])
    persons = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]])
    _, person_instances, parsings = ground_truth(parts, persons)
    predicted = np.where(persons == 1, np.where(parts == 255, 2, parts), 0)  # void guessed as torso
    # AP^p: the void pixels are skipped, so the parsing is perfect at every threshold.
    assert parsing_ap([([(predicted, 0.9)], parsings)], 7).ap == pytest.approx((1.0,) * 9)
    # person AP^r: the whole person, void included, is the mask to find (IoU 1, not 6/8).
    found = instance_ap([([(1, persons == 1, 0.9)], person_instances)])
    assert found.per_class[1] == pytest.approx((1.0,) * 9)


def results_from_truth(root, out, shift: int = 2, seed: int = 0):
    """`humanparse images --save json` files for every val image of ``root``, made from its
    ground truth: every map shifted ``shift`` pixels right and down, scores at random (so
    that every metric has hits, misses and false positives to count)."""
    from humanparse.data.cihp import load_sample, read_split
    from humanparse.io.results import write_outputs
    from humanparse.labels import PASCAL_PERSON_PART
    from humanparse.ops import person_boxes
    from humanparse.structures import ParsingResult, PartScore

    rng = np.random.default_rng(seed)
    for sample_id in read_split(root, "val"):
        sample = load_sample(root, sample_id, 7)
        parts = np.roll(np.where(sample.parts == 255, 0, sample.parts), (shift, shift), (0, 1)).astype(np.uint8)
        persons = np.roll(sample.persons, (shift, shift), (0, 1)).astype(np.int32)
        ids, boxes = person_boxes(persons)
        instances = tuple(PartScore(int(i), int(p), float(rng.random()), int(((persons == i) & (parts == p)).sum())) for i in ids for p in np.unique(parts[persons == i]) if p)
        result = ParsingResult(parts, persons, ids, boxes, rng.random(len(ids)).astype(np.float32), instances, PASCAL_PERSON_PART)
        write_outputs(out, sample_id, sample.image, result, ("json",))
    return out


@pytest.fixture(scope="module")
def predictions(data, tmp_path_factory):
    return results_from_truth(data, tmp_path_factory.mktemp("pred") / "p")


def damaged_copy(predictions, tmp_path, sample_id, change):
    """A copy of the predictions with ``change(record)`` applied to one image's file."""
    import shutil

    copy = tmp_path / "damaged"
    shutil.copytree(predictions, copy)
    path = copy / "json" / f"{sample_id}.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    return copy


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["parts"][0].update(score=float("nan")), "holds nan"),
        (lambda r: r["parts"][0].update(score=1e9), r"outside \[0, 1\]"),
        (lambda r: r["persons"][0].update(score=-1e9), r"outside \[0, 1\]"),
        (lambda r: r["persons"][0]["box"].__setitem__(0, float("nan")), "box holds nan"),
        (lambda r: r.update(image="000002"), "the result of image '000002', not of '000001'"),
    ],
)
def test_eval_refuses_result_files_with_nan_huge_scores_or_of_another_image(tmp_path, data, predictions, change, message) -> None:
    """These were scored (issue 23: part AP^r_vol and box AP moved); now one line naming the file."""
    damaged = damaged_copy(predictions, tmp_path, "000001", change)
    result = CliRunner().invoke(main, ["eval", "--data", str(data), "--predictions", str(damaged), "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert re.search(message, result.output) and "000001.json" in result.output
    assert result.output.count("\n") == 1 and "part AP^r" not in result.output


def test_a_result_claiming_a_huge_image_is_refused_before_any_mask_is_decoded(tmp_path, data, predictions, monkeypatch) -> None:
    """A 355-byte file claiming 30000 x 30000 pixels once peaked at 5.9 GB for 37 s."""
    from humanparse.errors import HumanParseError
    from humanparse.evaluate import evaluate_predictions
    from humanparse.io import rle
    from humanparse.labels import PASCAL_PERSON_PART

    empty = rle.encode(np.zeros((3000, 3000), bool))  # valid: one run of 9 million zeros

    def claim(record):
        for item in record["persons"] + record["parts"]:
            item["mask"] = empty
        record.update(height=3000, width=3000)

    damaged = damaged_copy(predictions, tmp_path, "000000", claim)
    decoded = []
    real = rle.decode
    monkeypatch.setattr(rle, "decode", lambda counts: decoded.append(counts["size"]) or real(counts))
    with pytest.raises(HumanParseError, match=r"000000.json: the result is 3000x3000, the image 64x48"):
        evaluate_predictions(damaged, data, PASCAL_PERSON_PART)
    assert decoded == []


def scored_in_one_batch(data, predictions):
    """The report as the metrics give it over all images' masks at once (the evaluation
    before it streamed): what the streamed evaluation must equal exactly."""
    from humanparse.data.cihp import load_sample, read_split
    from humanparse.io.results import read_result_json
    from humanparse.labels import PASCAL_PERSON_PART
    from humanparse.metrics import box_ap, confusion_matrix, instance_ap, mean_iou, parsing_ap

    parts, persons, parsings, boxes, truth_boxes = [], [], [], [], []
    confusion = np.zeros((7, 7), np.int64)
    for sample_id in read_split(data, "val"):
        sample = load_sample(data, sample_id, 7)
        result = read_result_json(predictions / "json" / f"{sample_id}.json", PASCAL_PERSON_PART)
        truth_parts, truth_persons, truth_parsings = ground_truth(sample.parts, sample.persons)
        masks = [(result.person_mask(i), float(s)) for i, s in zip(result.ids.tolist(), result.scores)]
        parts.append(([(p.part, result.part_mask(p.person, p.part), p.score) for p in result.part_instances], truth_parts))
        persons.append(([(1, m, s) for m, s in masks], truth_persons))
        parsings.append(([(np.where(m, result.parts, 0), s) for m, s in masks], truth_parsings))
        confusion += confusion_matrix(result.parts, sample.parts, 7)
        boxes.append((result.boxes, result.scores))
        truth_boxes.append(sample.boxes)
    return instance_ap(parts), instance_ap(persons), parsing_ap(parsings, 7), mean_iou(confusion), box_ap(boxes, truth_boxes)


class _FromFiles:
    """A stand-in predictor giving the results in files (the live path, without a model)."""

    detector = None

    def __init__(self, folder):
        from humanparse.labels import PASCAL_PERSON_PART

        self.folder, self.labels = folder, PASCAL_PERSON_PART

    def __call__(self, image, key=None):
        from humanparse.io.results import read_result_json

        return read_result_json(self.folder / "json" / f"{key}.json", self.labels)


@pytest.mark.parametrize("live", [False, True])
def test_evaluation_streams_keeping_no_masks_and_scores_exactly_as_in_one_batch(tmp_path_factory, live) -> None:
    """Memory used to grow by every image's masks (3.1 GB for 150 images of 512 x 512): each
    image is now reduced to what the metrics need as it is scored. The memory held once
    the first images are scored stays under one image's mask to the last, and the report is
    exactly the one the metrics give over all images' masks at once."""
    import tracemalloc

    from humanparse.evaluate import evaluate_predictions
    from humanparse.labels import PASCAL_PERSON_PART

    root = write_image_dataset(tmp_path_factory.mktemp("stream") / "d", 8, seed=3, size=(256, 256), split="val")
    predictions = results_from_truth(root, root.parent / "p")
    held = []
    tracemalloc.start()
    try:
        if live:
            report = evaluate(_FromFiles(predictions), root, progress=lambda done, total: held.append(tracemalloc.get_traced_memory()[0]))
        else:
            report = evaluate_predictions(predictions, root, PASCAL_PERSON_PART, progress=lambda done, total: held.append(tracemalloc.get_traced_memory()[0]))
    finally:
        tracemalloc.stop()
    assert len(held) == 8
    assert held[-1] - held[1] < 256 * 256, held  # before: about 20 masks of 64 KB an image
    parts, persons, parsing, (miou, class_iou), boxes = scored_in_one_batch(root, predictions)
    assert report.parts == parts and report.persons == persons and report.parsing == parsing and report.boxes == boxes
    assert report.miou == miou and np.array_equal(report.class_iou, class_iou, equal_nan=True)
    assert 0 < report.parts.vol < 1 and 0 < report.parsing.pcp50 < 1 and 0 < report.boxes.ap < 1  # something to count


def test_check_eval_outputs_refuses_clashes_folders_and_existing_files_creating_nothing(tmp_path) -> None:
    from humanparse.errors import HumanParseError
    from humanparse.evaluate import check_eval_outputs

    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "a-file").write_text("")
    check_eval_outputs(tmp_path / "new" / "deep" / "r.json", tmp_path / "ap.png")
    check_eval_outputs(None, None)
    check_eval_outputs(tmp_path / "old.json", None, overwrite=True)
    for report, heatmap, message in (
        (tmp_path / "r.json", tmp_path / "sub" / ".." / "r.json", "both be written to"),
        (tmp_path / "old.json", None, "already exists; choose another file for the report or pass --overwrite"),
        (None, tmp_path / "old.json", "already exists; choose another file for the heatmap"),
        (tmp_path, None, "is a folder"),
        (tmp_path / "a-file" / "deeper" / "r.json", None, "a-file is not a folder"),
        (None, "/proc/humanparse-ap.png", "cannot write the heatmap"),
    ):
        with pytest.raises(HumanParseError, match=message):
            check_eval_outputs(report, heatmap)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "old.json"]  # no folder made, no probe left


def test_write_report_names_the_file_it_cannot_write(tmp_path, monkeypatch) -> None:
    """A full disk said only 'No space left on device'."""
    import humanparse.evaluate as evaluate_module
    from humanparse.errors import HumanParseError
    from humanparse.labels import PASCAL_PERSON_PART
    from humanparse.metrics import InstanceAPAccumulator, ParsingAPAccumulator

    report = evaluate_module.EvalReport(0, InstanceAPAccumulator().result(), InstanceAPAccumulator().result(), ParsingAPAccumulator(7).result(),
                                        float("nan"), np.full(7, np.nan), box_ap([], []))
    evaluate_module.write_report(report, PASCAL_PERSON_PART, tmp_path / "made" / "r.json", tmp_path / "ap.png")
    assert json.loads((tmp_path / "made" / "r.json").read_text())["images"] == 0 and cv2.imread(str(tmp_path / "ap.png")) is not None

    def full_disk(path, data, fsync=False):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluate_module, "write_bytes_atomic", full_disk)
    with pytest.raises(HumanParseError, match=r"cannot write .*r2.json: No space left on device"):
        evaluate_module.write_report(report, PASCAL_PERSON_PART, tmp_path / "r2.json")


def test_eval_cli_checks_its_outputs_up_front_and_refuses_model_options_with_predictions(tmp_path, data, predictions) -> None:
    """The report was overwritten by the heatmap given the same name, an existing report was
    replaced silently, folders were made before a failing evaluation, and a --checkpoint given
    with --predictions was ignored."""
    def run(*extra):
        return CliRunner().invoke(main, ["eval", "--data", str(data), "--predictions", str(predictions), "--quiet", *extra])

    same = run("--out", str(tmp_path / "r"), "--heatmap", str(tmp_path / "r"))
    assert same.exit_code == 1 and "both be written to" in same.output and not (tmp_path / "r").exists()
    (tmp_path / "old.json").write_text("{}")
    kept = run("--out", str(tmp_path / "old.json"))
    assert kept.exit_code == 1 and "pass --overwrite" in kept.output and (tmp_path / "old.json").read_text() == "{}"
    replaced = run("--out", str(tmp_path / "old.json"), "--overwrite")
    assert replaced.exit_code == 0 and json.loads((tmp_path / "old.json").read_text())["images"] == 3
    failing = CliRunner().invoke(main, ["eval", "--data", str(data), "--predictions", str(tmp_path), "--out", str(tmp_path / "new" / "deep" / "r.json"), "--quiet"])
    assert failing.exit_code == 1 and not (tmp_path / "new").exists()  # no result files there: fails, making no folder
    for option in (["--checkpoint", "synthetic"], ["--checkpoint", "bodypix"], ["--device", "cpu"], ["--crf-iterations", "3"]):
        ignored = run(*option)
        assert ignored.exit_code == 2 and f"{option[0]}: no model runs with --predictions" in ignored.output


def _category_folder(root, truth: np.ndarray, name: str = "a") -> None:
    """A plain folder of ground truth: images/NAME.png and labels/NAME.png, no split file,
    no person ids, no meta.json."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    cv2.imwrite(str(root / "images" / f"{name}.png"), np.full((*truth.shape, 3), 90, np.uint8))
    cv2.imwrite(str(root / "labels" / f"{name}.png"), truth.astype(np.uint8))


def _coarse_report(tmp_path, truth: np.ndarray, truth_labels):
    """The coarse report of one Pascal-Person-Part prediction with no persons (bodypix-alone's
    kind of result, read back from its file; 1 head, 2 torso, 3 upper arms, 5 upper legs)
    against the category-level map ``truth`` in ``truth_labels``."""
    from humanparse.evaluate import evaluate_predictions
    from humanparse.io.results import write_outputs
    from humanparse.labels import PASCAL_PERSON_PART
    from humanparse.structures import ParsingResult

    predicted = np.array([[0, 1, 2, 2, 5, 0], [1, 0, 0, 3, 2, 0]], np.uint8)
    _category_folder(tmp_path / "gt", truth)
    result = ParsingResult(predicted, np.zeros((2, 6), np.int32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32), (), PASCAL_PERSON_PART)
    write_outputs(tmp_path / "pred", "a", np.zeros((2, 6, 3), np.uint8), result, ("json",))
    return evaluate_predictions(tmp_path / "pred", tmp_path / "gt", PASCAL_PERSON_PART, compare="coarse", truth_labels=truth_labels)


def test_category_level_ground_truth_across_label_sets_gives_the_hand_computed_coarse_ious(tmp_path) -> None:
    """CIHP maps (no person ids) against a Pascal-Person-Part prediction with no persons
    (bodypix-alone's kind of result, read back from its file), on the coarse groups."""
    from humanparse.evaluate import evaluate_predictions
    from humanparse.labels import CIHP, PASCAL_PERSON_PART

    # CIHP: 13 face, 5 upper clothes, 9 pants, 6 dress (ignored), 14 left arm, 16 left leg, 255 void
    report = _coarse_report(tmp_path, np.array([[0, 13, 13, 5, 9, 255], [0, 0, 6, 14, 16, 0]]), CIHP)
    # By hand, ground truth by prediction over the 8 valid pixels: background 3/4, head
    # 1/3, upper body 2/4, lower body 1/2.
    assert report.images == 1 and report.parts is None and "need ground truth in the model's label set" in report.note
    assert np.allclose(report.class_iou, [3 / 4, 1 / 3, 2 / 4, 1 / 2]) and report.miou == pytest.approx((3 / 4 + 1 / 3 + 2 / 4 + 1 / 2) / 4)
    data = report_dict(report, PASCAL_PERSON_PART)
    assert data["classes"] == "coarse" and data["class_iou"] == {"background": 75.0, "head": 33.33, "upper-body": 50.0, "lower-body": 50.0}
    with pytest.raises(HumanParseError, match="labelled with 'cihp', the results with 'pascal-person-part'.*--compare coarse"):
        evaluate_predictions(tmp_path / "pred", tmp_path / "gt", PASCAL_PERSON_PART, truth_labels=CIHP)
    with pytest.raises(HumanParseError, match="does not name its label set .*--truth-labels cihp"):
        evaluate_predictions(tmp_path / "pred", tmp_path / "gt", PASCAL_PERSON_PART, compare="coarse")


def test_atr_ground_truth_is_scored_on_the_coarse_groups_by_hand(tmp_path) -> None:
    """ATR's own label order (11 face, 4 upper clothes, 6 pants, 8 belt ignored, 16 bag
    ignored, 14 left arm, 12 left leg), against a Pascal-Person-Part prediction."""
    from humanparse.labels import ATR

    report = _coarse_report(tmp_path, np.array([[0, 11, 11, 4, 6, 8], [0, 0, 16, 14, 12, 0]]), ATR)
    # The same 8 valid pixels as the CIHP case above: background 3/4, head 1/3, upper 2/4, lower 1/2.
    assert np.allclose(report.class_iou, [3 / 4, 1 / 3, 2 / 4, 1 / 2])


def test_category_level_ground_truth_in_the_models_labels_gives_miou_and_per_class_iou(tmp_path) -> None:
    from humanparse.evaluate import evaluate_predictions
    from humanparse.io.results import write_outputs
    from humanparse.labels import PASCAL_PERSON_PART
    from humanparse.structures import ParsingResult

    truth = np.array([[0, 1, 1, 2], [0, 2, 2, 255]])
    predicted = np.array([[0, 1, 2, 2], [1, 2, 2, 6]], np.uint8)
    _category_folder(tmp_path / "gt", truth)
    result = ParsingResult(predicted, np.zeros((2, 4), np.int32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32), (), PASCAL_PERSON_PART)
    write_outputs(tmp_path / "pred", "a", np.zeros((2, 4, 3), np.uint8), result, ("json",))
    report = evaluate_predictions(tmp_path / "pred", tmp_path / "gt", PASCAL_PERSON_PART)
    # background 1/2 (one of two predicted right, one head predicted on it), head 1/3,
    # torso 3/4; the other classes are in neither map (the void pixel's 6 is not counted)
    assert np.allclose(report.class_iou[:3], [1 / 2, 1 / 3, 3 / 4]) and np.isnan(report.class_iou[3:]).all()
    assert report.miou == pytest.approx((1 / 2 + 1 / 3 + 3 / 4) / 3) and "need person ids (Human_ids/)" in report.note


def test_eval_scores_bodypix_alone_on_a_folder_of_images_and_label_maps_in_one_command(tmp_path) -> None:
    """What a user with their own CIHP-style photos types; the report's IoUs are those of
    the parser's own result, computed here from its map."""
    from pathlib import Path

    from humanparse.build import build_predictor
    from humanparse.io.images import read_image
    from humanparse.labels import CIHP, to_coarse
    from humanparse.metrics import confusion_matrix, mean_iou

    photo = read_image(Path(__file__).resolve().parent / "fixtures" / "photos" / "camera.jpg")
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    cv2.imwrite(str(root / "images" / "camera.png"), photo[..., ::-1])
    height, width = photo.shape[:2]
    truth = np.zeros((height, width), np.uint8)
    truth[height // 4 : height // 2, width // 3 : 2 * width // 3] = 5  # a block of "upper clothes"
    truth[: height // 4, width // 3 : 2 * width // 3] = 13  # "face" above it
    cv2.imwrite(str(root / "labels" / "camera.png"), truth)
    result = CliRunner().invoke(main, ["eval", "--data", str(root), "--checkpoint", "bodypix-alone", "--truth-labels", "cihp", "--compare", "coarse",
                                       "--out", str(tmp_path / "r.json"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "instance metrics need ground truth in the model's label set" in result.output
    parsed = build_predictor("bodypix-alone", device="cpu", task="eval")(photo)
    expected = mean_iou(confusion_matrix(to_coarse(parsed.parts, parsed.labels), to_coarse(truth, CIHP), 4))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == 1 and report["miou"] == round(100 * expected[0], 2)
    heatmap = CliRunner().invoke(main, ["eval", "--data", str(root), "--checkpoint", "bodypix-alone", "--truth-labels", "cihp", "--compare", "coarse",
                                        "--heatmap", str(tmp_path / "h.png")])
    assert heatmap.exit_code == 2 and "needs person ids" in heatmap.output
