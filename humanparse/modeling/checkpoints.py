"""Checkpoints of the holistic network: one file holding the weights, the model configuration
and the label set, loaded with ``weights_only=True`` (never unpickling arbitrary objects) and
written atomically; and the synthetic model shipped inside the package. The parsers a
``--checkpoint`` name gives are built in :mod:`humanparse.build`."""

from __future__ import annotations

import io
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError, HumanParseError
from ..io.files import write_bytes_atomic
from ..io.weights import load_plain
from ..labels import LabelSet
from ..version import __version__
from .holistic import HolisticParser, build_model

CHECKPOINT_FORMAT = "humanparse-checkpoint"
CHECKPOINT_VERSION = 1


def synthetic_checkpoint() -> Path:
    """The holistic model shipped inside the package, trained on the synthetic world
    (``humanparse/models/default.pt``)."""
    path = Path(str(resources.files("humanparse") / "models" / "default.pt"))
    if not path.is_file():
        raise HumanParseError("this installation has no synthetic model (humanparse/models/default.pt); give --checkpoint")
    return path


def save_checkpoint(model: HolisticParser, path: str | os.PathLike, extra: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write one file holding the state dict, the model config and the label set.

    The write is atomic: a temporary file in the same folder, then a rename, so that a
    crash or a full disk never leaves a half-written checkpoint in place of a good one.
    ``extra`` holds plain data and tensors only (optimiser state, iteration, ...).
    ``half`` stores floating-point weights as float16.
    """
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "humanparse_version": __version__,
        "config": model.config.to_dict(),
        "labels": model.labels.to_dict(),
        # Half precision halves a shipped file; loading copies the values back into float32.
        "state_dict": {k: v.half() if half and v.is_floating_point() else v for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    # Serialised in memory first: torch.save writing straight to a failing file (a full
    # disk) raises an opaque RuntimeError, a plain write raises OSError with its errno.
    try:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, buffer.getbuffer(), fsync=True)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dictionary, loaded with ``weights_only=True`` and validated, as every
    loader (:func:`load_checkpoint`, :func:`init_from_checkpoint`, ``humanparse info``)
    takes it: ``config`` a valid :class:`~humanparse.config.ModelConfig` and ``labels`` a
    valid :class:`~humanparse.labels.LabelSet`, both as complete plain dicts (defaults
    filled in); ``state_dict`` tensors by name, the floating-point ones finite; ``extra`` a
    dict (empty where the file has none), its ``about`` a dict where present. Anything else
    is a CheckpointError of one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist" if not path.exists() else f"checkpoint {path} is not a file")
    payload = load_plain(path, "checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a humanparse checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload.get('version')} is not supported (expected {CHECKPOINT_VERSION})")
    for key in ("config", "labels", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint has no {key!r}")
    try:
        config = ModelConfig.from_dict(payload["config"], source=f"{path}: config")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        labels = LabelSet.from_dict(payload["labels"])
    except HumanParseError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    extra = payload.get("extra", {})
    if not isinstance(extra, dict):
        raise CheckpointError(f"{path}: checkpoint's 'extra' must be a dict, got {type(extra).__name__}")
    if not isinstance(extra.get("about", {}), dict):
        raise CheckpointError(f"{path}: checkpoint's 'extra.about' must be a dict, got {type(extra['about']).__name__}")
    _check_weights(payload["state_dict"], path)
    return {**payload, "config": config.to_dict(), "labels": labels.to_dict(), "extra": extra}


def _check_weights(state: Any, path: Path) -> None:
    """A state dict of tensors by name, none holding NaN or infinity (a diverged run's
    weights evaluate to all-zero scores, which would pass for a result)."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint's 'state_dict' must be a dict of tensors, got {type(state).__name__}")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: checkpoint's 'state_dict' must map names to tensors; {name!r} holds {type(value).__name__}")
        # A sum is finite only where every value is (and costs a fifth of isfinite); one that
        # is not (NaN, infinity, or large values overflowing) is settled by isfinite.
        if value.is_floating_point() and not math.isfinite(float(value.sum())) and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: weight {name!r} holds NaN or infinite values (a diverged training run?); this checkpoint cannot be used")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> HolisticParser:
    """Rebuild the network from a checkpoint written by :func:`save_checkpoint`."""
    payload = read_checkpoint(path, map_location)
    model, _ = _model_from(payload, path, ModelConfig.from_dict(payload["config"]), strict=True)
    return model.to(map_location)


