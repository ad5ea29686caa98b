"""TFGraph runs TensorFlow ops as TensorFlow does: each op on tiny graphs against a NumPy
reference written from TF's definitions (float64 loops), padding rules, graph plumbing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from humanparse.errors import CheckpointError
from humanparse.pretrained.graph import SUPPORTED, TFGraph, same_padding


def node(name, op, inputs=(), **attrs):
    return {"name": name, "op": op, "inputs": list(inputs), "attrs": attrs}


def run(nodes, constants=None, feeds=None, outputs=("out",)):
    """Run a graph of ``nodes`` with placeholders fed by ``feeds`` (name -> array)."""
    feeds = feeds or {}
    constants = {k: torch.from_numpy(np.asarray(v)) for k, v in (constants or {}).items()}
    placeholders = [node(name, "Placeholder") for name in feeds]
    consts = [node(name, "Const") for name in constants]
    graph = TFGraph({"nodes": placeholders + consts + list(nodes), "constants": constants, "inputs": list(feeds), "outputs": {o: o for o in outputs}})
    with torch.inference_mode():
        result = graph(*(torch.from_numpy(np.asarray(v)) for v in feeds.values()))
    return {k: v.numpy() for k, v in result.items()} if len(outputs) > 1 else result[outputs[0]].numpy()


# --- references, from TensorFlow's definitions --------------------------------------------


def tf_pad_amounts(size, kernel, stride, dilation=1):
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def ref_conv(x, w, stride, padding, dilation=1, depthwise=False):
    """NHWC convolution, float64 loops; w is [H, W, I, O] (or [H, W, C, M] depthwise)."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    if padding == "SAME":
        (t, b), (l, r) = tf_pad_amounts(h, kh, stride, dilation), tf_pad_amounts(wd, kw, stride, dilation)
    else:
        t = b = l = r = 0
    xp = np.pad(x.astype(np.float64), ((0, 0), (t, b), (l, r), (0, 0)))
    oh = (xp.shape[1] - (kh - 1) * dilation - 1) // stride + 1
    ow = (xp.shape[2] - (kw - 1) * dilation - 1) // stride + 1
    outc = c * w.shape[3] if depthwise else w.shape[3]
    y = np.zeros((n, oh, ow, outc))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride : i * stride + (kh - 1) * dilation + 1 : dilation, j * stride : j * stride + (kw - 1) * dilation + 1 : dilation, :]
            if depthwise:
                y[:, i, j, :] = np.einsum("nabc,abcm->ncm", patch, w).reshape(n, -1)
            else:
                y[:, i, j, :] = np.einsum("nabc,abco->no", patch, w)
    return y


def ref_resize(x, out_h, out_w, align_corners, half_pixel):
    _, h, w, _ = x.shape

    def coords(n_in, n_out):
        scale = (n_in - 1) / (n_out - 1) if align_corners and n_out > 1 else n_in / n_out
        src = (np.arange(n_out) + 0.5) * scale - 0.5 if half_pixel else np.arange(n_out) * scale
        floor = np.floor(src)
        lo = np.maximum(floor, 0).astype(int)
        hi = np.minimum(np.ceil(src), n_in - 1).astype(int)
        return lo, hi, src - floor

    y0, y1, fy = coords(h, out_h)
    x0, x1, fx = coords(w, out_w)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]


# --- padding --------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "kernel", "stride", "dilation", "expected"), [
    (4, 3, 2, 1, (0, 1)),  # the stride-2 case: right/bottom only
    (5, 3, 2, 1, (1, 1)),
    (4, 4, 1, 1, (1, 2)),  # even kernel: the odd pixel after
    (7, 3, 1, 2, (2, 2)),
    (3, 1, 2, 1, (0, 0)),
])
def test_same_padding_puts_the_odd_pixel_after(size, kernel, stride, dilation, expected):
    assert same_padding(size, kernel, stride, dilation) == expected


