"""``humanparse video``: parse a video frame by frame, track the people, write the results.

:func:`parse_video` is the writers around :meth:`Predictor.stream
<humanparse.predictor.Predictor.stream>`, which decodes, parses and tracks; every output
is written as frames arrive (drawing, encoding and JSON in a writer thread that overlaps
the next frame's parsing), so memory does not grow with the video's length. Outputs in the
output folder:

* ``overlay.mp4``: H.264, the source's upright size and each parsed frame at its time in
  the source (from the first one parsed; audio is not copied), parts coloured and each
  person outlined with its track id;
* ``tracks.json``: per parsed frame, its source frame number and time and per track the
  id, box, score, person mask, keypoints where the parser has a pose, and part masks
  (COCO RLE); it ends with the number of frames it covers and whether the run completed;
* ``tracks.mots.txt``: the person tracks in MOTS text (TrackEval), frames numbered from 1
  as in the source;
* ``summary.json``: per track the frames present, the parts seen and the mean area;
* ``frames/`` with ``--save-frames``: per frame the part (palette) and track-id PNGs.

Ctrl-C, or a video that stops decoding part-way, still leaves every file complete and
valid for the frames parsed so far.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HumanParseError
from ..follow import DETECT_EVERY
from ..interrupts import StopRequests
from ..io.drawing import overlay
from ..io.files import AtomicFile, check_writable, write_bytes_atomic
from ..io.mots import frame_lines
from ..io.results import part_record, person_record, write_outputs
from ..io.video import VideoInfo, VideoWriter
from ..labels import LabelSet
from ..predictor import Predictor, StreamedFrame
from ..structures import ParsingResult
from ..tracking import Tracker, TrackerOptions

OUTPUT_FILES = ("overlay.mp4", "tracks.json", "tracks.mots.txt", "summary.json")


@dataclass(frozen=True)
class VideoOptions:
    stride: int = 1  # parse every n-th frame
    start: float = 0.0  # seconds
    end: float | None = None  # seconds, exclusive
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    save_frames: bool = False
    overwrite: bool = False  # replace earlier results in the output folder (when done, never before)
    batch: int = 1  # frames per predictor call (one segmenter batch; pays on a GPU)
    workers: int = 1  # predictor calls in flight at once, each on its share of the CPU threads
    detect_every: int | None = DETECT_EVERY  # a parser that follows people detects on every n-th frame (None: every frame)

    def __post_init__(self) -> None:
        if self.batch < 1 or self.workers < 1:
            raise HumanParseError(f"batch and workers must be at least 1, got {self.batch} and {self.workers}")


@dataclass(frozen=True)
class TrackInfo:
    id: int
    first_frame: int  # source frame numbers, from 0
    last_frame: int
    frames: int  # parsed frames the track appears in
    parts: tuple[str, ...]
    mean_area: float  # pixels


@dataclass(frozen=True)
class VideoSummary:
    frames: int  # frames parsed and written
    tracks: tuple[TrackInfo, ...]
    error: str | None  # why decoding stopped early, if it did
    interrupted: bool
    seconds: dict[str, float]  # decode (waiting on it), the parser's stages, track, write, total


def parse_video(
    predictor: Predictor,
    source: str | Path,
    out: str | Path,
    options: VideoOptions = VideoOptions(),
    progress: Callable[[int, int | None], None] | None = None,
) -> VideoSummary:
    """Parse ``source`` into ``out`` (see the module docstring for the files).

    Raises HumanParseError for a source that is not a readable video or an output that
    cannot be written. A stream that breaks part-way ends the run early with
    ``summary.error`` set; Ctrl-C ends it with ``summary.interrupted``; in both cases the
    outputs are finalised for the frames parsed.
    """
    started = time.perf_counter()
    out = Path(out)
    stream = predictor.stream(source, options.stride, options.start, options.end, options.tracker, options.batch, options.workers, options.detect_every)
    interrupted = False
    # Ctrl-C and SIGTERM end the run after the frame in flight; a second one while the
    # outputs are finalised changes nothing (StopRequests).
    with StopRequests() as stops:
        with stream:
            info = stream.info
            expected = None if info.frames is None else len(range(0, info.frames, options.stride))
            writers = _VideoWriters(out, str(source), info, options, predictor.labels)
            try:
                for frame in stream:
                    writers.add(frame)
                    if progress is not None:
                        progress(writers.frames, expected)
                    if stops.requested:
                        break
            except KeyboardInterrupt:  # raised by a caller's progress callback or parser
                interrupted = True
            except BaseException:
                writers.discard()
                raise
        interrupted = interrupted or stops.requested
        tracks = _track_infos(stream.tracker, writers.frame_numbers, predictor.labels)
        complete = not interrupted and stream.error is None
        writers.close({"frames_written": writers.frames, "complete": complete, "error": stream.error})
        seconds = {**stream.seconds, "write": writers.seconds, "total": time.perf_counter() - started}
        summary = VideoSummary(writers.frames, tracks, stream.error, interrupted, seconds)
        write_bytes_atomic(out / "summary.json", (json.dumps({"frames": summary.frames, "complete": complete, "error": stream.error,
                                                              "tracks": [asdict(t) for t in tracks], "seconds": seconds}, indent=2) + "\n").encode())
    return summary


class _VideoWriters:
    """overlay.mp4, tracks.json, tracks.mots.txt and frames/ written frame by frame in one
    writer thread (in order), each into a temporary file that :meth:`close` publishes."""

    def __init__(self, out: Path, source: str, info: VideoInfo, options: VideoOptions, labels: LabelSet) -> None:
        self._made_out = not out.exists()
        _prepare(out, options.overwrite)
        self.out, self.save_frames = out, options.save_frames
        self.frame_numbers: list[int] = []
        self.seconds = 0.0
        self._video = VideoWriter(out / "overlay.mp4", info.fps / options.stride, info.width, info.height, overwrite=options.overwrite)
        header = {"format": "humanparse.tracks/1", "source": source, "width": info.width, "height": info.height,
                  "fps": float(info.fps), "stride": options.stride, "label_set": labels.name, "labels": list(labels.names)}
        self._tracks = AtomicFile(out / "tracks.json", "w")
        self._tracks.write(json.dumps(header, separators=(",", ":"))[:-1] + ',"frames":[')
        self._mots = AtomicFile(out / "tracks.mots.txt", "w")
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="humanparse-writer")
        self._pending: deque[Future] = deque()
        self._first_time: float | None = None

    @property
    def frames(self) -> int:
        return len(self.frame_numbers)

    def add(self, frame: StreamedFrame) -> None:
        self._pending.append(self._pool.submit(self._write, frame, len(self.frame_numbers)))
        self.frame_numbers.append(frame.index)
        while len(self._pending) > 2:  # back-pressure: at most two frames wait for the writer
            self._pending.popleft().result()

    def _write(self, frame: StreamedFrame, count: int) -> None:
        tick = time.perf_counter()
        if self._first_time is None:
            self._first_time = frame.time
        self._video.write(overlay(frame.image, frame.result), frame.time - self._first_time)
        record = _frame_record(frame.index, frame.time, frame.result)
        self._tracks.write(("," if count else "") + "\n" + json.dumps(record, separators=(",", ":")))
        self._mots.write("".join(frame_lines(frame.index + 1, frame.result.persons)))
        if self.save_frames:
            write_outputs(self.out / "frames", f"{frame.index + 1:06d}", frame.image, frame.result, ("parts", "persons"))
        self.seconds += time.perf_counter() - tick

    def close(self, trailer: dict[str, Any]) -> None:
        """Finish the frames handed over, then every file, valid for those frames."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown()
        tick = time.perf_counter()
        self._video.close()
        self._mots.commit()
        self._tracks.write("\n]," + json.dumps(trailer, separators=(",", ":"))[1:] + "\n")
        self._tracks.commit()
        self.seconds += time.perf_counter() - tick

    def discard(self) -> None:
        """Stop and leave no output behind (the run failed)."""
        self._pool.shutdown(cancel_futures=True)
        self._video.close()
        self._tracks.discard()
        self._mots.discard()
        if self._made_out:
            try:
                self.out.rmdir()  # the folder this run made, if nothing else is in it
            except OSError:
                pass


