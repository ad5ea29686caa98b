"""Training: a tiny end-to-end run of the stages, exact resume, and bad requests."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest
import torch

from humanparse.config import load_train_config
from humanparse.data.synth import write_image_dataset
from humanparse.errors import CheckpointError, ConfigError, HumanParseError
from humanparse.modeling.checkpoints import load_checkpoint, read_checkpoint
from humanparse.run_folder import RunLock
from humanparse.train import Ranks, ResumableSampler, TrainingStopped, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = write_image_dataset(tmp_path_factory.mktemp("data") / "synth", 4, seed=2, size=(64, 48))
    ids = (root / "train_id.txt").read_text().split()
    (root / "val_id.txt").write_text("\n".join(ids[:2]) + "\n")
    return root


def config(tmp_path, data, out: str, *overrides: str):
    path = tmp_path / "base.toml"
    path.write_text(
        '[model]\nbackbone = "resnet18"\noutput_stride = 16\n[model.crf]\niterations = 1\n'
        f'[data]\nroot = "{data}"\n[optim]\nlr = 0.001\niterations = 3\n'
    )
    return load_train_config(path, [f"out={tmp_path / out}", "log_every=1", *overrides])


def test_piecewise_step_without_any_detection_trains_on(tmp_path, data) -> None:
    semantic = train(config(tmp_path, data, "semantic", "optim.iterations=1"))
    empty = tmp_path / "none.json"
    empty.write_text("[]")
    final = train(config(tmp_path, data, "instance", "stage=instance", f"init={semantic}", f"data.detector=file:{empty}"))
    lines = [json.loads(line) for line in (tmp_path / "instance" / "log.jsonl").read_text().splitlines()]
    assert final.is_file() and [line["loss"] for line in lines] == [0.0, 0.0, 0.0]


def test_semantic_then_joint_then_instance(tmp_path, data) -> None:
    semantic = train(config(tmp_path, data, "semantic"))
    assert semantic.is_file() and (tmp_path / "semantic" / "last.pt").is_file()
    lines = [json.loads(line) for line in (tmp_path / "semantic" / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3] and all(line["loss"] > 0 for line in lines)
    assert lines[0]["lr"] == pytest.approx(0.001) and lines[2]["lr"] < lines[1]["lr"]  # poly schedule
    saved = load_train_config(tmp_path / "semantic" / "config.toml")
    assert saved == config(tmp_path, data, "semantic")

    joint = train(config(tmp_path, data, "joint", "stage=joint", f"init={semantic}", "data.detector=sim:1", "optim.accumulate=2"))
    before, after = load_checkpoint(semantic), load_checkpoint(joint)
    assert not torch.equal(before.crf.log_kernel_weights, after.crf.log_kernel_weights)
    assert not torch.equal(before.segmenter.head.classifier.weight, after.segmenter.head.classifier.weight)

    instance = train(config(tmp_path, data, "instance", "stage=instance", f"init={semantic}", "data.detector=gt", "optim.schedule=fixed"))
    piecewise = load_checkpoint(instance)
    # Piecewise: the segmenter stays as pre-trained, the CRF learns.
    assert torch.equal(before.segmenter.head.classifier.weight, piecewise.segmenter.head.classifier.weight)
    assert not torch.equal(before.crf.log_penalties, piecewise.crf.log_penalties)


def test_a_crf_weight_set_anew_over_init_is_the_start_and_is_logged(tmp_path, data) -> None:
    semantic = train(config(tmp_path, data, "semantic", "optim.iterations=1"))
    joint = train(config(tmp_path, data, "joint", "stage=joint", f"init={semantic}", "data.detector=sim:1", "optim.iterations=1",
                         "optim.lr=1e-9", "model.crf.same_person_penalty=0.5"))
    lines = [json.loads(line) for line in (tmp_path / "joint" / "log.jsonl").read_text().splitlines()]
    assert lines[0] == {"stage": "joint", "step": 0, "crf_restarted_from_config": {"same_person_penalty": 0.5}}
    assert load_checkpoint(joint).crf.log_penalties.exp()[0].item() == pytest.approx(0.5, abs=1e-6)
    assert load_train_config(tmp_path / "joint" / "config.toml").model.crf.same_person_penalty == 0.5


def test_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path, data) -> None:
    whole = load_checkpoint(train(config(tmp_path, data, "whole", "optim.iterations=4", "checkpoint_every=100")))

    def stop_after_two(report) -> None:
        if report.step == 2:
            raise KeyboardInterrupt

    stopped = config(tmp_path, data, "parts", "optim.iterations=4", "checkpoint_every=100")
    with pytest.raises(KeyboardInterrupt):
        train(stopped, progress=stop_after_two)
    resumed = load_checkpoint(train(stopped, resume=True))
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_signals_mid_step_stop_after_the_step_and_resume_exactly(tmp_path, data) -> None:
    """A real SIGTERM (what timeout, docker stop and systemd send) and a second signal right
    after it, delivered while a step is in flight: the step finishes, last.pt is saved, the
    exit is 130 as for Ctrl-C, and the resumed run ends with the uninterrupted run's weights."""
    import os
    import signal
    import time

    whole = load_checkpoint(train(config(tmp_path, data, "whole", "optim.iterations=5", "checkpoint_every=100")))
    sets = [f"out={tmp_path / 'killed'}", "log_every=1", "optim.iterations=5", "checkpoint_every=100"]
    command = [sys.executable, "-m", "humanparse", "train", "--config", str(tmp_path / "base.toml"), "--quiet"]
    process = subprocess.Popen([*command, *(arg for item in sets for arg in ("--set", item))], stderr=subprocess.PIPE, text=True)
    log = tmp_path / "killed" / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 1) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGTERM)  # step 2 has just begun
    time.sleep(0.1)
    os.kill(process.pid, signal.SIGINT)  # noted, changes nothing
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "resume with --resume" in stderr and "Traceback" not in stderr
    stopped = read_checkpoint(tmp_path / "killed" / "last.pt")["extra"]["step"]
    assert 2 <= stopped < 5  # stopped after a whole step, before the end
    resumed = load_checkpoint(train(load_train_config(tmp_path / "killed" / "config.toml"), resume=True))
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_bad_requests(tmp_path, data) -> None:
    train(config(tmp_path, data, "done", "optim.iterations=1"))
    with pytest.raises(HumanParseError, match="already holds a run"):
        train(config(tmp_path, data, "done", "optim.iterations=1"))
    with pytest.raises(HumanParseError, match="nothing to resume"):
        train(config(tmp_path, data, "fresh"), resume=True)
    with pytest.raises(ConfigError, match="needs data.crop"):
        train(config(tmp_path, data, "batched", "optim.batch_size=2"))
    with pytest.raises(HumanParseError, match="missing split file"):
        train(config(tmp_path, data, "nosplit", "data.split=test"))


