"""One training loop for the three stages of the paper (Sec. 3.3, appendix B.2).

semantic: segmenter (and the built-in detector head) with per-pixel cross-entropy;
instance: segmenter frozen, Instance CRF trained with the matched loss; joint: the whole
network end to end through the CRF. Every stage adds the detector head's loss (weight
``loss.detection_weight``) so that one checkpoint keeps a working detector.

The loop reads top to bottom: sample a batch → augment → detections → forward → loss →
accumulate → SGD step with the poly (or fixed) rate → log → validate → checkpoint. A run is
resumable exactly: the checkpoint holds the weights, the optimiser, the iteration, the
sampler's place, the random generators of every rank and the thread count (float sums
depend on it); oneDNN runs its deterministic kernels. Ctrl-C or SIGTERM lets the step in
flight finish, then saves such a checkpoint and stops. The library never prints; progress
goes to a callback.

Under ``torchrun --nproc_per_node=N -m humanparse train ...`` the same loop runs on every
rank: DistributedDataParallel averages the gradients, each rank draws its own share of the
data, and rank 0 alone logs, validates and writes files.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .config import TrainConfig, to_toml
from .data.augment import augment
from .data.cihp import Sample, check_label_set, check_samples, load_sample, read_split
from .detectors import CocoResultsDetector, DetectorSpec, simulate_detections
from .device import resolve_device
from .errors import CheckpointError, ConfigError, HumanParseError
from .evaluate import evaluate
from .interrupts import StopRequests
from .io.drawing import line_chart
from .io.files import check_writable, write_bytes_atomic
from .io.images import encode_png
from .labels import IGNORE, LabelSet
from .matching import matched_instance_loss, ohem_cross_entropy, ohem_k
from .metrics import confusion_matrix, mean_iou
from .modeling.checkpoints import init_from_checkpoint, load_checkpoint, save_checkpoint
from .modeling.detection_head import detection_loss, encode_targets
from .modeling.holistic import HolisticParser, build_model
from .ops import person_boxes
from .predictor import Predictor
from .run_folder import RunLock, check_new_run, config_file_holds, identity, read_log, recorded_config, resume_changes, resume_state, split_digest


@dataclass(frozen=True)
class StepReport:
    step: int  # optimiser steps done
    total: int
    loss: float
    lr: float
    images_per_second: float  # all ranks together
    validation: dict[str, float] | None = None  # at the steps that validated


class TrainingStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run at a safe point. ``checkpoint`` is the last.pt to
    resume from, None where a new run stopped before its first step (nothing to resume;
    the folder is left as a new run may start over). ``str()`` is the advice to give."""

    def __init__(self, checkpoint: Path | None, step: int) -> None:
        self.checkpoint, self.step = checkpoint, step
        if checkpoint is None:
            advice = "stopped before the first step: nothing to resume; run the same command again to start"
        else:
            advice = f"stopped after step {step}; resume with --resume (checkpoint in {checkpoint})"
        super().__init__(advice)


