"""Streaming video I/O on small clips made here with PyAV: frame identity survives lossy
coding because every frame is one flat colour that encodes its number."""

from __future__ import annotations

import contextlib
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from humanparse.errors import HumanParseError
from humanparse.io.video import VideoReader, VideoWriter, probe

W, H, FPS = 64, 48, 10


def colour(i: int) -> tuple[int, int, int]:
    """A flat RGB colour for frame i (i < 32), told apart from its neighbours after coding."""
    return (8 * i, 255 - 8 * i, 128)


def image(i: int, width: int = W, height: int = H) -> np.ndarray:
    return np.broadcast_to(np.array(colour(i), np.uint8), (height, width, 3)).copy()


def frame_number(frame: np.ndarray) -> int:
    return round(float(frame[..., 0].mean()) / 8)


def make_video(path: Path, fmt: str, codec: str, frames: int = 30) -> Path:
    return encode(path, [image(i) for i in range(frames)], fmt, codec)


def encode(path: Path, images: list[np.ndarray], fmt: str = "mp4", codec: str = "libx264", times_ms: list[int] | None = None,
           rotation: int = 0, keyframe_every: int | None = None) -> Path:
    """``images`` as a video; ``times_ms`` their timestamps (variable frame rate) where
    given, else FPS; ``rotation`` the display matrix's counterclockwise turn in degrees."""
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=FPS)
        height, width = images[0].shape[:2] if images else (H, W)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 4_000_000  # mpeg4's default rate blurs neighbouring frame colours together
        if times_ms is not None:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        if keyframe_every is not None:
            stream.codec_context.gop_size = keyframe_every
        if rotation:
            stream.set_display_rotation(rotation)
        container.start_encoding()  # the header, even for a clip of no frames
        for i, picture in enumerate(images):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_with_pyav(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("VideoReader(")]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "mp4": make_video(folder / "clip.mp4", "mp4", "libx264"),
        "mkv": make_video(folder / "clip.mkv", "matroska", "mpeg4"),
        "avi": make_video(folder / "clip.avi", "avi", "mpeg4"),
        "ts": make_video(folder / "clip.ts", "mpegts", "libx264"),
    }


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001), 12.5])
def test_writer_output_reads_back_with_pyav_as_h264_of_the_given_rate_size_and_colours(tmp_path, fps) -> None:
    target = tmp_path / "out.mp4"
    with VideoWriter(target, fps, W, H) as writer:
        for i in range(20):
            writer.write(image(i))
    assert writer.frames_written == 20
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == Fraction(fps) and (stream.width, stream.height) == (W, H)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 20
    for i, frame in enumerate(frames):
        assert np.abs(frame.reshape(-1, 3).mean(0) - colour(i)).max() < 5, i


@pytest.mark.parametrize("kind, codec", [("mp4", "h264"), ("mkv", "mpeg4"), ("avi", "mpeg4"), ("ts", "h264")])
def test_reader_yields_every_frame_in_order_with_probed_size_and_rate(clips, kind, codec) -> None:
    info = probe(clips[kind])
    assert (info.width, info.height, info.fps, info.codec) == (W, H, Fraction(FPS), codec)
    assert info.frames == (30 if kind in ("mp4", "avi") else None)  # MKV and MPEG-TS keep no count
    with VideoReader(clips[kind]) as reader:
        assert reader.info == info
        seen = [(index, frame_number(frame), frame.shape, frame.dtype) for index, _, frame in reader]
    assert seen == [(i, i, (H, W, 3), np.uint8) for i in range(30)]
    assert reader.frames_read == 30 and reader.error is None


@pytest.mark.parametrize("kind", ["mp4", "mkv", "ts"])  # MPEG-TS cannot seek to a keyframe: decoded from the top
@pytest.mark.parametrize(
    "stride, start, end, expected",
    [
        (3, 0.0, None, list(range(0, 30, 3))),
        (1, 0.3, 0.8, [3, 4, 5, 6, 7]),  # end exclusive; 0.3 * 10 must not round up to 4
        (4, 1.0, 2.05, [10, 14, 18]),
        (2, 2.5, None, [25, 27, 29]),  # a seek near the end
        (1, 0.0, 0.1, [0]),
    ],
)
def test_stride_start_and_end_select_the_right_frames(clips, kind, stride, start, end, expected) -> None:
    with VideoReader(clips[kind], stride=stride, start=start, end=end) as reader:
        seen = [(index, frame_number(frame)) for index, _, frame in reader]
    assert seen == [(i, i) for i in expected]
    assert reader.error is None


