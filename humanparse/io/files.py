"""Writing outputs safely: never over an existing result, never half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import HumanParseError


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
        os.chmod(staging, _with_umask(0o777))  # mkdtemp makes it private
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
        publish_file(tmp, path)  # mkstemp makes it private
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _with_umask(mode: int) -> int:
    """``mode`` as the process's umask would have left it for a newly created file."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def publish_file(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file normal permissions and rename it into place."""
    os.chmod(tmp, _with_umask(0o666))
    os.replace(tmp, path)
