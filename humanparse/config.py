"""Configuration: frozen dataclasses read from TOML, saved resolved with runs and checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, HumanParseError
from .labels import get_label_set

T = TypeVar("T")

# Mean-field iterations of the Instance CRF, wherever they come from (a config, a checkpoint,
# the command line's --crf-iterations): a slip of the keyboard (100000) would parse one photo
# for hours and make a training step that never ends (nor hears Ctrl-C, which waits for it).
MAX_CRF_ITERATIONS = 100
# The largest training crop. A training step holds about 1 KiB (resnet18) to 1.5 KiB
# (resnet101) of activations per pixel of the crop, per image of the batch (measured on the
# CPU at output stride 8): 2048x2048 takes 4-6 GiB an image, within an 8 GiB budget per
# image; a slip (100000) would pad every image to 28 GiB before the step even starts.
MAX_CROP = 2048
# Images in one optimiser step (batch_size x accumulate, per process). Ctrl-C and SIGTERM
# are heard between steps, never inside one (a stop saves the sampler and the generators,
# which a half-taken step would leave part-way); at the 0.3-3 images/s a CPU trains (the
# paper's crop and network to the smallest), a step of 1024 images keeps a stop within
# minutes to an hour. The paper's largest effective batch is 16 (appendix B.2): 64 times less.
MAX_IMAGES_PER_STEP = 1024
# SGD's rate: a network diverges far below it (training then stops with "training
# diverged"), and from float32's range (3.4e38) on torch's update cannot even be computed.
MAX_LR = 1e6
# The networks build_backbone knows (modeling/backbones.py), named here so that a config is
# checked when it is read, before torch is imported.
BACKBONES = ("resnet101", "resnet50", "resnet18", "mobilenet_v3_large", "bodypix")
OUTPUT_STRIDES = (8, 16)
# Integers are TOML's 64-bit ones: config.toml must read back in any TOML reader.
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class CRFConfig:
    """Instance CRF settings; the weights are initial values, learned afterwards."""

    iterations: int = 5
    box_weight: float = 1.0
    global_weight: float = 0.1
    epsilon: float = 1e-3
    bilateral_weight: float = 8.0
    spatial_weight: float = 2.0
    same_person_penalty: float = 1.0
    other_person_penalty: float = 1.0
    theta_alpha: float = 80.0
    theta_beta: float = 13.0
    theta_gamma: float = 3.0
    global_term: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.iterations <= MAX_CRF_ITERATIONS:
            raise ConfigError(f"model.crf.iterations must be 0 to {MAX_CRF_ITERATIONS}, got {self.iterations}")
        positive = ["box_weight", "epsilon", "bilateral_weight", "spatial_weight", "same_person_penalty", "other_person_penalty", "theta_alpha", "theta_beta", "theta_gamma"]
        for name in positive + (["global_weight"] if self.global_term else []):
            if not getattr(self, name) > 0:  # learned as logarithms; the thetas divide
                raise ConfigError(f"model.crf.{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class ModelConfig:
    """The whole network: backbone, label set, built-in detection head and Instance CRF.

    ``pretrained`` asks for ImageNet weights when the model is first built (for ``bodypix``:
    BodyPix's own weights, shipped, with its person and part heads grouped onto the label
    set); a model loaded from a checkpoint never downloads anything.
    """

    backbone: str = "resnet18"
    label_set: str = "pascal-person-part"
    output_stride: int = 8
    frozen_bn: bool = False
    pretrained: bool = False
    detection_head: bool = True
    crf: CRFConfig = field(default_factory=CRFConfig)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"model.backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.output_stride not in OUTPUT_STRIDES:
            raise ConfigError(f"model.output_stride must be {' or '.join(map(str, OUTPUT_STRIDES))}, got {self.output_stride}")
        if self.backbone == "bodypix" and self.output_stride != 16:
            raise ConfigError(f"model.backbone bodypix has output stride 16 (BodyPix's own), got model.output_stride = {self.output_stride}")
        try:
            get_label_set(self.label_set)
        except HumanParseError as exc:
            raise ConfigError(f"model.label_set: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "ModelConfig":
        """Build from plain data, naming the offending key and its source on any error."""
        return from_dict(cls, data, source)


STAGES = ("semantic", "instance", "joint")


@dataclass(frozen=True)
class DataConfig:
    """Training data in the CIHP layout, and where the instance stages get detections."""

    root: str = ""
    split: str = "train"
    val_split: str = ""  # empty: no validation
    crop: int = 0  # square crop after augmentation, pixels; 0 keeps the whole image
    augment: bool = True
    detector: str = "sim"  # gt, sim[:SEED[:TRUNCATION]], file:PATH or builtin
    val_images: int = 0  # validate on the first this many images of val_split; 0: all

    def __post_init__(self) -> None:
        if self.crop < 0 or self.val_images < 0:
            raise ConfigError(f"data.crop and data.val_images must be 0 or more, got {self.crop} and {self.val_images}")
        if self.crop > MAX_CROP:
            raise ConfigError(f"data.crop must be at most {MAX_CROP} pixels, got {self.crop}")


@dataclass(frozen=True)
class OptimConfig:
    """SGD as in the paper's appendix B.2: momentum, weight decay, poly or fixed rate,
    gradient accumulation to an effective batch."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "poly"  # poly: lr·(1 - i/iterations)^power; fixed: lr throughout
    poly_power: float = 0.9
    iterations: int = 1000  # optimiser steps
    batch_size: int = 1
    accumulate: int = 1  # batches per optimiser step
    # Networks trained from scratch (no ImageNet weights offline) take gradients of norm
    # 15-60 in their first steps, which SGD at the paper's rate does not survive; 0: off.
    clip_grad_norm: float = 5.0
    amp: bool = True  # mixed precision (bfloat16, or float16 with loss scaling) on CUDA; ignored on the CPU

    def __post_init__(self) -> None:
        if self.schedule not in ("poly", "fixed"):
            raise ConfigError(f"optim.schedule must be poly or fixed, got {self.schedule!r}")
        for name in ("iterations", "batch_size", "accumulate"):
            if getattr(self, name) < 1:
                raise ConfigError(f"optim.{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size * self.accumulate > MAX_IMAGES_PER_STEP:
            raise ConfigError(f"optim.batch_size x optim.accumulate must be at most {MAX_IMAGES_PER_STEP} images a step, "
                              f"got {self.batch_size} x {self.accumulate}")
        for name in ("lr", "momentum", "weight_decay", "poly_power", "clip_grad_norm"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"optim.{name} must be a finite number, got {getattr(self, name)}")
        for name in ("lr", "poly_power"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"optim.{name} must be positive, got {getattr(self, name)}")
        if self.lr > MAX_LR:
            raise ConfigError(f"optim.lr must be at most {MAX_LR:g}, got {self.lr}")
        if not 0 <= self.momentum < 1:  # 1 or more sums every past gradient undamped
            raise ConfigError(f"optim.momentum must be 0 or more and less than 1, got {self.momentum}")
        for name in ("weight_decay", "clip_grad_norm"):
            if getattr(self, name) < 0:
                raise ConfigError(f"optim.{name} must be 0 or more, got {getattr(self, name)}")


@dataclass(frozen=True)
class LossConfig:
    ohem: bool = True
    ohem_fraction: float = 2**15 / 521**2  # the paper's K = 2^15 at 521×521
    ignore_unmatched: bool = True
    detection_weight: float = 1.0  # the built-in head's loss, added in every stage

    def __post_init__(self) -> None:
        if not 0 < self.ohem_fraction <= 1:
            raise ConfigError(f"loss.ohem_fraction must be in (0, 1], got {self.ohem_fraction}")
        if not self.detection_weight >= 0:
            raise ConfigError(f"loss.detection_weight must be 0 or more, got {self.detection_weight}")


@dataclass(frozen=True)
class TrainConfig:
    """One training stage: semantic (segmenter and detector head, cross-entropy),
    instance (segmenter frozen, Instance CRF with the matched loss) or joint (end to end)."""

    stage: str = "semantic"
    init: str = ""  # checkpoint of the previous stage; empty starts from the model config
    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda or cuda:N; under torchrun each rank takes cuda:LOCAL_RANK
    checkpoint_every: int = 500
    validate_every: int = 500
    log_every: int = 10
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if not self.out.strip():
            raise ConfigError("out must name the run's folder, got an empty string")
        if not 0 <= self.seed <= _INT64[1]:  # numpy's generators take no negative seed
            raise ConfigError(f"seed must be 0 to {_INT64[1]}, got {self.seed}")
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.stage != "semantic" and not self.init:
            raise ConfigError(f"stage {self.stage!r} starts from the previous stage's checkpoint: set init")
        if self.model.backbone == "bodypix" and not self.model.pretrained and not self.init:
            # No batch norm: from torch's default initialisation its features do not depend on
            # the input (3e-9 apart for two images), and it stays at background (docs/bodypix-start.md).
            raise ConfigError("model.backbone bodypix learns only from BodyPix's weights: set model.pretrained = true (or init)")
        for name in ("checkpoint_every", "validate_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a TOML file and apply ``key.path=value`` overrides (values in TOML syntax;
    a bare word is a string). Errors name the key and the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); a config is a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word: a string
        table = data
        *parents, leaf = key.strip().split(".")
        for part in parents:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a table")
        table[leaf] = value
    return from_dict(TrainConfig, data, str(path))


