"""Streaming video in and out with PyAV: memory stays flat however long the video.

``VideoReader`` decodes in a background thread into a small bounded queue, so the model
never waits on the decoder and at most ``queue_size`` frames are held at once.
``VideoWriter`` encodes H.264 into a temporary MP4 beside the target and renames it into
place when closed, so even an interrupted run leaves a playable file.
"""

from __future__ import annotations

import itertools
import math
import os
import queue
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import av
import numpy as np

from ..errors import HumanParseError
from .files import publish_file
from .images import check_pixels

FALLBACK_FPS = Fraction(30)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
_EPS_SECONDS = 1e-6  # so that start=0.1 keeps the frame at 1/10 s (the float 0.1 is 1/10 + 5.6e-18)
_TRUNCATION_SLACK = 2  # frames a stream may fall short of its header before it counts as cut off
_QUEUE_BYTES = 256 * 2**20  # decoded frames waiting: 8 at 4K, fewer for larger frames


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream."""

    width: int  # pixels, as displayed: after ``rotation``
    height: int
    fps: Fraction  # average frame rate; the guessed rate, then 30, where the container has none
    frames: int | None  # the container's frame count, None where it does not say (MKV, MPEG-TS)
    codec: str  # FFmpeg decoder name, e.g. "h264"
    rotation: int = 0  # degrees counterclockwise (0, 90, 180, 270) the stored frames are turned for display


class DecodedFrame(NamedTuple):
    """One frame of a video, as :class:`VideoReader` yields it."""

    index: int  # frame number in the source, from 0, in presentation order
    time: float  # seconds from the stream's start, by the frame's own timestamp
    image: np.ndarray  # (H, W, 3) uint8 RGB, upright as a player shows it (rotation applied)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's size, rate, frame count, codec and rotation, decoding only its first
    frame (the rotation is side data of the frames).

    Raises HumanParseError for a missing path, a directory, or a file with no readable
    video stream.
    """
    container, stream = _open(_source(path))
    with container:
        return _info(stream, _first_frame(container.decode(stream))[0])