def _prepare(out: Path, overwrite: bool) -> None:
    check_writable(out)
    present = [name for name in OUTPUT_FILES if (out / name).exists()]
    if present and not overwrite:
        raise HumanParseError(f"{out} already holds results ({', '.join(present)}); choose another --out or pass --overwrite")
    # What a killed run (SIGKILL, power loss) left half-written: its temporaries are never
    # results, and the names are this job's own (io.files, io.video).
    for name in OUTPUT_FILES:
        for stale in (*out.glob(f".{name}.*.tmp"), *out.glob(f".{name}.*.partial.mp4")):
            stale.unlink(missing_ok=True)


def _frame_record(index: int, seconds: float, result: ParsingResult) -> dict[str, Any]:
    parts_of: dict[int, list[dict[str, Any]]] = {}
    for p in result.part_instances:
        parts_of.setdefault(p.person, []).append(part_record(result, p, of_person=False))
    return {
        "frame": index,
        "time": round(seconds, 4),
        "tracks": [{**person_record(result, k), "parts": parts_of.get(int(pid), [])} for k, pid in enumerate(result.ids.tolist())],
    }


def _track_infos(tracker: Tracker | None, frame_numbers: list[int], labels: LabelSet) -> tuple[TrackInfo, ...]:
    if tracker is None:
        return ()
    return tuple(
        TrackInfo(s.track_id, frame_numbers[s.first_frame], frame_numbers[s.last_frame], s.frames,
                  tuple(labels.names[p] for p in s.parts), round(s.mean_area, 1))
        for s in tracker.summaries()
    )
