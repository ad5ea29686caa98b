"""Device choice: ``auto`` picks CUDA when available, else the CPU."""

from __future__ import annotations

import torch

from .errors import HumanParseError


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a torch.device that exists here."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise HumanParseError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HumanParseError(f"device {spec!r} asked for, but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise HumanParseError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type != "cpu":
        raise HumanParseError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return device
