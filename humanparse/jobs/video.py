"""``humanparse video``: parse a video frame by frame, track the people, write the results.

Frames stream through: a background thread decodes (video_io.VideoReader), the predictor
parses, the tracker gives persistent ids (tracking.Tracker, with appearance from the
parsed torso, arms and legs), and every output is written as frames arrive, so memory
does not grow with the video's length. Outputs in the output folder:

* ``overlay.mp4``: H.264, the source's size and frame rate divided by the stride (audio is
  not copied), parts coloured and each person outlined with its track id;
* ``tracks.json``: per parsed frame, its source frame number and time and per track the
  id, box, score, person mask and part masks (COCO RLE); it ends with the number of frames
  it covers and whether the run completed;
* ``tracks.mots.txt``: the person tracks in MOTS text (TrackEval), frames numbered from 1
  as in the source;
* ``summary.json``: per track the frames present, the parts seen and the mean area;
* ``frames/`` with ``--save-frames``: per frame the part (palette) and track-id PNGs.

Ctrl-C, or a video that stops decoding part-way, still leaves every file complete and
valid for the frames parsed so far.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import HumanParseError
from ..io import rle
from ..io.files import publish_file
from ..io.mots import frame_lines
from ..io.results import overlay, write_outputs
from ..io.video import VideoReader, VideoWriter
from ..labels import LabelSet
from ..predictor import ParsingResult, Predictor
from ..tracking import Tracker, TrackerOptions, appearance_descriptor

OUTPUT_FILES = ("overlay.mp4", "tracks.json", "tracks.mots.txt", "summary.json")

# Body regions whose colours identify a person again, by part name across label sets:
# clothing keeps its colour when the person turns, faces and hands are too small.
_REGIONS = (
    ("torso", "upper-clothes", "coat", "dress", "torso-skin", "scarf"),
    ("upper-arms", "lower-arms", "left-arm", "right-arm", "glove"),
    ("upper-legs", "lower-legs", "pants", "skirt", "left-leg", "right-leg", "socks"),
)


def appearance_groups(labels: LabelSet) -> tuple[tuple[int, ...], ...]:
    """Part labels of the torso, arms and legs in ``labels`` (regions it lacks are left out;
    a label set with none of them uses every part as one region)."""
    groups = tuple(tuple(k for k, name in enumerate(labels.names) if name in region) for region in _REGIONS)
    groups = tuple(g for g in groups if g)
    return groups or (tuple(range(1, len(labels.names))),)


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
    seconds: dict[str, float]  # decode (waiting on it), detect_segment, crf, track, write, total


class _TracksJson:
    """tracks.json written frame by frame into a temporary file, closed into valid JSON."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        fd, self.tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self.handle = os.fdopen(fd, "w")
        text = json.dumps(header, separators=(",", ":"))
        self.handle.write(text[:-1] + ',"frames":[')
        self.count = 0

    def add(self, record: dict[str, Any]) -> None:
        self.handle.write(("," if self.count else "") + "\n" + json.dumps(record, separators=(",", ":")))
        self.count += 1

    def close(self, trailer: dict[str, Any]) -> None:
        self.handle.write("\n]," + json.dumps(trailer, separators=(",", ":"))[1:] + "\n")
        self.handle.close()
        publish_file(self.tmp, self.path)

    def discard(self) -> None:
        self.handle.close()
        Path(self.tmp).unlink(missing_ok=True)


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
    out = Path(out)
    labels = predictor.labels
    reader = VideoReader(source, stride=options.stride, start=options.start, end=options.end)
    try:
        _prepare(out, options.overwrite)
        info = reader.info
        fps = info.fps / options.stride
        writer = VideoWriter(out / "overlay.mp4", fps, info.width, info.height, overwrite=options.overwrite)
        header = {"format": "humanparse.tracks/1", "source": str(source), "width": info.width, "height": info.height,
                  "fps": float(info.fps), "stride": options.stride, "label_set": labels.name, "labels": list(labels.names)}
        tracks_json = _TracksJson(out / "tracks.json", header)
        fd, mots_tmp = tempfile.mkstemp(prefix=".tracks.mots.txt.", suffix=".tmp", dir=out)
        mots = os.fdopen(fd, "w")
    except BaseException:
        reader.close()
        raise
    tracker = Tracker(options.tracker)
    groups = appearance_groups(labels)
    seconds = dict.fromkeys(("decode", "detect_segment", "crf", "track", "write"), 0.0)
    frame_numbers: list[int] = []
    interrupted, started = False, time.perf_counter()
    predictor.timings.reset()
    expected = None if info.frames is None else len(range(0, info.frames, options.stride))

    def write_frame(index: int, image: np.ndarray, result: ParsingResult) -> None:
        tick = time.perf_counter()
        writer.write(overlay(image, result))
        tracks_json.add(_frame_record(index, float(index / info.fps), result))
        mots.writelines(frame_lines(index + 1, result.persons))
        if options.save_frames:
            write_outputs(out / "frames", f"{index + 1:06d}", image, result, ("parts", "persons"))
        seconds["write"] += time.perf_counter() - tick

    # Drawing, encoding and JSON run in one writer thread (in order), overlapping the next
    # frame's parsing; the main loop only waits when the writer falls two frames behind.
    pool = ThreadPoolExecutor(1, thread_name_prefix="humanparse-writer")
    pending: deque[Future] = deque()
    # Parsing runs in `workers` threads on batches of frames, taken back in order: tracking
    # needs the frames in sequence, parsing does not.
    parsers = ThreadPoolExecutor(options.workers, thread_name_prefix="humanparse-parse")
    parsing: deque[tuple[list[int], list[np.ndarray], Future]] = deque()

    def parse(chunk: list[tuple[int, np.ndarray]]) -> None:
        indices, images = [i for i, _ in chunk], [image for _, image in chunk]
        parsing.append((indices, images, parsers.submit(predictor.predict, images, [i + 1 for i in indices])))

    def finish_oldest() -> None:
        indices, images, future = parsing.popleft()
        for index, image, result in zip(indices, images, future.result()):
            tick = time.perf_counter()
            result = _track(tracker, image, result, groups)
            seconds["track"] += time.perf_counter() - tick
            pending.append(pool.submit(write_frame, index, image, result))
            frame_numbers.append(index)
            while len(pending) > 2:  # back-pressure: at most two frames wait for the writer
                pending.popleft().result()
            if progress is not None:
                progress(len(frame_numbers), expected)

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // options.workers))
    try:
        with reader:
            frames = iter(reader)
            chunk: list[tuple[int, np.ndarray]] = []
            while True:
                tick = time.perf_counter()
                try:
                    chunk.append(next(frames))
                except StopIteration:
                    break
                except HumanParseError:
                    if frame_numbers or parsing or chunk:  # the stream broke; what was parsed stands
                        break
                    raise
                seconds["decode"] += time.perf_counter() - tick
                if len(chunk) == options.batch:
                    parse(chunk)
                    chunk = []
                while len(parsing) > options.workers:  # one batch queued beyond the busy workers
                    finish_oldest()
            if chunk:
                parse(chunk)
        while parsing:
            finish_oldest()
        while pending:
            pending.popleft().result()
    except KeyboardInterrupt:
        interrupted = True
        parsers.shutdown(cancel_futures=True)
        try:
            while pending:  # frames handed to the writer are finished, so the outputs agree
                pending.popleft().result()
        finally:
            pool.shutdown()
    except BaseException:
        parsers.shutdown(cancel_futures=True)
        pool.shutdown(cancel_futures=True)
        writer.close()
        tracks_json.discard()
        mots.close()
        Path(mots_tmp).unlink(missing_ok=True)
        raise
    finally:
        torch.set_num_threads(threads)
    parsers.shutdown()
    pool.shutdown()
    error = reader.error
    tick = time.perf_counter()
    writer.close()
    mots.close()
    publish_file(mots_tmp, out / "tracks.mots.txt")
    tracks = _track_infos(tracker, frame_numbers, labels)
    tracks_json.close({"frames_written": len(frame_numbers), "complete": not interrupted and error is None, "error": error})
    seconds["write"] += time.perf_counter() - tick
    seconds["detect_segment"] = predictor.timings.detect_segment
    seconds["crf"] = predictor.timings.crf
    seconds["total"] = time.perf_counter() - started
    summary = VideoSummary(len(frame_numbers), tracks, error, interrupted, seconds)
    _write_json(out / "summary.json", {"frames": summary.frames, "complete": not interrupted and error is None, "error": error,
                                       "tracks": [asdict(t) for t in tracks], "seconds": seconds})
    return summary


