"""The command line: one line of error, never a traceback."""

from __future__ import annotations

from click.testing import CliRunner

from humanparse import __version__
from humanparse.cli import main
from humanparse.config import CRFConfig, ModelConfig
from humanparse.model import build_model, save_checkpoint


def test_info_prints_versions_and_device() -> None:
    result = CliRunner().invoke(main, ["info", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert __version__ in result.output and "torch" in result.output and "cpu" in result.output


def test_info_describes_a_checkpoint(tmp_path) -> None:
    path = save_checkpoint(build_model(ModelConfig(crf=CRFConfig(iterations=3))), tmp_path / "m.pt")
    result = CliRunner().invoke(main, ["info", "--checkpoint", str(path)])
    assert result.exit_code == 0, result.output
    assert "resnet18" in result.output and "head, torso" in result.output and "3 mean-field" in result.output


def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("nonsense")
    for args in (["info", "--checkpoint", str(bad)], ["info", "--checkpoint", str(tmp_path / "nope.pt")], ["info", "--device", "cuda:7"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
        assert "Traceback" not in result.output
