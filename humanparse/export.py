"""The networks of a parser as files other runtimes load: ONNX or TorchScript.

``export_networks(parser, out, "onnx" | "torchscript")`` writes one file per network the
parser runs, and ``manifest.json`` beside them: for each file its input (name, layout, size,
dtype, value range), the pre-processing humanparse does before it, its outputs and the
post-processing after it, by the Python function that does it. The networks are exported
as humanparse runs them, weights in float32:

* ``bodypix`` (the default parser): NanoDet (persons), BodyPix (parts, person, keypoint
  maps; any input size) and the selfie model (person mask);
* ``pose-guided``: NanoDet, MoveNet Thunder, BlazePose and the selfie model;
* ``bodypix-alone``: BodyPix;
* ``synthetic`` or a holistic checkpoint: the holistic network, segmenter and built-in
  detection head in one graph (any input size).

The Instance CRF of the parser (none for ``bodypix-alone``) is exported in TorchScript only,
as ``crf.pt``: :class:`humanparse.modeling.crf_script.ScriptableCRF` compiled by
``torch.jit.script``, with the parser's learned values. Its permutohedral lattice is built
per image with a data-dependent size (a mixed-radix packing computed from the features'
range, a de-duplication of vertex codes): a script holds that, a trace or an ONNX graph
would freeze the example image's. The decoders (NanoDet's boxes, PoseNet's keypoints) are
NumPy and Python control flow and stay humanparse's; the manifest names them.

ONNX files use opset 17 and the TorchScript exporter (``torch.onnx.export(dynamo=False)``),
which needs the ``onnx`` package at export time only; TorchScript files are
``torch.jit.trace`` of the same modules (the CRF: ``torch.jit.script``), loaded by
``torch.jit.load`` (also from C++).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from .errors import HumanParseError

__all__ = ["FORMATS", "ExportedNetwork", "export_crf", "export_network", "export_networks", "exported_networks"]

FORMATS = ("onnx", "torchscript")
OPSET = 17


@dataclass(frozen=True)
class ExportedNetwork:
    """One network as the manifest describes it. ``input_shape``: ints, or names for the
    sizes an ONNX file leaves free (``"height"``)."""

    name: str
    file: str
    input_name: str
    input_shape: list
    input_dtype: str
    input_layout: str
    input_values: str
    preprocess: str
    outputs: list
    postprocess: str
    license: str


@dataclass(frozen=True)
class _Spec:
    """How to build, feed and describe one network."""

    input_name: str
    example: tuple[int, ...]
    dtype: torch.dtype
    layout: str
    values: str  # the input's range: "0..255", "0..1", or "normalised" (NanoDet's)
    dynamic: bool  # height and width free (fully convolutional)
    preprocess: str
    postprocess: str


_SPECS: dict[str, _Spec] = {
    "nanodet": _Spec(
        "image", (1, 3, 416, 416), torch.float32, "NCHW, BGR", "normalised", False,
        "the RGB image resized to 416 x 416 (area averaging when shrinking), channels reversed to BGR, "
        "(x - mean) / std with mean (103.53, 116.28, 123.675) and std (57.375, 57.12, 58.395) on 0..255 values",
        "humanparse.pretrained.nanodet.decode: three levels, each a (scores, box distributions) pair of outputs as "
        "humanparse.pretrained.nanodet.LEVELS names them; the person class, distribution-focal boxes; "
        "then torchvision.ops.nms at IoU 0.7 and the boxes scaled back by the image's size / 416",
    ),
    "bodypix": _Spec(
        "image", (1, 3, 417, 417), torch.float32, "NCHW, RGB", "0..255", True,
        "RGB values 0..255 as float, any height and width (the network normalises and pads to 16k + 1 itself); "
        "humanparse feeds the image at 640 px on its longer side",
        "maps on a 16-pixel grid, cell (r, c) centred on input pixel (16 r, 16 c): humanparse.pretrained.bodypix.upsample_to brings "
        "a map to the image; person probability sigmoid(segments); parts softmax(parts) grouped by "
        "humanparse.pretrained.bodypix.LABEL_GROUPS; keypoints by humanparse.pretrained.posenet.decode_poses",
    ),
    "selfie": _Spec(
        "image", (1, 256, 256, 3), torch.float32, "NHWC, RGB", "0..1", False,
        "the RGB image (or a square person crop: humanparse.pretrained.crops.crop_square) at 256 x 256, values / 255",
        "a (1, 256, 256, 1) person probability, resized back over the region it was cropped from",
    ),
    "movenet-thunder": _Spec(
        "image", (1, 256, 256, 3), torch.int32, "NHWC, RGB", "0..255", False,
        "a square crop around the person box, its side 1.25 x the box's longer side (crops.square_regions, crops.crop_square), "
        "at 256 x 256, values 0..255 as int32",
        "(1, 1, 17, 3) COCO keypoints y, x (0..1 in the crop) and score; crops.to_image_coordinates maps them back",
    ),
    "blazepose-full": _Spec(
        "image", (1, 256, 256, 3), torch.float32, "NHWC, RGB", "0..1", False,
        "a square crop around the person (as for movenet-thunder) at 256 x 256, values / 255",
        "humanparse.pretrained.blazepose.BlazePose.forward: ld_3d holds 33 landmarks (x, y in crop pixels, z, a visibility "
        "logit, ...), a keypoint's score is output_poseflag x sigmoid(visibility); activation_segmentation is a 256 x 256 person mask",
    ),
}
_HOLISTIC = _Spec(
    "image", (1, 3, 256, 256), torch.float32, "NCHW, RGB", "0..255", True,
    "RGB values 0..255 as float, any height and width (the network normalises itself)",
    "part_logits: softmax over channels gives Q (background and the label set's parts) for the Instance CRF; "
    "heatmap, size, offset: the built-in CenterNet head on the backbone's grid, decoded by "
    "humanparse.modeling.detection_head.decode",
)


class _Outputs(nn.Module):
    """A module whose outputs are a tuple of tensors in a fixed order, as exporters want."""

    def __init__(self, module: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.module, self.names = module, names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.module(x)
        return tuple(out[name] for name in self.names) if isinstance(out, dict) else tuple(out)


class _Holistic(nn.Module):
    """The holistic network without the CRF: segmenter logits and the detection head."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.segmenter, self.detector = model.segmenter, model.detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        seg = self.segmenter(images)
        if self.detector is None:
            return (seg.logits,)
        return (seg.logits, *self.detector(seg.features))