@dataclass(frozen=True)
class _Item:
    image: torch.Tensor  # (3, H, W) float 0..255
    parts: torch.Tensor  # (H, W) long
    persons: torch.Tensor  # (H, W) long
    gt_boxes: torch.Tensor  # (G, 4) boxes of the visible persons
    boxes: torch.Tensor  # (D, 4) detections for the CRF
    scores: torch.Tensor  # (D,)

    def to(self, device: torch.device) -> "_Item":
        return _Item(*(getattr(self, f).to(device) for f in ("image", "parts", "persons", "gt_boxes", "boxes", "scores")))


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed run (torchrun): rank 0 of 1 alone."""

    rank: int = 0
    world: int = 1
    started_group: bool = False  # this run created the process group and ends it

    @property
    def main(self) -> bool:
        return self.rank == 0


class ResumableSampler:
    """A distributed sampler of image indices: each epoch one permutation of the data set,
    the same on every rank (seeded by the seed and the epoch), of which rank r takes
    positions r, r + W, r + 2W, ...; the permutation is padded by its own start so that every
    rank gets the same count, as torch's DistributedSampler does. Its whole state is
    (epoch, position), identical on every rank, so rank 0's checkpoint resumes all of them."""

    def __init__(self, size: int, seed: int, ranks: Ranks, epoch: int = 0, position: int = 0) -> None:
        self.size, self.seed, self.ranks = size, seed, ranks
        self.per_rank = -(-size // ranks.world)
        self.epoch, self.position = epoch, position
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return np.resize(order, self.per_rank * self.ranks.world)  # np.resize repeats the start

    def next(self) -> int:
        if self.position == self.per_rank:
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation()
        index = int(self._order[self.ranks.rank + self.position * self.ranks.world])
        self.position += 1
        return index


class _Objective(torch.nn.Module):
    """The stage's loss as a module, so that DistributedDataParallel wraps one forward call."""

    def __init__(self, config: TrainConfig, spec: DetectorSpec, model: HolisticParser) -> None:
        super().__init__()
        self.config, self.spec, self.model = config, spec, model

    def forward(self, batch: list[_Item]) -> torch.Tensor:
        return _loss(self.config, self.spec, self.model, batch)


def train(config: TrainConfig, resume: bool = False, progress: Callable[[StepReport], None] | None = None) -> Path:
    """Run one stage; returns the final checkpoint (``<out>/final.pt``).

    The output folder holds ``config.toml`` (resolved), ``log.jsonl`` (one line per logged
    step and per validation), ``last.pt`` (every ``checkpoint_every`` steps, on Ctrl-C, at
    the end), ``best.pt`` (the best validation score so far, when ``data.val_split`` is set)
    and ``curves.png`` (loss and validation curves, written at the end and on Ctrl-C);
    ``train.lock`` keeps a second run out while this one works there. A new run starts only
    in a missing or empty folder, or over one that stopped before its first checkpoint.
    ``resume`` continues from ``last.pt`` exactly where it stopped, with the same settings
    but the operational ones (:func:`~humanparse.run_folder.resume_changes`).

    Ctrl-C or SIGTERM, from the first file written on, stops at the next step's start with
    :class:`TrainingStopped` (a KeyboardInterrupt), after saving last.pt if a step was done.
    """
    out = Path(config.out)
    _check_out(out, resume)
    if config.optim.batch_size > 1 and config.data.crop == 0:
        raise ConfigError("optim.batch_size > 1 needs data.crop > 0: images of a batch must have one size")
    spec = DetectorSpec.parse(config.data.detector)
    if spec.real:
        raise ConfigError(f"data.detector must be gt, sim[:SEED[:TRUNCATION]], file:PATH or builtin, got {config.data.detector!r}")
    ids = read_split(config.data.root, config.data.split)
    check_samples(config.data.root, ids)
    if config.data.val_split:
        check_samples(config.data.root, read_split(config.data.root, config.data.val_split))  # now, not at the first validation
    detections_file = CocoResultsDetector(spec.path) if spec.kind == "file" else None
    ranks, device = _start_ranks(config.device)
    threads, deterministic = torch.get_num_threads(), torch.backends.mkldnn.deterministic
    try:
        # oneDNN may otherwise pick kernels whose sums vary run to run; a resumed run must
        # repeat the uninterrupted one bit for bit.
        torch.backends.mkldnn.deterministic = True
        # The thread count pinned for every library, as a resume pins it: set_num_threads
        # also turns MKL's dynamic threading off, a condition of its reproducible sums
        # (MKL_CBWR); a new run left it on, where MKL may choose fewer threads call by call.
        torch.set_num_threads(threads)
        # Everything that can refuse the run (the model, what a resume starts from) before
        # the folder is made and locked.
        start = _prepare(config, resume, ids, ranks)
        # From before the first file is written to the end, a stop signal waits for a safe
        # point: the first step's start, the end of a step.
        with StopRequests() as stops, _locked(out, resume, ranks, device, start.last_seen):
            return _run(config, spec, start, progress, ids, detections_file, ranks, device, stops)
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.deterministic = deterministic
        if ranks.started_group:
            dist.destroy_process_group()


def _check_out(out: Path, resume: bool) -> None:
    """Whether the run may start (or resume) in ``out``, before anything is written."""
    if resume:
        if not (out / "last.pt").is_file():
            raise HumanParseError(f"nothing to resume: {out / 'last.pt'} does not exist")
    else:
        check_new_run(out)


@dataclass(frozen=True)
class _Start:
    """What a run starts from, read before anything is written."""

    model: HolisticParser
    state: dict | None  # a resume's (run_folder.resume_state)
    changes: dict  # the settings a resume changes (run_folder.resume_changes)
    kept_log: str  # the log a resume keeps (run_folder.read_log)
    last_seen: tuple | None  # the identity of the last.pt a resume read
    crf_restarted: dict  # learned CRF values the config sets anew over init's (init_from_checkpoint)


def _prepare(config: TrainConfig, resume: bool, ids: list[str], ranks: Ranks) -> _Start:
    out, last = Path(config.out), Path(config.out) / "last.pt"
    torch.manual_seed(config.seed)  # before the model: its initial weights follow the seed
    if resume:
        seen = identity(last)
        state = resume_state(last, ids, ranks.world)
        changes = resume_changes(state["config"] or recorded_config(out), config, state["step"])
        kept_log = read_log(out / "log.jsonl", state["step"]) if ranks.main else ""  # steps logged after last.pt run again
        start = _Start(load_checkpoint(last), state, changes, kept_log, seen, {})
    else:
        model, restarted = init_from_checkpoint(config.model, config.init) if config.init else (build_model(config.model), {})
        start = _Start(model, None, {}, "", None, restarted)
    check_label_set(config.data.root, start.model.labels, config.init or "the model config")
    return start


@contextmanager
def _locked(out: Path, resume: bool, ranks: Ranks, device: torch.device, last_seen: tuple | None):
    """Rank 0 makes the folder and locks it for the run (:class:`RunLock`), then checks it
    again: another run may have written there since this one looked. All ranks fail
    together."""
    stack, error = ExitStack(), None
    if ranks.main:
        try:
            check_writable(out)
            stack.enter_context(RunLock(out))
            _check_out(out, resume)
            if resume and identity(out / "last.pt") != last_seen:
                raise HumanParseError(f"{out / 'last.pt'} changed while this run was starting (another run ended there); start this one again")
        except HumanParseError as exc:
            stack.close()
            error = exc
    if _any_rank(error is not None, ranks, device):
        raise error or HumanParseError(f"rank 0 could not take the run folder {out}")
    with stack:
        yield


def _run(
    config: TrainConfig, spec: DetectorSpec, start: _Start, progress, ids: list[str], detections_file: CocoResultsDetector | None,
    ranks: Ranks, device: torch.device, stops: StopRequests,
) -> Path:
    out, last = Path(config.out), Path(config.out) / "last.pt"
    model, state, changes, resume = start.model, start.state, start.changes, start.state is not None
    model.to(device)
    trainable = _set_stage(model, config.stage)
    objective: torch.nn.Module = _Objective(config, spec, model)
    if ranks.world > 1:
        # Unused parameters happen legitimately (the detector head with detection_weight 0).
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    optimiser = torch.optim.SGD(trainable, lr=config.optim.lr, momentum=config.optim.momentum, weight_decay=config.optim.weight_decay)
    amp_dtype = _amp_dtype(config, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    # Augmentation and simulated detections: one generator per rank, so ranks see different crops.
    rng = np.random.default_rng([config.seed, ranks.rank])
    sampler = ResumableSampler(len(ids), config.seed, ranks)
    step, best = 0, None
    if state is not None:
        try:
            optimiser.load_state_dict(state["optimiser"])
            rng.bit_generator.state = state["generators"][ranks.rank]["numpy"]
            torch.set_rng_state(torch.tensor(state["generators"][ranks.rank]["torch"], dtype=torch.uint8))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{last}: cannot restore the optimiser and random generators ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); the checkpoint is damaged") from None
        sampler = ResumableSampler(len(ids), config.seed, ranks, state["epoch"], state["position"])
        step, best = state["step"], state["best"]
        torch.set_num_threads(state["threads"])  # the same sums as before the stop

    # Files are written once nothing can refuse the run any more.
    if ranks.main and resume:
        write_bytes_atomic(out / "log.jsonl", start.kept_log.encode())
        if changes or not config_file_holds(out, config):
            write_bytes_atomic(out / "config.toml", to_toml(config).encode())
    elif ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out / "config.toml", to_toml(config).encode())
        (out / "log.jsonl").unlink(missing_ok=True)  # a failed start's
    split = split_digest(ids)

    def checkpoint() -> None:
        _save(model, optimiser, rng, sampler, step, best, last, ranks, config, split)

    log = (out / "log.jsonl").open("a") if ranks.main else None
    if log is not None and changes:
        log.write(_json_line({"stage": config.stage, "step": step, "resumed_with": changes}))
        log.flush()
    if log is not None and start.crf_restarted:
        # The rest of the CRF continues from init's learned values; the log says which did not.
        log.write(_json_line({"stage": config.stage, "step": step, "crf_restarted_from_config": start.crf_restarted}))
        log.flush()
    started, seen, first = time.perf_counter(), 0, step
    try:
        while step < config.optim.iterations:
            # All ranks stop before the same step, or the others would wait forever in its
            # gradient all-reduce.
            if _any_rank(stops.requested, ranks, device):
                raise KeyboardInterrupt
            lr = _learning_rate(config, step)
            for group in optimiser.param_groups:
                group["lr"] = lr
            optimiser.zero_grad(set_to_none=True)
            total = 0.0
            for micro in range(config.optim.accumulate):
                batch = [
                    _load_item(config, spec, model.labels, ids[sampler.next()], rng, detections_file).to(device)
                    for _ in range(config.optim.batch_size)
                ]
                # Gradients are averaged across ranks once per optimiser step, not per micro-batch.
                sync = micro == config.optim.accumulate - 1 or ranks.world == 1
                with (nullcontext() if sync else objective.no_sync()), torch.autocast(device.type, amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    loss = objective(batch) / config.optim.accumulate
                scaler.scale(loss).backward()
                total += loss.item()
                seen += len(batch) * ranks.world
            # float16 loss scaling skips such steps itself. Every rank decides together:
            # one rank stopping alone would leave the others waiting in an all-reduce.
            if _any_rank(not math.isfinite(total) and not scaler.is_enabled(), ranks, device):
                # The weights are still the last step's; nothing is saved over last.pt.
                kept = f"; {last} holds the last good step" if last.is_file() else ""
                became = total if not math.isfinite(total) else "non-finite on another rank"
                raise HumanParseError(f"the loss became {became} at step {step + 1}: training diverged (lower optim.lr?){kept}")
            if config.optim.clip_grad_norm > 0:
                scaler.unscale_(optimiser)
                torch.nn.utils.clip_grad_norm_(trainable, config.optim.clip_grad_norm)
            scaler.step(optimiser)
            scaler.update()
            step += 1
            validation = None
            if config.data.val_split and (step % config.validate_every == 0 or step == config.optim.iterations):
                validation = _validate(config, spec, model, ranks)
                if ranks.main and (best is None or validation["score"] > best):
                    best = validation["score"]
                    save_checkpoint(model, out / "best.pt", extra={"step": step, "validation": validation})
                _set_stage(model, config.stage)
            report = StepReport(step, config.optim.iterations, total, lr, seen / max(time.perf_counter() - started, 1e-9), validation)
            if log is not None and (step % config.log_every == 0 or step == config.optim.iterations):
                line = {"stage": config.stage, "step": step, "loss": total, "lr": lr, "images_per_s": report.images_per_second}
                log.write(_json_line(line))
            if log is not None and validation is not None:
                log.write(_json_line({"stage": config.stage, "step": step, "validation": validation}))
            if log is not None:
                log.flush()
            if step % config.checkpoint_every == 0:
                checkpoint()
            if progress is not None:
                progress(report)
    except KeyboardInterrupt:
        if step > first:
            checkpoint()
        if log is not None:
            log.close()
            if step > first:
                _write_curves(out)
        raise TrainingStopped(last if step > first or resume else None, step) from None
    except BaseException:  # bad data, a diverged loss: the log keeps what it has, closed
        if log is not None:
            log.close()
        raise
    if log is not None:
        log.close()
    checkpoint()
    _check_ranks_agree(model, ranks)
    final = out / "final.pt"
    if ranks.main:
        save_checkpoint(model, final)
        _write_curves(out)
    return final


def _json_line(record: dict) -> str:
    """One log.jsonl line; a non-finite number becomes null (NaN is no JSON token)."""
    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        return value

    return json.dumps(finite(record), allow_nan=False) + "\n"


def _any_rank(flag: bool, ranks: Ranks, device: torch.device) -> bool:
    """Whether ``flag`` holds on any rank (an all-reduce under torchrun), so that all ranks
    take the same branch."""
    if ranks.world == 1:
        return flag
    anywhere = torch.tensor([int(flag)], device=device)
    dist.all_reduce(anywhere, op=dist.ReduceOp.MAX)
    return bool(anywhere.item())


def _start_ranks(device_spec: str) -> tuple[Ranks, torch.device]:
    """This process's rank under torchrun (WORLD_SIZE, RANK, LOCAL_RANK), and its device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_spec)
    if world == 1:
        return Ranks(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = resolve_device(f"cuda:{local}")
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(rank, world, started), device


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA only: bfloat16 where supported (no loss scaling needed)."""
    if not config.optim.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _check_ranks_agree(model: HolisticParser, ranks: Ranks) -> None:
    """DistributedDataParallel keeps the replicas equal; a cheap checksum makes sure."""
    if ranks.world == 1:
        return
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).cpu()
    gathered: list[torch.Tensor | None] = [None] * ranks.world
    dist.all_gather_object(gathered, checksum)
    if any(not torch.allclose(g, gathered[0], rtol=0, atol=1e-9) for g in gathered):
        raise HumanParseError("the ranks' weights diverged: distributed training is broken on this setup")


