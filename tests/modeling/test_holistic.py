"""The whole network, its configuration and its checkpoint file."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from humanparse.config import CRFConfig, ModelConfig
from humanparse.errors import CheckpointError, ConfigError, HumanParseError
from humanparse.labels import CIHP, LabelSet
from humanparse.modeling.checkpoints import init_from_checkpoint, load_checkpoint, read_checkpoint, save_checkpoint
from humanparse.modeling.holistic import build_model
from humanparse.modeling.parser import ParseOptions
from tests.scenes import eager_parser

TINY = ModelConfig(backbone="resnet18", output_stride=16, crf=CRFConfig(iterations=2))


def test_forward_returns_logits_and_one_crf_output_per_image() -> None:
    model = build_model(TINY).eval()
    images = torch.rand(2, 3, 45, 37) * 255
    boxes = [torch.tensor([[2.0, 3.0, 30.0, 40.0]]), torch.zeros(0, 4)]
    scores = [torch.tensor([0.9]), torch.zeros(0)]
    with torch.no_grad():
        out = model(images, boxes, scores)
    assert out.logits.shape == (2, 7, 45, 37)
    assert out.instances[0].shape == (7, 45, 37)
    assert out.instances[1].shape == (1, 45, 37)


def test_checkpoint_round_trip_restores_weights_config_and_labels(tmp_path) -> None:
    labels = LabelSet("custom", ("background", "a", "b"), ((0, 0, 0), (1, 2, 3), (4, 5, 6)), ((1, 2),))
    model = build_model(TINY, labels=labels)
    path = save_checkpoint(model, tmp_path / "m.pt", extra={"iteration": 7})
    loaded = load_checkpoint(path)
    assert loaded.config == TINY and loaded.labels == labels
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    assert read_checkpoint(path)["extra"] == {"iteration": 7}
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    model = build_model(TINY)
    path = save_checkpoint(model, tmp_path / "m.pt")
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_bad_checkpoints_raise_one_line_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a humanparse checkpoint"):
        load_checkpoint(foreign)


def test_checkpoint_with_mismatched_weights_is_rejected(tmp_path) -> None:
    path = save_checkpoint(build_model(TINY, labels=CIHP), tmp_path / "cihp.pt")
    payload = torch.load(path, weights_only=True)
    payload["labels"]["names"] = payload["labels"]["names"][:7]
    payload["labels"]["palette"] = payload["labels"]["palette"][:7]
    payload["labels"]["mirror_pairs"] = []
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit the model: size mismatch for segmenter.head.classifier.weight"):
        load_checkpoint(path)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="'backbon'"):
        ModelConfig.from_dict({"backbon": "resnet18"})
    with pytest.raises(ConfigError, match="'iterations'"):
        ModelConfig.from_dict({"crf": {"iterations": "five"}})
    assert ModelConfig.from_dict({"crf": {"theta_alpha": 60}}).crf.theta_alpha == 60.0
    assert ModelConfig.from_dict(TINY.to_dict()) == TINY


def test_bad_batch_raises() -> None:
    model = build_model(TINY)
    with pytest.raises(HumanParseError):
        model(torch.rand(1, 3, 20, 20), [], [])


def test_crf_config_fields_are_the_crf_keyword_arguments() -> None:
    import dataclasses
    import inspect

    from humanparse.modeling.crf import InstanceCRF

    params = inspect.signature(InstanceCRF).parameters
    keywords = {name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    # The background penalty is the default parser's (untrained); the holistic network keeps
    # background as one more person.
    assert {f.name for f in dataclasses.fields(CRFConfig)} == keywords - {"background_penalty"} | {"iterations"}
    assert all(params[f.name].default == f.default for f in dataclasses.fields(CRFConfig))


def test_without_boxes_the_built_in_detector_supplies_them() -> None:
    model = build_model(TINY).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 48) * 255)
    assert out.head is not None and out.head.heatmap.shape == (1, 1, 4, 3)
    d = out.boxes[0].shape[0]
    assert out.instances[0].shape == (6 * d + 1, 64, 48) and out.scores[0].shape == (d,)


def test_detect_gives_the_persons_parse_finds() -> None:
    model = eager_parser()
    image = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    options = ParseOptions(input_scale=0.5)
    found = model.detect(image, options)
    [own] = model.parse([image], None, options)
    [given] = model.parse([image], [found], options)
    assert len(found) > 0 and len(own.ids) > 0
    assert np.array_equal(own.parts, given.parts) and np.array_equal(own.persons, given.persons)
    with pytest.raises(HumanParseError, match="no built-in detector"):
        build_model(ModelConfig(backbone="resnet18", output_stride=16, detection_head=False)).detect(image)


def test_detector_requirements() -> None:
    no_head = build_model(ModelConfig(backbone="resnet18", output_stride=16, detection_head=False))
    assert no_head.detector is None
    with pytest.raises(HumanParseError, match="no built-in detector"):
        no_head(torch.rand(1, 3, 32, 32))
    with pytest.raises(HumanParseError, match="together"):
        build_model(TINY)(torch.rand(1, 3, 32, 32), boxes=[torch.zeros(0, 4)])


def test_init_takes_the_weights_and_the_runs_crf_settings(tmp_path) -> None:
    trained = build_model(TINY)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = save_checkpoint(trained, tmp_path / "stage1.pt")
    run = dataclasses.replace(TINY, crf=dataclasses.replace(TINY.crf, global_term=False, iterations=2))
    model, restarted = init_from_checkpoint(run, path)
    assert restarted == {}
    assert model.config == run and not model.crf.global_term and model.crf.iterations == 2
    expected = {k: v for k, v in trained.state_dict().items() if k != "crf.log_global_weight"}
    assert model.state_dict().keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key
    # Switched back on, the global weight starts at the configured value.
    back, _ = init_from_checkpoint(TINY, save_checkpoint(model, tmp_path / "box-only.pt"))
    assert back.crf.global_term and back.crf.log_global_weight.exp().item() == pytest.approx(TINY.crf.global_weight)


def test_init_restarts_the_learned_crf_values_the_run_sets_anew(tmp_path) -> None:
    """A CRF weight set differently from the config the checkpoint was trained with is a new
    start asked for; it used to be replaced silently by the checkpoint's learned value."""
    trained = build_model(TINY)
    with torch.no_grad():
        for p in trained.crf.parameters():
            p.add_(0.5)
    path = save_checkpoint(trained, tmp_path / "stage1.pt")
    crf = dataclasses.replace(TINY.crf, bilateral_weight=3.0, other_person_penalty=0.25)
    model, restarted = init_from_checkpoint(dataclasses.replace(TINY, crf=crf), path)
    assert restarted == {"bilateral_weight": 3.0, "other_person_penalty": 0.25}
    kernels, penalties = model.crf.log_kernel_weights.exp(), model.crf.log_penalties.exp()
    assert kernels[0].item() == pytest.approx(3.0) and penalties[1].item() == pytest.approx(0.25)
    # The values the run leaves as the checkpoint's config had them stay learned.
    assert torch.equal(model.crf.log_kernel_weights[1], trained.crf.log_kernel_weights[1])
    assert torch.equal(model.crf.log_penalties[0], trained.crf.log_penalties[0])
    assert torch.equal(model.crf.log_box_weight, trained.crf.log_box_weight)
    assert torch.equal(model.crf.log_global_weight, trained.crf.log_global_weight)


