"""Writing outputs safely: never over an existing result, never half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import HumanParseError


@contextlib.contextmanager
def new_directory(out: str | os.PathLike) -> Iterator[Path]:
    """Build a new output folder in a hidden sibling, and move it into place on success.

    An existing non-empty ``out`` is an error (outputs are never overwritten silently); on
    any failure, including Ctrl-C, the partial folder is removed and ``out`` is untouched.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HumanParseError(f"{out} already exists and is not an empty folder; choose another output")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise HumanParseError(f"cannot write to {out.parent}: {exc.strerror or exc}") from None
    try:
        yield staging
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write a file through a temporary sibling and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
