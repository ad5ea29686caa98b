"""``humanparse video``: parse a video frame by frame, track the people, write the results.

:func:`parse_video` is the loop over :meth:`Predictor.stream
<humanparse.predictor.Predictor.stream>` (which decodes, parses and tracks) into the sinks of
:mod:`humanparse.io.sinks`, written as frames arrive in a writer thread that overlaps the next
frame's parsing, so memory does not grow with the video's length; and the summary. Outputs
in the output folder:

* ``overlay.mp4``: H.264, the source's upright size and each parsed frame at its time in
  the source (from the first one parsed; audio is not copied), parts coloured and each
  person outlined with its track id;
* ``tracks.json``: per parsed frame, its source frame number and time and per track the
  id, box, score, person mask, keypoints where the parser has a pose, and part masks
  (COCO RLE); it ends with the number of frames it covers and whether the run completed;
* ``tracks.mots.txt``: the person tracks in MOTS text (TrackEval), frames numbered from 1
  as in the source;
* ``summary.json``: per track the frames present, the parts seen and the mean area; the
  seconds of each stage, the device (and on CUDA the peak GPU memory, ``cuda_peak_mb``);
* ``frames/`` with ``--save-frames``: per frame the part (palette) and track-id PNGs.

Ctrl-C, or a video that stops decoding part-way, still leaves every file complete and
valid for the frames parsed so far. The folder is locked (``flock``) while a run writes it:
a second run there fails at once instead of deleting the first's temporaries as a killed
run's.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..build import DETECT_EVERY
from ..errors import HumanParseError
from ..interrupts import StopRequests
from ..io.files import FolderLock, check_writable, write_bytes_atomic
from ..io.sinks import FramePngs, FrameSink, MotsText, OverlayVideo, Sinks, TracksJson
from ..io.video import VideoInfo
from ..labels import LabelSet
from ..predictor import Predictor
from ..tracking import TrackerOptions, TrackSummary

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
class VideoSummary:
    frames: int  # frames parsed and written
    tracks: tuple[TrackSummary, ...]  # first and last frame: source frame numbers, from 0
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
    with StopRequests() as stops, contextlib.ExitStack() as stack:
        with stream:
            info = stream.info
            expected = None if info.frames is None else len(range(0, info.frames, options.stride))
            made_out = not out.exists()
            check_writable(out)
            stack.enter_context(FolderLock(out, None, "video run"))  # before anything there is touched
            sinks = Sinks(_open_sinks(out, source, info, options, predictor.labels))
            try:
                for frame in stream:
                    sinks.write(frame)
                    if progress is not None:
                        progress(sinks.frames, expected)
                    if stops.requested:
                        break
            except KeyboardInterrupt:  # raised by a caller's progress callback or parser
                interrupted = True
            except BaseException:
                sinks.discard()
                if made_out:
                    _remove_if_empty(out)
                raise
        interrupted = interrupted or stops.requested
        tracks = () if stream.tracker is None else tuple(stream.tracker.summaries())
        complete = not interrupted and stream.error is None
        sinks.close(complete, stream.error)
        seconds = {**stream.seconds, "write": sinks.seconds, "total": time.perf_counter() - started}
        summary = VideoSummary(sinks.frames, tracks, stream.error, interrupted, seconds)
        records = [_track_record(track, predictor.labels) for track in tracks]
        record = {"frames": summary.frames, "complete": complete, "error": stream.error, "tracks": records, "seconds": seconds,
                  "device": str(predictor.device)}
        if predictor.device.type == "cuda":  # what the GPU held at most, for benchmarks/bench_cuda.py
            import torch

            record["cuda_peak_mb"] = torch.cuda.max_memory_allocated(predictor.device) / 2**20
        write_bytes_atomic(out / "summary.json", (json.dumps(record, indent=2) + "\n").encode())
    return summary


def _open_sinks(out: Path, source: str | Path, info: VideoInfo, options: VideoOptions, labels: LabelSet) -> list[FrameSink]:
    """The output folder (made and locked) checked and cleared of a killed run's
    temporaries, and its sinks."""
    present = [name for name in OUTPUT_FILES if (out / name).exists()]
    source_file = Path(source).resolve() if Path(source).exists() else None  # a URL is no file here
    for name in present:
        if (out / name).resolve() == source_file:
            raise HumanParseError(f"{source} is the video being parsed and an output of this run ({name} in {out}); choose another --out")
    if present and not options.overwrite:
        raise HumanParseError(f"{out} already holds results ({', '.join(present)}); choose another --out or pass --overwrite")
    # What a killed run (SIGKILL, power loss) left half-written: its temporaries are never
    # results, and the names are this job's own (io.files, io.video).
    for name in OUTPUT_FILES:
        for stale in (*out.glob(f".{name}.*.tmp"), *out.glob(f".{name}.*.partial.mp4")):
            stale.unlink(missing_ok=True)
    sinks: list[FrameSink] = [OverlayVideo(out / "overlay.mp4", info, options.stride, options.overwrite),
             TracksJson(out / "tracks.json", info, labels, str(source), options.stride), MotsText(out / "tracks.mots.txt")]
    return sinks + ([FramePngs(out / "frames")] if options.save_frames else [])


def _remove_if_empty(folder: Path) -> None:
    """Remove the folder this run made if nothing is in it."""
    try:
        folder.rmdir()
    except OSError:
        pass


def _track_record(track: TrackSummary, labels: LabelSet) -> dict[str, Any]:
    """A track of summary.json: id, first and last source frame, frames present, the
    names of the parts seen, mean area (pixels)."""
    return {"id": track.track_id, "first_frame": track.first_frame, "last_frame": track.last_frame, "frames": track.frames,
            "parts": [labels.names[p] for p in track.parts], "mean_area": round(track.mean_area, 1)}
