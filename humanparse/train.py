"""One training loop for the three stages of the paper (Sec. 3.3, appendix B.2).

semantic: segmenter (and the built-in detector head) with per-pixel cross-entropy;
instance: segmenter frozen, Instance CRF trained with the matched loss; joint: the whole
network end to end through the CRF. Every stage adds the detector head's loss (weight
``loss.detection_weight``) so that one checkpoint keeps a working detector.

The loop reads top to bottom: sample a batch → augment → detections → forward → loss →
accumulate → SGD step with the poly (or fixed) rate → log → checkpoint. A run is
resumable exactly: the checkpoint holds the weights, the optimiser, the iteration and the
random generators. Ctrl-C saves such a checkpoint before stopping. The library never
prints; progress goes to a callback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment
from .cihp import Sample, load_sample, read_split
from .config import TrainConfig, to_toml
from .detection import CocoResultsDetector
from .detection_head import encode_targets, detection_loss
from .errors import ConfigError, HumanParseError
from .matching import IGNORE_INDEX, matched_instance_loss, ohem_cross_entropy, ohem_k
from .model import DecodeOptions, HolisticParser, build_model, load_checkpoint, read_checkpoint, save_checkpoint
from .synth import simulate_detections


@dataclass(frozen=True)
class StepReport:
    step: int  # optimiser steps done
    total: int
    loss: float
    lr: float
    images_per_second: float


@dataclass(frozen=True)
class _Item:
    image: torch.Tensor  # (3, H, W) float 0..255
    parts: torch.Tensor  # (H, W) long
    persons: torch.Tensor  # (H, W) long
    gt_boxes: torch.Tensor  # (G, 4) boxes of the visible persons
    boxes: torch.Tensor  # (D, 4) detections for the CRF
    scores: torch.Tensor  # (D,)


def train(config: TrainConfig, resume: bool = False, progress: Callable[[StepReport], None] | None = None) -> Path:
    """Run one stage; returns the final checkpoint (``<out>/final.pt``).

    The output folder holds ``config.toml`` (resolved), ``log.jsonl`` (one line per logged
    step) and ``last.pt`` (every ``checkpoint_every`` steps, on Ctrl-C, at the end).
    ``resume`` continues from ``last.pt`` exactly where it stopped.
    """
    out = Path(config.out)
    last = out / "last.pt"
    if resume and not last.is_file():
        raise HumanParseError(f"nothing to resume: {last} does not exist")
    if not resume and out.exists() and any(out.iterdir()):
        raise HumanParseError(f"{out} already holds a run; use --resume to continue it or choose another --out")
    if config.optim.batch_size > 1 and config.data.crop == 0:
        raise ConfigError("optim.batch_size > 1 needs data.crop > 0: images of a batch must have one size")
    ids = read_split(config.data.root, config.data.split)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)  # before the model: its initial weights follow the seed
    if resume:
        payload = read_checkpoint(last)
        model = load_checkpoint(last)
        state = payload["extra"]
    else:
        model = load_checkpoint(config.init) if config.init else build_model(config.model)
        state = None
        (out / "config.toml").write_text(to_toml(config))
    trainable = _set_stage(model, config.stage)
    optimiser = torch.optim.SGD(trainable, lr=config.optim.lr, momentum=config.optim.momentum, weight_decay=config.optim.weight_decay)
    rng = np.random.default_rng(config.seed)
    step = 0
    if state is not None:
        optimiser.load_state_dict(state["optimiser"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
    detections_file = CocoResultsDetector(config.data.detector[5:]) if config.data.detector.startswith("file:") else None

    log = (out / "log.jsonl").open("a")
    started, seen = time.perf_counter(), 0
    try:
        while step < config.optim.iterations:
            lr = _learning_rate(config, step)
            for group in optimiser.param_groups:
                group["lr"] = lr
            optimiser.zero_grad(set_to_none=True)
            total = 0.0
            for _ in range(config.optim.accumulate):
                batch = [_load_item(config, model, ids[int(rng.integers(len(ids)))], rng, detections_file) for _ in range(config.optim.batch_size)]
                loss = _loss(config, model, batch) / config.optim.accumulate
                loss.backward()
                total += loss.item()
                seen += len(batch)
            optimiser.step()
            step += 1
            report = StepReport(step, config.optim.iterations, total, lr, seen / max(time.perf_counter() - started, 1e-9))
            if step % config.log_every == 0 or step == config.optim.iterations:
                log.write(json.dumps({"stage": config.stage, "step": step, "loss": total, "lr": lr, "images_per_s": report.images_per_second}) + "\n")
                log.flush()
            if step % config.checkpoint_every == 0:
                _save(model, optimiser, rng, step, last)
            if progress is not None:
                progress(report)
    except KeyboardInterrupt:
        _save(model, optimiser, rng, step, last)
        raise
    finally:
        log.close()
    _save(model, optimiser, rng, step, last)
    return save_checkpoint(model, out / "final.pt")


def _set_stage(model: HolisticParser, stage: str) -> list[torch.nn.Parameter]:
    """Which parameters train, and the modules' modes."""
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
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