VFR_MS = [0, 40, 180, 200, 260, 500, 520, 540, 900, 1000, 1010, 1300, 1450, 1500, 1900, 2000, 2033, 2066, 2500, 2600]


@pytest.mark.parametrize("kind, fmt", [("mp4", "mp4"), ("mkv", "matroska"), ("ts", "mpegts")])  # MPEG-TS: decoded from the top
@pytest.mark.parametrize("stride, start, end", [(1, 0.0, None), (1, 0.5, 1.5), (2, 1.0, None), (1, 2.05, 2.6), (3, 0.19, 2.0)])
def test_variable_frame_rate_video_is_cut_numbered_and_timed_by_its_timestamps(tmp_path, kind, fmt, stride, start, end) -> None:
    clip = encode(tmp_path / f"vfr.{kind}", [image(i) for i in range(len(VFR_MS))], fmt, times_ms=VFR_MS, keyframe_every=4)
    # The reference: every frame decoded by PyAV from the top, timed by its own timestamp.
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        decoded = [(frame_number(f.to_ndarray(format="rgb24")), float((f.pts - (stream.start_time or 0)) * stream.time_base))
                   for f in container.decode(stream)]
    assert [n for n, _ in decoded] == list(range(len(VFR_MS)))
    kept = [(i, t) for i, (_, t) in enumerate(decoded) if start <= t and (end is None or t < end)][::stride]
    with VideoReader(clip, stride=stride, start=start, end=end) as reader:
        seen = [(frame.index, frame_number(frame.image), frame.time) for frame in reader]
    assert seen == [(i, i, pytest.approx(t, abs=1e-9)) for i, t in kept]
    assert [t for _, _, t in seen] == pytest.approx([ms / 1000 for ms in VFR_MS if start <= ms / 1000 and (end is None or ms / 1000 < end)][::stride])
    assert reader.error is None


