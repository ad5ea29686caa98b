"""A TensorFlow graph run by PyTorch: :class:`TFGraph`.

The converted TF.js models (see :mod:`humanparse.pretrained.tfjs`) are TensorFlow GraphDefs:
a list of nodes, each an op with named inputs and attributes, plus constant tensors. This
module runs such a graph with torch alone, one native torch call per op, with TensorFlow's
semantics: tensors are NHWC, "SAME" padding puts the odd pixel at the right/bottom (so a
stride-2 3×3 convolution of an even-sized input pads right and bottom only), resizing follows
``align_corners``/``half_pixel_centers``, integer division floors.

Convolutions take NHWC activations as a permuted view, which is a channels-last NCHW tensor
to torch, so no op copies between layouts. Filters are turned into torch's layout once, when
the graph is built; batch norm was folded into the biases by TensorFlow's own export.

A graph is plain data (``GraphSpec``: lists, dicts, strings, numbers and tensors), so a
checkpoint holding one loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError

DTYPES: dict[str, torch.dtype] = {
    "DT_FLOAT": torch.float32,
    "DT_HALF": torch.float16,
    "DT_INT32": torch.int32,
    "DT_INT64": torch.int64,
    "DT_BOOL": torch.bool,
    "DT_UINT8": torch.uint8,
}


class NodeSpec(TypedDict):
    """One graph node: ``inputs`` name other nodes ("name" or "name:k" for output k);
    ``attrs`` hold plain values (int, float, bool, str, lists of them)."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any]


class GraphSpec(TypedDict):
    """A whole graph: nodes in any order, constants by node name, the placeholders' names and
    the outputs' (signature key -> "node" or "node:k")."""

    nodes: list[NodeSpec]
    constants: dict[str, torch.Tensor]
    inputs: list[str]
    outputs: dict[str, str]


Value = torch.Tensor | tuple[torch.Tensor, ...]
TRACES = 8  # input signatures whose traces a graph keeps (one per input shape)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's "SAME" padding of one axis: (before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_nchw(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], padding: str, value: float = 0.0) -> tuple[torch.Tensor, tuple[int, int]]:
    """``x`` (N, C, H, W) padded as TF's ``padding`` asks; returns it and the symmetric
    padding left for the op itself (so a symmetric SAME costs no copy)."""
    if padding == "VALID":
        return x, (0, 0)
    if padding != "SAME":
        raise CheckpointError(f"unsupported padding {padding!r}")
    top, bottom = same_padding(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[3], kernel[1], stride[1], dilation[1])
    if top == bottom and left == right:
        return x, (top, left)
    return F.pad(x, (left, right, top, bottom), value=value), (0, 0)


def _nhwc_pair(values: Sequence[int]) -> tuple[int, int]:
    """The H, W entries of a TF NHWC 4-list (strides, dilations, ksize)."""
    return int(values[1]), int(values[2])


# Activations applied in place: fused into a convolution, to its fresh output; standalone,
# where the input is a fresh tensor nothing else reads (:func:`_inplace_activations`).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": torch.relu_,
    "Relu6": lambda y: y.clamp_(0, 6),
    "Sigmoid": torch.sigmoid_,
    "Tanh": torch.tanh_,
    "Elu": F.elu_,
}


