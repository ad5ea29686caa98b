"""Reading TF.js graph models the test writes itself: attributes, weight files, float16 and
uint8 quantisation, signatures; converting them to checkpoints torch loads weights-only."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

from humanparse.errors import CheckpointError
from humanparse.pretrained.graph import TFGraph
from humanparse.pretrained.tfjs import FORMAT, convert, load_graph_checkpoint, read_tfjs


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_model(folder, weights, quantisation=None, extra_nodes=(), shards=1):
    """A TF.js model computing out = relu6(conv3x3(x, w, SAME, stride 2) + b) * scale."""
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": {"dim": [{"size": "1"}, {"size": "-1"}, {"size": "-1"}, {"size": "2"}]}}}},
        {"name": "w", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}, "value": {"tensor": {"dtype": "DT_FLOAT"}}}},
        {"name": "b", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}},
        {"name": "scale", "op": "Const", "attr": {"dtype": {"type": "DT_INT32"}}},
        {"name": "scale_f", "op": "Cast", "input": ["scale"], "attr": {"DstT": {"type": "DT_FLOAT"}, "SrcT": {"type": "DT_INT32"}}},
        {"name": "conv", "op": "_FusedConv2D", "input": ["x", "w", "b"], "attr": {
            "strides": {"list": {"i": ["1", "2", "2", "1"]}}, "padding": {"s": b64("SAME")}, "data_format": {"s": b64("NHWC")},
            "fused_ops": {"list": {"s": [b64("BiasAdd"), b64("Relu6")]}}, "num_args": {"i": "1"}, "epsilon": {"f": 0.0}, "explicit_paddings": {"list": {}},
            "use_cudnn_on_gpu": {"b": True}, "dilations": {"list": {"i": ["1", "1", "1", "1"]}}}},
        {"name": "mul", "op": "Mul", "input": ["conv", "scale_f"]},
        {"name": "Identity", "op": "Identity", "input": ["mul"]},
        *extra_nodes,
    ]
    entries, blobs = [], []
    for name, value in weights.items():
        entry = {"name": name, "shape": list(value.shape), "dtype": "int32" if value.dtype == np.int32 else "float32"}
        q = (quantisation or {}).get(name)
        if q == "float16":
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(value.astype(np.float16).tobytes())
        elif q == "uint8":
            lo, hi = float(value.min()), float(value.max())
            scale = (hi - lo) / 255 or 1.0
            entry["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo, "original_dtype": "float32"}
            blobs.append(np.round((value - lo) / scale).astype(np.uint8).tobytes())
        else:
            blobs.append(value.tobytes())
        entries.append(entry)
    data = b"".join(blobs)
    cut = [0, *np.linspace(0, len(data), shards + 1).astype(int)[1:-1].tolist(), len(data)]
    paths = []
    for k in range(shards):
        (folder / f"group1-shard{k + 1}of{shards}.bin").write_bytes(data[cut[k] : cut[k + 1]])
        paths.append(f"group1-shard{k + 1}of{shards}.bin")
    model = {
        "format": "graph-model", "generatedBy": "test", "convertedBy": "test",
        "signature": {"inputs": {"x:0": {"name": "x:0"}}, "outputs": {"out": {"name": "Identity:0"}}},
        "modelTopology": {"node": nodes, "library": {}, "versions": {}},
        "weightsManifest": [{"paths": paths, "weights": entries}],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(model))
    return path


def reference(x, w, b, scale):
    from tests.pretrained.test_graph import ref_conv

    return np.clip(ref_conv(x, w, 2, "SAME") + b, 0, 6) * scale


@pytest.fixture
def weights():
    rng = np.random.default_rng(0)
    return {"w": rng.normal(size=(3, 3, 2, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32), "scale": np.array(3, np.int32)}


@pytest.mark.parametrize("shards", [1, 3])
def test_a_float32_model_reads_and_runs_exactly(tmp_path, weights, shards):
    spec, facts = read_tfjs(write_model(tmp_path, weights, shards=shards))
    assert spec["inputs"] == ["x"] and spec["outputs"] == {"out": "Identity"}
    assert len(facts["files"]) == 1 + shards and facts["ops"]["_FusedConv2D"] == 1
    conv = next(n for n in spec["nodes"] if n["name"] == "conv")
    assert conv["attrs"]["padding"] == "SAME" and conv["attrs"]["fused_ops"] == ["BiasAdd", "Relu6"] and conv["attrs"]["strides"] == [1, 2, 2, 1]
    np.testing.assert_array_equal(spec["constants"]["w"].numpy(), weights["w"])
    x = np.random.default_rng(1).normal(size=(1, 6, 6, 2)).astype(np.float32)
    got = TFGraph(spec)(torch.from_numpy(x))["out"].detach().numpy()
    np.testing.assert_allclose(got, reference(x, weights["w"], weights["b"], 3), atol=1e-4)


def test_float16_weights_stay_float16_and_lose_nothing_more(tmp_path, weights):
    spec, _ = read_tfjs(write_model(tmp_path, weights, {"w": "float16", "b": "float16"}))
    assert spec["constants"]["w"].dtype == torch.float16
    np.testing.assert_array_equal(spec["constants"]["w"].numpy(), weights["w"].astype(np.float16))


def test_uint8_weights_are_dequantised_affinely(tmp_path, weights):
    spec, _ = read_tfjs(write_model(tmp_path, weights, {"w": "uint8"}))
    w = spec["constants"]["w"].numpy()
    assert w.dtype == np.float32
    lo, hi = weights["w"].min(), weights["w"].max()
    step = (hi - lo) / 255
    assert np.abs(w - weights["w"]).max() <= step / 2 + 1e-6
    q = np.round((weights["w"] - lo) / step)
    np.testing.assert_allclose(w, lo + step * q, rtol=1e-6, atol=1e-6)


def test_converted_checkpoint_loads_weights_only_and_matches(tmp_path, weights):
    source = write_model(tmp_path, weights, {"w": "float16"})
    out = tmp_path / "model.pt"
    meta = convert(source, out, {"license": "Apache-2.0"})
    assert meta["license"] == "Apache-2.0" and "model.json" in meta["files"]
    data = torch.load(out, weights_only=True)  # plain data and tensors only
    assert data["format"] == FORMAT
    spec, stored = load_graph_checkpoint(out)
    assert stored == meta
    x = torch.randn(1, 5, 7, 2)
    direct, _ = read_tfjs(source)
    torch.testing.assert_close(TFGraph(spec)(x)["out"], TFGraph(direct)(x)["out"], rtol=0, atol=0)
    assert not list(tmp_path.glob(".model.pt.*"))  # written atomically, no temporary left


def test_files_that_are_not_tfjs_graph_models_are_refused(tmp_path, weights):
    path = write_model(tmp_path, weights)
    (tmp_path / "group1-shard1of1.bin").write_bytes((tmp_path / "group1-shard1of1.bin").read_bytes()[:-4])
    with pytest.raises(CheckpointError, match="end early"):
        read_tfjs(path)
    (tmp_path / "bad.json").write_text("{\"modelTopology\": 3}")
    with pytest.raises(CheckpointError, match="not a TF.js graph model"):
        read_tfjs(tmp_path / "bad.json")
    unknown = [{"name": "odd", "op": "NonMaxSuppressionV5", "input": ["x"]}]
    write_model(tmp_path, weights, extra_nodes=unknown)
    with pytest.raises(CheckpointError, match="NonMaxSuppressionV5"):
        read_tfjs(path)


def test_foreign_and_damaged_checkpoints_are_refused(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="format mark"):
        load_graph_checkpoint(other)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="cannot read pretrained model .*damaged.pt"):
        load_graph_checkpoint(damaged)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_graph_checkpoint(tmp_path / "missing.pt")


class _Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_checkpoint_holding_code_is_refused_without_running_it(tmp_path, capsys):
    path = tmp_path / "exploit.pt"
    torch.save({"format": FORMAT, "version": 1, "graph": _Exploit()}, path)
    with pytest.raises(CheckpointError, match="humanparse never loads") as caught:
        load_graph_checkpoint(path)
    assert "weights_only" not in str(caught.value)
    assert "pickled code ran" not in capsys.readouterr().out


def test_a_quantised_scalar_and_a_missing_weight_file(tmp_path, weights):
    path = write_model(tmp_path, {**weights, "offset": np.array([0.25, 0.75], np.float32)[1:].reshape(())}, {"offset": "uint8"})
    spec, _ = read_tfjs(path)
    assert spec["constants"]["offset"].shape == () and abs(float(spec["constants"]["offset"]) - 0.75) < 1e-6
    (tmp_path / "group1-shard1of1.bin").unlink()
    with pytest.raises(CheckpointError, match="cannot read its weight file group1-shard1of1.bin"):
        read_tfjs(path)