def marked(width: int = W, height: int = H) -> np.ndarray:
    """A frame whose orientation shows: grey with a white block in its top-left corner."""
    picture = np.full((height, width, 3), 64, np.uint8)
    picture[: height // 4, : width // 3] = 255
    return picture


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_rotated_video_comes_upright_as_opencv_shows_it(tmp_path, rotation) -> None:
    clip = encode(tmp_path / "phone.mp4", [marked()] * 3, rotation=rotation)
    capture = cv2.VideoCapture(str(clip))  # OpenCV applies the display matrix by default
    assert capture.get(cv2.CAP_PROP_ORIENTATION_AUTO) == 1
    ok, upright = capture.read()
    capture.release()
    assert ok
    upright = upright[..., ::-1]
    info = probe(clip)
    assert (info.height, info.width) == upright.shape[:2] and info.rotation == rotation % 360
    with VideoReader(clip) as reader:
        assert reader.info == info
        frames = [frame.image for frame in reader]
    assert len(frames) == 3 and all(f.shape == upright.shape and f.flags.c_contiguous for f in frames)
    assert np.abs(frames[0].astype(int) - upright).mean() < 2
    stored = marked()
    assert frames[0].shape != stored.shape or np.abs(frames[0].astype(int) - stored).mean() > 20  # it did turn
    with VideoReader(clip, start=0.1) as reader:  # frames found by a seek are turned too
        assert all(frame.image.shape == upright.shape for frame in reader)


def test_truncated_mkv_yields_the_frames_that_decode_and_sets_error(tmp_path) -> None:
    whole = make_video(tmp_path / "whole.mkv", "matroska", "mpeg4")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with VideoReader(cut) as reader:
        seen = [(index, frame_number(frame)) for index, _, frame in reader]
    assert 3 <= len(seen) < 30 and seen == [(i, i) for i in range(len(seen))]
    assert reader.error is not None and "3.00 s" in reader.error and "\n" not in reader.error


def test_corrupt_mp4_payload_yields_the_frames_before_the_damage_and_sets_error(clips, tmp_path) -> None:
    data = bytearray(clips["mp4"].read_bytes())
    rng = np.random.default_rng(0)
    lo, hi = int(len(data) * 0.4), int(len(data) * 0.6)
    data[lo:hi] = rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with VideoReader(damaged) as reader:
        indices = [index for index, _, _ in reader]
    assert indices == list(range(len(indices))) and 0 < len(indices) < 30
    assert reader.error is not None


def test_truncated_mp4_that_lost_its_index_is_an_error_naming_the_path(clips, tmp_path) -> None:
    # libx264 MP4s keep the moov atom (the index) at the end, so the cut loses it.
    data = clips["mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(HumanParseError, match="cut.mp4"):
        VideoReader(cut)


def test_stream_cut_before_its_first_frame_raises_with_the_reason(tmp_path) -> None:
    whole = make_video(tmp_path / "whole.mkv", "matroska", "libx264")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[:900])  # the header and no complete frame
    reader = VideoReader(cut)
    with pytest.raises(HumanParseError, match="no frame of .*cut.mkv could be decoded"):
        list(reader)
    assert reader.error is not None and not reader_threads()


@pytest.mark.parametrize("case", ["text named .mp4", "missing", "directory"])
def test_unreadable_inputs_are_humanparse_errors_naming_the_path(tmp_path, case) -> None:
    path = tmp_path / "input.mp4"
    if case == "text named .mp4":
        path.write_text("this is not a video\n" * 20)
    elif case == "directory":
        path.mkdir()
    for call in (probe, VideoReader):
        with pytest.raises(HumanParseError, match="input.mp4"):
            call(path)


def test_video_with_a_stream_but_no_frames_raises_when_iteration_ends(tmp_path) -> None:
    empty = make_video(tmp_path / "empty.avi", "avi", "mpeg4", frames=0)
    assert probe(empty).frames is None
    with VideoReader(empty) as reader:
        with pytest.raises(HumanParseError, match="empty.avi holds no video frames"):
            list(reader)


def test_start_past_the_end_raises_when_iteration_ends(clips) -> None:
    with VideoReader(clips["mp4"], start=5.0) as reader:
        with pytest.raises(HumanParseError, match="no frames from 5.0 s"):
            list(reader)


@pytest.mark.parametrize("width, height", [(5, 3), (1, 1), (6, 3)])
def test_odd_sizes_are_padded_to_even_by_repeating_the_edge(tmp_path, width, height) -> None:
    target = tmp_path / "odd.mp4"
    rng = np.random.default_rng(1)
    with VideoWriter(target, FPS, width, height, crf=0) as writer:
        for _ in range(3):
            writer.write(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    padded = (height + height % 2, width + width % 2)
    assert probe(target).width == padded[1] and probe(target).height == padded[0]
    with VideoReader(target) as reader:
        frames = [frame for _, _, frame in reader]
    assert len(frames) == 3 and all(f.shape == (*padded, 3) for f in frames)
    # A flat colour survives 4:2:0 chroma, so the padding must repeat it rather than add black.
    flat = tmp_path / "flat.mp4"
    with VideoWriter(flat, FPS, width, height) as writer:
        writer.write(image(9, width, height))
    with VideoReader(flat) as reader:
        ((_, _, frame),) = list(reader)
    assert np.abs(frame.reshape(-1, 3).astype(int) - colour(9)).max() < 4


def test_writer_given_times_shows_each_frame_at_its_time(tmp_path) -> None:
    target = tmp_path / "timed.mp4"
    times = [ms / 1000 for ms in VFR_MS[:12]] + [1.3]  # the last repeats its predecessor's time
    with VideoWriter(target, Fraction(30000, 1001), W, H) as writer:
        for i, t in enumerate(times):
            writer.write(image(i), t)
        with pytest.raises(ValueError, match="every frame"):
            writer.write(image(0))
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        shown = [(frame_number(f.to_ndarray(format="rgb24")), float(f.pts * stream.time_base)) for f in container.decode(stream)]
    assert [n for n, _ in shown] == list(range(13))
    assert [t for _, t in shown] == pytest.approx([*times[:12], 1.3 + 1 / 90000], abs=1e-9)


def test_interrupted_writer_leaves_a_valid_mp4_of_the_frames_written_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(target, FPS, W, H) as writer:
            for i in range(7):
                writer.write(image(i))
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert [frame_number(f) for f in decode_with_pyav(target)] == list(range(7))


def test_writer_with_no_frames_leaves_no_file(tmp_path) -> None:
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "out.mp4", FPS, W, H):
            raise RuntimeError("before the first frame")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("leave", ["break", "KeyboardInterrupt", "exhaust without with"])
def test_reader_thread_stops_when_the_consumer_leaves(clips, leave) -> None:
    assert not reader_threads()
    if leave == "exhaust without with":
        reader = VideoReader(clips["mp4"], queue_size=2)
        assert len(list(reader)) == 30
    else:
        with pytest.raises(KeyboardInterrupt) if leave == "KeyboardInterrupt" else contextlib.nullcontext():
            with VideoReader(clips["mp4"], queue_size=2) as reader:
                for index, _, _ in reader:
                    assert reader_threads()[0].is_alive()
                    if index == 3:
                        if leave == "break":
                            break
                        raise KeyboardInterrupt
    assert not reader_threads()
    assert reader.error is None and reader.frames_read in (4, 30)


def test_writer_refuses_a_directory_it_cannot_create(tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(HumanParseError, match="cannot write to .*a_file"):
        VideoWriter(blocker / "out.mp4", FPS, W, H)


def test_writer_never_overwrites_an_existing_file(tmp_path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"precious")
    with pytest.raises(HumanParseError, match="already exists"):
        VideoWriter(target, FPS, W, H)
    assert target.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "frame",
    [np.zeros((H, W + 2, 3), np.uint8), np.zeros((H, W, 3), np.float32), np.zeros((H, W), np.uint8), [[0]]],
    ids=["wrong size", "float", "grey", "not an array"],
)
def test_writer_rejects_frames_it_was_not_declared_for(tmp_path, frame) -> None:
    with VideoWriter(tmp_path / "out.mp4", FPS, W, H) as writer:
        writer.write(image(0))
        with pytest.raises(HumanParseError, match=r"expected a \(48, 64, 3\) uint8 RGB frame"):
            writer.write(frame)
    assert len(decode_with_pyav(tmp_path / "out.mp4")) == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda clip, out: VideoReader(clip, stride=0),
        lambda clip, out: VideoReader(clip, start=-1.0),
        lambda clip, out: VideoReader(clip, start=2.0, end=1.0),
        lambda clip, out: VideoWriter(out, 0, W, H),
        lambda clip, out: VideoReader(clip, start=float("inf")),
        lambda clip, out: VideoReader(clip, start=float("nan")),
        lambda clip, out: VideoReader(clip, end=float("nan")),
        lambda clip, out: VideoWriter(out, FPS, W, H, crf=60),
        lambda clip, out: VideoWriter(out, FPS, W, H, preset="quick"),
        lambda clip, out: VideoWriter(out.with_suffix(".mkv"), FPS, W, H),
    ],
    ids=["stride 0", "negative start", "end before start", "zero fps", "start inf", "start nan", "end nan", "crf 60", "unknown preset", "not .mp4"],
)
def test_bad_options_are_humanparse_errors(clips, tmp_path, make) -> None:
    with pytest.raises(HumanParseError):
        make(clips["mp4"], tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []



def test_stream_urls_go_to_ffmpeg_as_urls(clips) -> None:
    path = clips["mp4"]
    url = path.resolve().as_uri()  # file:///..., FFmpeg's file protocol: a URL with no network
    assert probe(url) == probe(path)
    with VideoReader(url) as reader:
        frames = [frame for _, _, frame in reader]
    assert len(frames) == 30 and np.array_equal(np.stack(frames), np.stack(decode_with_pyav(path)))


def test_unreachable_stream_url_is_a_one_line_error() -> None:
    with pytest.raises(HumanParseError, match="cannot read rtsp://127.0.0.1:9/live as a video") as error:
        VideoReader("rtsp://127.0.0.1:9/live")
    assert "\n" not in str(error.value)


def test_a_video_whose_frames_are_over_max_pixels_is_refused_before_decoding(clips, monkeypatch) -> None:
    import humanparse.io.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", W * H - 1)
    with pytest.raises(HumanParseError, match=r"clip.mp4: 64x48 is .* megapixels, more than"):
        VideoReader(clips["mp4"])
    assert not reader_threads()
    monkeypatch.setattr(images, "MAX_PIXELS", W * H)
    with VideoReader(clips["mp4"]) as reader:
        assert len(list(reader)) == 30


def test_an_infinite_end_reads_to_the_end_and_a_rate_over_a_huge_stride_is_written(clips, tmp_path) -> None:
    """start=inf raised an OverflowError, nan was taken as 0; FPS / 10^12 overflowed
    FFmpeg's 32-bit rates, and rates below one frame in ~30000 s fail in the MP4 muxer."""

    with VideoReader(clips["mp4"], end=float("inf")) as everything, VideoReader(clips["mp4"]) as plain:
        assert len(list(everything)) == len(list(plain))
    with VideoWriter(tmp_path / "one.mp4", Fraction(FPS) / 10**12, W, H) as writer:
        writer.write(np.zeros((H, W, 3), np.uint8), time=0.0)
    with av.open(str(tmp_path / "one.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 1


def test_a_source_that_is_no_path_is_a_type_error_saying_what_a_source_is() -> None:
    for source in (None, 5, b"clip.mp4"):
        with pytest.raises(TypeError, match="a video source is a file path or a stream URL, got"):
            VideoReader(source)