def _load_item(config: TrainConfig, model: HolisticParser, sample_id: str, rng: np.random.Generator, detections_file: CocoResultsDetector | None) -> _Item:
    sample: Sample = load_sample(config.data.root, sample_id, len(model.labels.names))
    if sample.persons is None and config.stage != "semantic":
        raise HumanParseError(f"{config.data.root}: the {config.stage} stage needs person ids (Human_ids/)")
    persons = sample.persons if sample.persons is not None else np.zeros_like(sample.parts)
    file_boxes = detections_file(sample.image, key=sample_id) if detections_file is not None else None
    boxes_in = file_boxes.boxes if file_boxes is not None else np.zeros((0, 4), np.float32)
    image, parts = sample.image, sample.parts
    if config.data.augment:
        aug = augment(rng, image, parts, persons, boxes_in, model.labels)
        image, parts, persons, boxes_in = aug.image, aug.parts, aug.persons, aug.boxes
    if config.data.crop:
        image, parts, persons, boxes_in = _crop(rng, image, parts, persons, boxes_in, config.data.crop)
    gt_boxes = _tight_boxes(persons)
    height, width = parts.shape
    detector = config.data.detector
    if detector == "gt":
        boxes, scores = gt_boxes, np.ones(len(gt_boxes), np.float32)
    elif detector.startswith("sim"):
        sim = simulate_detections(rng, gt_boxes, height, width)
        boxes, scores = sim.boxes, sim.scores
    elif file_boxes is not None:
        boxes, scores = boxes_in, file_boxes.scores
    elif detector == "builtin":
        boxes, scores = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)  # decoded in _loss
    else:
        raise ConfigError(f"data.detector must be gt, sim[:SEED], file:PATH or builtin, got {detector!r}")
    return _Item(
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float(),
        torch.from_numpy(parts.astype(np.int64)),
        torch.from_numpy(persons.astype(np.int64)),
        torch.from_numpy(gt_boxes),
        torch.from_numpy(np.asarray(boxes, np.float32)),
        torch.from_numpy(np.asarray(scores, np.float32)),
    )


def _loss(config: TrainConfig, model: HolisticParser, batch: list[_Item]) -> torch.Tensor:
    images = torch.stack([item.image for item in batch])
    height, width = images.shape[-2:]
    top_k = ohem_k(height, width, config.loss.ohem_fraction) if config.loss.ohem else None
    if config.stage == "semantic":
        seg = model.segmenter(images)
        log_probs = F.log_softmax(seg.logits.float(), 1)
        loss = sum(ohem_cross_entropy(log_probs[b], item.parts, top_k) for b, item in enumerate(batch)) / len(batch)
        head = model.detector(seg.features) if model.detector is not None else None
    else:
        builtin = config.data.detector == "builtin"
        out = model(images, None if builtin else [i.boxes for i in batch], None if builtin else [i.scores for i in batch], decoding=DecodeOptions())
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
    return loss


def _crop(rng: np.random.Generator, image, parts, persons, boxes, size: int):
    """A random size × size window, padding with ignored pixels where the image is smaller."""
    h, w = parts.shape
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        parts = np.pad(parts, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
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


def _tight_boxes(persons: np.ndarray) -> np.ndarray:
    boxes = []
    for pid in np.unique(persons[persons > 0]):
        ys, xs = np.nonzero(persons == pid)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(boxes, np.float32).reshape(-1, 4)


def _save(model: HolisticParser, optimiser: torch.optim.Optimizer, rng: np.random.Generator, step: int, path: Path) -> None:
    extra = {
        "step": step,
        "optimiser": optimiser.state_dict(),
        # JSON keeps the 128-bit generator state exact and loadable with weights_only.
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
    }
    save_checkpoint(model, path, extra=extra)
