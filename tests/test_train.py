"""Training: a tiny end-to-end run of the stages, exact resume, and bad requests."""

from __future__ import annotations

import json

import pytest
import torch

from humanparse.config import load_train_config
from humanparse.errors import ConfigError, HumanParseError
from humanparse.model import load_checkpoint
from humanparse.synth import write_image_dataset
from humanparse.train import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_image_dataset(tmp_path_factory.mktemp("data") / "synth", 4, seed=2, size=(64, 48))


def config(tmp_path, data, out: str, *overrides: str):
    path = tmp_path / "base.toml"
    path.write_text(
        '[model]\nbackbone = "resnet18"\noutput_stride = 16\n[model.crf]\niterations = 1\n'
        f'[data]\nroot = "{data}"\n[optim]\nlr = 0.001\niterations = 3\n'
    )
    return load_train_config(path, [f"out={tmp_path / out}", "log_every=1", *overrides])


def test_semantic_then_joint_then_instance(tmp_path, data) -> None:
    semantic = train(config(tmp_path, data, "semantic"))
    assert semantic.is_file() and (tmp_path / "semantic" / "last.pt").is_file()
    lines = [json.loads(line) for line in (tmp_path / "semantic" / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3] and all(line["loss"] > 0 for line in lines)
    assert lines[0]["lr"] == pytest.approx(0.001) and lines[2]["lr"] < lines[1]["lr"]  # poly schedule
    saved = load_train_config(tmp_path / "semantic" / "config.toml")
    assert saved == config(tmp_path, data, "semantic")

    joint = train(config(tmp_path, data, "joint", "stage=joint", f"init={semantic}", "data.detector=sim:1", "optim.accumulate=2"))
    before, after = load_checkpoint(semantic), load_checkpoint(joint)
    assert not torch.equal(before.crf.log_kernel_weights, after.crf.log_kernel_weights)
    assert not torch.equal(before.segmenter.head.classifier.weight, after.segmenter.head.classifier.weight)

    instance = train(config(tmp_path, data, "instance", "stage=instance", f"init={semantic}", "data.detector=gt", "optim.schedule=fixed"))
    piecewise = load_checkpoint(instance)
    # Piecewise: the segmenter stays as pre-trained, the CRF learns.
    assert torch.equal(before.segmenter.head.classifier.weight, piecewise.segmenter.head.classifier.weight)
    assert not torch.equal(before.crf.log_penalties, piecewise.crf.log_penalties)


def test_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path, data) -> None:
    whole = load_checkpoint(train(config(tmp_path, data, "whole", "optim.iterations=4", "checkpoint_every=100")))

    def stop_after_two(report) -> None:
        if report.step == 2:
            raise KeyboardInterrupt

    stopped = config(tmp_path, data, "parts", "optim.iterations=4", "checkpoint_every=100")
    with pytest.raises(KeyboardInterrupt):
        train(stopped, progress=stop_after_two)
    resumed = load_checkpoint(train(stopped, resume=True))
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_bad_requests(tmp_path, data) -> None:
    train(config(tmp_path, data, "done", "optim.iterations=1"))
    with pytest.raises(HumanParseError, match="already holds a run"):
        train(config(tmp_path, data, "done", "optim.iterations=1"))
    with pytest.raises(HumanParseError, match="nothing to resume"):
        train(config(tmp_path, data, "fresh"), resume=True)
    with pytest.raises(ConfigError, match="needs data.crop"):
        train(config(tmp_path, data, "batched", "optim.batch_size=2"))
    with pytest.raises(HumanParseError, match="missing split file"):
        train(config(tmp_path, data, "nosplit", "data.split=val"))


def test_cli_trains_and_reports_bad_configs(tmp_path, data) -> None:
    from click.testing import CliRunner

    from humanparse.cli import main

    base = tmp_path / "c.toml"
    base.write_text(f'[model]\nbackbone = "resnet18"\noutput_stride = 16\n[data]\nroot = "{data}"\n[optim]\niterations = 1\n')
    runner = CliRunner()
    ok = runner.invoke(main, ["train", "--config", str(base), "--set", f"out={tmp_path / 'run'}", "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "run" / "final.pt").is_file()
    bad = runner.invoke(main, ["train", "--config", str(base), "--set", "optim.lrr=1", "--quiet"])
    assert bad.exit_code == 1 and "unknown key 'lrr'" in bad.output and "Traceback" not in bad.output


def test_shipped_configs_load() -> None:
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml")):
        load_train_config(path)
