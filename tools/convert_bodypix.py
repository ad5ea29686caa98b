"""Convert BodyPix 2 (MobileNetV1 0.75, stride 16) from Coral's int8 TFLite file to humanparse/models/bodypix.pt.

Development-time tooling, run once; users never need it, nor LiteRT or TensorFlow. It reads
the TFLite flatbuffer with the ``tflite`` package (its schema; ``pip install tflite``, a
development-only dependency):

    python tools/convert_bodypix.py bodypix_mobilenet_v1_075_720_1280_16_quant.tflite

The files come from google-coral/project-bodypix (commit below, folder ``models/``); the
file's sha256 is checked against the ones recorded below. Every op of the graph is checked
against :class:`humanparse.pretrained.bodypix.BodyPixNet` (op, stride, padding, dilation,
fused activation, which tensor feeds which, the input's quantisation and padding), every
weight is dequantised, ``(q - zero_point) * scale`` per tensor or per output channel (int32
biases with their own scale), transposed to torch's layout and stored as float16, and the
checkpoint, ``{"format", "version", "state_dict", "meta"}``, is written atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from humanparse.io.files import AtomicFile  # noqa: E402
from humanparse.pretrained.bodypix import BLOCKS, FORMAT, HEADS, INPUT_SCALE, INPUT_ZERO_POINT, STEM_CHANNELS, VERSION, BodyPixNet  # noqa: E402
from humanparse.pretrained.registry import MODELS_DIR, NETWORKS  # noqa: E402

UPSTREAM = NETWORKS["bodypix"].upstream
COMMIT = "a46c428d729741c82f64550d742b2c65fe92999b"
# The model files of that commit (models/) holding the network alone, by sha256, and their quantisation.
SOURCES = {
    "bodypix_mobilenet_v1_075_720_1280_16_quant.tflite": ("6abaed4ad9080cafd327d0f03fd23f0c46d4409b75b6e23abde9a35582067696", "per-axis"),
    "bodypix_mobilenet_v1_075_1280_720_16_per_tensor_quant.tflite": ("bcf69959093769a0ba694c189da14f46fd0fb5b22a59c7797a4be05bcc703010", "per-tensor"),
    "bodypix_mobilenet_v1_075_720_1280_16_per_tensor_quant.tflite": ("294722b18b159c0e045d74cdf7698c6b3fa98085183601cd3d0423c339f5a160", "per-tensor"),
}
# The graph's output tensors, by BodyPixMaps field.
OUTPUTS = {"segments": "float_segments", "parts": "float_part_heatmaps", "heatmaps": "float_heatmaps", "short_offsets": "float_short_offsets",
           "mid_offsets": "float_mid_offsets", "long_offsets": "float_long_offsets"}
RELU6, NO_ACTIVATION = 3, 0  # tflite ActivationFunctionType
SAME = 0  # tflite Padding


class GraphMismatch(Exception):
    """The file's graph is not the one BodyPixNet implements."""


