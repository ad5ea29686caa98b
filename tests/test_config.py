"""Training configuration: TOML, overrides, errors that name the key and the file."""

from __future__ import annotations

import pytest

from humanparse.config import TrainConfig, load_train_config, to_toml
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
