"""Exported networks (humanparse.export) against the torch modules they came from, run by
onnxruntime and torch.jit.load on a real photo."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from humanparse.cli import main
from humanparse.export import _module, export_networks, exported_networks
from humanparse.io.images import read_image

PHOTO = Path(__file__).resolve().parent / "fixtures" / "photos" / "grace_hopper.jpg"
NANODET_MEAN, NANODET_STD = (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)


def photo_input(network: dict, size: tuple[int, int] | None = None) -> np.ndarray:
    """The real photo as the manifest says the network takes it."""
    layout, shape = network["input_layout"], network["input_shape"]
    nchw = layout.startswith("NCHW")
    h, w = size or (shape[2:] if nchw else shape[1:3])
    x = cv2.resize(read_image(PHOTO), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    if "BGR" in layout:
        x = x[..., ::-1]
    values = network["input_values"]
    x = x / 255 if values == "0..1" else (x - NANODET_MEAN) / NANODET_STD if values == "normalised" else x
    x = x.transpose(2, 0, 1)[None] if nchw else x[None]
    return np.ascontiguousarray(x.round().astype(np.int32) if network["input_dtype"] == "int32" else x.astype(np.float32))


def torch_outputs(name: str, parser: str, x: np.ndarray) -> list[np.ndarray]:
    module, _, _, _ = _module(name, parser)
    with torch.no_grad():
        return [out.numpy() for out in module(torch.from_numpy(x))]


def assert_close(got: list[np.ndarray], ref: list[np.ndarray], names: list[str]) -> None:
    """Within 1e-4 of each output's scale (its largest magnitude, at least 1): torch itself
    differs by as much between one and two threads on these outputs."""
    assert len(got) == len(ref) == len(names)
    for name, a, b in zip(names, got, ref):
        assert a.shape == b.shape, name
        scale = max(1.0, float(np.abs(b).max()))
        assert float(np.abs(a - b).max()) <= 1e-4 * scale, (name, float(np.abs(a - b).max()), scale)


@pytest.fixture(scope="module")
def default_onnx(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "onnx"
    export_networks("bodypix", out, "onnx")
    return out


def test_the_default_parsers_networks_in_onnxruntime_equal_torch_on_a_real_photo(default_onnx) -> None:
    manifest = json.loads((default_onnx / "manifest.json").read_text())
    assert [n["name"] for n in manifest["networks"]] == ["nanodet", "bodypix", "selfie"] == exported_networks("bodypix")
    assert manifest["format"] == "onnx" and "Instance CRF" in manifest["not_exported"]
    for network in manifest["networks"]:
        session = ort.InferenceSession(str(default_onnx / network["file"]), providers=["CPUExecutionProvider"])
        sizes = [(417, 417), (481, 353)] if network["name"] == "bodypix" else [None]  # BodyPix takes any size
        for size in sizes:
            x = photo_input(network, size)
            got = session.run(None, {network["input_name"]: x})
            assert_close(got, torch_outputs(network["name"], "bodypix", x), network["outputs"])
        assert network["license"] == "Apache-2.0" and network["preprocess"] and network["postprocess"]


def test_torchscript_files_load_without_humanparse_and_equal_torch(tmp_path) -> None:
    written = export_networks("bodypix-alone", tmp_path / "ts", "torchscript")
    [bodypix] = written
    traced = torch.jit.load(str(tmp_path / "ts" / bodypix.file))
    network = json.loads((tmp_path / "ts" / "manifest.json").read_text())["networks"][0]
    assert network["input_shape"] == [1, 3, "any height", "any width"]
    for size in ((417, 417), (360, 640)):  # the trace keeps the input size free
        x = photo_input(network, size)
        with torch.no_grad():
            got = [out.numpy() for out in traced(torch.from_numpy(x))]
        assert_close(got, torch_outputs("bodypix", "bodypix-alone", x), bodypix.outputs)


def test_the_holistic_network_exports_whole_at_any_size(tmp_path) -> None:
    export_networks("synthetic", tmp_path / "h", "onnx")
    network = json.loads((tmp_path / "h" / "manifest.json").read_text())["networks"][0]
    assert network["name"] == "holistic" and network["outputs"] == ["part_logits", "heatmap", "size", "offset"]
    assert network["license"].startswith("Apache-2.0")
    session = ort.InferenceSession(str(tmp_path / "h" / "holistic.onnx"), providers=["CPUExecutionProvider"])
    x = photo_input(network, (240, 320))
    got = session.run(None, {"image": x})
    assert got[0].shape == (1, 7, 240, 320)
    assert_close(got, torch_outputs("holistic", "synthetic", x), network["outputs"])


def test_a_torchscript_holistic_model_and_its_crf_parse_as_humanparse_does(tmp_path) -> None:
    """holistic.pt, a softmax and crf.pt, loaded without humanparse's classes, against the
    model's own forward with the same boxes."""
    from humanparse.build import build_parser

    export_networks("synthetic", tmp_path / "ts", "torchscript")
    manifest = json.loads((tmp_path / "ts" / "manifest.json").read_text())
    assert manifest["crf"]["file"] == "crf.pt" and manifest["crf"]["iterations"] == 5 and "not_exported" not in manifest
    network, crf = torch.jit.load(str(tmp_path / "ts" / "holistic.pt")), torch.jit.load(str(tmp_path / "ts" / "crf.pt"))
    x = torch.from_numpy(photo_input(manifest["networks"][0], (96, 128)))
    boxes, scores = torch.tensor([[10.0, 4.0, 90.0, 95.0]]), torch.tensor([0.8])
    with torch.no_grad():
        logits = network(x)[0]
        got = crf(torch.softmax(logits[0], 0), x[0], boxes, scores)
        want = build_parser("synthetic")(x, [boxes], [scores]).instances[0]
    assert got.shape == want.shape == (7, 96, 128)
    assert float((got - want).abs().max()) < 1e-4


def test_the_export_command_writes_a_whole_folder_and_refuses_what_it_cannot_do(tmp_path, default_onnx) -> None:
    out = tmp_path / "ts"
    result = CliRunner().invoke(main, ["export", "--format", "torchscript", str(out), "--checkpoint", "bodypix-alone"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["bodypix.pt", "manifest.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder left
    for arguments, message in (
        (["--format", "torchscript", str(out), "--checkpoint", "bodypix-alone"], "already exists; choose another folder or pass --overwrite"),
        (["--format", "onnx", str(out), str(tmp_path / "b")], "takes one folder, OUT; got 2 paths"),
        (["--format", "onnx", str(tmp_path / "c"), "--half"], "--half and --about are for --format checkpoint"),
        (["--format", "onnx", str(tmp_path / "c"), "--checkpoint", "nonesuch"], "is neither a parser"),
        (["--format", "keras", str(tmp_path / "c")], "'keras' is not one of"),
        ([str(tmp_path / "c")], "takes SOURCE and TARGET; got 1 paths"),
        ([str(tmp_path / "missing.pt"), str(tmp_path / "d.pt")], "does not exist"),
    ):
        result = CliRunner().invoke(main, ["export", *arguments])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, (arguments, result.output)
    assert not (tmp_path / "c").exists()
    result = CliRunner().invoke(main, ["export", "--format", "torchscript", str(out), "--checkpoint", "bodypix-alone", "--overwrite"])
    assert result.exit_code == 0, result.output