class VideoReader:
    """Iterate :class:`DecodedFrame` ``(index, time, image)`` over a video.

    Frames are selected by their timestamps, so variable-frame-rate video is cut and timed
    right: frame i, presented at ``time`` seconds from the stream's start, is kept when
    ``start <= time < end`` and ``(i - first kept) % stride == 0``. Frames are numbered in
    presentation order from the stream's first. A start past 0 seeks to the keyframe
    before it and numbers the frames decoded from there by counting the stream's packets
    before them (read, not decoded); where the file cannot seek, or its frames carry no
    timestamps, it decodes from the top instead (frames without timestamps are timed at
    the average rate). Frames come upright: a rotation in the stream's display matrix (a
    phone's portrait video) is applied, and ``info`` gives the upright size.

    A corrupt or truncated stream yields every frame that decodes, then stops, with
    ``error`` set to a one-line description (None when the video decoded cleanly, or
    when iteration stopped early at ``end`` or at a ``break``). Truncation is noticed from a
    decoder error, or from the stream ending more than two frames short of the frame count
    or duration in its header. An iteration that yields no frame at all (an empty video, a
    ``start`` past the end, a stream that breaks before its first frame) ends by raising
    HumanParseError instead.

    Use it as a context manager, or iterate to the end: ``close()`` stops the decoding
    thread and closes the file, and runs on early exit, on exceptions and on Ctrl-C.
    A reader is iterated once.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        stride: int = 1,
        start: float = 0.0,
        end: float | None = None,
        queue_size: int = 8,  # at most; fewer where 8 frames would hold more than 256 MB
    ) -> None:
        self.path = _source(path)
        if stride < 1:
            raise HumanParseError(f"the frame stride must be at least 1, got {stride}")
        if not (math.isfinite(start) and start >= 0):
            raise HumanParseError(f"the start time must be 0 or more seconds, got {start}")
        if end is not None and math.isinf(end) and end > 0:
            end = None  # to the end of the video
        if end is not None and not (math.isfinite(end) and end > start):
            raise HumanParseError(f"the end time ({end} s) must be after the start time ({start} s)")
        if queue_size < 1:
            raise HumanParseError(f"the frame queue must hold at least 1 frame, got {queue_size}")
        self.stride = stride
        self.start = start
        self.end = end
        self._container, self._stream = _open(self.path)
        # The first frame is decoded now, for the rotation that sizes ``info``; the thread
        # starts from it.
        try:  # the header's frame size, before a frame is decoded
            check_pixels(self.path, self._stream.codec_context.height, self._stream.codec_context.width)
        except HumanParseError:
            self._container.close()
            raise
        self._decoded = self._container.decode(self._stream)
        self._head, self._head_error = _first_frame(self._decoded)
        self.info = _info(self._stream, self._head)
        frame_bytes = 3 * self.info.width * self.info.height
        self.frames_read = 0  # frames handed to the consumer
        self.error: str | None = None
        self._seen_end = 0  # one past the highest source frame number decoded
        self._seen_seconds = 0.0  # the end of the last frame decoded (its time + 1 / fps)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, min(queue_size, _QUEUE_BYTES // max(frame_bytes, 1))))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._thread is not None or self._closed:
            raise RuntimeError("a VideoReader can be iterated only once")
        self._thread = threading.Thread(target=self._decode, name=f"VideoReader({getattr(self.path, 'name', self.path)})", daemon=True)
        self._thread.start()
        return self._consume()

    def close(self) -> None:
        """Stop the decoding thread, wait for it, and close the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._container.close()  # only now: the container is not safe to share with the thread
        while not self._queue.empty():  # let the last decoded frames go
            self._queue.get_nowait()

    def _consume(self) -> Iterator[DecodedFrame]:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                self.frames_read += 1
                yield item
            if self.frames_read == 0:
                raise HumanParseError(self._nothing_decoded())
        finally:
            self.close()

    def _nothing_decoded(self) -> str:
        if self.error is not None:
            return f"no frame of {self.path} could be decoded: {self.error}"
        if self._seen_end == 0 and self.start == 0:
            return f"{self.path} holds no video frames"
        until = "the end" if self.end is None else f"{self.end} s"
        return f"{self.path} has no frames from {self.start} s to {until} (it has {self._seen_end})"

    def _decode(self) -> None:
        """The thread: decode, convert to upright RGB and queue the selected frames, then ``_END``."""
        try:
            first_kept = None
            for index, seconds, frame in self._source_frames():
                if self._stop.is_set():
                    return
                if self.end is not None and seconds >= self.end - _EPS_SECONDS:
                    return
                if seconds < self.start - _EPS_SECONDS:
                    continue
                first_kept = index if first_kept is None else first_kept
                if (index - first_kept) % self.stride:
                    continue
                image = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), _quarter_turns(frame)))
                if not self._put(DecodedFrame(index, float(seconds), image)):
                    return
            self.error = self._truncation()
        except (av.FFmpegError, OSError) as exc:
            self.error = f"decoding stopped after {self._seen_end} frames: {_reason(exc)}"
        except BaseException as exc:  # a bug: raise it where the consumer will see it
            self._put(exc)
            return
        finally:
            self._put(_END)

    def _source_frames(self) -> Iterator[tuple[int, Fraction, av.VideoFrame]]:
        """Every decoded frame from about the start on: its number in the source, its time
        in seconds, the frame."""
        if self._head_error is not None:
            raise self._head_error
        if self.start > 0:
            placed = self._after_seek()
            if placed is not None:
                yield from placed
                return
            # The file cannot seek, the seek passed the start or landed where no keyframe
            # follows (MPEG-TS has no index to seek by), or the frames carry no timestamps:
            # decode from the top instead.
            self._container.close()
            self._container, self._stream = _open(self.path)
            self._head, self._decoded = None, self._container.decode(self._stream)
        frames = self._decoded if self._head is None else itertools.chain([self._head], self._decoded)
        for index, frame in enumerate(frames):
            yield self._counted(index, frame)

    def _after_seek(self) -> Iterator[tuple[int, Fraction, av.VideoFrame]] | None:
        """The frames from the first one at or after ``start``, decoded from the keyframe
        before it and numbered; None where that cannot be done exactly."""
        start_pts = self._start_pts() + math.floor(Fraction(self.start) / self._stream.time_base)
        try:
            self._container.seek(start_pts, stream=self._stream, backward=True)
        except av.FFmpegError:
            return None
        frames = self._container.decode(self._stream)
        landed = next(frames, None)
        if landed is None or landed.pts is None or self._seconds(landed) > self.start + _EPS_SECONDS:
            return None
        first = landed
        while first is not None and first.pts is not None and self._seconds(first) < self.start - _EPS_SECONDS:
            first = next(frames, None)
        if first is None or first.pts is None:
            return None
        index = self._frames_before(first.pts)
        if index is None:
            return None
        return (self._counted(index + k, frame) for k, frame in enumerate(itertools.chain([first], frames)))

    def _frames_before(self, pts: int) -> int | None:
        """How many frames the stream presents before timestamp ``pts``: its packets are
        read from the top (not decoded) until their decoding timestamps pass ``pts``, since
        no frame shows before it decodes. None where a packet has no timestamp."""
        container, stream = _open(self.path)
        count = 0
        with container:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue  # the end-of-stream marker; frames an edit list cuts are never shown
                if packet.dts is not None and packet.dts >= pts:
                    break
                shown = packet.pts if packet.pts is not None else packet.dts
                if shown is None:
                    return None
                count += shown < pts
        return count

    def _counted(self, index: int, frame: av.VideoFrame) -> tuple[int, Fraction, av.VideoFrame]:
        seconds = Fraction(index) / self.info.fps if frame.pts is None else self._seconds(frame)
        self._seen_end = max(self._seen_end, index + 1)
        self._seen_seconds = max(self._seen_seconds, float(seconds + 1 / self.info.fps))
        return index, seconds, frame

    def _start_pts(self) -> int:
        return self._stream.start_time or 0  # MPEG-TS streams start at 0.2 s or later

    def _seconds(self, frame: av.VideoFrame) -> Fraction:
        return (frame.pts - self._start_pts()) * self._stream.time_base

    def _truncation(self) -> str | None:
        """A description of how the stream fell short of its header, None if it did not."""
        slack = _TRUNCATION_SLACK / self.info.fps
        if self.info.frames is not None and self._seen_end < self.info.frames - _TRUNCATION_SLACK:
            return f"the video ended after {self._seen_end} of the {self.info.frames} frames its header declares"
        expected = _stream_seconds(self._container, self._stream)
        if expected is not None and self._seen_seconds < expected - slack:
            return f"the video ended after {self._seen_seconds:.2f} s of the {expected:.2f} s its header declares"
        return None

    def _put(self, item: object) -> bool:
        """Queue an item, waiting for room; False once the reader is closing."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False


_SLOWEST_RATE = Fraction(1, 3600)  # frames per second: one an hour


class VideoWriter:
    """Write (H, W, 3) uint8 RGB frames as H.264 (libx264, yuv420p) in an MP4 at a constant
    frame rate ``fps``, or at the times given to :meth:`write` (a variable-rate source's
    timing kept); no audio.

    Frames go to a hidden temporary file beside ``path``; ``close()`` flushes the encoder,
    writes the MP4 trailer and renames the file onto ``path``. Used as a context manager,
    close() also runs on exceptions and Ctrl-C, so an interrupted run leaves a valid MP4 of
    the frames written so far. With no frame written, close() leaves no file. An existing
    ``path`` is replaced (at close, never before) only with ``overwrite``. :meth:`discard`
    instead leaves no file (for a run that failed). ``reproducible`` makes the same frames
    give the same bytes on every run: x264 on one thread with its CPU-independent code
    paths; by default its faster paths encode the same frames to one of a few different
    streams from run to run (seen: 2 in 10 runs differed).

    yuv420p needs an even width and height: an odd one is padded by one pixel that repeats
    the last column or row, so the file, and any reader of it, sees
    (height + height % 2, width + width % 2); a 5x3 video reads back as 6x4.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: Fraction | float,
        width: int,
        height: int,
        crf: int = 23,
        preset: str = "veryfast",
        overwrite: bool = False,
        reproducible: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise HumanParseError(f"the output video must be an .mp4 file, got {self.path.name}")
        if self.path.exists() and not overwrite:
            raise HumanParseError(f"{self.path} already exists; choose another output")
        if self.path.is_dir():
            raise HumanParseError(f"{self.path} is a directory")
        if not (isinstance(fps, Fraction) or math.isfinite(fps)) or fps <= 0:
            raise HumanParseError(f"the frame rate must be a positive number, got {fps}")
        if width < 1 or height < 1:
            raise HumanParseError(f"the video size must be at least 1x1, got {width}x{height}")
        if not 0 <= crf <= 51:
            raise HumanParseError(f"the H.264 quality (crf) must be from 0 to 51, got {crf}")
        if preset not in X264_PRESETS:
            raise HumanParseError(f"unknown x264 preset {preset!r}; choose one of {', '.join(X264_PRESETS)}")
        # A float rate becomes the nearest fraction with a small denominator: 29.97 -> 2997/100,
        # 23.976023976 -> 24000/1001; MP4 time bases must be exact fractions.
        fps = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
        # A source's rate over a huge stride (one frame kept) is no rate MP4 can hold: its
        # muxer fails from about one frame in 30000 s (measured with timed frames).
        self.fps = max(fps, _SLOWEST_RATE)
        self.width = width
        self.height = height
        self.frames_written = 0
        self._timed: bool | None = None  # decided by the first write
        self._last_pts = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial.mp4", dir=self.path.parent)
        except OSError as exc:
            raise HumanParseError(f"cannot write to {self.path.parent}: {exc.strerror or exc}") from None
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
            self._stream = self._container.add_stream("libx264", rate=self.fps)
            self._stream.width, self._stream.height = width + width % 2, height + height % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(crf), "preset": preset, **({"threads": "1", "x264-params": "cpu-independent=1"} if reproducible else {})}
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._closed = False

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def write(self, frame: np.ndarray, time: float | None = None) -> None:
        """Encode one frame: (height, width, 3) uint8 RGB, the size given to the writer.

        ``time``: when it shows, in seconds from the video's start, for every frame or for
        none (then frame k shows at k / fps). Times are kept to 1/90000 s; one not after the
        last frame's is moved just after it.
        """
        if self._closed:
            raise ValueError("write() on a closed VideoWriter")
        if self._timed is None:
            self._timed = time is not None
            if self._timed:
                self._stream.codec_context.time_base = _TIMED_BASE
        elif self._timed != (time is not None):
            raise ValueError("give a time for every frame written or for none")
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise HumanParseError(f"{self.path.name}: expected a ({self.height}, {self.width}, 3) uint8 RGB frame, got {got}")
        if self.width % 2 or self.height % 2:
            frame = np.pad(frame, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if time is None:
            video_frame.pts = self.frames_written  # in the codec's time base, 1 / fps: constant rate
        else:
            video_frame.pts = self._last_pts = max(round(Fraction(time) / _TIMED_BASE), self._last_pts + 1)
            video_frame.time_base = _TIMED_BASE
        try:
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise HumanParseError(f"cannot write {self.path}: {_reason(exc)}") from None
        self.frames_written += 1

    def discard(self) -> None:
        """Stop and remove the temporary file, leaving ``path`` as it was. Safe after close()."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except (av.FFmpegError, OSError):
            pass  # the file goes anyway
        finally:
            self._tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Flush the encoder, finish the MP4 and rename it onto ``path``. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.frames_written:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            self._container.close()
            if self.frames_written:
                publish_file(self._tmp, self.path)
            else:
                self._tmp.unlink()
        except (av.FFmpegError, OSError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise HumanParseError(f"cannot finish {self.path}: {_reason(exc)}") from None
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise


_END = object()  # the decoding thread's last item
_TIMED_BASE = Fraction(1, 90000)  # MPEG's clock: exact for 24, 25, 30 and 30000/1001 frames/s


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
URL_TIMEOUT = 15.0  # seconds to open a stream URL, and then to wait for each read


def _source(path: str | os.PathLike) -> Path | str:
    """A stream URL (``rtsp://``, ``http://``, ``file://``, ...) stays a string for FFmpeg;
    anything else is a local path."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a video source is a file path or a stream URL, got {type(path).__name__}")
    return path if isinstance(path, str) and _URL.match(path) else Path(path)


def _open(path: Path | str) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open a file or stream URL for decoding its first video stream, with errors a user can act on."""
    if isinstance(path, Path):
        if not path.exists():
            raise HumanParseError(f"{path} does not exist")
        if path.is_dir():
            raise HumanParseError(f"{path} is a directory, not a video file")
    try:
        container = av.open(str(path), timeout=URL_TIMEOUT if isinstance(path, str) else None)
    except (av.FFmpegError, OSError) as exc:
        raise HumanParseError(f"cannot read {path} as a video: {_reason(exc)}") from None
    if not container.streams.video:
        container.close()
        raise HumanParseError(f"{path} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # decode on all cores: slice and frame threads
    return container, stream


def _first_frame(frames: Iterator[av.VideoFrame]) -> tuple[av.VideoFrame | None, BaseException | None]:
    """The first frame of a decoding (None for a stream of none), or why it failed; the
    decoding goes on from the second."""
    try:
        return next(frames, None), None
    except (av.FFmpegError, OSError) as exc:
        return None, exc


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counterclockwise quarter turns that show ``frame`` upright: FFmpeg's display matrix
    rotation, as the ffmpeg tool and OpenCV apply it (a mirroring in the matrix is not)."""
    return round(frame.rotation / 90) % 4


def _info(stream: av.VideoStream, head: av.VideoFrame | None) -> VideoInfo:
    fps = stream.average_rate or stream.guessed_rate or FALLBACK_FPS
    width, height = (head.width, head.height) if head is not None else (stream.codec_context.width, stream.codec_context.height)
    turns = 0 if head is None else _quarter_turns(head)
    return VideoInfo(
        width=height if turns % 2 else width,
        height=width if turns % 2 else height,
        fps=Fraction(fps),
        frames=stream.frames or None,  # FFmpeg's 0 means "not stored"
        codec=stream.codec_context.name,
        rotation=90 * turns,
    )


def _stream_seconds(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    """The video stream's duration as its header states it, None where it does not.

    Matroska keeps it as a ``DURATION`` tag (HH:MM:SS.nnnnnnnnn); the container's duration
    stands in only for a file with no other stream, since an audio track may run longer.
    """
    if stream.duration is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")
    if tag is not None:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    if len(container.streams) == 1 and container.duration is not None:
        return container.duration / av.time_base
    return None


def _reason(exc: BaseException) -> str:
    """The message of an FFmpeg or OS error without its errno and file name."""
    return getattr(exc, "strerror", None) or str(exc)