def _validate(config: TrainConfig, spec: DetectorSpec, model: HolisticParser, ranks: Ranks) -> dict[str, float]:
    """Validation scores on rank 0 (the others wait): mIoU of the segmenter in the semantic
    stage, and in the instance stages the paper's headline, part AP^r_vol, with person AP^r
    at 0.5 and mIoU. ``score`` is the one that picks best.pt."""
    result: list[dict[str, float] | None] = [None]
    if ranks.main:
        ids = read_split(config.data.root, config.data.val_split)
        ids = ids[: config.data.val_images] if config.data.val_images else ids
        if config.stage == "semantic":
            result[0] = _validate_semantic(config, model, ids)
        else:
            # Scored as `humanparse eval` scores: through the predictor, on its results.
            predictor = Predictor(model, next(model.parameters()).device, spec.build(data_root=config.data.root))
            report = evaluate(predictor, config.data.root, config.data.val_split, ids=ids)
            result[0] = {"score": float(report.parts.vol), "part_ap_r_vol": float(report.parts.vol), "person_ap_r_50": float(report.persons.at(0.5)), "miou": float(report.miou)}
    if ranks.world > 1:
        dist.broadcast_object_list(result, src=0)
    assert result[0] is not None
    return result[0]


def _validate_semantic(config: TrainConfig, model: HolisticParser, ids: list[str]) -> dict[str, float]:
    num_labels = len(model.labels.names)
    device = next(model.parameters()).device
    confusion = np.zeros((num_labels, num_labels), np.int64)
    model.eval()
    with torch.no_grad():
        for sample_id in ids:
            sample = load_sample(config.data.root, sample_id, num_labels)
            image = torch.from_numpy(sample.image).permute(2, 0, 1).float()[None].to(device)
            predicted = model.segmenter(image).logits[0].argmax(0).cpu().numpy()
            confusion += confusion_matrix(predicted, sample.parts, num_labels)
    miou, _ = mean_iou(confusion)
    return {"score": float(miou), "miou": float(miou)}