# --- convolutions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "stride", "padding", "dilation"), [(8, 2, "SAME", 1), (7, 2, "SAME", 1), (6, 1, "SAME", 1), (7, 1, "SAME", 2), (9, 2, "VALID", 1)])
def test_conv2d_matches_tensorflow_padding_and_strides(size, stride, padding, dilation):
    rng = np.random.default_rng(size + stride)
    x = rng.normal(size=(2, size, size + 1, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    got = run([node("out", "Conv2D", ["x", "w"], strides=[1, stride, stride, 1], padding=padding, dilations=[1, dilation, dilation, 1])], {"w": w}, {"x": x})
    np.testing.assert_allclose(got, ref_conv(x, w, stride, padding, dilation), atol=1e-4)


def test_symmetric_padding_would_be_wrong_for_stride_two():
    """The reason for TF's rule: padding both sides moves the sampling grid by a pixel."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
    w = rng.normal(size=(3, 3, 2, 2)).astype(np.float32)
    got = run([node("out", "Conv2D", ["x", "w"], strides=[1, 2, 2, 1], padding="SAME")], {"w": w}, {"x": x})
    symmetric = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w).permute(3, 2, 0, 1), stride=2, padding=1).permute(0, 2, 3, 1).numpy()
    assert np.abs(got - symmetric).max() > 0.1
    np.testing.assert_allclose(got, ref_conv(x, w, 2, "SAME"), atol=1e-4)


@pytest.mark.parametrize(("stride", "multiplier"), [(1, 1), (2, 1), (2, 2)])
def test_depthwise_conv_with_channel_multiplier(stride, multiplier):
    rng = np.random.default_rng(stride * 10 + multiplier)
    x = rng.normal(size=(1, 6, 6, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, multiplier)).astype(np.float32)
    got = run([node("out", "DepthwiseConv2dNative", ["x", "w"], strides=[1, stride, stride, 1], padding="SAME")], {"w": w}, {"x": x})
    np.testing.assert_allclose(got, ref_conv(x, w, stride, "SAME", depthwise=True), atol=1e-4)


@pytest.mark.parametrize(("op", "fused", "activation"), [
    ("_FusedConv2D", ["BiasAdd"], lambda v: v),
    ("_FusedConv2D", ["BiasAdd", "Relu"], lambda v: np.maximum(v, 0)),
    ("_FusedConv2D", ["BiasAdd", "Relu6"], lambda v: np.clip(v, 0, 6)),
    ("_FusedConv2D", ["BiasAdd", "LeakyRelu"], lambda v: np.where(v > 0, v, 0.1 * v)),
    ("FusedDepthwiseConv2dNative", ["BiasAdd", "Relu6"], lambda v: np.clip(v, 0, 6)),
])
def test_fused_convolutions_add_bias_then_activate(op, fused, activation):
    rng = np.random.default_rng(len(fused))
    x = (3 * rng.normal(size=(1, 5, 5, 2))).astype(np.float32)
    depthwise = op.startswith("FusedDepthwise")
    w = rng.normal(size=(3, 3, 2, 1 if depthwise else 4)).astype(np.float32)
    bias = rng.normal(size=(2 if depthwise else 4,)).astype(np.float32)
    got = run([node("out", op, ["x", "w", "b"], strides=[1, 1, 1, 1], padding="SAME", fused_ops=fused, num_args=1, leakyrelu_alpha=0.1)], {"w": w, "b": bias}, {"x": x})
    np.testing.assert_allclose(got, activation(ref_conv(x, w, 1, "SAME", depthwise=depthwise) + bias), atol=1e-4)


def test_fused_convolution_with_extra_arguments_is_refused():
    with pytest.raises(CheckpointError, match="extra arguments"):
        run([node("out", "_FusedConv2D", ["x", "w", "b", "b"], strides=[1, 1, 1, 1], padding="SAME", fused_ops=["BiasAdd", "Prelu"], num_args=2)],
            {"w": np.zeros((1, 1, 1, 1), np.float32), "b": np.zeros(1, np.float32)}, {"x": np.zeros((1, 2, 2, 1), np.float32)})


@pytest.mark.parametrize(("size", "stride", "padding"), [(4, 2, "SAME"), (3, 2, "SAME"), (4, 1, "SAME"), (3, 2, "VALID")])
def test_conv2d_backprop_input_is_the_gradient_of_conv2d(size, stride, padding):
    """Conv2DBackpropInput(dy) is d<conv(x), dy>/dx: checked against autograd of the
    brute-force forward convolution, in float64."""
    rng = np.random.default_rng(size)
    kernel = 3
    out_size = size * stride if padding == "SAME" else (size - 1) * stride + kernel
    w = rng.normal(size=(kernel, kernel, 2, 3))  # forward conv: 2 -> 3 channels
    dy = rng.normal(size=(1, size, size, 3))
    x = torch.zeros(1, out_size, out_size, 2, dtype=torch.float64, requires_grad=True)
    (t, b), (l, r) = (tf_pad_amounts(out_size, kernel, stride),) * 2 if padding == "SAME" else ((0, 0), (0, 0))
    xp = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (l, r, t, b))
    y = torch.nn.functional.conv2d(xp, torch.from_numpy(w).permute(3, 2, 0, 1), stride=stride).permute(0, 2, 3, 1)
    assert y.shape[1] == size
    (y * torch.from_numpy(dy)).sum().backward()
    got = run([node("out", "Conv2DBackpropInput", ["sizes", "w", "dy"], strides=[1, stride, stride, 1], padding=padding)],
              {"sizes": np.array([1, out_size, out_size, 2], np.int32), "w": w.astype(np.float32)}, {"dy": dy.astype(np.float32)})
    np.testing.assert_allclose(got, x.grad.numpy(), atol=1e-4)


# --- pooling and resizing ---------------------------------------------------------------------


@pytest.mark.parametrize(("size", "kernel", "stride", "padding"), [(6, 3, 2, "SAME"), (5, 5, 1, "SAME"), (6, 2, 2, "VALID"), (7, 3, 2, "VALID")])
def test_pools_count_only_pixels_inside_the_image(size, kernel, stride, padding):
    rng = np.random.default_rng(size * kernel)
    x = rng.normal(size=(1, size, size, 2)).astype(np.float32)
    attrs = {"ksize": [1, kernel, kernel, 1], "strides": [1, stride, stride, 1], "padding": padding}
    got = run([node("max", "MaxPool", ["x"], **attrs), node("avg", "AvgPool", ["x"], **attrs)], feeds={"x": x}, outputs=("max", "avg"))
    t, b = tf_pad_amounts(size, kernel, stride) if padding == "SAME" else (0, 0)
    out = (size + t + b - kernel) // stride + 1
    for i in range(out):
        for j in range(out):
            r0, c0 = i * stride - t, j * stride - t
            window = x[0, max(r0, 0) : r0 + kernel, max(c0, 0) : c0 + kernel]
            np.testing.assert_allclose(got["max"][0, i, j], window.max(axis=(0, 1)), atol=1e-6)
            np.testing.assert_allclose(got["avg"][0, i, j], window.mean(axis=(0, 1)), atol=1e-5)


@pytest.mark.parametrize(("align_corners", "half_pixel"), [(False, True), (True, False), (False, False)])
@pytest.mark.parametrize(("out_h", "out_w"), [(8, 6), (3, 5), (1, 7)])
def test_resize_bilinear_in_each_tensorflow_mode(align_corners, half_pixel, out_h, out_w):
    rng = np.random.default_rng(out_h * 10 + out_w)
    x = rng.normal(size=(1, 4, 5, 2)).astype(np.float32)
    got = run([node("out", "ResizeBilinear", ["x", "size"], align_corners=align_corners, half_pixel_centers=half_pixel)], {"size": np.array([out_h, out_w], np.int32)}, {"x": x})
    np.testing.assert_allclose(got, ref_resize(x.astype(np.float64), out_h, out_w, align_corners, half_pixel), atol=1e-5)


# --- shapes, slicing, gathering ---------------------------------------------------------------

X = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)


@pytest.mark.parametrize(("begin", "end", "strides", "masks", "expected"), [
    ([0, 1, 0, 0], [2, 3, 4, 5], [1, 1, 1, 1], {}, X[0:2, 1:3, 0:4, 0:5]),
    ([0, 0, 1, 0], [0, 0, 3, 0], [1, 1, 1, 2], {"begin_mask": 0b1011, "end_mask": 0b1011}, X[:, :, 1:3, ::2]),
    ([1, 0], [2, 0], [1, 1], {"shrink_axis_mask": 0b01, "end_mask": 0b10}, X[1, 0:]),
    ([0, 2], [0, 3], [1, 1], {"ellipsis_mask": 0b01, "shrink_axis_mask": 0b10}, X[..., 2]),
    ([0, 0, 0], [0, 1, 0], [1, 1, 1], {"new_axis_mask": 0b001, "begin_mask": 0b100, "end_mask": 0b100}, X[None, 0:1, :]),
    ([0, -1], [0, 0], [1, -1], {"begin_mask": 0b01, "end_mask": 0b11}, X[:, ::-1]),
    ([0, 2], [0, 0], [1, -1], {"begin_mask": 0b01, "end_mask": 0b01}, X[:, 2:0:-1]),
    ([-1], [0], [1], {"shrink_axis_mask": 0b1}, X[-1]),
])
def test_strided_slice_masks(begin, end, strides, masks, expected):
    got = run([node("out", "StridedSlice", ["x", "b", "e", "s"], **masks)],
              {"b": np.array(begin, np.int32), "e": np.array(end, np.int32), "s": np.array(strides, np.int32)}, {"x": X})
    np.testing.assert_array_equal(got, expected)


def test_shape_ops():
    c = {"perm": np.array([0, 3, 1, 2], np.int32), "shape": np.array([2, -1, 5], np.int32), "dim": np.array(-1, np.int32), "reps": np.array([1, 2, 1, 1], np.int32),
         "axis": np.array(3, np.int32), "split_dim": np.array(1, np.int32), "sizes": np.array([1, -1], np.int32), "fill_dims": np.array([2, 3], np.int32), "value": np.array(1.5, np.float32),
         "pads": np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32), "pad_value": np.array(-3, np.float32), "start": np.array(1, np.int32), "limit": np.array(10, np.int32), "delta": np.array(3, np.int32)}
    nodes = [
        node("transpose", "Transpose", ["x", "perm"]),
        node("reshape", "Reshape", ["x", "shape"]),
        node("expand", "ExpandDims", ["x", "dim"]),
        node("squeeze", "Squeeze", ["expand"], squeeze_dims=[-1]),
        node("tile", "Tile", ["x", "reps"]),
        node("concat", "ConcatV2", ["x", "x", "axis"]),
        node("pack", "Pack", ["x", "x"], axis=1),
        node("unpack", "Unpack", ["x"], axis=1, num=3),
        node("second", "Identity", ["unpack:1"]),
        node("split", "Split", ["split_dim", "x"], num_split=3),
        node("third", "Identity", ["split:2"]),
        node("splitv", "SplitV", ["x", "sizes", "split_dim"]),
        node("rest", "Identity", ["splitv:1"]),
        node("fill", "Fill", ["fill_dims", "value"]),
        node("pad", "Pad", ["x", "pads"]),
        node("padv2", "PadV2", ["x", "pads", "pad_value"]),
        node("range", "Range", ["start", "limit", "delta"], Tidx="DT_INT32"),
        node("shape_of", "Shape", ["x"], out_type="DT_INT32"),
        node("size_of", "Size", ["x"], out_type="DT_INT32"),
    ]
    outs = ("transpose", "reshape", "squeeze", "tile", "concat", "pack", "second", "third", "rest", "fill", "pad", "padv2", "range", "shape_of", "size_of")
    got = run(nodes, c, {"x": X}, outs)
    np.testing.assert_array_equal(got["transpose"], X.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(got["reshape"], X.reshape(2, -1, 5))
    np.testing.assert_array_equal(got["squeeze"], X)
    np.testing.assert_array_equal(got["tile"], np.tile(X, (1, 2, 1, 1)))
    np.testing.assert_array_equal(got["concat"], np.concatenate([X, X], axis=3))
    np.testing.assert_array_equal(got["pack"], np.stack([X, X], axis=1))
    np.testing.assert_array_equal(got["second"], X[:, 1])
    np.testing.assert_array_equal(got["third"], X[:, 2:3])
    np.testing.assert_array_equal(got["rest"], X[:, 1:])
    np.testing.assert_array_equal(got["fill"], np.full((2, 3), 1.5, np.float32))
    np.testing.assert_array_equal(got["pad"], np.pad(X, ((0, 0), (1, 2), (0, 1), (0, 0))))
    np.testing.assert_array_equal(got["padv2"], np.pad(X, ((0, 0), (1, 2), (0, 1), (0, 0)), constant_values=-3))
    np.testing.assert_array_equal(got["range"], np.arange(1, 10, 3))
    np.testing.assert_array_equal(got["shape_of"], [2, 3, 4, 5])
    assert int(got["size_of"]) == X.size


def test_depth_to_space_moves_channel_blocks_into_pixels():
    x = np.arange(1 * 2 * 3 * 8, dtype=np.float32).reshape(1, 2, 3, 8)
    got = run([node("out", "DepthToSpace", ["x"], block_size=2)], feeds={"x": x})
    # TF (NHWC, DCR order): out[n, h*b + i, w*b + j, c] = in[n, h, w, (i*b + j)*C' + c]
    expected = np.zeros((1, 4, 6, 2), np.float32)
    for h in range(2):
        for w in range(3):
            for i in range(2):
                for j in range(2):
                    expected[0, h * 2 + i, w * 2 + j] = x[0, h, w, (i * 2 + j) * 2 : (i * 2 + j) * 2 + 2]
    np.testing.assert_array_equal(got, expected)


def test_gathers_selects_and_reductions():
    rng = np.random.default_rng(3)
    p = rng.normal(size=(4, 5, 3)).astype(np.float32)
    c = {"idx": np.array([[0, 1], [3, 4], [2, 2]], np.int32), "k": np.array(3, np.int32), "axis": np.array(-1, np.int32), "axes": np.array([0, 2], np.int32),
         "sp_idx": np.array([[0, 1], [2, 0]], np.int64), "sp_shape": np.array([3, 2], np.int64), "sp_val": np.array([5, 7], np.int64), "sp_def": np.array(-1, np.int64),
         "row": np.array([True, False, True, False]), "zero": np.array(0, np.float32)}
    nodes = [
        node("gather", "GatherNd", ["p", "idx"]),
        node("topk", "TopKV2", ["p", "k"], sorted=True),
        node("top_values", "Identity", ["topk"]), node("top_indices", "Identity", ["topk:1"]),
        node("argmax", "ArgMax", ["p", "axis"], output_type="DT_INT32"),
        node("max", "Max", ["p", "axes"], keep_dims=False), node("sum", "Sum", ["p", "axes"], keep_dims=True),
        node("dense", "SparseToDense", ["sp_idx", "sp_shape", "sp_val", "sp_def"]),
        node("neg", "Sub", ["zero", "p"]),
        node("select", "Select", ["row", "p", "neg"]),
    ]
    got = run(nodes, c, {"p": p}, ("gather", "top_values", "top_indices", "argmax", "max", "sum", "dense", "select"))
    np.testing.assert_array_equal(got["gather"], p[[0, 3, 2], [1, 4, 2]])
    order = np.argsort(-p, axis=-1, kind="stable")[..., :3]
    np.testing.assert_array_equal(got["top_indices"], order)
    np.testing.assert_array_equal(got["top_values"], np.take_along_axis(p, order, -1))
    np.testing.assert_array_equal(got["argmax"], p.argmax(-1))
    np.testing.assert_allclose(got["max"], p.max(axis=(0, 2)))
    np.testing.assert_allclose(got["sum"], p.sum(axis=(0, 2), keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(got["dense"], [[-1, 5], [-1, -1], [7, -1]])
    np.testing.assert_array_equal(got["select"], np.where(c["row"][:, None, None], p, -p))


@pytest.mark.parametrize(("op", "fn"), [
    ("Add", np.add), ("AddV2", np.add), ("Sub", np.subtract), ("Mul", np.multiply), ("RealDiv", np.divide),
    ("Maximum", np.maximum), ("Minimum", np.minimum), ("SquaredDifference", lambda a, b: (a - b) ** 2),
    ("Greater", np.greater), ("GreaterEqual", np.greater_equal), ("Less", np.less), ("Equal", np.equal),
])
def test_binary_ops_broadcast_like_numpy(op, fn):
    rng = np.random.default_rng(len(op))
    a = rng.normal(size=(2, 3, 4)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32) + 2
    np.testing.assert_allclose(run([node("out", op, ["a", "b"])], {"b": b}, {"a": a}), fn(a, b), rtol=1e-6)


def test_floor_division_rounds_towards_minus_infinity():
    a = np.array([7, -7, 7, -7, 0], np.int32)
    b = np.array([2, 2, -2, -2, 3], np.int32)
    np.testing.assert_array_equal(run([node("out", "FloorDiv", ["a", "b"])], {"b": b}, {"a": a}), np.floor_divide(a, b))
    np.testing.assert_allclose(run([node("out", "FloorDiv", ["a", "b"])], {"b": b.astype(np.float32)}, {"a": a.astype(np.float32)}), np.floor_divide(a, b))


@pytest.mark.parametrize(("op", "fn", "attrs"), [
    ("Abs", np.abs, {}), ("Exp", np.exp, {}), ("Sqrt", lambda v: np.sqrt(np.abs(v)), {}), ("Reciprocal", lambda v: 1 / v, {}),
    ("Relu", lambda v: np.maximum(v, 0), {}), ("Relu6", lambda v: np.clip(v, 0, 6), {}), ("Sigmoid", lambda v: 1 / (1 + np.exp(-v)), {}),
    ("LeakyRelu", lambda v: np.where(v > 0, v, 0.1 * v), {"alpha": 0.1}),
])
def test_unary_ops(op, fn, attrs):
    x = np.linspace(-8, 8, 33).astype(np.float32)
    x = np.abs(x) if op == "Sqrt" else x[x != 0] if op == "Reciprocal" else x
    np.testing.assert_allclose(run([node("out", op, ["x"], **attrs)], feeds={"x": x}), fn(x), rtol=1e-5, atol=1e-6)


def test_add_n_and_logical_and_and_cast():
    a = np.array([1.0, 2.0, 3.0], np.float32)
    got = run([node("sum", "AddN", ["a", "a", "a"]), node("gt", "Greater", ["a", "one"]), node("lt", "Less", ["a", "three"]),
               node("and", "LogicalAnd", ["gt", "lt"]), node("int", "Cast", ["a"], DstT="DT_INT32")],
              {"one": np.array(1, np.float32), "three": np.array(3, np.float32)}, {"a": a}, ("sum", "and", "int"))
    np.testing.assert_array_equal(got["sum"], 3 * a)
    np.testing.assert_array_equal(got["and"], [False, True, False])
    assert got["int"].dtype == np.int32


# --- plumbing -------------------------------------------------------------------------------


def test_only_the_nodes_the_outputs_need_run_and_control_inputs_are_ignored():
    # "broken" would fail (reshape 6 values to 4), but no output needs it.
    got = run([node("broken", "Reshape", ["x", "bad"]), node("out", "Mul", ["x", "x", "^broken"])], {"bad": np.array([4], np.int32)}, {"x": np.arange(6, dtype=np.float32)})
    np.testing.assert_array_equal(got, np.arange(6) ** 2)


def test_unsupported_ops_and_missing_nodes_are_named():
    with pytest.raises(CheckpointError, match="NonMaxSuppressionV5"):
        run([node("out", "NonMaxSuppressionV5", ["x"])], feeds={"x": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointError, match="no node 'ghost'"):
        run([node("out", "Identity", ["ghost"])], feeds={"x": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointError, match="constant c has no value"):
        TFGraph({"nodes": [node("c", "Const"), node("out", "Identity", ["c"])], "constants": {}, "inputs": [], "outputs": {"out": "out"}})


def test_every_op_of_the_shipped_networks_is_supported():
    from humanparse.pretrained.registry import NETWORKS, network_path
    from humanparse.pretrained.tfjs import load_graph_checkpoint

    for name in (name for name, network in NETWORKS.items() if network.converted_from == "TF.js"):
        spec, meta = load_graph_checkpoint(network_path(name))
        assert set(meta["ops"]) <= SUPPORTED
        assert {n["op"] for n in spec["nodes"]} <= SUPPORTED


def test_weights_are_frozen_and_move_with_the_module():
    w = np.ones((1, 1, 1, 1), np.float32)
    graph = TFGraph({"nodes": [node("x", "Placeholder"), node("w", "Const"), node("k", "Const"), node("y", "Conv2D", ["x", "w"], strides=[1, 1, 1, 1], padding="VALID"), node("out", "Add", ["y", "k"])],
                     "constants": {"w": torch.from_numpy(w), "k": torch.tensor(2.0, dtype=torch.float16)}, "inputs": ["x"], "outputs": {"out": "out"}})
    params = list(graph.parameters())
    assert params and not any(p.requires_grad for p in params)
    assert all(p.dtype == torch.float32 for p in params if p.is_floating_point())  # float16 constants are computed in float32
    assert graph(torch.full((1, 2, 2, 1), 3.0))["out"].eq(5.0).all()


def test_activations_never_overwrite_a_value_something_else_reads():
    """Activations work in place where that is safe; a sum read twice, or a view of one,
    must come out intact."""
    x = np.linspace(-9, 9, 12, dtype=np.float32).reshape(1, 3, 4)
    nodes = [
        node("sum", "AddV2", ["x", "x"]),
        node("clipped", "Relu6", ["sum"]),            # sum is read again below: not in place
        node("both", "Sub", ["sum", "clipped"]),
        node("sum2", "AddV2", ["x", "x"]),
        node("view", "Reshape", ["sum2", "shape"]),   # a view of sum2, which is an output too
        node("relu", "Relu", ["view"]),
        node("sum3", "Mul", ["x", "x"]),
        node("sig", "Sigmoid", ["sum3"]),             # sole reader of a fresh tensor: in place
    ]
    got = run(nodes, {"shape": np.array([12], np.int32)}, {"x": x}, ("clipped", "both", "sum2", "relu", "sig"))
    np.testing.assert_array_equal(got["clipped"], np.clip(2 * x, 0, 6))
    np.testing.assert_array_equal(got["both"], 2 * x - np.clip(2 * x, 0, 6))
    np.testing.assert_array_equal(got["sum2"], 2 * x)
    np.testing.assert_array_equal(got["relu"], np.maximum(2 * x, 0).reshape(12))
    np.testing.assert_allclose(got["sig"], 1 / (1 + np.exp(-x * x)), rtol=1e-6)