class _Conv(nn.Module):
    """Conv2D, DepthwiseConv2dNative and their fused forms (bias + activation), NHWC in/out."""

    def __init__(self, node: NodeSpec, weight: torch.Tensor, bias: torch.Tensor | None, depthwise: bool) -> None:
        super().__init__()
        attrs = node["attrs"]
        if attrs.get("data_format", "NHWC") != "NHWC":
            raise CheckpointError(f"{node['name']}: only NHWC convolutions are supported")
        kh, kw, cin, mult = weight.shape
        if depthwise:  # TF [H, W, C, M] -> torch [C*M, 1, H, W], groups C
            self.groups = cin
            weight = weight.permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
        else:  # TF [H, W, I, O] -> torch [O, I, H, W]
            self.groups = 1
            weight = weight.permute(3, 2, 0, 1)
        self.weight = nn.Parameter(weight.float().contiguous(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.float().contiguous(), requires_grad=False)
        self.kernel = (kh, kw)
        self.stride = _nhwc_pair(attrs.get("strides", [1, 1, 1, 1]))
        self.dilation = _nhwc_pair(attrs.get("dilations", [1, 1, 1, 1]))
        self.padding = attrs.get("padding", "VALID")
        if self.padding == "EXPLICIT":
            raise CheckpointError(f"{node['name']}: explicit convolution padding is not supported")
        fused = [op for op in attrs.get("fused_ops", []) if op != "BiasAdd"]
        if len(fused) > 1 or (fused and fused[0] not in ACTIVATIONS and fused[0] != "LeakyRelu"):
            raise CheckpointError(f"{node['name']}: unsupported fused ops {attrs.get('fused_ops')}")
        self.activation = fused[0] if fused else None
        self.alpha = float(attrs.get("leakyrelu_alpha", 0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # oneDNN convolves channels-last tensors without reordering them; graphs exported
        # from ONNX (NanoDet) hand over NCHW ones, which are copied once here.
        x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        x, padding = _pad_nchw(x, self.kernel, self.stride, self.dilation, self.padding)
        y = F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        if self.activation == "LeakyRelu":
            y = F.leaky_relu_(y, self.alpha)
        elif self.activation is not None:
            y = ACTIVATIONS[self.activation](y)  # in place: y is the convolution's own output
        return y.permute(0, 2, 3, 1)


class _ConvTranspose(nn.Module):
    """Conv2DBackpropInput (a transposed convolution) with its output size fixed in the graph."""

    def __init__(self, node: NodeSpec, sizes: torch.Tensor, weight: torch.Tensor) -> None:
        super().__init__()
        self.size = [int(v) for v in sizes.tolist()]  # N, H, W, C
        # TF's filter is the forward convolution's [H, W, out, in]: torch's (in, out, H, W) here.
        self.weight = nn.Parameter(weight.permute(3, 2, 0, 1).float().contiguous(), requires_grad=False)
        self.kernel = tuple(weight.shape[:2])
        self.stride = _nhwc_pair(node["attrs"].get("strides", [1, 1, 1, 1]))
        self.padding = node["attrs"].get("padding", "VALID")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The transposed convolution's output, before cropping, is (in-1)*s + k; TF crops the
        # "SAME" padding of the forward convolution (odd pixel after) from it.
        h, w = self.size[1], self.size[2]
        y = F.conv_transpose2d(x.permute(0, 3, 1, 2), self.weight, None, self.stride)
        if self.padding == "SAME":
            top, _ = same_padding(h, self.kernel[0], self.stride[0])
            left, _ = same_padding(w, self.kernel[1], self.stride[1])
        else:
            top = left = 0
        return y[:, :, top : top + h, left : left + w].permute(0, 2, 3, 1)


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _axis(t: torch.Tensor | int, rank: int) -> int:
    a = int(t) if isinstance(t, int) else int(t.reshape(-1)[0])
    return a + rank if a < 0 else a


def _resize_bilinear(x: torch.Tensor, size: torch.Tensor, align_corners: bool, half_pixel_centers: bool) -> torch.Tensor:
    h, w = _ints(size)
    nchw = x.permute(0, 3, 1, 2).float()
    if align_corners or half_pixel_centers:
        y = F.interpolate(nchw, size=(h, w), mode="bilinear", align_corners=align_corners)
    else:
        # TF's legacy mode: source coordinate = destination * in / out, no half-pixel shift.
        y = _legacy_bilinear(nchw, h, w)
    return y.permute(0, 2, 3, 1).to(x.dtype)


def _legacy_bilinear(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    def weights(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, dtype=torch.float32, device=x.device) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, src - lo
    y0, y1, fy = weights(x.shape[2], h)
    x0, x1, fx = weights(x.shape[3], w)
    top = x[:, :, y0] * (1 - fy)[:, None] + x[:, :, y1] * fy[:, None]
    return top[..., x0] * (1 - fx) + top[..., x1] * fx


def _strided_slice(x: torch.Tensor, begin: torch.Tensor, end: torch.Tensor, strides: torch.Tensor, attrs: dict[str, Any]) -> torch.Tensor:
    begin_l, end_l, stride_l = _ints(begin), _ints(end), _ints(strides)
    masks = {k: int(attrs.get(k, 0)) for k in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    index: list[Any] = []
    shrink: list[int] = []
    dim = 0
    for i, (b, e, s) in enumerate(zip(begin_l, end_l, stride_l)):
        bit = 1 << i
        if masks["ellipsis_mask"] & bit:
            rest = len(begin_l) - i - 1 - sum(1 for j in range(i + 1, len(begin_l)) if masks["new_axis_mask"] & (1 << j))
            count = x.dim() - dim - rest
            index.extend([slice(None)] * count)
            dim += count
            continue
        if masks["new_axis_mask"] & bit:
            index.append(None)
            continue
        if masks["shrink_axis_mask"] & bit:
            index.append(b)
            dim += 1
            continue
        start = None if masks["begin_mask"] & bit else b
        stop = None if masks["end_mask"] & bit else e
        if s < 0:
            # torch has no negative steps: flip the axis and mirror the bounds.
            n = x.shape[dim]
            lo = None if stop is None else (stop + n if stop < 0 else stop) + 1
            hi = None if start is None else (start + n if start < 0 else start) + 1
            shrink.append(len([v for v in index if v is not None]))
            index.append(slice(lo, hi, -s))
        else:
            index.append(slice(start, stop, s))
        dim += 1
    y = x[tuple(index)]
    for axis in shrink:
        y = y.flip(axis)
    return y


def _gather_nd(params: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    indices = indices.long()
    depth = indices.shape[-1]
    return params[tuple(indices[..., k] for k in range(depth))]


def _select(cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if cond.dim() == 1 and a.dim() > 1:  # TF1 Select picks whole rows by a vector condition
        cond = cond.reshape(-1, *([1] * (a.dim() - 1)))
    return torch.where(cond, a, b)


def _sparse_to_dense(indices: torch.Tensor, shape: torch.Tensor, values: torch.Tensor, default: torch.Tensor) -> torch.Tensor:
    out = torch.full(_ints(shape), default.item(), dtype=values.dtype, device=values.device)
    if indices.numel():
        idx = indices.long().reshape(indices.shape[0], -1) if indices.dim() > 1 else indices.long()[:, None]
        out[tuple(idx[:, k] for k in range(idx.shape[1]))] = values.expand(idx.shape[0]) if values.dim() == 0 else values
    return out


def _pool(x: torch.Tensor, attrs: dict[str, Any], kind: str) -> torch.Tensor:
    kernel, stride = _nhwc_pair(attrs["ksize"]), _nhwc_pair(attrs["strides"])
    # torch pools channels-last tensors an order of magnitude faster than NCHW ones on CPUs.
    nchw = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    if kind == "max":
        nchw, padding = _pad_nchw(nchw, kernel, stride, (1, 1), attrs.get("padding", "VALID"), value=-math.inf)
        y = F.max_pool2d(nchw, kernel, stride, padding)
    else:
        # TF averages over the pixels inside the image only.
        padded, padding = _pad_nchw(nchw, kernel, stride, (1, 1), attrs.get("padding", "VALID"))
        y = F.avg_pool2d(padded, kernel, stride, padding, count_include_pad=False)
        if padded is not nchw:
            ones, _ = _pad_nchw(torch.ones_like(nchw[:1, :1]), kernel, stride, (1, 1), attrs["padding"])
            y = y / F.avg_pool2d(ones, kernel, stride)
    return y.permute(0, 2, 3, 1)


def _split(x: torch.Tensor, sizes: list[int], axis: int) -> tuple[torch.Tensor, ...]:
    if -1 in sizes:
        known = sum(s for s in sizes if s != -1)
        sizes = [x.shape[axis] - known if s == -1 else s for s in sizes]
    return tuple(torch.split(x, sizes, dim=axis))


def _depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    n, h, w, c = x.shape
    y = x.reshape(n, h, w, block, block, c // (block * block)).permute(0, 1, 3, 2, 4, 5)
    return y.reshape(n, h * block, w * block, c // (block * block))


def _top_k(x: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values, indices = torch.topk(x, int(k), dim=-1, largest=True, sorted=True)
    return values, indices.int()


def _reduce(fn: Callable[..., torch.Tensor]) -> Callable[[dict[str, Any], torch.Tensor, torch.Tensor], torch.Tensor]:
    def op(attrs: dict[str, Any], x: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
        dims = [a + x.dim() if a < 0 else a for a in _ints(axes)]
        keep = bool(attrs.get("keep_dims", False))
        if not dims:
            return x
        return fn(x, dim=dims, keepdim=keep)
    return op


def _amax(x: torch.Tensor, dim: list[int], keepdim: bool) -> torch.Tensor:
    return torch.amax(x, dim=dim, keepdim=keepdim)


def _sum(x: torch.Tensor, dim: list[int], keepdim: bool) -> torch.Tensor:
    return torch.sum(x, dim=dim, keepdim=keepdim, dtype=x.dtype)


def _floor_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.is_floating_point() or b.is_floating_point():
        return torch.floor(a / b)
    return torch.div(a, b, rounding_mode="floor")


def _range(start: torch.Tensor, limit: torch.Tensor, delta: torch.Tensor, attrs: dict[str, Any]) -> torch.Tensor:
    dtype = DTYPES[attrs.get("Tidx", "DT_INT32")]
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=dtype, device=start.device)


def _pad(x: torch.Tensor, paddings: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    pairs = paddings.reshape(-1, 2).tolist()
    flat: list[int] = []
    for before, after in reversed(pairs):
        flat += [int(before), int(after)]
    return F.pad(x, flat, value=value)


# op name -> fn(attrs, *inputs). Elementwise ops broadcast as NumPy (and TF) do.
OPS: dict[str, Callable[..., Value]] = {
    "Identity": lambda a, x: x,
    "Cast": lambda a, x: x.to(DTYPES[a["DstT"]]),
    "Add": lambda a, x, y: x + y,
    "AddV2": lambda a, x, y: x + y,
    "AddN": lambda a, *xs: torch.stack(torch.broadcast_tensors(*xs)).sum(0),
    "Sub": lambda a, x, y: x - y,
    "Mul": lambda a, x, y: x * y,
    "RealDiv": lambda a, x, y: x / y,
    "FloorDiv": lambda a, x, y: _floor_div(x, y),
    "Maximum": lambda a, x, y: torch.maximum(x, y.to(x.dtype)),
    "Minimum": lambda a, x, y: torch.minimum(x, y.to(x.dtype)),
    "SquaredDifference": lambda a, x, y: (x - y) * (x - y),
    "Equal": lambda a, x, y: x == y,
    "Greater": lambda a, x, y: x > y,
    "GreaterEqual": lambda a, x, y: x >= y,
    "Less": lambda a, x, y: x < y,
    "LogicalAnd": lambda a, x, y: x & y,
    "Abs": lambda a, x: x.abs(),
    "Exp": lambda a, x: x.exp(),
    "Sqrt": lambda a, x: x.sqrt(),
    "Reciprocal": lambda a, x: 1 / x,
    "Relu": lambda a, x: F.relu(x),
    "Relu6": lambda a, x: F.relu6(x),
    "Sigmoid": lambda a, x: torch.sigmoid(x),
    "LeakyRelu": lambda a, x: F.leaky_relu(x, float(a.get("alpha", 0.2))),
    "ConcatV2": lambda a, *xs: torch.cat(xs[:-1], dim=_axis(xs[-1], xs[0].dim())),
    "Pack": lambda a, *xs: torch.stack(xs, dim=_axis(int(a.get("axis", 0)), xs[0].dim() + 1)),
    "Unpack": lambda a, x: tuple(torch.unbind(x, dim=_axis(int(a.get("axis", 0)), x.dim()))),
    "Split": lambda a, axis, x: tuple(torch.chunk(x, int(a["num_split"]), dim=_axis(axis, x.dim()))),
    "SplitV": lambda a, x, sizes, axis: _split(x, _ints(sizes), _axis(axis, x.dim())),
    "Reshape": lambda a, x, shape: x.reshape(_ints(shape)),
    "Squeeze": lambda a, x: x.squeeze(tuple(_axis(d, x.dim()) for d in a.get("squeeze_dims", []))) if a.get("squeeze_dims") else x.squeeze(),
    "ExpandDims": lambda a, x, dim: x.unsqueeze(_axis(dim, x.dim() + 1)),
    "Transpose": lambda a, x, perm: x.permute(_ints(perm)),
    "Tile": lambda a, x, reps: x.repeat(_ints(reps)),
    "Fill": lambda a, dims, value: torch.full(_ints(dims), value.item(), dtype=value.dtype, device=value.device),
    "Range": lambda a, start, limit, delta: _range(start, limit, delta, a),
    "Shape": lambda a, x: torch.tensor(list(x.shape), dtype=DTYPES[a.get("out_type", "DT_INT32")], device=x.device),
    "Size": lambda a, x: torch.tensor(x.numel(), dtype=DTYPES[a.get("out_type", "DT_INT32")], device=x.device),
    "StridedSlice": lambda a, x, b, e, s: _strided_slice(x, b, e, s, a),
    "Pad": lambda a, x, p: _pad(x, p),
    "PadV2": lambda a, x, p, v: _pad(x, p, float(v)),
    "ResizeBilinear": lambda a, x, size: _resize_bilinear(x, size, bool(a.get("align_corners", False)), bool(a.get("half_pixel_centers", False))),
    "MaxPool": lambda a, x: _pool(x, a, "max"),
    "AvgPool": lambda a, x: _pool(x, a, "avg"),
    "DepthToSpace": lambda a, x: _depth_to_space(x, int(a["block_size"])),
    "ArgMax": lambda a, x, axis: torch.argmax(x, dim=_axis(axis, x.dim())).to(DTYPES[a.get("output_type", "DT_INT64")]),
    "Max": _reduce(_amax),
    "Sum": _reduce(_sum),
    "TopKV2": lambda a, x, k: _top_k(x, k),
    "GatherNd": lambda a, p, i: _gather_nd(p, i),
    "Select": lambda a, c, x, y: _select(c, x, y),
    "SparseToDense": lambda a, i, s, v, d: _sparse_to_dense(i, s, v, d),
}
CONVOLUTIONS = {"Conv2D": False, "_FusedConv2D": False, "DepthwiseConv2dNative": True, "FusedDepthwiseConv2dNative": True}
# ops whose result is a new tensor of the full broadcast shape, never a view of an input
FRESH = frozenset({"Add", "AddV2", "AddN", "Sub", "Mul", "RealDiv", "Conv2DBackpropInput"}) | frozenset(CONVOLUTIONS)
SUPPORTED = frozenset(OPS) | frozenset(CONVOLUTIONS) | {"Const", "Placeholder", "Conv2DBackpropInput"}


def _source(ref: str) -> tuple[str, int]:
    name, _, k = ref.partition(":")
    return name, int(k) if k else 0


class TFGraph(nn.Module):
    """A TensorFlow graph (:class:`GraphSpec`) as a torch module.

    ``forward(*inputs)`` takes the placeholders' tensors in ``spec["inputs"]`` order (NHWC
    where the graph is) and returns a dict: signature key -> tensor. Only the nodes the
    outputs need are run, in dependency order, each once. The convolutions' weights are
    float32 parameters (``requires_grad`` off); other constants are buffers, so ``.to()``
    moves everything.
    """

    def __init__(self, spec: GraphSpec) -> None:
        super().__init__()
        nodes = {node["name"]: node for node in spec["nodes"]}
        unsupported = sorted({node["op"] for node in nodes.values()} - SUPPORTED)
        if unsupported:
            raise CheckpointError(f"the graph uses ops this runner lacks: {', '.join(unsupported)}")
        self.input_names = list(spec["inputs"])
        self.outputs = dict(spec["outputs"])
        consts = spec["constants"]
        for name, node in nodes.items():
            if node["op"] == "Const" and name not in consts:
                raise CheckpointError(f"constant {name} has no value")
        self.convs = nn.ModuleDict()
        self.constants = nn.ParameterDict()
        self._const_keys: dict[str, str] = {}
        self._steps: list[tuple[str, str, list[tuple[str, int]], dict[str, Any]]] = []
        for name in _schedule(nodes, [_source(ref)[0] for ref in self.outputs.values()]):
            node = nodes[name]
            op, refs = node["op"], [_source(ref) for ref in node["inputs"] if not ref.startswith("^")]
            if op == "Const":
                continue
            # A convolution holds its filter and bias as parameters in torch's layout; its
            # other inputs, and every other op's, are values at run time.
            if op in CONVOLUTIONS:
                fused = op.startswith(("_Fused", "Fused"))
                if fused and int(node["attrs"].get("num_args", 1)) != 1:
                    raise CheckpointError(f"{name}: fused convolutions with {node['attrs']['num_args']} extra arguments are not supported")
                bias = _constant(consts, nodes, refs[2]) if fused else None
                self.convs[name.replace(".", "_")] = _Conv(node, _constant(consts, nodes, refs[1]), bias, CONVOLUTIONS[op])
                refs = refs[:1]
            elif op == "Conv2DBackpropInput":
                self.convs[name.replace(".", "_")] = _ConvTranspose(node, _constant(consts, nodes, refs[0]), _constant(consts, nodes, refs[1]))
                refs = refs[2:]
            for src, _ in refs:
                if nodes[src]["op"] == "Const" and src not in self._const_keys:
                    key = f"c{len(self._const_keys)}"
                    self._const_keys[src] = key
                    value = consts[src]
                    self.constants[key] = nn.Parameter(value.float() if value.dtype == torch.float16 else value, requires_grad=False)
            self._steps.append((name, op, refs, node["attrs"]))
        self._inplace = _inplace_activations(self._steps, nodes, self.outputs)
        self._traces: dict[tuple, Callable[..., dict[str, torch.Tensor]]] = {}
        self._lock = threading.Lock()

    def run(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`forward` through a TorchScript trace of the graph for inputs of these
        shapes, dtypes and device, made on first use (the same numbers, without the per-op
        Python dispatch: 1.3-2.5x faster on these small networks on a CPU). The trace
        shares the module's weights; the last ``TRACES`` input signatures are kept. Where
        tracing is unavailable (a torch without TorchScript) or fails, this runs eagerly."""
        key = tuple((tuple(x.shape), x.dtype, x.device) for x in inputs)
        with self._lock:
            traced = self._traces.pop(key, None)
            if traced is None:
                traced = self._trace(inputs)
            self._traces[key] = traced  # most recent last
            while len(self._traces) > TRACES:
                self._traces.pop(next(iter(self._traces)))
        return traced(*inputs)

    def _trace(self, inputs: tuple[torch.Tensor, ...]) -> Callable[..., dict[str, torch.Tensor]]:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                # Every shape the graph computes is fixed by the input shapes the trace is
                # keyed on, so its shape-to-constant conversions are what TracerWarning flags.
                warnings.simplefilter("ignore")
                return torch.jit.trace(self, inputs, strict=False, check_trace=False)
        except Exception:  # noqa: BLE001 - any failure to trace leaves the eager path, which is exact
            return self.forward

    def forward(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"the graph takes {len(self.input_names)} inputs, got {len(inputs)}")
        values: dict[str, Value] = dict(zip(self.input_names, inputs))
        for name, key in self._const_keys.items():
            values[name] = self.constants[key]
        for name, op, refs, attrs in self._steps:
            if op == "Placeholder":
                continue
            args = [_pick(values[src], k) for src, k in refs]
            if op in CONVOLUTIONS or op == "Conv2DBackpropInput":
                values[name] = self.convs[name.replace(".", "_")](args[0])
            elif name in self._inplace:
                values[name] = ACTIVATIONS[op](args[0])
            else:
                values[name] = OPS[op](attrs, *args)
        return {key: _pick(values[_source(ref)[0]], _source(ref)[1]) for key, ref in self.outputs.items()}


def _inplace_activations(steps: list[tuple[str, str, list[tuple[str, int]], dict[str, Any]]], nodes: dict[str, NodeSpec], outputs: dict[str, str]) -> set[str]:
    """The activation steps that may overwrite their input: it is a fresh tensor (an
    arithmetic op's or a convolution's result, never a view of another) that nothing else
    reads. Saves a full-size copy per activation."""
    uses: dict[str, int] = {}
    for _, _, refs, _ in steps:
        for src, _ in refs:
            uses[src] = uses.get(src, 0) + 1
    for ref in outputs.values():
        uses[_source(ref)[0]] = uses.get(_source(ref)[0], 0) + 1
    return {name for name, op, refs, _ in steps if op in ACTIVATIONS and len(refs) == 1 and uses.get(refs[0][0]) == 1 and nodes[refs[0][0]]["op"] in FRESH}


def _constant(consts: dict[str, torch.Tensor], nodes: dict[str, NodeSpec], ref: tuple[str, int]) -> torch.Tensor:
    if nodes[ref[0]]["op"] != "Const":
        raise CheckpointError(f"{ref[0]}: a convolution's filter, bias and sizes must be constants")
    return consts[ref[0]]


def _schedule(nodes: dict[str, NodeSpec], targets: list[str]) -> list[str]:
    """The nodes ``targets`` depend on, each after its inputs (depth first, no recursion)."""
    order: list[str] = []
    seen: set[str] = set()
    for target in targets:
        stack = [(target, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                order.append(name)
                continue
            if name in seen:
                continue
            if name not in nodes:
                raise CheckpointError(f"the graph has no node {name!r}")
            seen.add(name)
            stack.append((name, True))
            stack.extend((_source(ref)[0], False) for ref in reversed(nodes[name]["inputs"]) if not ref.startswith("^"))
    return order


def _pick(value: Value, k: int) -> torch.Tensor:
    if isinstance(value, tuple):
        return value[k]
    if k:
        raise CheckpointError(f"output {k} of a single-output op asked for")
    return value
