"""Per-frame sinks on a real stream: each file read back (PyAV, JSON, MOTS, PNG), equal to
what ``humanparse video`` writes; close finishes with the trailer, discard leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from humanparse.data.synth_video import write_video
from humanparse.io import rle
from humanparse.io.mots import read_mots
from humanparse.io.sinks import FramePngs, MotsText, OverlayVideo, Sinks, TracksJson
from humanparse.jobs.video import parse_video
from humanparse.predictor import Predictor
from humanparse.structures import StreamedFrame
from tests.scenes import eager_parser


@pytest.fixture(scope="module")
def streamed(tmp_path_factory) -> tuple[Predictor, Path, list[StreamedFrame]]:
    clip, _ = write_video(tmp_path_factory.mktemp("clip") / "walk.mp4", 6, seed=3, size=(96, 64))
    predictor = Predictor(eager_parser(), "cpu")
    with predictor.stream(clip) as stream:
        frames = list(stream)
    return predictor, clip, frames


def sinks_for(folder: Path, predictor: Predictor, clip: Path) -> Sinks:
    with predictor.stream(clip) as stream:
        info = stream.info
    return Sinks([OverlayVideo(folder / "overlay.mp4", info), TracksJson(folder / "tracks.json", info, predictor.labels, str(clip)),
                  MotsText(folder / "tracks.mots.txt"), FramePngs(folder / "frames")])


def test_sinks_on_a_stream_write_what_the_video_job_writes(tmp_path, streamed) -> None:
    predictor, clip, frames = streamed
    with sinks_for(tmp_path / "mine", predictor, clip) as sinks:
        for frame in frames:
            sinks.write(frame)
    assert sinks.frames == len(frames) and sinks.seconds > 0
    parse_video(predictor, clip, tmp_path / "job")
    for name in ("tracks.json", "tracks.mots.txt"):
        assert (tmp_path / "mine" / name).read_bytes() == (tmp_path / "job" / name).read_bytes(), name
    with av.open(str(tmp_path / "mine" / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(frames)
    tracks = json.loads((tmp_path / "mine" / "tracks.json").read_text())
    assert tracks["frames_written"] == len(frames) and tracks["complete"] is True and tracks["error"] is None
    mots = {(m.frame, m.track_id): m.mask for m in read_mots(tmp_path / "mine" / "tracks.mots.txt")}
    for frame, record in zip(frames, tracks["frames"], strict=True):
        persons = np.array(Image.open(tmp_path / "mine" / "frames" / "persons" / f"{frame.index + 1:06d}.png"))
        assert np.array_equal(persons, frame.result.persons)
        for track in record["tracks"]:
            assert np.array_equal(rle.decode(track["mask"]), mots[(frame.index + 1, track["id"])])


def test_close_with_an_error_says_so_in_the_trailer(tmp_path, streamed) -> None:
    predictor, clip, frames = streamed
    sinks = sinks_for(tmp_path, predictor, clip)
    sinks.write(frames[0])
    sinks.close(complete=False, error="the stream broke")
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    assert (tracks["frames_written"], tracks["complete"], tracks["error"]) == (1, False, "the stream broke")


def test_a_failure_inside_the_block_discards_every_file(tmp_path, streamed) -> None:
    predictor, clip, frames = streamed
    with pytest.raises(RuntimeError, match="failed"):
        with sinks_for(tmp_path, predictor, clip) as sinks:
            sinks.write(frames[0])
            raise RuntimeError("the parser failed")
    left = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert left == []  # neither results nor hidden temporaries