# What a previous stage's weights must agree on; the rest of [model] (the CRF's iterations,
# kernels and global term, frozen batch norm) is the new run's to choose.
_ARCHITECTURE = ("backbone", "label_set", "output_stride", "detection_head")
# Parameters that exist only with some CRF settings: the global term's weight.
_OPTIONAL_PARAMETERS = {"crf.log_global_weight"}


def init_from_checkpoint(config: ModelConfig, path: str | os.PathLike) -> tuple[HolisticParser, dict[str, float]]:
    """The network described by ``config`` with the weights of the checkpoint at ``path``
    (a previous training stage), as detectron2's MODEL.WEIGHTS: the run's config decides the
    CRF's settings (``crf.global_term``, iterations, kernel widths), the checkpoint every
    learned value. An architecture that differs is an error naming the fields; the global
    weight is dropped, or starts at ``crf.global_weight``, when the global term is switched.

    A learned CRF value (kernel weights, penalties, box and global weights, epsilon) that the
    run's config sets differently from the config the checkpoint was trained with is a new
    starting value asked for: it replaces the checkpoint's learned one. Returns the model and
    those values by field name (``{"bilateral_weight": 4.0}``; empty when none differ)."""
    payload = read_checkpoint(path)
    source = ModelConfig.from_dict(payload["config"])
    differ = [f"{name} {getattr(source, name)!r} (the run has {getattr(config, name)!r})" for name in _ARCHITECTURE if getattr(source, name) != getattr(config, name)]
    if differ:
        raise ConfigError(f"init {path} has a different architecture: {'; '.join(differ)}; set [model] to match it")
    model, stray = _model_from(payload, path, config, strict=False)
    stray -= _OPTIONAL_PARAMETERS
    if stray:
        raise CheckpointError(f"{path}: weights do not fit the model: {', '.join(sorted(stray)[:5])}")
    restarted = {name: getattr(config.crf, name) for name in _LEARNED_CRF if getattr(config.crf, name) != getattr(source.crf, name)}
    if not (source.crf.global_term and config.crf.global_term):
        restarted.pop("global_weight", None)  # absent on one side: it starts at the config's value already
    with torch.no_grad():
        for name, value in restarted.items():
            parameter, index = _LEARNED_CRF[name]
            getattr(model.crf, parameter)[index] = math.log(value)
    return model, restarted


# Each learned CRF value's parameter (a logarithm) and its place in it.
_LEARNED_CRF: dict[str, tuple[str, Any]] = {
    "box_weight": ("log_box_weight", ()),
    "global_weight": ("log_global_weight", ()),
    "epsilon": ("log_epsilon", ()),
    "bilateral_weight": ("log_kernel_weights", 0),
    "spatial_weight": ("log_kernel_weights", 1),
    "same_person_penalty": ("log_penalties", 0),
    "other_person_penalty": ("log_penalties", 1),
}


def _model_from(payload: dict[str, Any], path: str | os.PathLike, config: ModelConfig, strict: bool) -> tuple[HolisticParser, set[str]]:
    """The network of ``config`` with the checkpoint's labels and weights, and the names of
    the parameters missing from the checkpoint or left over (empty when ``strict``)."""
    try:
        model = build_model(config, labels=LabelSet.from_dict(payload["labels"]), pretrained=False)
    except HumanParseError as exc:  # a configuration no network has (an unknown backbone)
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        missing, unexpected = model.load_state_dict(payload["state_dict"], strict=strict)
    except RuntimeError as exc:
        # torch's first line only says "Error(s) in loading state_dict for ...": the next names the weight.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise CheckpointError(f"{path}: weights do not fit the model: {lines[1] if len(lines) > 1 else lines[0]}") from None
    return model, set(missing) | set(unexpected)