def parse_train_config(text: str, source: str) -> TrainConfig:
    """A config from TOML text (a run's resolved config, kept in its checkpoints)."""
    try:
        return from_dict(TrainConfig, tomllib.loads(text), source)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None


def to_toml(config: Any, prefix: str = "") -> str:
    """A dataclass config as TOML that :func:`load_train_config` reads back."""
    scalars = [f for f in dataclasses.fields(config) if not dataclasses.is_dataclass(getattr(config, f.name))]
    tables = [f for f in dataclasses.fields(config) if dataclasses.is_dataclass(getattr(config, f.name))]
    out = "".join(f"{f.name} = {_toml_value(getattr(config, f.name))}\n" for f in scalars)
    for f in tables:
        out += f"\n[{prefix}{f.name}]\n" + to_toml(getattr(config, f.name), f"{prefix}{f.name}.")
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} as TOML")


def _is_text(value: str) -> bool:
    """Whether ``value`` is writable as UTF-8: an argument with bytes that are not UTF-8
    arrives with surrogates, which would make config.toml unreadable."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def from_dict(cls: type[T], data: Any, source: str) -> T:
    """Build a (nested) config dataclass from plain data, checking every key and type."""
    return _build(cls, data, source)


def _build(cls: type[T], data: Any, source: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(fields))})")
    checked = {}
    for name, value in data.items():
        expected = hints[name]
        where = f"{source}: key {name!r}"
        if dataclasses.is_dataclass(expected):
            checked[name] = _build(expected, value, f"{source}: {name}")
            continue
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected in (int, float) and isinstance(value, bool)):
            raise ConfigError(f"{where} must be {expected.__name__}, got {value!r}")
        if expected is float and not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        if expected is int and not _INT64[0] <= value <= _INT64[1]:
            raise ConfigError(f"{where} must fit 64 bits, got {value}")
        if expected is str and not _is_text(value):
            raise ConfigError(f"{where} must be text (valid Unicode), got {value!r}")
        checked[name] = value
    try:
        return cls(**checked)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