def exported_networks(parser: str) -> list[str]:
    """The names of the networks :func:`export_networks` writes for ``parser`` (a parser
    name or a holistic checkpoint file); ``"holistic"`` is the holistic network."""
    from .build import PARSERS, SYNTHETIC

    if parser in PARSERS and parser != SYNTHETIC:
        return list(PARSERS[parser].networks)
    return ["holistic"]


def _module(name: str, parser: str) -> tuple[nn.Module, _Spec, list[str], str]:
    """The float32 module for network ``name``, its spec, output names and license."""
    if name == "holistic":
        from .build import build_parser

        model = build_parser(parser)
        names = ["part_logits"] + (["heatmap", "size", "offset"] if model.detector is not None else [])
        license_ = "Apache-2.0 (derived from BodyPix)" if model.config.backbone == "bodypix" else "the checkpoint's own"
        return _Holistic(model).float().eval(), _HOLISTIC, names, license_
    from .pretrained.registry import NETWORKS, load_network

    if name == "bodypix":
        from .pretrained.bodypix import BodyPixMaps, load_bodypix

        net, _ = load_bodypix()
        return _Outputs(net, []), _SPECS[name], list(BodyPixMaps._fields), NETWORKS[name].license
    graph = load_network(name)
    names = list(graph.outputs)
    return _Outputs(graph, names).eval(), _SPECS[name], names, NETWORKS[name].license