def _prepare(out: Path, overwrite: bool) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HumanParseError(f"cannot write to {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise HumanParseError(f"cannot write to {out}: permission denied")
    present = [name for name in OUTPUT_FILES if (out / name).exists()]
    if present and not overwrite:
        raise HumanParseError(f"{out} already holds results ({', '.join(present)}); choose another --out or pass --overwrite")


def _track(tracker: Tracker, image: np.ndarray, result: ParsingResult, groups) -> ParsingResult:
    """The result with its persons renamed to track ids."""
    ids = result.ids.tolist()
    masks = np.stack([result.persons == pid for pid in ids]) if ids else np.zeros((0, *result.size), bool)
    descriptors = np.stack([appearance_descriptor(image, result.parts, mask, groups) for mask in masks]) if ids else None
    parts = [sorted({p.part for p in result.part_instances if p.person == pid}) for pid in ids]
    track_ids = tracker.update(masks, descriptors, parts)
    return result.relabel(track_ids) if ids else result


def _frame_record(index: int, seconds: float, result: ParsingResult) -> dict[str, Any]:
    names = result.labels.names
    parts_of: dict[int, list[dict[str, Any]]] = {}
    for p in result.part_instances:
        parts_of.setdefault(p.person, []).append(
            {"part": p.part, "name": names[p.part], "score": round(p.score, 5), "mask": rle.encode(result.part_mask(p.person, p.part))}
        )
    return {
        "frame": index,
        "time": round(seconds, 4),
        "tracks": [
            {"id": int(tid), "box": [round(float(v), 2) for v in box], "score": round(float(score), 5),
             "mask": rle.encode(result.persons == tid), "parts": parts_of.get(int(tid), [])}
            for tid, box, score in zip(result.ids.tolist(), result.boxes, result.scores)
        ],
    }


def _track_infos(tracker: Tracker, frame_numbers: list[int], labels: LabelSet) -> tuple[TrackInfo, ...]:
    return tuple(
        TrackInfo(s.track_id, frame_numbers[s.first_frame], frame_numbers[s.last_frame], s.frames,
                  tuple(labels.names[p] for p in s.parts), round(s.mean_area, 1))
        for s in tracker.summaries()
    )


def _write_json(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    publish_file(tmp, path)
