"""Per-frame outputs of a video, one interface for all: a :class:`FrameSink` takes each
:class:`~humanparse.structures.StreamedFrame` as it comes (:meth:`~FrameSink.write`), and
ends with :meth:`~FrameSink.close` (finish the file, valid for the frames written, with a
trailer saying whether the run completed) or :meth:`~FrameSink.discard` (the run failed: leave
no file). Every file goes through a hidden temporary that ``close`` renames into place.

* :class:`OverlayVideo` — ``overlay.mp4``: H.264, each frame at its time in the source, parts
  coloured and each person outlined with its id;
* :class:`TracksJson` — ``tracks.json``: per frame and track the box, score, masks (COCO RLE),
  keypoints and parts (format ``humanparse.tracks/1``);
* :class:`MotsText` — ``tracks.mots.txt``: the person tracks as MOTS text (TrackEval);
* :class:`FramePngs` — per frame the part (palette) and id PNGs.

:class:`Sinks` runs several in one writer thread, in order, so that drawing, encoding and
JSON overlap the next frame's parsing; memory stays flat (at most two frames wait). Like
supervision's ``VideoSink``, from Python on any stream::

    with predictor.stream("clip.mp4") as stream, Sinks([OverlayVideo("out.mp4", stream.info),
                                                        MotsText("out.mots.txt")]) as sinks:
        for frame in stream:
            sinks.write(frame)

A new per-frame format is one class here.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from ..labels import LabelSet
from ..structures import ParsingResult, StreamedFrame
from .drawing import overlay
from .files import AtomicFile
from .mots import frame_lines
from .results import part_record, person_record, write_outputs
from .video import VideoInfo, VideoWriter

TRACKS_FORMAT = "humanparse.tracks/1"


class FrameSink(Protocol):
    """Where a stream's frames go, one at a time and in order."""

    def write(self, frame: StreamedFrame) -> None:
        """Add one frame."""
        ...

    def close(self, complete: bool = True, error: str | None = None) -> None:
        """Finish: the output is whole and valid for the frames written. ``complete``: the
        run parsed everything it meant to; ``error``: why the source stopped early."""
        ...

    def discard(self) -> None:
        """Stop and leave no output behind (the run failed)."""
        ...


class OverlayVideo:
    """An H.264 MP4 of the frames with the results drawn on them, each at its time in the
    source from the first one written; the size and frame rate are ``info``'s (the frame
    rate divided by ``stride``: the rate of the frames written). An existing file is
    replaced at close, never before, only with ``overwrite``."""

    def __init__(self, path: str | os.PathLike, info: VideoInfo, stride: int = 1, overwrite: bool = False) -> None:
        self._video = VideoWriter(path, info.fps / stride, info.width, info.height, overwrite=overwrite)
        self._first_time: float | None = None

    def write(self, frame: StreamedFrame) -> None:
        if self._first_time is None:
            self._first_time = frame.time
        self._video.write(overlay(frame.image, frame.result), frame.time - self._first_time)

    def close(self, complete: bool = True, error: str | None = None) -> None:
        self._video.close()

    def discard(self) -> None:
        self._video.discard()


class TracksJson:
    """``humanparse.tracks/1``: a header (source, size, frame rate, stride, label set), per
    frame its number in the source (from 0), time and tracks, and a trailer: how many frames
    it covers, whether the run completed, why the source stopped early."""

    def __init__(self, path: str | os.PathLike, info: VideoInfo, labels: LabelSet, source: str = "", stride: int = 1) -> None:
        header = {"format": TRACKS_FORMAT, "source": source, "width": info.width, "height": info.height,
                  "fps": float(info.fps), "stride": stride, "label_set": labels.name, "labels": list(labels.names)}
        self._file = AtomicFile(path, "w")
        # Written as it goes: the frames list stays open until close() writes the trailer.
        self._file.write(json.dumps(header, separators=(",", ":"))[:-1] + ',"frames":[')
        self._frames = 0

    def write(self, frame: StreamedFrame) -> None:
        record = frame_record(frame.index, frame.time, frame.result)
        self._file.write(("," if self._frames else "") + "\n" + json.dumps(record, separators=(",", ":")))
        self._frames += 1

    def close(self, complete: bool = True, error: str | None = None) -> None:
        trailer = {"frames_written": self._frames, "complete": complete, "error": error}
        self._file.write("\n]," + json.dumps(trailer, separators=(",", ":"))[1:] + "\n")
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()


class MotsText:
    """MOTS text (TrackEval's MOTSChallenge reader): one line per track and frame, frames
    numbered from 1 as in the source (:mod:`humanparse.io.mots`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._file = AtomicFile(path, "w")

    def write(self, frame: StreamedFrame) -> None:
        self._file.write("".join(frame_lines(frame.index + 1, frame.result.persons, frame.result.regions)))

    def close(self, complete: bool = True, error: str | None = None) -> None:
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()


class FramePngs:
    """Per frame, ``parts/NNNNNN.png`` (palette) and ``persons/NNNNNN.png`` (ids) under
    ``folder``, NNNNNN the frame's number from 1; each file whole when written, so a run
    that stops keeps the frames it wrote."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def write(self, frame: StreamedFrame) -> None:
        write_outputs(self.folder, f"{frame.index + 1:06d}", frame.image, frame.result, ("parts", "persons"))

    def close(self, complete: bool = True, error: str | None = None) -> None:
        pass

    def discard(self) -> None:
        pass


class Sinks:
    """Several sinks written in one background thread, in order; ``seconds`` is the time
    spent writing. As a context manager it closes on success (``complete`` True) and
    discards on any exception."""

    def __init__(self, sinks: list[FrameSink]) -> None:
        self.sinks = sinks
        self.seconds = 0.0
        self.frames = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="humanparse-writer")
        self._pending: deque[Future] = deque()

    def write(self, frame: StreamedFrame) -> None:
        self._pending.append(self._pool.submit(self._write, frame))
        self.frames += 1
        while len(self._pending) > 2:  # back-pressure: at most two frames wait for the writer
            self._pending.popleft().result()

    def _write(self, frame: StreamedFrame) -> None:
        tick = time.perf_counter()
        for sink in self.sinks:
            sink.write(frame)
        self.seconds += time.perf_counter() - tick

    def close(self, complete: bool = True, error: str | None = None) -> None:
        """Finish the frames handed over, then every sink, valid for those frames."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown()
        tick = time.perf_counter()
        for sink in self.sinks:
            sink.close(complete, error)
        self.seconds += time.perf_counter() - tick

    def discard(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        for sink in self.sinks:
            sink.discard()

    def __enter__(self) -> Sinks:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def frame_record(index: int, seconds: float, result: ParsingResult) -> dict[str, Any]:
    """One frame of tracks.json: its number in the source (from 0), its time (s), and per
    person (track) its record with its part instances."""
    parts_of: dict[int, list[dict[str, Any]]] = {}
    for p in result.part_instances:
        parts_of.setdefault(p.person, []).append(part_record(result, p, of_person=False))
    return {
        "frame": index,
        "time": round(seconds, 4),
        "tracks": [{**person_record(result, k), "parts": parts_of.get(int(pid), [])} for k, pid in enumerate(result.ids.tolist())],
    }