class Graph:
    """The ops and tensors of a TFLite file's first subgraph, read with the ``tflite`` schema."""

    def __init__(self, data: bytes) -> None:
        import tflite

        self.tflite = tflite
        self.model = tflite.Model.GetRootAsModel(data, 0)
        self.graph = self.model.Subgraphs(0)
        names = {value: key for key, value in vars(tflite.BuiltinOperator).items() if not key.startswith("_")}
        self.ops = []
        for k in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            self.ops.append((kind, op, list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())))

    def name(self, index: int) -> str:
        return self.graph.Tensors(index).Name().decode()

    def quantisation(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(scale, zero_point, axis) of a tensor; one value each when per tensor."""
        q = self.graph.Tensors(index).Quantization()
        if q is None or q.ScaleLength() == 0:
            raise GraphMismatch(f"tensor {self.name(index)!r} is not quantised")
        return q.ScaleAsNumpy().astype(np.float64), q.ZeroPointAsNumpy().astype(np.float64), q.QuantizedDimension()

    def raw(self, index: int) -> np.ndarray:
        tensor = self.graph.Tensors(index)
        dtype = {self.tflite.TensorType.INT8: np.int8, self.tflite.TensorType.INT32: np.int32}[tensor.Type()]
        return self.model.Buffers(tensor.Buffer()).DataAsNumpy().view(dtype).reshape(tensor.ShapeAsNumpy())

    def dequantised(self, index: int) -> np.ndarray:
        """``(q - zero_point) * scale``, per tensor or along the quantised axis, float64."""
        q = self.raw(index).astype(np.float64)
        scale, zero, axis = self.quantisation(index)
        if len(scale) > 1:
            shape = [1] * q.ndim
            shape[axis] = len(scale)
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return (q - zero) * scale

    def options(self, op, kind: str):
        cls = {"CONV_2D": self.tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": self.tflite.DepthwiseConv2DOptions}[kind]
        options = cls()
        table = op.BuiltinOptions()
        options.Init(table.Bytes, table.Pos)
        return options


def read_bodypix(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """BodyPixNet's state dict (float32) from a BodyPix TFLite file, and facts about it."""
    graph = Graph(data)
    ops = graph.ops
    kinds = [kind for kind, *_ in ops]
    expected = ["QUANTIZE", "PAD", "CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * len(BLOCKS)
    if kinds[: len(expected)] != expected:
        raise GraphMismatch(f"the graph starts {kinds[: len(expected)]}, BodyPixNet is {expected}")

    (graph_input,) = graph.graph.InputsAsNumpy()
    scale, zero, _ = graph.quantisation(graph_input)
    if graph.graph.Tensors(graph_input).Type() != graph.tflite.TensorType.UINT8 or (scale[0], zero[0]) != (INPUT_SCALE, INPUT_ZERO_POINT):
        raise GraphMismatch(f"the input is quantised with scale {scale[0]} and zero point {zero[0]}; BodyPixNet normalises with {INPUT_SCALE}, {INPUT_ZERO_POINT}")
    _, quantize, quantize_in, quantize_out = ops[0]
    scale, zero, _ = graph.quantisation(quantize_out[0])
    if quantize_in != [graph_input] or (scale.tolist(), zero.tolist()) != ([INPUT_SCALE], [0.0]):
        raise GraphMismatch("the input's QUANTIZE changes its scale")
    _, _, (pad_in, paddings), pad_out = ops[1]
    paddings = graph.raw(paddings).tolist()
    if pad_in != quantize_out[0] or paddings != [[0, 0], [0, 1], [0, 1], [0, 0]]:
        raise GraphMismatch(f"the input is padded by {paddings}, BodyPixNet pads by one row and column at the bottom and right")

    state: dict[str, torch.Tensor] = {}
    layers = ["conv0"] + [f"blocks.{k}.{part}" for k in range(len(BLOCKS)) for part in ("depthwise", "pointwise")]
    strides = [2] + [s for _, _, s in BLOCKS for s in (s, 1)]
    current = pad_out[0]
    for layer, stride, (kind, op, inputs, outputs) in zip(layers, strides, ops[2:]):
        data_in, weight, bias = inputs
        options = graph.options(op, kind)
        found = (data_in == current, options.Padding(), options.StrideH(), options.StrideW(), options.DilationHFactor(), options.DilationWFactor(), options.FusedActivationFunction())
        if found != (True, SAME, stride, stride, 1, 1, RELU6):
            raise GraphMismatch(f"{layer} ({graph.name(weight)}): (follows the last layer, padding, strides, dilations, activation) = {found}, BodyPixNet has SAME, stride {stride}, dilation 1, ReLU6")
        w = graph.dequantised(weight)  # CONV_2D [out, kh, kw, in]; DEPTHWISE_CONV_2D [1, kh, kw, channels]
        state[f"{layer}.weight"] = torch.from_numpy(w.transpose(3, 0, 1, 2) if kind == "DEPTHWISE_CONV_2D" else w.transpose(0, 3, 1, 2))
        state[f"{layer}.bias"] = torch.from_numpy(graph.dequantised(bias))
        current = outputs[0]
    if state["conv0.weight"].shape[0] != STEM_CHANNELS:
        raise GraphMismatch(f"the first convolution has {state['conv0.weight'].shape[0]} channels, BodyPixNet {STEM_CHANNELS}")

    # The heads: 1 x 1 convolutions of the last block, each feeding (through a concatenation
    # for the mid offsets, and a QUANTIZE to uint8) one output of the graph.
    consumers: dict[int, tuple[str, list[int], list[int]]] = {}
    for kind, _, inputs, outputs in ops:
        for tensor in inputs:
            consumers.setdefault(tensor, (kind, inputs, outputs))
    outputs_by_name = {graph.name(t): t for t in graph.graph.OutputsAsNumpy()}
    parts: dict[str, list[tuple[int, str, np.ndarray, np.ndarray]]] = {name: [] for name, _ in HEADS}
    for kind, op, inputs, outputs in ops[2 + 2 * len(BLOCKS) + 1 :]:
        if kind != "CONV_2D":
            continue
        data_in, weight, bias = inputs
        options = graph.options(op, kind)
        if data_in != current or (options.StrideH(), options.StrideW(), options.FusedActivationFunction()) != (1, 1, NO_ACTIVATION):
            raise GraphMismatch(f"head {graph.name(weight)} does not read the last block at stride 1 without activation")
        position, tensor = 0, outputs[0]
        kind_next, next_inputs, next_outputs = consumers[tensor]
        if kind_next == "CONCATENATION":
            position, tensor = next_inputs.index(tensor), next_outputs[0]
            kind_next, next_inputs, next_outputs = consumers[tensor]
        name = graph.name(next_outputs[0]) if kind_next == "QUANTIZE" else None
        field = next((f for f, output in OUTPUTS.items() if output == name and next_outputs[0] == outputs_by_name.get(name)), None)
        if field is None:
            raise GraphMismatch(f"head {graph.name(weight)} feeds {name!r}, not one of {sorted(OUTPUTS.values())}")
        parts[field].append((position, graph.name(weight), graph.dequantised(weight), graph.dequantised(bias)))
    for field, channels in HEADS:
        pieces = sorted(parts[field])
        if not pieces or sum(p[2].shape[0] for p in pieces) != channels:
            raise GraphMismatch(f"the output {OUTPUTS[field]} has {sum(p[2].shape[0] for p in pieces)} channels from {len(pieces)} heads, BodyPixNet {channels}")
        state[f"heads.{field}.weight"] = torch.from_numpy(np.concatenate([p[2] for p in pieces]).transpose(0, 3, 1, 2))
        state[f"heads.{field}.bias"] = torch.from_numpy(np.concatenate([p[3] for p in pieces]))
    per_axis = any(len(graph.quantisation(op_inputs[1])[0]) > 1 for kind, _, op_inputs, _ in ops if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    facts = {"quantisation": "int8 weights per output channel (per-axis)" if per_axis else "int8 weights per tensor",
             "input": list(int(v) for v in graph.graph.Tensors(graph_input).ShapeAsNumpy()),
             "mid_offsets": " + ".join(p[1].split("/")[1] for p in sorted(parts["mid_offsets"]))}
    return {key: value.float() for key, value in state.items()}, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tflite", type=Path, help="one of: " + ", ".join(SOURCES))
    parser.add_argument("--out", type=Path, default=MODELS_DIR / NETWORKS["bodypix"].file)
    args = parser.parse_args()
    if not args.tflite.is_file():
        sys.exit(f"{args.tflite}: no such file (google-coral/project-bodypix, commit {COMMIT}, models/)")
    if args.tflite.name not in SOURCES:
        sys.exit(f"{args.tflite.name}: not one of the known BodyPix files: {', '.join(SOURCES)}")
    data = args.tflite.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCES[args.tflite.name][0]:
        sys.exit(f"{args.tflite}: sha256 {digest}, expected {SOURCES[args.tflite.name][0]}")
    try:
        state, facts = read_bodypix(data)
    except GraphMismatch as exc:
        sys.exit(f"{args.tflite}: {exc}")
    BodyPixNet().load_state_dict(state)  # every key and shape
    meta = {"name": "bodypix", "network": "BodyPix 2, MobileNetV1 width 0.75, output stride 16", "source_file": args.tflite.name, "source_sha256": digest,
            "upstream": UPSTREAM, "upstream_commit": COMMIT, "upstream_folder": "models/", "license": NETWORKS["bodypix"].license, **facts,
            "changes": "int8 weights and int32 biases dequantised, (q - zero_point) * scale, stored as float16 and computed in float32; "
                       "filters transposed from TFLite's [out, h, w, in] and [1, h, w, channels] to torch's [out, in, h, w]; "
                       "displacement_fwd_2 and displacement_bwd_2 stored as one 64-channel head (the graph concatenates them); nothing retrained"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(args.out, fsync=True) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, "state_dict": {key: value.half() for key, value in state.items()}, "meta": meta}, tmp.handle)
    shown = args.out.relative_to(REPO) if args.out.resolve().is_relative_to(REPO) else args.out
    print(f"bodypix: {shown} {args.out.stat().st_size / 1e6:.2f} MB sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}; "
          f"from {args.tflite.name} ({facts['quantisation']}), {sum(v.numel() for v in state.values()):,} weights")


if __name__ == "__main__":
    main()