def _write_curves(out: Path) -> None:
    """curves.png: training loss and validation scores against the step, from log.jsonl."""
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    losses = [(line["step"], line["loss"]) for line in lines if "loss" in line]
    scores: dict[str, list[tuple[int, float]]] = {}
    for line in lines:
        for name, value in line.get("validation", {}).items():
            if name != "score" and value is not None and np.isfinite(value):
                scores.setdefault(name, []).append((line["step"], value))
    panels = [line_chart({"training loss": losses}, title="loss", width=640, height=360)]
    if scores:
        panels.append(line_chart(scores, title="validation", width=640, height=360))
    image = np.concatenate(panels, axis=0)
    try:
        write_bytes_atomic(out / "curves.png", encode_png(image))
    except (OSError, HumanParseError):
        pass  # the plot is for a person to look at; never fail a finished run over it


def _set_stage(model: HolisticParser, stage: str) -> list[torch.nn.Parameter]:
    """Which parameters train, and the modules' modes."""
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    if stage == "semantic":
        # The CRF gets no gradient from the per-pixel loss; frozen, it is not even looked at.
        for p in model.crf.parameters():
            p.requires_grad_(False)
    if stage == "instance":
        # Piecewise training: the segmenter (and its detector head) stay as pre-trained.
        model.segmenter.eval()
        for p in model.segmenter.parameters():
            p.requires_grad_(False)
        if model.detector is not None:
            for p in model.detector.parameters():
                p.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def _learning_rate(config: TrainConfig, step: int) -> float:
    if config.optim.schedule == "fixed":
        return config.optim.lr
    return config.optim.lr * (1 - step / config.optim.iterations) ** config.optim.poly_power


