"""Model configuration: frozen dataclasses that travel inside every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


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


@dataclass(frozen=True)
class ModelConfig:
    """The whole network: backbone, label set, built-in detection head and Instance CRF.

    ``pretrained`` asks for ImageNet weights when the model is first built; a model loaded
    from a checkpoint never downloads anything.
    """

    backbone: str = "resnet18"
    label_set: str = "pascal-person-part"
    output_stride: int = 8
    frozen_bn: bool = False
    pretrained: bool = False
    detection_head: bool = True
    crf: CRFConfig = field(default_factory=CRFConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "ModelConfig":
        """Build from plain data, naming the offending key and its source on any error."""
        values = dict(data)
        crf = _build(CRFConfig, values.pop("crf", {}), f"{source}: crf")
        return _build(cls, {**values, "crf": crf}, source)


def _build(cls: type[T], data: Any, source: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(fields)})")
    checked = {}
    for name, value in data.items():
        expected = type(getattr(cls(), name)) if name != "crf" else CRFConfig  # type: ignore[call-arg]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{source}: key {name!r} must be {expected.__name__}, got {value!r}")
        checked[name] = value
    return cls(**checked)