def test_init_with_another_architecture_names_the_fields(tmp_path) -> None:
    path = save_checkpoint(build_model(TINY), tmp_path / "stage1.pt")
    with pytest.raises(ConfigError, match=r"output_stride 16 \(the run has 8\)") as error:
        init_from_checkpoint(dataclasses.replace(TINY, output_stride=8), path)
    assert "\n" not in str(error.value)


class _Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_checkpoint_holding_code_is_refused_without_advising_to_unpickle_it(tmp_path, capsys) -> None:
    path = tmp_path / "exploit.pt"
    torch.save({"format": "humanparse", "version": 1, "state_dict": _Exploit()}, path)
    with pytest.raises(CheckpointError, match="never loads") as caught:
        read_checkpoint(path)
    assert "weights_only" not in str(caught.value)
    assert "pickled code ran" not in capsys.readouterr().out


def test_a_checkpoint_with_non_finite_weights_is_refused(tmp_path) -> None:
    """NaN weights (a diverged run) evaluated to all-zero APs with exit status 0."""
    model = build_model(TINY)
    with torch.no_grad():
        model.segmenter.head.classifier.weight[0, 0, 0, 0] = float("nan")
    path = save_checkpoint(model, tmp_path / "nan.pt")
    for load in (read_checkpoint, load_checkpoint, lambda p: init_from_checkpoint(TINY, p)[0]):
        with pytest.raises(CheckpointError, match="'segmenter.head.classifier.weight' holds NaN or infinite values") as caught:
            load(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["crf.log_global_weight"] = torch.tensor(float("inf"), dtype=torch.float16)
    payload["state_dict"]["segmenter.head.classifier.weight"].nan_to_num_(0.0)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="'crf.log_global_weight' holds NaN or infinite"):
        load_checkpoint(path)


def _edited(path, edit):
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p.update(config={"backbone": 5}), "config: key 'backbone' must be str"),
        (lambda p: p.update(config=[]), "config: expected a table"),
        (lambda p: p.update(labels=[]), "malformed label set"),
        (lambda p: p["labels"].update(names=5), "malformed label set"),
        (lambda p: p.update(state_dict={"w": 5}), "'w' holds int"),
        (lambda p: p.update(state_dict=[1, 2]), "'state_dict' must be a dict of tensors"),
        (lambda p: p.update(extra=5), "'extra' must be a dict"),
        (lambda p: p.update(extra={"about": "x"}), "'extra.about' must be a dict, got str"),
    ],
)
def test_hand_edited_checkpoints_are_one_line_errors_for_every_loader(tmp_path, edit, message) -> None:
    """`info --checkpoint` (humanparse.build.describe) read these unchecked and gave tracebacks;
    one validation in read_checkpoint now serves it, eval and training alike."""
    from humanparse.build import describe

    path = _edited(save_checkpoint(build_model(TINY), tmp_path / "m.pt"), edit)
    for load in (read_checkpoint, load_checkpoint, describe):
        with pytest.raises(CheckpointError, match=message) as caught:
            load(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_checkpoint_without_extra_or_with_an_empty_config_reads_with_the_defaults(tmp_path) -> None:
    """``extra`` is optional and a config's missing keys take ModelConfig's defaults: every
    loader sees complete, validated dicts, so `info` describes what `eval` would load."""
    from humanparse.build import describe

    path = _edited(save_checkpoint(build_model(TINY), tmp_path / "m.pt"), lambda p: (p.pop("extra"), p.update(config={})))
    payload = read_checkpoint(path)
    assert payload["extra"] == {} and payload["config"] == ModelConfig().to_dict()
    assert load_checkpoint(path).config == ModelConfig()
    assert ("crf", "5 mean-field iterations, global term on") in describe(str(path))


def test_a_checkpoint_describing_no_network_names_the_file(tmp_path) -> None:
    path = _edited(save_checkpoint(build_model(TINY), tmp_path / "m.pt"), lambda p: p["config"].update(backbone="nope"))
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(path))}: .*backbone.*'nope'"):  # from the builder, or from ModelConfig should it check
        load_checkpoint(path)