def _load_item(
    config: TrainConfig, spec: DetectorSpec, labels: LabelSet, sample_id: str, rng: np.random.Generator, detections_file: CocoResultsDetector | None
) -> _Item:
    sample: Sample = load_sample(config.data.root, sample_id, len(labels.names))
    if sample.persons is None and config.stage != "semantic":
        raise HumanParseError(f"{config.data.root}: the {config.stage} stage needs person ids (Human_ids/)")
    persons = sample.persons if sample.persons is not None else np.zeros_like(sample.parts)
    file_boxes = detections_file(sample.image, key=sample_id) if detections_file is not None else None
    boxes_in = file_boxes.boxes if file_boxes is not None else np.zeros((0, 4), np.float32)
    image, parts = sample.image, sample.parts
    if config.data.augment:
        aug = augment(rng, image, parts, persons, boxes_in, labels)
        image, parts, persons, boxes_in = aug.image, aug.parts, aug.persons, aug.boxes
    if config.data.crop:
        image, parts, persons, boxes_in = _crop(rng, image, parts, persons, boxes_in, config.data.crop)
    _, gt_boxes = person_boxes(persons)
    height, width = parts.shape
    if spec.kind == "gt":
        boxes, scores = gt_boxes, np.ones(len(gt_boxes), np.float32)
    elif spec.kind == "sim":
        # The augmentation stream draws the noise, so the spec's seed plays no part here.
        sim = simulate_detections(rng, gt_boxes, height, width, spec.noise)
        boxes, scores = sim.boxes, sim.scores
    elif spec.kind == "file":
        boxes, scores = boxes_in, file_boxes.scores
    else:  # builtin, as train() refuses the real-photo detectors
        boxes, scores = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)  # decoded in _loss
    return _Item(
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float(),
        torch.from_numpy(parts.astype(np.int64)),
        torch.from_numpy(persons.astype(np.int64)),
        torch.from_numpy(gt_boxes),
        torch.from_numpy(np.asarray(boxes, np.float32)),
        torch.from_numpy(np.asarray(scores, np.float32)),
    )