def test_cli_trains_and_reports_bad_configs(tmp_path, data) -> None:
    from click.testing import CliRunner

    from humanparse.cli import main

    base = tmp_path / "c.toml"
    base.write_text(f'[model]\nbackbone = "resnet18"\noutput_stride = 16\n[data]\nroot = "{data}"\n[optim]\niterations = 1\n')
    runner = CliRunner()
    ok = runner.invoke(main, ["train", "--config", str(base), "--set", f"out={tmp_path / 'run'}", "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "run" / "final.pt").is_file()
    bad = runner.invoke(main, ["train", "--config", str(base), "--set", "optim.lrr=1", "--quiet"])
    assert bad.exit_code == 1 and "unknown key 'lrr'" in bad.output and "Traceback" not in bad.output


def test_shipped_configs_load() -> None:
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml")):
        load_train_config(path)


def test_validation_keeps_the_best_checkpoint_and_draws_the_curves(tmp_path, data) -> None:
    semantic = train(config(tmp_path, data, "semantic", "optim.iterations=4", "data.val_split=val", "validate_every=2"))
    lines = [json.loads(line) for line in (tmp_path / "semantic" / "log.jsonl").read_text().splitlines()]
    validations = [line for line in lines if "validation" in line]
    assert [v["step"] for v in validations] == [2, 4]
    assert all(0 <= v["validation"]["miou"] <= 1 and v["validation"]["score"] == v["validation"]["miou"] for v in validations)
    best = torch.load(tmp_path / "semantic" / "best.pt", weights_only=True)
    best_score = max(v["validation"]["score"] for v in validations)
    assert best["extra"]["validation"]["score"] == best_score
    curves = cv2.imread(str(tmp_path / "semantic" / "curves.png"))
    assert curves.shape == (720, 640, 3) and (curves < 250).any()  # two panels, something drawn

    joint = config(tmp_path, data, "joint", f"init={semantic}", "stage=joint", "data.detector=gt", "optim.iterations=1", "data.val_split=val")
    train(joint)
    line = [json.loads(line) for line in (tmp_path / "joint" / "log.jsonl").read_text().splitlines()][-1]
    assert set(line["validation"]) == {"score", "part_ap_r_vol", "person_ap_r_50", "miou"}
    assert line["validation"]["score"] == line["validation"]["part_ap_r_vol"]


def test_distributed_sampler_splits_each_epoch_between_ranks() -> None:
    seen = [[], []]
    samplers = [ResumableSampler(5, 7, Ranks(rank, 2)) for rank in range(2)]
    for _ in range(3):  # ceil(5 / 2) = 3 per rank per epoch
        for rank, sampler in enumerate(samplers):
            seen[rank].append(sampler.next())
    assert set(seen[0] + seen[1]) == {0, 1, 2, 3, 4}  # one epoch covers the data, one index repeated as padding
    assert not set(seen[0][:2]) & set(seen[1][:2])
    resumed = ResumableSampler(5, 7, Ranks(1, 2), samplers[1].epoch, samplers[1].position)
    assert [resumed.next() for _ in range(4)] == [samplers[1].next() for _ in range(4)]


def test_two_processes_train_with_gloo(tmp_path, data) -> None:
    toml = tmp_path / "ddp.toml"
    toml.write_text(
        'out = "' + str(tmp_path / "ddp") + '"\nlog_every = 1\ndevice = "cpu"\n'
        '[model]\nbackbone = "resnet18"\noutput_stride = 16\n[model.crf]\niterations = 1\n'
        f'[data]\nroot = "{data}"\ncrop = 48\n[optim]\nlr = 0.001\niterations = 2\nbatch_size = 2\n'
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "humanparse", "train", "--config", str(toml), "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]  # rank 0 alone logs
    generators = json.loads(torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)["extra"]["generators"])
    assert len(generators) == 2 and generators[0] != generators[1]  # both ranks' state, each its own
    assert load_checkpoint(tmp_path / "ddp" / "final.pt").labels.name == "pascal-person-part"


def test_label_set_and_device_mismatches_are_clear_errors(tmp_path, data) -> None:
    with pytest.raises(HumanParseError, match="labelled with 'pascal-person-part' but .* uses 'cihp'"):
        train(config(tmp_path, data, "cihp", "model.label_set=cihp"))
    with pytest.raises(HumanParseError, match="CUDA"):
        train(config(tmp_path, data, "gpu", "device=cuda:99"))


def test_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, data) -> None:
    def stop_after_one(report) -> None:
        raise KeyboardInterrupt

    cfg = config(tmp_path, data, "disk", "optim.iterations=2")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=stop_after_one)
    last = tmp_path / "disk" / "last.pt"
    good = last.read_bytes()
    # A real failing write: the file-size limit makes the kernel refuse bytes past it (EFBIG).
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({len(good) // 2}, {len(good) // 2}))\n"
        "from humanparse.cli import main\n"
        f"main(['train', '--config', {str(tmp_path / 'disk' / 'config.toml')!r}, '--resume', '--quiet'])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "cannot write checkpoint" in result.stderr and "intact" in result.stderr and "Traceback" not in result.stderr
    assert last.read_bytes() == good
    assert [p.name for p in (tmp_path / "disk").iterdir() if p.name.endswith(".tmp")] == []


def test_bad_settings_are_one_line_config_errors(tmp_path, data) -> None:
    for override, message in (("checkpoint_every=0", "checkpoint_every must be at least 1"), ("log_every=0", "log_every"),
                              ("validate_every=-1", "validate_every"), ("data.crop=-5", "data.crop"), ("optim.lr=inf", "finite")):
        with pytest.raises(ConfigError, match=message):
            config(tmp_path, data, "bad", override)


def test_a_diverging_run_stops_without_writing_nan_weights_and_can_be_started_again(tmp_path, data) -> None:
    with pytest.raises(HumanParseError, match="training diverged"):
        train(config(tmp_path, data, "diverged", "optim.lr=1e6", "optim.iterations=4", "optim.clip_grad_norm=0"))
    run = tmp_path / "diverged"
    assert not (run / "final.pt").exists() and not (run / "last.pt").exists()
    for line in (run / "log.jsonl").read_text().splitlines():
        assert "NaN" not in line and "Infinity" not in line
        json.loads(line)
    # Nothing to resume, and the folder holds no run: a fixed config starts over it.
    final = train(config(tmp_path, data, "diverged", "optim.iterations=1"))
    assert final.is_file()
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [1]


def test_an_out_that_is_a_file_is_refused(tmp_path, data) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(HumanParseError, match="is a file"):
        train(config(tmp_path, data, "taken", "optim.iterations=1"))


def test_a_resume_after_sigkill_does_not_repeat_logged_steps(tmp_path, data) -> None:
    import os
    import signal
    import time

    config(tmp_path, data, "killed")  # writes base.toml
    sets = [f"out={tmp_path / 'killed'}", "log_every=1", "optim.iterations=6", "checkpoint_every=2"]
    command = [sys.executable, "-m", "humanparse", "train", "--config", str(tmp_path / "base.toml"), "--quiet"]
    process = subprocess.Popen([*command, *(arg for item in sets for arg in ("--set", item))], stderr=subprocess.DEVNULL)
    log = tmp_path / "killed" / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 3) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)  # step 3 logged, last.pt still of step 2
    process.wait()
    saved = read_checkpoint(tmp_path / "killed" / "last.pt")["extra"]["step"]
    logged = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert saved < logged[-1]  # the kill fell between a logged step and its checkpoint
    train(load_train_config(tmp_path / "killed" / "config.toml"), resume=True)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_a_sample_missing_its_files_is_reported_before_training_starts(tmp_path, data) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    victim = (broken / "train_id.txt").read_text().split()[-1]
    (broken / "Human_ids" / f"{victim}.png").unlink()
    cfg = config(tmp_path, data, "run", f"data.root={broken}", "optim.iterations=1")
    with pytest.raises(HumanParseError, match=f"{victim}.png: person ids not found"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_out_folder_that_holds_no_run_is_refused_before_anything_is_written(tmp_path, data) -> None:
    """The user's own files (even a config.toml and a log.jsonl of theirs) are never written
    over; a run that stopped before its first checkpoint is still started over."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.toml").write_text("# my notes\n")
    (mine / "log.jsonl").write_text("my log\n")
    (mine / "notes.txt").write_text("keep me\n")
    for shown in ("notes.txt", "config.toml, log.jsonl"):
        before = _files(mine)
        with pytest.raises(HumanParseError, match=rf"mine is not empty and holds no training run \({shown}\); choose another out"):
            train(config(tmp_path, data, "mine", "optim.iterations=1"))
        assert _files(mine) == before
        (mine / "notes.txt").unlink(missing_ok=True)
    failed = config(tmp_path, data, "failed", "optim.iterations=4", "optim.lr=1e6", "optim.clip_grad_norm=0")
    with pytest.raises(HumanParseError, match="diverged"):
        train(failed)
    assert sorted(_files(tmp_path / "failed")) == ["config.toml", "log.jsonl", "train.lock"]
    assert train(config(tmp_path, data, "failed", "optim.iterations=1")).is_file()


def _no_step(report) -> None:
    raise AssertionError(f"a run that was to be refused did step {report.step}")


def test_a_second_run_in_a_folder_in_use_fails_naming_the_first(tmp_path, data) -> None:
    import os
    import signal
    import time

    config(tmp_path, data, "busy")  # writes base.toml
    sets = ["out=" + str(tmp_path / "busy"), "log_every=1", "optim.iterations=1000"]
    command = [sys.executable, "-m", "humanparse", "train", "--config", str(tmp_path / "base.toml"), "--quiet"]
    first = subprocess.Popen([*command, *(arg for item in sets for arg in ("--set", item))], stderr=subprocess.DEVNULL)
    try:
        log = tmp_path / "busy" / "log.jsonl"
        deadline = time.monotonic() + 120
        while not (log.is_file() and log.read_text().count("\n") >= 1) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(HumanParseError, match=rf"busy is in use by another training run \(process {first.pid} on "):
            train(config(tmp_path, data, "busy", "optim.iterations=1000"), progress=_no_step)
        assert first.poll() is None and log.read_text().count("\n") >= 1  # its log untouched
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # A resume takes the lock too (here held by this process, through another file handle).
    cfg = _stopped_run(tmp_path, data, "stopped")
    with RunLock(tmp_path / "stopped"), pytest.raises(HumanParseError, match=rf"stopped is in use by another training run \(process {os.getpid()} on "):
        train(cfg, resume=True, progress=_no_step)


def test_text_files_that_are_not_utf8_are_one_line_errors(tmp_path, data) -> None:
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data, root)
    (root / "bad_id.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(HumanParseError, match=r"bad_id.txt:1: not UTF-8"):
        train(config(tmp_path, data, "split", f"data.root={root}", "data.split=bad"))
    detections = tmp_path / "det.json"
    detections.write_bytes(b'[{"image_id": "caf\xe9"}]')
    semantic = train(config(tmp_path, data, "semantic", "optim.iterations=1"))
    with pytest.raises(HumanParseError, match=r"det.json: cannot read detections \(not UTF-8"):
        train(config(tmp_path, data, "file", "stage=instance", f"init={semantic}", f"data.detector=file:{detections}"))
    assert not (tmp_path / "split").exists()


def _stopped_run(tmp_path, data, out: str, *overrides: str):
    """A run of 4 steps stopped after the second, its last.pt of step 2."""

    def stop_after_two(report) -> None:
        if report.step == 2:
            raise KeyboardInterrupt

    cfg = config(tmp_path, data, out, "optim.iterations=4", "checkpoint_every=100", *overrides)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=stop_after_two)
    return cfg


def test_a_resume_from_a_damaged_run_folder_is_one_line_error_or_recovers(tmp_path, data) -> None:
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data, root)
    cfg = _stopped_run(tmp_path, data, "run", f"data.root={root}")
    run = tmp_path / "run"
    last, good = run / "last.pt", (run / "last.pt").read_bytes()

    payload = torch.load(last, weights_only=True)
    del payload["extra"]["generators"]
    torch.save(payload, last)
    with pytest.raises(CheckpointError, match=r"last.pt: no 'generators' to resume from"):
        train(cfg, resume=True)
    last.write_bytes(good)

    split = root / "train_id.txt"
    ids = split.read_text().split()
    split.write_text(ids[0] + "\n")  # fewer images than the sampler's place
    with pytest.raises(HumanParseError, match=r"list of images changed since .*last.pt was written \(4 images then, 1 now\)"):
        train(cfg, resume=True)
    split.write_text("\n".join(reversed(ids)) + "\n")  # as many, in another order
    with pytest.raises(HumanParseError, match=r"list of images changed"):
        train(cfg, resume=True)
    split.write_text("\n".join(ids) + "\n")

    log = run / "log.jsonl"
    logged = log.read_text()
    log.write_text(logged + "garbage\n" + logged)
    with pytest.raises(HumanParseError, match=r"log.jsonl:3: not a log line"):
        train(cfg, resume=True)
    assert last.read_bytes() == good
    # A crash mid-write leaves a last line cut short: the resume drops it and goes on.
    log.write_text(logged + '{"stage": "semantic", "st')
    train(cfg, resume=True)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]


def test_a_resume_refuses_settings_that_change_the_run_and_records_the_others(tmp_path, data) -> None:
    _stopped_run(tmp_path, data, "run")
    run = tmp_path / "run"
    before = _files(run)
    for overrides, message in (
        (["optim.lr=0.01"], r"optim.lr 0.01 \(the run has 0.001\)"),
        (["seed=7", "model.backbone=resnet50"], r"but seed 7 \(the run has 0\); model.backbone 'resnet50' \(the run has 'resnet18'\); resume with"),
        (["optim.iterations=8"], r"optim.iterations 8 \(the run has 4\)"),  # the poly rate of every step to come
    ):
        with pytest.raises(ConfigError, match=message):
            train(config(tmp_path, data, "run", "optim.iterations=4", "checkpoint_every=100", *overrides), resume=True)
    assert _files(run) == before  # nothing written

    train(config(tmp_path, data, "run", "optim.iterations=4", "checkpoint_every=1", "log_every=2"), resume=True)
    saved = load_train_config(run / "config.toml")
    assert saved.checkpoint_every == 1 and saved.log_every == 2
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert lines[2] == {"stage": "semantic", "step": 2, "resumed_with": {"checkpoint_every": [100, 1], "log_every": [1, 2]}}
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 4]

    fixed = _stopped_run(tmp_path, data, "fixed", "optim.schedule=fixed")
    longer = config(tmp_path, data, "fixed", "optim.iterations=6", "checkpoint_every=100", "optim.schedule=fixed")
    train(longer, resume=True)  # at a fixed rate, more steps are the same run, longer
    assert load_train_config(tmp_path / "fixed" / "config.toml") == longer != fixed
    assert read_checkpoint(tmp_path / "fixed" / "last.pt")["extra"]["step"] == 6


_SIGNAL_AFTER_CONFIG = """
import os, signal, sys
import humanparse.train as train_module
from humanparse.config import load_train_config

write = train_module.write_bytes_atomic


def write_then_signal(path, data, **options):
    write(path, data, **options)
    if path.name == "config.toml":
        os.kill(os.getpid(), signal.{signal})  # config.toml written, no step begun


train_module.write_bytes_atomic = write_then_signal
"""


def test_sigterm_after_the_config_is_written_stops_cleanly_before_the_first_step(tmp_path, data) -> None:
    config(tmp_path, data, "run")  # writes base.toml
    script = _SIGNAL_AFTER_CONFIG.format(signal="SIGTERM") + (
        "from humanparse.cli import run\n"
        f"sys.argv = ['humanparse', 'train', '--config', {str(tmp_path / 'base.toml')!r}, '--set', {'out=' + str(tmp_path / 'run')!r}, '--quiet']\n"
        "run()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.toml", "log.jsonl", "train.lock"]
    assert (tmp_path / "run" / "log.jsonl").read_text() == ""
    assert train(config(tmp_path, data, "run", "optim.iterations=1")).is_file()  # started over


def test_ctrl_c_before_the_first_step_has_nothing_to_resume(tmp_path, data) -> None:
    """The stop is a TrainingStopped without a checkpoint, its advice not --resume; after a
    step it names last.pt."""
    config(tmp_path, data, "run")  # writes base.toml
    script = _SIGNAL_AFTER_CONFIG.format(signal="SIGINT") + (
        f"config = load_train_config({str(tmp_path / 'base.toml')!r}, [{'out=' + str(tmp_path / 'run')!r}])\n"
        "try:\n"
        "    train_module.train(config)\n"
        "except KeyboardInterrupt as exc:\n"
        "    print(type(exc).__name__, getattr(exc, 'checkpoint', '?'), exc, sep='|')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    name, checkpoint, advice = result.stdout.strip().split("|")
    assert (name, checkpoint) == ("TrainingStopped", "None") and "--resume" not in advice and "nothing to resume" in advice
    assert not (tmp_path / "run" / "last.pt").exists()

    def stop_after_one(report) -> None:
        raise KeyboardInterrupt

    with pytest.raises(TrainingStopped) as stopped:
        train(config(tmp_path, data, "steps", "optim.iterations=2"), progress=stop_after_one)
    assert stopped.value.checkpoint == tmp_path / "steps" / "last.pt" and "after step 1; resume with --resume" in str(stopped.value)


def test_two_runs_at_two_threads_end_with_the_same_bits(tmp_path, data) -> None:
    """Two identical runs, side by side in two processes (neither pinning its threads
    itself), through the segmenter, the detector head and the Instance CRF: every weight,
    the optimiser's momenta and every logged loss equal bit for bit."""
    import os

    from humanparse.config import CRFConfig, ModelConfig
    from humanparse.modeling.checkpoints import save_checkpoint
    from humanparse.modeling.holistic import build_model

    torch.manual_seed(3)
    init = save_checkpoint(build_model(ModelConfig(backbone="resnet18", output_stride=16, crf=CRFConfig(iterations=1))), tmp_path / "init.pt")
    config(tmp_path, data, "a")  # writes base.toml
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    runs = []
    for name in ("a", "b"):
        sets = [f"out={tmp_path / name}", "log_every=1", "optim.iterations=4", "stage=joint", f"init={init}", "data.detector=sim", "data.crop=40", "optim.batch_size=2"]
        command = [sys.executable, "-m", "humanparse", "train", "--config", str(tmp_path / "base.toml"), "--quiet"]
        runs.append(subprocess.Popen([*command, *(arg for item in sets for arg in ("--set", item))], stderr=subprocess.PIPE, text=True, env=env))
    for process in runs:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    a, b = (torch.load(tmp_path / name / "last.pt", weights_only=True) for name in ("a", "b"))
    assert a["extra"]["threads"] == b["extra"]["threads"] == 2
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for index, state in a["extra"]["optimiser"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["extra"]["optimiser"]["state"][index]["momentum_buffer"]), index
    logs = [[json.loads(line)["loss"] for line in (tmp_path / name / "log.jsonl").read_text().splitlines()] for name in ("a", "b")]
    assert logs[0] == logs[1] and len(logs[0]) == 4


def test_a_run_that_fails_on_bad_data_closes_its_log(tmp_path, data) -> None:
    """log.jsonl was left open (a ResourceWarning) when a sample failed to load."""
    import gc
    import shutil
    import warnings

    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    first = (broken / "train_id.txt").read_text().split()[0]
    (broken / "Category_ids" / f"{first}.png").write_bytes(b"not a png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(HumanParseError):
            train(config(tmp_path, broken, "run"))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning) and "log.jsonl" in str(w.message)]
