"""Writing outputs safely: never over an existing result, never half-written."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
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


class AtomicFile:
    """A file written through a hidden temporary sibling of ``path``: :meth:`commit`
    renames it onto ``path``, :meth:`discard` removes it, so that ``path`` only ever holds
    a complete file (an older one stays in place until the new one is done).

    As a context manager it commits on success and discards on any exception. ``mode`` is
    ``"wb"`` or ``"w"``; ``fsync`` makes :meth:`commit` flush the data to the disk first
    (for files whose loss would cost work, like checkpoints).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "wb", fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        with _naming(self.path):
            fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.handle = os.fdopen(fd, mode)

    def write(self, data: bytes | str) -> None:
        with _naming(self.path):
            self.handle.write(data)

    def flush(self) -> None:
        """Hand what is written so far to the file system: a full disk fails here, not in
        :meth:`commit`."""
        with _naming(self.path):
            self.handle.flush()

    def commit(self) -> None:
        try:
            with _naming(self.path):
                self.flush()
                if self.fsync:
                    os.fsync(self.handle.fileno())
                self.handle.close()
                publish_file(self._tmp, self.path)  # mkstemp makes it private
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        try:
            self.handle.close()  # flushes what is buffered: fails again on a full disk
        except OSError:
            pass
        finally:
            Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Re-raise an OSError that names no file (a write's "No space left on device") or only
    the hidden temporary one as the same error about ``path``, the file the user asked for."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None and Path(exc.filename).name == path.name:
            raise
        raise type(exc)(exc.errno, exc.strerror or str(exc), str(path)) from None


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = False) -> None:
    """Write a whole file through a temporary sibling and a rename (see :class:`AtomicFile`)."""
    with AtomicFile(path, "wb", fsync=fsync) as handle:
        handle.write(data)


def _with_umask(mode: int) -> int:
    """``mode`` as the process's umask would have left it for a newly created file."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def publish_file(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file normal permissions and rename it into place."""
    os.chmod(tmp, _with_umask(0o666))
    os.replace(tmp, path)


def check_writable(out: Path, create: bool = True, what: str | None = None) -> None:
    """Fail before any work when the folder ``out`` cannot hold our files: a file in its
    place, no permission, a read-only or full file system. ``create`` makes it when missing;
    without it nothing is made and the nearest existing folder above is probed instead (the
    caller makes the folders once there is something to write). ``what`` names the file
    meant for ``out`` in the message ("report r.json")."""
    where = f"the {what}" if what else f"to {out}"
    folder = out.absolute()
    try:
        if create:
            out.mkdir(parents=True, exist_ok=True)
        else:
            folder = next(p for p in (folder, *folder.parents) if p.exists())
        if not folder.is_dir():
            raise HumanParseError(f"cannot write {where}: {folder} is not a folder")
        with tempfile.TemporaryFile(dir=folder, prefix=".humanparse-write-test-"):
            pass
    except OSError as exc:
        raise HumanParseError(f"cannot write {where}: {folder}: {exc.strerror or exc}" if what else f"cannot write {where}: {exc.strerror or exc}") from None


def write_files_atomic(files: dict[Path, bytes]) -> None:
    """Write several files as one: every one into its temporary sibling first, then all
    renamed into place. A failure while writing (a full disk) removes the temporaries and
    leaves every earlier file as it was, never a mix of old and new."""
    staged: list[AtomicFile] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.append(AtomicFile(path))
            staged[-1].write(data)
            staged[-1].flush()
    except BaseException:
        for file in staged:
            file.discard()
        raise
    for file in staged:
        file.commit()


class FolderLock:
    """An exclusive lock on an output folder for as long as a job writes there (``flock``,
    released by the kernel if the process dies), so that a second job there fails at once
    instead of interleaving or deleting the first's files.

    With ``name``, the lock is the file ``folder/name``, which records the holder (process and
    host) for the second job's message and stays (removing it would let two processes lock
    two files); without, the folder itself is locked and nothing is left in it. ``job``
    names the holder in the message ("training run", "video run").
    """

    def __init__(self, folder: Path, name: str | None, job: str) -> None:
        self.folder = Path(folder)
        self.named = bool(name)  # a lock file, which records the holder
        self.path = self.folder / name if name else self.folder
        self.job = job
        self._fd: int | None = None

    def __enter__(self) -> "FolderLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666) if self.named else os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise HumanParseError(f"cannot lock the folder: {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 256).decode("utf-8", "replace").split() if self.named else []
            os.close(fd)
            who = f" (process {holder[0]} on {holder[1]})" if len(holder) == 2 else ""
            raise HumanParseError(f"{self.folder} is in use by another {self.job}{who}; let it finish or stop it first") from None
        except OSError as exc:
            os.close(fd)
            raise HumanParseError(f"cannot lock the folder: {self.path}: {exc.strerror or exc}") from None
        if self.named:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            if self.named:
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # releases the lock
            self._fd = None