def _loss(config: TrainConfig, spec: DetectorSpec, model: HolisticParser, batch: list[_Item]) -> torch.Tensor:
    images = torch.stack([item.image for item in batch])
    height, width = images.shape[-2:]
    top_k = ohem_k(height, width, config.loss.ohem_fraction) if config.loss.ohem else None
    if config.stage == "semantic":
        seg = model.segmenter(images)
        log_probs = F.log_softmax(seg.logits.float(), 1)
        loss = sum(ohem_cross_entropy(log_probs[b], item.parts, top_k) for b, item in enumerate(batch)) / len(batch)
        head = model.detector(seg.features) if model.detector is not None else None
    else:
        builtin = spec.kind == "builtin"
        out = model(images, None if builtin else [i.boxes for i in batch], None if builtin else [i.scores for i in batch])
        loss = sum(
            matched_instance_loss(
                out.instances[b], item.parts, item.persons, model.labels.num_parts, boxes=out.boxes[b],
                ohem_fraction=config.loss.ohem_fraction if config.loss.ohem else None, ignore_unmatched=config.loss.ignore_unmatched,
            ).loss
            for b, item in enumerate(batch)
        ) / len(batch)
        head = out.head if config.stage == "joint" else None
    if head is not None and config.loss.detection_weight > 0:
        grid = tuple(head.heatmap.shape[-2:])
        stride = model.segmenter.backbone.output_stride
        targets = [encode_targets(item.gt_boxes, grid, stride) for item in batch]
        loss = loss + config.loss.detection_weight * detection_loss(head, targets)
    if not loss.requires_grad and torch.is_grad_enabled():
        # Nothing to learn from this batch (no detections, or every person ignored) while the
        # segmenter is frozen: a zero that reaches every trainable weight keeps backward (and
        # DDP's all-reduce, which every rank must join) working.
        loss = loss + sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
    return loss


