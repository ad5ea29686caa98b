"""`humanparse video`: every output read back (PyAV, RLE, MOTS), stride and cuts,
interruption, damaged and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from humanparse.cli import main
from humanparse.data.synth_video import write_video
from humanparse.errors import HumanParseError
from humanparse.io import rle
from humanparse.io.mots import read_mots
from humanparse.jobs.video import VideoOptions, parse_video
from humanparse.predictor import Predictor
from tests.scenes import eager_parser


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    video, _ = write_video(tmp_path_factory.mktemp("clip") / "walk.mp4", 12, seed=3, size=(96, 64))
    return video


def run(*args: str):
    return CliRunner().invoke(main, ["video", *args, "--quiet"])


def frames_of(path: Path) -> tuple[int, float, tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, float(stream.average_rate), (stream.width, stream.height)


def test_outputs_read_back_and_agree(tmp_path, clip, eager_checkpoint) -> None:
    result = run(str(clip), "--out", str(tmp_path), "--checkpoint", str(eager_checkpoint), "--save-frames")
    assert result.exit_code == 0, result.output
    assert frames_of(tmp_path / "overlay.mp4") == (12, 25.0, (96, 64))
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    assert tracks["frames_written"] == 12 and tracks["complete"] is True and tracks["error"] is None
    assert [f["frame"] for f in tracks["frames"]] == list(range(12))
    mots = read_mots(tmp_path / "tracks.mots.txt")
    mots_by_frame = {(m.frame, m.track_id): m.mask for m in mots}
    ids_seen = set()
    for frame in tracks["frames"]:
        persons = np.array(Image.open(tmp_path / "frames" / "persons" / f"{frame['frame'] + 1:06d}.png"))
        parts = np.array(Image.open(tmp_path / "frames" / "parts" / f"{frame['frame'] + 1:06d}.png"))
        for track in frame["tracks"]:
            mask = rle.decode(track["mask"])
            assert np.array_equal(mask, persons == track["id"])
            assert np.array_equal(mots_by_frame.pop((frame["frame"] + 1, track["id"])), mask)
            for part in track["parts"]:
                part_mask = rle.decode(part["mask"])
                assert (mask[part_mask]).all() and (parts[part_mask] == part["part"]).all()
            ids_seen.add(track["id"])
    assert ids_seen and not mots_by_frame  # MOTS holds exactly the tracks of tracks.json
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {t["id"] for t in summary["tracks"]} == ids_seen
    for t in summary["tracks"]:
        present = [f["frame"] for f in tracks["frames"] if any(x["id"] == t["id"] for x in f["tracks"])]
        assert t["frames"] == len(present) and t["first_frame"] == present[0] and t["last_frame"] == present[-1]
    assert "tracks" in result.output and "frames/s" in result.output


def test_stride_and_cuts(tmp_path, clip, eager_checkpoint) -> None:
    result = run(str(clip), "--out", str(tmp_path), "--checkpoint", str(eager_checkpoint), "--stride", "3", "--start", "0.08", "--end", "0.4")
    assert result.exit_code == 0, result.output
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    assert [f["frame"] for f in tracks["frames"]] == [2, 5, 8]
    count, fps, _ = frames_of(tmp_path / "overlay.mp4")
    assert count == 3 and fps == pytest.approx(25 / 3)


def test_a_phone_video_turned_and_at_a_variable_rate_is_parsed_upright_at_its_times(tmp_path, clip, eager_checkpoint) -> None:
    from humanparse.io.video import VideoReader
    from tests.io.test_video import VFR_MS, encode

    with VideoReader(clip) as reader:
        upright = [frame.image for frame in reader]
    # Stored a quarter turn clockwise, shown turned back by the display matrix, as phones do.
    phone = encode(tmp_path / "phone.mp4", [np.ascontiguousarray(np.rot90(f, -1)) for f in upright], times_ms=VFR_MS[:12], rotation=90)
    result = run(str(phone), "--out", str(tmp_path / "out"), "--checkpoint", str(eager_checkpoint), "--start", "0.19", "--end", "1.4")
    assert result.exit_code == 0, result.output
    kept = [(i, ms / 1000) for i, ms in enumerate(VFR_MS[:12]) if 190 <= ms < 1400]
    tracks = json.loads((tmp_path / "out" / "tracks.json").read_text())
    assert (tracks["width"], tracks["height"]) == (96, 64)
    assert [(f["frame"], f["time"]) for f in tracks["frames"]] == kept
    assert all(rle.decode(t["mask"]).shape == (64, 96) for f in tracks["frames"] for t in f["tracks"])
    assert any(f["tracks"] for f in tracks["frames"])
    with av.open(str(tmp_path / "out" / "overlay.mp4")) as container:
        stream = container.streams.video[0]
        shown = [(f.width, f.height, float(f.pts * stream.time_base)) for f in container.decode(stream)]
    assert shown == [(96, 64, pytest.approx(t - kept[0][1], abs=1e-4)) for _, t in kept]


def test_interrupted_run_leaves_valid_files_for_the_frames_parsed(tmp_path, clip) -> None:
    class StopsAtFrameFive(Predictor):
        def predict(self, images, keys=None):
            if 5 in keys:
                raise KeyboardInterrupt
            return super().predict(images, keys)

    summary = parse_video(StopsAtFrameFive(eager_parser(), "cpu"), clip, tmp_path)
    assert summary.interrupted and summary.frames == 4
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    assert tracks["frames_written"] == 4 and tracks["complete"] is False
    assert frames_of(tmp_path / "overlay.mp4")[0] == 4
    assert json.loads((tmp_path / "summary.json").read_text())["complete"] is False
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_damaged_video_parses_what_decodes_warns_and_fails(tmp_path, eager_checkpoint) -> None:
    path = tmp_path / "whole.mkv"
    with av.open(str(path), mode="w", format="matroska") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 64, 48, "yuv420p", 4_000_000
        for i in range(30):
            frame = np.full((48, 64, 3), (i * 8) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    result = run(str(cut), "--out", str(tmp_path / "out"), "--checkpoint", str(eager_checkpoint))
    assert result.exit_code == 1 and "warning" in result.output and "Traceback" not in result.output
    tracks = json.loads((tmp_path / "out" / "tracks.json").read_text())
    assert 3 <= tracks["frames_written"] < 30 and tracks["complete"] is False and tracks["error"]
    assert frames_of(tmp_path / "out" / "overlay.mp4")[0] == tracks["frames_written"]


def test_bad_inputs_are_one_line_errors_and_keep_earlier_results(tmp_path, clip, eager_checkpoint) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for args, message in [
        ([str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")], "missing.mp4"),
        ([str(tmp_path), "--out", str(tmp_path / "o")], str(tmp_path)),
        ([str(text), "--out", str(tmp_path / "o")], "notes.mp4"),
        ([str(clip), "--out", str(blocker / "o")], "cannot write"),
        ([str(clip), "--out", str(tmp_path / "o"), "--start", "2", "--end", "1"], "--end"),
    ]:
        result = run(*args, "--checkpoint", str(eager_checkpoint))
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output, (args, result.output)
    done = tmp_path / "done"
    assert run(str(clip), "--out", str(done), "--checkpoint", str(eager_checkpoint), "--end", "0.1").exit_code == 0
    before = (done / "tracks.json").read_bytes()
    again = run(str(clip), "--out", str(done), "--checkpoint", str(eager_checkpoint))
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert (done / "tracks.json").read_bytes() == before
    assert run(str(clip), "--out", str(done), "--checkpoint", str(eager_checkpoint), "--overwrite").exit_code == 0
    assert json.loads((done / "tracks.json").read_text())["frames_written"] == 12


def test_zero_frame_video_is_an_error(tmp_path, eager_checkpoint) -> None:
    path = tmp_path / "empty.avi"
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    result = run(str(path), "--out", str(tmp_path / "o"), "--checkpoint", str(eager_checkpoint))
    assert result.exit_code == 1 and "empty.avi" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o" / "tracks.json").exists()


def test_video_options_default_to_every_frame() -> None:
    assert VideoOptions().stride == 1


def test_batches_and_parallel_workers_give_the_same_outputs_in_order(tmp_path, clip) -> None:
    predictor = Predictor(eager_parser(), "cpu")
    outputs = {}
    # One thread per worker in every run: with more, MKL may split its sums differently from
    # run to run on a busy machine, and a pixel on a near tie could flip.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for batch, workers in ((1, 1), (2, 3), (5, 2)):
            out = tmp_path / f"b{batch}w{workers}"
            summary = parse_video(predictor, clip, out, VideoOptions(batch=batch, workers=workers))
            assert summary.frames == 12 and frames_of(out / "overlay.mp4")[0] == 12
            tracks = json.loads((out / "tracks.json").read_text())
            assert [f["frame"] for f in tracks["frames"]] == list(range(12))
            outputs[batch, workers] = tracks["frames"], (out / "tracks.mots.txt").read_text()
            assert torch.get_num_threads() == 1  # restored after the run
    finally:
        torch.set_num_threads(threads)
    # Masks, ids and MOTS agree exactly; scores and boxes to float rounding (a segmenter batch
    # of several frames sums in another order than a batch of one).
    reference, mots = outputs[1, 1]
    for frames, other_mots in (outputs[2, 3], outputs[5, 2]):
        assert other_mots == mots and scores_removed(frames) == scores_removed(reference)
        assert all_scores(frames) == pytest.approx(all_scores(reference), abs=1e-4)
        # The files hold exact float32 boxes; batches sum in another order, so the built-in
        # head's boxes may differ in their last bits.
        assert all_boxes(frames) == pytest.approx(all_boxes(reference), abs=1e-3)


def scores_removed(value):
    if isinstance(value, dict):
        return {k: scores_removed(v) for k, v in value.items() if k not in ("score", "box")}
    if isinstance(value, list):
        return [scores_removed(v) for v in value]
    return value


def all_scores(value) -> list[float]:
    if isinstance(value, dict):
        return ([value["score"]] if "score" in value else []) + [s for k, v in value.items() for s in all_scores(v)]
    if isinstance(value, list):
        return [s for v in value for s in all_scores(v)]
    return []


def all_boxes(value) -> list[float]:
    if isinstance(value, dict):
        return list(value.get("box", [])) + [s for v in value.values() for s in all_boxes(v)]
    if isinstance(value, list):
        return [s for v in value for s in all_boxes(v)]
    return []


def test_batch_and_workers_must_be_positive() -> None:
    for bad in ({"batch": 0}, {"workers": 0}):
        with pytest.raises(HumanParseError, match="at least 1"):
            VideoOptions(**bad)


def test_mot_detections_past_the_last_frame_are_refused_before_any_output(tmp_path, clip, eager_checkpoint) -> None:
    dets = tmp_path / "det.txt"
    dets.write_text("1,-1,2,2,30,40,0.9\n40,-1,2,2,30,40,0.9\n")  # the clip has 12 frames
    result = run(str(clip), "--out", str(tmp_path / "out"), "--checkpoint", str(eager_checkpoint), "--detector", f"file:{dets}")
    assert result.exit_code == 1 and "frame 40" in result.output and "12 frames" in result.output
    assert not (tmp_path / "out").exists()


def test_sigterm_then_a_second_signal_finish_the_outputs_and_the_next_run_clears_leftovers(tmp_path, eager_checkpoint) -> None:
    """SIGTERM (timeout, docker stop, systemd) ends the run like Ctrl-C; Ctrl-C from 100 ms
    later until the process is gone neither undoes that clean finish nor turns exit 130 into
    death by SIGINT; a killed run's temporaries are cleared."""
    import os
    import signal
    import subprocess
    import sys
    import time

    long_clip, _ = write_video(tmp_path / "long.mp4", 150, seed=4, size=(96, 64))
    out = tmp_path / "out"
    out.mkdir()
    (out / ".tracks.json.dead1234.tmp").write_text("{")  # left by a SIGKILLed run
    (out / ".overlay.mp4.dead5678.partial.mp4").write_bytes(b"\0" * 10)
    command = [sys.executable, "-m", "humanparse", "video", str(long_clip), "--out", str(out), "--checkpoint", str(eager_checkpoint), "--overwrite", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        partial = [p for p in out.glob(".tracks.json.*.tmp") if "dead" not in p.name]
        if partial and partial[0].stat().st_size > 2000:  # some frames written
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGTERM)
    time.sleep(0.1)
    while process.poll() is None:  # Ctrl-C, again and again, while it finishes and exits
        os.kill(process.pid, signal.SIGINT)
        time.sleep(0.005)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "terminate called" not in stderr
    tracks = json.loads((out / "tracks.json").read_text())
    assert 0 < tracks["frames_written"] < 150 and tracks["complete"] is False
    assert frames_of(out / "overlay.mp4")[0] == tracks["frames_written"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary, old or new


def test_bad_times_and_a_missing_source_are_refused_before_the_model_loads(tmp_path, clip) -> None:
    for option, value in (("--start", "nan"), ("--end", "inf"), ("--end", "nan")):
        result = run(str(clip), "--out", str(tmp_path / "o"), option, value)
        assert result.exit_code == 2 and "not a time" in result.output and "Traceback" not in result.output, result.output
    missing = run(str(tmp_path / "nowhere.mp4"), "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "no-model.pt"))
    # the source is named, not the missing checkpoint: it was checked first
    assert missing.exit_code == 1 and "nowhere.mp4" in missing.output and "no-model.pt" not in missing.output
    assert not (tmp_path / "o").exists()


def test_a_run_that_fails_leaves_no_empty_out_folder(tmp_path, clip) -> None:
    class Fails(Predictor):
        def predict(self, images, keys=None):
            raise HumanParseError("the parser broke")

    out = tmp_path / "new"
    with pytest.raises(HumanParseError, match="broke"):
        parse_video(Fails(eager_parser(), "cpu"), clip, out)
    assert not out.exists()


def test_a_second_run_into_the_same_folder_is_refused_naming_the_first(tmp_path, clip, eager_checkpoint) -> None:
    """The second run deleted the first's temporaries as a killed run's and failed with
    'tracks.json: No such file or directory'."""
    from humanparse.io.files import FolderLock

    out = tmp_path / "o"
    out.mkdir()
    with FolderLock(out, None, "video run"):  # the first run, as a second open file holds it
        second = run(str(clip), "--out", str(out), "--checkpoint", str(eager_checkpoint))
    assert second.exit_code == 1 and "is in use by another video run; let it finish" in second.output
    assert list(out.iterdir()) == []  # nothing touched, no lock file left
    assert run(str(clip), "--out", str(out), "--checkpoint", str(eager_checkpoint), "--end", "0.1").exit_code == 0  # free again


def test_the_source_is_never_an_output_even_with_overwrite(tmp_path, clip, eager_checkpoint) -> None:
    import shutil

    out = tmp_path / "in"
    out.mkdir()
    source = shutil.copy(clip, out / "overlay.mp4")
    result = run(str(source), "--out", str(out), "--checkpoint", str(eager_checkpoint), "--overwrite")
    assert result.exit_code == 1 and "is the video being parsed and an output of this run" in result.output
    assert (out / "overlay.mp4").read_bytes() == clip.read_bytes()


def test_an_empty_out_and_a_huge_stride(tmp_path, clip, eager_checkpoint) -> None:
    """--out "" wrote into the working folder; a stride of 10^12 made the overlay's frame
    rate a fraction FFmpeg cannot hold (OverflowError)."""
    empty = run(str(clip), "--out", "", "--checkpoint", str(eager_checkpoint))
    assert empty.exit_code == 2 and "an empty name" in empty.output
    huge = run(str(clip), "--out", str(tmp_path / "o"), "--checkpoint", str(eager_checkpoint), "--stride", str(10**12))
    assert huge.exit_code == 0, huge.output
    assert json.loads((tmp_path / "o" / "tracks.json").read_text())["frames_written"] == 1
    assert frames_of(tmp_path / "o" / "overlay.mp4")[0] == 1