def example_input(spec: _Spec, size: tuple[int, int] | None = None, seed: int = 0) -> torch.Tensor:
    """A smooth random image as the network takes it: the spec's shape (or ``size`` =
    (height, width) for a fully convolutional one), dtype, layout and value range."""
    nchw = spec.layout.startswith("NCHW")
    h, w = size or (spec.example[2:] if nchw else spec.example[1:3])
    coarse = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    x = {"0..1": x, "0..255": x * 255, "normalised": (x * 255 - 116.0) / 58.0}[spec.values]
    x = x if nchw else x.permute(0, 2, 3, 1)
    return x.round().to(torch.int32).contiguous() if spec.dtype == torch.int32 else x.contiguous()


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """The tracer warns at every shape it turns into a constant: for the fixed-size graphs
    that is what we want, and the fully convolutional ones are checked at another size."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        yield


def _write(module: nn.Module, spec: _Spec, names: list[str], path: Path, fmt: str) -> None:
    x = example_input(spec)
    with _quiet_export():
        if fmt == "torchscript":
            traced = torch.jit.trace(module, (x,), strict=False, check_trace=False)
            torch.jit.save(traced, str(path))
            return
        try:
            import onnx  # noqa: F401  the TorchScript exporter serialises through it
        except ModuleNotFoundError:
            raise HumanParseError("ONNX export needs the onnx package: pip install onnx (only to export; humanparse does not run ONNX files)") from None
        dynamic = {spec.input_name: {2: "height", 3: "width"}} if spec.dynamic else None
        if dynamic:
            dynamic.update({name: {2: "grid_height", 3: "grid_width"} for name in names})
        torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=OPSET, input_names=[spec.input_name], output_names=names, dynamic_axes=dynamic)


def export_network(name: str, path: str | os.PathLike, fmt: str, parser: str | os.PathLike = "bodypix") -> ExportedNetwork:
    """Write one network, ``name`` of :func:`exported_networks` (``"holistic"``: the
    holistic network of ``parser``, a name or checkpoint file), to the file ``path`` as ONNX
    or TorchScript; what the manifest says of it."""
    if fmt not in FORMATS:
        raise HumanParseError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    module, spec, names, license_ = _module(name, str(parser))
    _write(module, spec, names, Path(path), fmt)
    shape = list(spec.example)
    if spec.dynamic:
        shape[2:] = ["height", "width"] if fmt == "onnx" else ["any height", "any width"]
    return ExportedNetwork(name, Path(path).name, spec.input_name, shape, str(spec.dtype).removeprefix("torch."), spec.layout,
                           spec.values, spec.preprocess, names, spec.postprocess, license_)


_CRF_CALLS = {
    "bodypix": "humanparse.modeling.bodypix_parser.associate: on the image scaled by 0.5, Q from BodyPix's maps "
               "(BodyPixParser.parse), scores all 1, masks = each person's share times the reach of the boxes, global_share = the shares "
               "(person_shares); the labels by marginal_readout",
    "pose-guided": "humanparse.modeling.pose_guided.PoseGuidedParser.parse: on the persons' window at half scale, Q from the skeleton's parts, "
                   "masks = the averaged BlazePose and selfie masks, person_q = each person's own parts",
    "holistic": "humanparse.modeling.holistic.HolisticParser.forward: Q = softmax(part_logits), boxes and scores from the detector, "
                "at the image's size",
}


def export_crf(parser: str | os.PathLike, path: str | os.PathLike) -> dict | None:
    """The Instance CRF of ``parser`` compiled by ``torch.jit.script`` to ``path``
    (:class:`~humanparse.modeling.crf_script.ScriptableCRF`), and what the manifest says of
    it; None for a parser without one (``bodypix-alone``)."""
    from .build import build_parser
    from .modeling.crf_script import ScriptableCRF

    name = str(parser)
    crf = getattr(build_parser(name), "crf", None)
    if crf is None:
        return None
    with _quiet_export():
        torch.jit.save(torch.jit.script(ScriptableCRF(crf.float().eval())), str(path))
    call = _CRF_CALLS.get(name, _CRF_CALLS["holistic"])
    return {
        "file": Path(path).name,
        "inputs": {"q": "(P+1, H, W) float part probabilities, background first", "image": "(3, H, W) float RGB 0..255",
                   "boxes": "(D, 4) float x1 y1 x2 y2 pixels", "scores": "(D,) float in [0, 1]",
                   "masks": "optional (D, H, W) soft person masks (the mask term)", "person_q": "optional (D, P, H, W) each person's parts",
                   "global_share": "optional (D, H, W) shares of the global term, summing to 1 over persons"},
        "output": "(P*D+1, H, W) probabilities; channel (i-1)*P + j is part j of person i, 0 background",
        "iterations": crf.iterations, "num_parts": crf.num_parts,
        "how_the_parser_calls_it": call,
    }


def export_networks(parser: str | os.PathLike, out: str | os.PathLike, fmt: str, overwrite: bool = False) -> list[ExportedNetwork]:
    """Write the networks of ``parser`` (a name of :data:`humanparse.build.PARSERS` or a
    holistic checkpoint file) into the folder ``out`` as ``NAME.onnx`` or ``NAME.pt``
    (TorchScript), with ``manifest.json``. The folder is written whole or not at all: into
    a partial sibling, renamed into place. An existing ``out`` is refused unless
    ``overwrite``. Returns what the manifest holds."""
    if fmt not in FORMATS:
        raise HumanParseError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HumanParseError(f"{out} is a file; give a folder for the exported networks")
    if out.exists() and not overwrite:
        raise HumanParseError(f"{out} already exists; choose another folder or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    staging = out.parent / f".{out.name}.{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)  # a killed export's, of this process id
    staging.mkdir()
    try:
        written = [export_network(name, staging / f"{name}{suffix}", fmt, parser) for name in exported_networks(str(parser))]
        crf = export_crf(parser, staging / "crf.pt") if fmt == "torchscript" else None
        manifest = {"format": fmt, "opset": OPSET if fmt == "onnx" else None, "parser": str(parser), "torch": torch.__version__,
                    "networks": [asdict(n) for n in written], "crf": crf}
        if fmt == "onnx":
            manifest["not_exported"] = ("the Instance CRF: its permutohedral lattice is built per image with a data-dependent size, "
                                        "which an ONNX graph cannot hold; --format torchscript writes it as crf.pt")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return written
