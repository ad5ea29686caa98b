"""Training configuration: TOML, overrides, errors that name the key and the file."""

from __future__ import annotations

import pytest

from humanparse.config import MAX_CRF_ITERATIONS, MAX_CROP, CRFConfig, ModelConfig, TrainConfig, load_train_config, to_toml
from humanparse.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_toml_with_overrides(tmp_path) -> None:
    path = write(tmp_path, 'stage = "semantic"\n[optim]\nlr = 0.02\niterations = 50\n[model]\nbackbone = "mobilenet_v3_large"\n[model.crf]\niterations = 3\n')
    config = load_train_config(path, ["optim.lr=1e-3", "data.root=data/synth", "model.crf.global_term=false", "loss.ohem_fraction=0.25"])
    assert config.optim.lr == 1e-3 and config.optim.iterations == 50
    assert config.data.root == "data/synth" and config.model.backbone == "mobilenet_v3_large"
    assert config.model.crf.iterations == 3 and config.model.crf.global_term is False
    assert config.loss.ohem_fraction == 0.25


def test_resolved_config_reads_back_the_same(tmp_path) -> None:
    config = load_train_config(write(tmp_path, ""), ["stage=joint", "init=runs/a/best.pt", "optim.schedule=fixed", "data.crop=256"])
    again = load_train_config(write(tmp_path, to_toml(config)))
    assert again == config


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("[optim]\nlrr = 1.0\n", [], r"run.toml: optim: unknown key 'lrr'"),
        ("[optim]\nlr = \"fast\"\n", [], r"run.toml: optim: key 'lr' must be float"),
        ("", ["optim.iterations=0"], r"optim.iterations must be at least 1"),
        ("", ["stage=instance"], r"set init"),
        ("", ["stage=pretrain"], r"stage must be one of semantic, instance, joint"),
        ("", ["optim"], r"is not KEY=VALUE"),
        ("[optim\n", [], r"not valid TOML"),
        ("", ["model.crf.theta_alpha=[1]"], r"key 'theta_alpha' must be float"),
    ],
)
def test_bad_configs_name_the_key_and_the_file(tmp_path, text, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_train_config(write(tmp_path, text), overrides)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_train_config(tmp_path / "none.toml")


def test_defaults_are_a_valid_semantic_stage() -> None:
    assert TrainConfig().stage == "semantic"


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.momentum=-0.5", r"optim.momentum must be 0 or more and less than 1, got -0.5"),
        ("optim.momentum=1", r"optim.momentum must be 0 or more and less than 1"),
        ("optim.weight_decay=-1", r"optim.weight_decay must be 0 or more"),
        ("optim.clip_grad_norm=-1", r"optim.clip_grad_norm must be 0 or more"),
        ("optim.poly_power=-1", r"optim.poly_power must be positive"),
        ("seed=-1", r"seed must be 0 to 9223372036854775807, got -1"),
        ("seed=9223372036854775808", r"key 'seed' must fit 64 bits"),  # beyond TOML's and torch's int64
        ("loss.detection_weight=nan", r"key 'detection_weight' must be a finite number, got nan"),
        ("loss.detection_weight=-1", r"loss.detection_weight must be 0 or more"),
        ("model.crf.theta_alpha=inf", r"key 'theta_alpha' must be a finite number"),
        ("model.crf.theta_beta=0", r"model.crf.theta_beta must be positive"),
        ("data.crop=100000", r"data.crop must be at most 2048 pixels, got 100000"),
        ("model.crf.iterations=1000000", r"model.crf.iterations must be 0 to 100, got 1000000"),
        ("optim.accumulate=100000000", r"optim.batch_size x optim.accumulate must be at most 1024 images a step, got 1 x 100000000"),
        ("optim.batch_size=1025", r"at most 1024 images a step, got 1025 x 1"),
        ("optim.lr=1e308", r"optim.lr must be at most 1e\+06, got 1e\+308"),
        ('model.backbone="vgg16"', r"model.backbone must be one of resnet101, resnet50, resnet18, mobilenet_v3_large, bodypix, got 'vgg16'"),
        ("model.output_stride=32", r"model.output_stride must be 8 or 16, got 32"),
        ('model.label_set="mhp"', r"model.label_set: unknown label set 'mhp'; known: atr, cihp, lip, pascal-person-part"),
        ('out=""', r"out must name the run's folder"),
        ("out=", r"out must name the run's folder"),
        ("data.root=caf\udce9", r"key 'root' must be text"),  # a non-UTF-8 byte in an argument
    ],
)
def test_out_of_range_values_are_one_line_errors_naming_the_key(tmp_path, override, message) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_train_config(write(tmp_path, ""), [override])
    assert "\n" not in str(caught.value)


def test_the_limits_hold_at_their_bounds(tmp_path) -> None:
    config = load_train_config(write(tmp_path, ""), [f"model.crf.iterations={MAX_CRF_ITERATIONS}", f"data.crop={MAX_CROP}", "seed=9223372036854775807", "optim.momentum=0",
                                                        "optim.batch_size=32", "optim.accumulate=32"])
    assert config.model.crf.iterations == MAX_CRF_ITERATIONS == 100 and config.data.crop == MAX_CROP
    assert load_train_config(write(tmp_path, to_toml(config))) == config


def test_a_config_that_is_not_utf8_is_one_line_error(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_bytes(b'stage = "semantic"\n# caf\xe9\n')
    with pytest.raises(ConfigError, match=r"run.toml:2: not UTF-8 text \(byte 0xe9\)"):
        load_train_config(path)


def test_a_checkpoint_asking_for_a_million_crf_iterations_is_refused(tmp_path) -> None:
    """The cap holds wherever the model config comes from: a checkpoint's too (its loaders
    read the config through ModelConfig), so that a step or a photo cannot take forever."""
    import torch

    from humanparse.errors import CheckpointError
    from humanparse.modeling.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
    from humanparse.modeling.holistic import build_model

    path = save_checkpoint(build_model(ModelConfig(backbone="resnet18", output_stride=16, crf=CRFConfig(iterations=1))), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["crf"]["iterations"] = 1_000_000
    torch.save(payload, path)
    for load in (read_checkpoint, load_checkpoint):
        with pytest.raises(CheckpointError, match=r"m.pt.*crf.iterations must be 0 to 100, got 1000000"):
            load(path)


def test_the_bodypix_backbone_from_random_weights_is_refused_for_a_new_run(tmp_path) -> None:
    """It cannot learn from torch's default initialisation (no batch norm): it was accepted
    and trained into a model that gives background everywhere."""
    sets = ['model.backbone="bodypix"', "model.output_stride=16"]
    with pytest.raises(ConfigError, match="bodypix learns only from BodyPix's weights: set model.pretrained = true"):
        load_train_config(write(tmp_path, ""), sets)
    assert load_train_config(write(tmp_path, ""), [*sets, "model.pretrained=true"]).model.pretrained
