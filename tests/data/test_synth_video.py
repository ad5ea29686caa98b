"""Synthetic video: a real H.264 file, persistent ids, MOTS text that decodes to the maps."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from humanparse.data.synth_video import write_video
from humanparse.errors import HumanParseError
from humanparse.io.mots import read_mots


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    return write_video(folder / "walk.mp4", 40, seed=4, size=(160, 96))


def id_maps(gt_dir, frames: int) -> list[np.ndarray]:
    return [cv2.imread(str(gt_dir / "Human_ids" / f"{t:06d}.png"), cv2.IMREAD_UNCHANGED) for t in range(1, frames + 1)]


def test_mp4_decodes_to_the_stated_frames_size_and_rate(clip) -> None:
    video, _ = clip
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == 25
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 40 and frames[0].shape == (96, 160, 3)


def test_person_ids_persist_and_move_smoothly(clip) -> None:
    _, gt_dir = clip
    maps = id_maps(gt_dir, 40)
    seen = set()
    for before, after in zip(maps, maps[1:]):
        for pid in set(np.unique(before)) & set(np.unique(after)) - {0}:
            a, b = before == pid, after == pid
            if a.sum() > 50 and b.sum() > 50:
                # The same id is the same walker: consecutive masks of an unoccluded
                # person overlap, and its centre moves by a few pixels at most.
                ca, cb = np.argwhere(a).mean(0), np.argwhere(b).mean(0)
                assert np.abs(ca - cb).max() < 8, pid
        seen |= set(np.unique(after).tolist()) - {0}
    assert len(seen) >= 2


def test_parts_and_persons_agree_in_every_frame(clip) -> None:
    _, gt_dir = clip
    for t in (1, 20, 40):
        parts = cv2.imread(str(gt_dir / "Category_ids" / f"{t:06d}.png"), cv2.IMREAD_UNCHANGED)
        persons = cv2.imread(str(gt_dir / "Human_ids" / f"{t:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(parts > 0, persons > 0) and parts.max() <= 6


def test_mots_text_decodes_to_the_id_maps(clip) -> None:
    _, gt_dir = clip
    maps = id_maps(gt_dir, 40)
    objects = read_mots(gt_dir / "gt.txt")
    assert {o.frame for o in objects} <= set(range(1, 41))
    rebuilt = [np.zeros_like(m) for m in maps]
    for o in objects:
        assert not (rebuilt[o.frame - 1][o.mask] > 0).any()  # masks of one frame never overlap
        rebuilt[o.frame - 1][o.mask] = o.track_id
    for a, b in zip(rebuilt, maps):
        assert np.array_equal(a, b)
    line = (gt_dir / "gt.txt").read_text().splitlines()[0].split(" ")
    assert line[2] == "2" and line[1].startswith("2") and line[3:5] == ["96", "160"]


def test_same_seed_same_ground_truth_and_frames(clip, tmp_path) -> None:
    video, gt_dir = clip
    again, gt_again = write_video(tmp_path / "walk.mp4", 40, seed=4, size=(160, 96))
    assert (gt_again / "gt.txt").read_bytes() == (gt_dir / "gt.txt").read_bytes()
    with av.open(str(video)) as a, av.open(str(again)) as b:
        for fa, fb in zip(a.decode(video=0), b.decode(video=0)):
            assert np.array_equal(fa.to_ndarray(format="rgb24"), fb.to_ndarray(format="rgb24"))
    # x264's default code paths gave one of two streams for these frames, about one run in
    # four: a few more renders make sure the bytes never change.
    for k in range(4):
        more, _ = write_video(tmp_path / f"walk{k}.mp4", 40, seed=4, size=(160, 96))
        assert more.read_bytes() == video.read_bytes()


def test_bad_requests_write_nothing(clip, tmp_path) -> None:
    video, _ = clip
    with pytest.raises(HumanParseError, match="already exists"):
        write_video(video, 5, seed=0, size=(64, 48))
    with pytest.raises(HumanParseError, match="even"):
        write_video(tmp_path / "odd.mp4", 5, seed=0, size=(63, 48))
    with pytest.raises(HumanParseError, match=".mp4"):
        write_video(tmp_path / "clip.avi", 5, seed=0, size=(64, 48))
    assert list(tmp_path.iterdir()) == []


def test_malformed_mots_lines_name_the_line(tmp_path) -> None:
    from humanparse.io.mots import frame_lines

    valid = frame_lines(1, np.ones((4, 4), np.uint8))[0]
    bad = tmp_path / "gt.txt"
    for text, where in ((valid + "1 2001 2 4\n", "gt.txt:2"), ("1 2001 2 4 4 ?\n", "gt.txt:1"), (valid.replace(" 2 4 4 ", " 3 4 4 "), "gt.txt:1")):
        bad.write_text(text)
        with pytest.raises(HumanParseError, match=where):
            read_mots(bad)


@pytest.mark.parametrize("seed", range(4))
def test_long_clips_keep_the_view_inside_the_panned_background(seed: int, tmp_path) -> None:
    video, gt_dir = write_video(tmp_path / "long.mp4", 240, seed=seed, size=(32, 24))
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 240


def test_a_negative_seed_is_a_one_line_error_and_nothing_is_written(tmp_path) -> None:
    from click.testing import CliRunner

    from humanparse.cli import main

    with pytest.raises(HumanParseError, match="--seed must be a whole number of 0 or more, got -1"):
        write_video(tmp_path / "a.mp4", 2, -1, (16, 16))
    result = CliRunner().invoke(main, ["synth", "video", str(tmp_path / "b.mp4"), "--frames", "2", "--size", "16x16", "--seed", "-1"])
    assert result.exit_code == 1 and result.output == "Error: --seed must be a whole number of 0 or more, got -1\n"
    assert list(tmp_path.iterdir()) == []


def test_a_long_clip_pans_over_at_most_one_frame_width(tmp_path, monkeypatch) -> None:
    """The panned world is drawn before the first frame: its size must not grow with the
    clip's length (100 million frames asked for 57 GB at once)."""
    from humanparse.data import synth_video

    class Drawn(Exception):
        pass

    widths = []

    def world(rng, height, width, config):
        widths.append(width)
        raise Drawn

    monkeypatch.setattr(synth_video, "background", world)
    for frames in (10, 100_000_000):
        with pytest.raises(Drawn):
            write_video(tmp_path / "a.mp4", frames, 0, (160, 96))
    assert widths == [160 + 6 + 1, 160 + 160 + 1]  # 0.6 pixels a frame; then one frame width
    assert list(tmp_path.iterdir()) == []
