"""Writing outputs safely: complete files only, and errors that name the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from humanparse.io.files import AtomicFile, write_bytes_atomic


def test_a_failed_write_names_the_file_and_leaves_the_old_one(tmp_path) -> None:
    """A full disk said only "No space left on device". A file-size limit (RLIMIT_FSIZE) makes
    the file system refuse the write as a full disk would, with an error that names no file."""
    target = tmp_path / "report.json"
    target.write_text("old")
    script = textwrap.dedent(f"""
        import resource, signal
        from humanparse.io.files import write_bytes_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        try:
            write_bytes_atomic({str(target)!r}, b"x" * 100000)
        except OSError as exc:
            print(type(exc).__name__, exc.filename, exc.strerror)
    """)
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout.split(maxsplit=2)
    assert printed[:2] == ["OSError", str(target)] and printed[2].strip() == "File too large"
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left


def test_an_unwritable_folder_names_the_file_asked_for(tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        write_bytes_atomic(tmp_path / "missing" / "r.json", b"{}")
    assert caught.value.filename == str(tmp_path / "missing" / "r.json")


def test_an_atomic_file_holds_nothing_until_committed_and_nothing_when_discarded(tmp_path) -> None:
    path = tmp_path / "tracks.json"
    with AtomicFile(path, "w") as handle:
        handle.write("[")
        handle.flush()
        assert not path.exists()
        handle.write("]")
    assert path.read_text() == "[]"
    with pytest.raises(RuntimeError), AtomicFile(path, "w") as handle:
        handle.write("[1")
        raise RuntimeError("stopped")
    assert path.read_text() == "[]" and len(list(tmp_path.iterdir())) == 1