def _crop(rng: np.random.Generator, image, parts, persons, boxes, size: int):
    """A random size × size window, padding with ignored pixels where the image is smaller."""
    h, w = parts.shape
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        parts = np.pad(parts, ((0, ph), (0, pw)), constant_values=IGNORE)
        persons = np.pad(persons, ((0, ph), (0, pw)))
    y0 = int(rng.integers(0, parts.shape[0] - size + 1))
    x0 = int(rng.integers(0, parts.shape[1] - size + 1))
    boxes = boxes.copy()
    if len(boxes):
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - x0).clip(0, size)
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - y0).clip(0, size)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes = boxes[keep]
    window = (slice(y0, y0 + size), slice(x0, x0 + size))
    return image[window], parts[window], persons[window], boxes


def _save(
    model: HolisticParser, optimiser: torch.optim.Optimizer, rng: np.random.Generator, sampler: ResumableSampler,
    step: int, best: float | None, path: Path, ranks: Ranks, config: TrainConfig, split: dict,
) -> None:
    """last.pt with everything an exact resume needs; every rank's generators, rank 0 writes."""
    mine = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state().tolist()}
    generators = [mine]
    if ranks.world > 1:
        generators = [None] * ranks.world
        dist.all_gather_object(generators, mine)
    if not ranks.main:
        return
    extra = {
        "step": step,
        "epoch": sampler.epoch,
        "position": sampler.position,
        "best": best,
        "optimiser": optimiser.state_dict(),
        # JSON keeps the 128-bit generator states exact and loadable with weights_only.
        "generators": json.dumps(generators),
        "threads": torch.get_num_threads(),
        "config": to_toml(config),  # what a resume must repeat (and config.toml, should it go)
        "split": split,  # the images the sampler's place is a place in
    }
    try:
        save_checkpoint(model, path, extra=extra)
    except CheckpointError as exc:
        previous = f"; the last good checkpoint {path} is intact" if path.is_file() else ""
        raise CheckpointError(f"{exc}{previous}") from None
