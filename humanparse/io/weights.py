"""Reading weight files safely: tensors and plain data only, never the code a pickle can carry,
and every failure one line that names the file."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch

from ..errors import CheckpointError

__all__ = ["load_marked", "load_plain"]


def load_plain(path: str | os.PathLike, what: str, map_location: str | object = "cpu") -> object:
    """``torch.load(path, weights_only=True)``: tensors and plain data only, a file holding
    other Python objects is refused without running them. Any failure is a CheckpointError
    ``"{what} {path}: ..."`` of one line that never repeats torch's advice to pass
    ``weights_only=False`` (which would run the file's code), and torch's warnings about
    foreign pickle protocols stay quiet.

    Args:
        path: the file, as written by ``torch.save``.
        what: what the file is, for messages ("checkpoint", "detector weights").
        map_location: where its tensors go, as ``torch.load`` takes it.
    Returns:
        The loaded object: tensors (on ``map_location``, dtypes as saved) in dicts, lists,
        tuples, strings and numbers.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"cannot read {what} {path}: it holds Python objects beyond tensors and plain data, which humanparse never loads") from None
    except Exception as exc:  # torch raises many types for damaged or foreign files
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CheckpointError(f"cannot read {what} {path}: {reason}") from None


def load_marked(path: str | os.PathLike, what: str, format: str, version: int, kind: str | None = None) -> dict:
    """A file written as ``{"format": format, "version": version, ...}``, loaded by
    :func:`load_plain`; CheckpointError (one line naming ``what`` and the path) when it is
    missing or unreadable, or (naming ``kind``, default ``what``) of another format or of
    another version of it.

    Returns:
        The file's dict, its format mark and version included; tensors on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    data = load_plain(path, what)
    kind = kind or what
    if not isinstance(data, dict) or data.get("format") != format:
        raise CheckpointError(f"{path}: not a {kind} (no {format!r} format mark)")
    if data.get("version") != version:
        raise CheckpointError(f"{path}: {kind} format version {data.get('version')!r}, this humanparse reads {version}")
    return data
