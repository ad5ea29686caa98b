"""Reading TensorFlow.js graph models and converting them to torch checkpoints.

A TF.js graph model is ``NAME.json`` (``modelTopology``: a GraphDef as JSON; ``weightsManifest``:
groups of weight files and, per constant, its name, shape, dtype and quantisation) and the
weight files it lists. :func:`read_tfjs` turns one into a :class:`~.graph.GraphSpec`;
:func:`convert` writes that as a checkpoint that ``torch.load(..., weights_only=True)`` reads
and :class:`~.graph.TFGraph` runs. This is development-time tooling: the shipped models were
converted once (``tools/convert_pretrained.py``); nothing at run time reads TF.js files.

Quantised constants are dequantised as TF.js does: float16 exactly (and kept float16 in the
checkpoint, which loses nothing), uint8/uint16 as ``min + scale * q`` (kept float32).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..io.files import AtomicFile
from ..io.weights import load_marked
from .graph import SUPPORTED, GraphSpec, NodeSpec

FORMAT = "humanparse.tfgraph"
VERSION = 1

_STORED = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "uint8": np.uint8, "float16": np.float16, "uint16": np.uint16, "int64": np.int64}


def _attr(value: dict[str, Any]) -> Any:
    """One GraphDef attribute as a plain value; shapes, tensors and functions become None
    (no op this runner knows reads them)."""
    if "s" in value:
        return base64.b64decode(value["s"]).decode("utf-8", "replace")
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return str(value["type"])
    if "list" in value:
        items = value["list"]
        if "i" in items:
            return [int(v) for v in items["i"]]
        if "f" in items:
            return [float(v) for v in items["f"]]
        if "s" in items:
            return [base64.b64decode(v).decode("utf-8", "replace") for v in items["s"]]
        if "b" in items:
            return [bool(v) for v in items["b"]]
        if "type" in items:
            return [str(v) for v in items["type"]]
        return []
    return None


def _dequantise(raw: memoryview, entry: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """One constant from the start of ``raw``; returns it and the bytes it took."""
    shape = [int(d) for d in entry["shape"]]
    count = int(np.prod(shape)) if shape else 1
    quant = entry.get("quantization")
    dtype = entry["dtype"]
    stored = quant["dtype"] if quant else dtype
    if stored not in _STORED or dtype not in _STORED:
        raise CheckpointError(f"constant {entry['name']}: unsupported dtype {stored!r}")
    itemsize = np.dtype(_STORED[stored]).itemsize
    size = count * itemsize
    if len(raw) < size:
        raise CheckpointError(f"constant {entry['name']}: the weight files end early ({len(raw)} of {size} bytes)")
    values = np.frombuffer(raw[:size], dtype=_STORED[stored]).reshape(shape)
    if quant and stored in ("uint8", "uint16"):
        values = (values.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])).astype(_STORED[dtype])
    return torch.from_numpy(np.array(values, copy=True)), size  # np.array: a 0-d result is a scalar


def read_tfjs(model_json: str | Path) -> tuple[GraphSpec, dict[str, Any]]:
    """The graph of a TF.js graph model, and facts about its files.

    Returns the :class:`GraphSpec` (placeholders and outputs from the model's signature, in
    its order) and ``{"files": {name: sha256}, "ops": {op: count}, "generated_by": ...}``.
    Raises CheckpointError for a file that is not a TF.js graph model or uses an op
    :class:`~.graph.TFGraph` lacks.
    """
    path = Path(model_json)
    try:
        text = path.read_bytes()
        model = json.loads(text)
        topology, manifest = model["modelTopology"], model["weightsManifest"]
        node_list = topology["node"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a TF.js graph model ({type(exc).__name__}: {exc})") from None
    files = {path.name: hashlib.sha256(text).hexdigest()}
    shards: list[bytes] = []
    for group in manifest:
        for name in group["paths"]:
            try:
                data = (path.parent / name).read_bytes()
            except OSError as exc:
                raise CheckpointError(f"{path}: cannot read its weight file {name} ({exc.strerror})") from None
            files[name] = hashlib.sha256(data).hexdigest()
            shards.append(data)
    raw = memoryview(b"".join(shards))  # slices of a memoryview share its bytes
    constants: dict[str, torch.Tensor] = {}
    offset = 0
    for group in manifest:
        for entry in group["weights"]:
            constants[entry["name"]], size = _dequantise(raw[offset:], entry)
            offset += size
    if offset != len(raw):
        raise CheckpointError(f"{path}: the weight files hold {len(raw) - offset} bytes more than the manifest lists")
    nodes: list[NodeSpec] = []
    ops: dict[str, int] = {}
    for node in node_list:
        attrs = {key: _attr(value) for key, value in node.get("attr", {}).items()}
        nodes.append({"name": node["name"], "op": node["op"], "inputs": list(node.get("input", [])), "attrs": {k: v for k, v in attrs.items() if v is not None}})
        ops[node["op"]] = ops.get(node["op"], 0) + 1
    missing = sorted(set(ops) - SUPPORTED)
    if missing:
        raise CheckpointError(f"{path}: ops this runner lacks: {', '.join(missing)}")
    signature = model.get("signature") or topology.get("signature")
    if not signature:
        raise CheckpointError(f"{path}: the model has no signature naming its inputs and outputs")
    inputs = [spec["name"].partition(":")[0] for spec in signature["inputs"].values()]
    outputs = {key: spec["name"].removesuffix(":0") for key, spec in signature["outputs"].items()}
    facts = {"files": files, "ops": dict(sorted(ops.items())), "generated_by": model.get("generatedBy"), "converted_by": model.get("convertedBy")}
    return {"nodes": nodes, "constants": constants, "inputs": inputs, "outputs": outputs}, facts


def convert(model_json: str | Path, out: str | Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Convert a TF.js graph model to a checkpoint at ``out`` (written atomically).

    The checkpoint is ``{"format", "version", "graph": GraphSpec, "meta"}``: plain data and
    tensors only. ``meta`` (provenance: package, version, license...) is stored beside the
    files' sha256 and the op counts. Returns the stored meta.
    """
    spec, facts = read_tfjs(model_json)
    stored = {**(meta or {}), **facts}
    with AtomicFile(out) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, "graph": spec, "meta": stored}, tmp.handle)
    return stored


def load_graph_checkpoint(path: str | Path) -> tuple[GraphSpec, dict[str, Any]]:
    """The graph and meta of a converted checkpoint; CheckpointError for anything else."""
    data = load_marked(path, "pretrained model", FORMAT, VERSION, kind="converted TF.js model")
    return data["graph"], data.get("meta", {})
