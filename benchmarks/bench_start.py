"""Where to start the holistic network on the synthetic world: a learning curve of the same
steps from BodyPix's real weights and from random weights, against the shipped synthetic model.

    python benchmarks/bench_start.py --out runs/start --threads 1
    python benchmarks/bench_start.py --out runs/start --semantic-steps 300 1200 --joint-steps 400

Protocol:

* data: ``humanparse synth images`` writes the training set (``--train``, default
  OUT/synth-train: ``--train-num`` 1200 images, seed 1, the shipped model's first training
  set) and the held-out test set (``--test``, default OUT/synth-test: ``--test-num`` 100
  images, seed 2, split ``test``), both ``--size`` 256x256 and the world's default label set
  (Pascal-Person-Part), unless their ``meta.json`` is there already;
* starts: ``pretrained`` (``model.backbone = "bodypix"``, ``model.pretrained = true``: BodyPix's
  MobileNetV1 0.75 and its person and part heads grouped onto the labels) and ``scratch``
  (the same network, ``model.pretrained = false``), both from ``configs/synth-bodypix.toml``
  and training seed ``--seed``; optionally ``scratch-he`` (``--starts``): the same random
  network with the backbone's convolutions re-drawn by He's rule (``kaiming_normal_``, fan-in,
  biases 0), written as a checkpoint here and given to the first run as ``init``. BodyPix's
  MobileNetV1 has no batch norm (folded into its biases), and with torch's default
  initialisation its output does not depend on the input at all (the signal shrinks by about
  3x a layer over 27 layers): ``scratch`` cannot learn, ``scratch-he`` shows what a random
  start that can does;
* schedule, the same for both (the shipped model's recipe, docs/default-model.md, shortened):
  the semantic stage in runs that each start from the previous one's ``final.pt``, ending at
  the cumulative steps ``--semantic-steps`` (default 300 and 1200: a run of 300 steps, then
  one of 900), each with its own poly rate from lr 0.01, 4 images of 256x256 crops a step,
  simulated detections; then the joint stage (end to end through the Instance CRF),
  ``--joint-steps`` steps of 2 images at lr 0.002 from the last semantic run;
* every run is ``humanparse train`` as a user runs it, one process after another (one at a
  time: the numbers are CPU times on a shared machine; ``--threads N`` sets OMP_NUM_THREADS
  for every command and torch's threads here: on a 2-core machine that another job shares, 1
  thread trains steadily while 2 stall in OpenMP's barriers, up to 45x slower), and every run's ``final.pt`` is scored
  by ``humanparse eval --data TEST --split test`` with the model's own built-in detector and
  default settings; so is the shipped model (``--checkpoint synthetic``) once;
* the table: part AP^r at 0.5 and AP^r_vol, person AP^r at 0.5 and AP^r_vol, mIoU and box AP
  at each point of each curve, with the training images seen and the cumulative training
  wall time; and "segmenter mIoU", the segmenter's own per-pixel argmax on the whole test
  images (no detector, no CRF: what the semantic stage's validation scores), computed here in
  this process, also for the untrained network of each start (step 0; ``torch.manual_seed``
  of the training seed before it is built, as ``humanparse train`` does).

Runs and reports already in ``--out`` are reused (an interrupted run resumes from its
``last.pt``), so a stopped benchmark picks up where it stopped; ``times.json`` keeps the wall
times of the runs and evaluations done. The table goes to stdout and OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "configs" / "synth-bodypix.toml"
STARTS = {"pretrained": "BodyPix weights", "scratch": "from scratch (same network)",
          "scratch-he": "from scratch, He-initialised backbone"}
JOINT_BATCH, JOINT_LR = 2, 0.002


ENV = dict(os.environ)


def humanparse(*args: str) -> float:
    """Run one CLI command; returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "humanparse", *args], check=True, cwd=ROOT, env=ENV)
    return time.perf_counter() - start


class Times:
    """Wall times of the runs and evaluations, kept in OUT/times.json across restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def __setitem__(self, key: str, seconds: float) -> None:
        self.data[key] = round(seconds, 1)
        self.path.write_text(json.dumps(self.data, indent=1) + "\n")

    def get(self, key: str) -> float | None:
        return self.data.get(key)


def make_data(path: Path, num: int, seed: int, size: int, split: str, times: Times) -> None:
    if (path / "meta.json").is_file():
        return
    times[f"synth {path.name}"] = humanparse("synth", "images", str(path), "--num", str(num), "--seed", str(seed),
                                             "--size", f"{size}x{size}", "--split", split, "--quiet")


def train(name: str, sets: dict[str, object], args: argparse.Namespace, times: Times) -> Path:
    out = args.out / name
    final = out / "final.pt"
    if final.is_file():
        return final
    command = ["train", "--config", str(CONFIG), "--quiet"]
    for key, value in {"out": out, "seed": args.seed, "data.root": args.train, "data.crop": args.crop, **sets}.items():
        command += ["--set", f"{key}={value}"]
    resumed = (out / "last.pt").is_file()
    if resumed:
        command.append("--resume")
    seconds = humanparse(*command)
    times[f"train {name}"] = seconds if not resumed else float("nan")
    return final


def evaluate(checkpoint: Path | str, name: str, args: argparse.Namespace, times: Times) -> dict:
    report = args.out / f"{name}.json"
    if not report.is_file():
        times[f"eval {name}"] = humanparse("eval", "--data", str(args.test), "--split", "test", "--checkpoint", str(checkpoint),
                                           "--out", str(report), "--quiet")
    return json.loads(report.read_text())


def segmenter_miou(checkpoint: Path | str | None, name: str, args: argparse.Namespace, pretrained: bool = False) -> float:
    """mIoU of the segmenter's argmax over the test split; ``checkpoint`` None: the untrained
    bodypix network (``pretrained``: from BodyPix's weights). Cached in OUT/NAME.segmenter.json."""
    cached = args.out / f"{name}.segmenter.json"
    if cached.is_file():
        return json.loads(cached.read_text())["miou"]
    import numpy as np
    import torch

    from humanparse.config import load_train_config
    from humanparse.data.cihp import load_sample, read_split
    from humanparse.metrics import confusion_matrix, mean_iou
    from humanparse.modeling.checkpoints import load_checkpoint, synthetic_checkpoint
    from humanparse.modeling.holistic import build_model

    if checkpoint is None:
        torch.manual_seed(args.seed)
        model = build_model(load_train_config(CONFIG).model, pretrained=pretrained)
    else:
        model = load_checkpoint(synthetic_checkpoint() if checkpoint == "synthetic" else checkpoint)
    model.eval()
    num_labels = len(model.labels.names)
    confusion = np.zeros((num_labels, num_labels), np.int64)
    with torch.no_grad():
        for sample_id in read_split(args.test, "test"):
            sample = load_sample(args.test, sample_id, num_labels)
            image = torch.from_numpy(sample.image).permute(2, 0, 1).float()[None]
            confusion += confusion_matrix(model.segmenter(image).logits[0].argmax(0).numpy(), sample.parts, num_labels)
    miou = 100 * float(mean_iou(confusion)[0])  # percent, as humanparse eval reports
    cached.write_text(json.dumps({"miou": miou}) + "\n")
    return miou


def random_checkpoint(args: argparse.Namespace, he: bool) -> Path:
    """The random bodypix network (seed ``--seed``), with ``he`` its backbone's convolutions
    re-drawn by He's rule for ReLU networks without batch norm; OUT/scratch[-he]-init.pt,
    given to the first stage as ``init`` (a new run refuses the bodypix backbone without
    BodyPix's weights, for the reason these rows show)."""
    path = args.out / ("scratch-he-init.pt" if he else "scratch-init.pt")
    if path.is_file():
        return path
    import torch

    from humanparse.config import load_train_config
    from humanparse.modeling.checkpoints import save_checkpoint
    from humanparse.modeling.holistic import build_model

    torch.manual_seed(args.seed)
    model = build_model(load_train_config(CONFIG).model, pretrained=False)
    for module in model.segmenter.backbone.modules():
        if he and isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
    return save_checkpoint(model, path)


def curve(start: str, args: argparse.Namespace, times: Times) -> list[tuple[str, int, float | None, dict]]:
    """Train one start's stages; returns (point, images seen, cumulative train seconds, report)."""
    points, init, done, images, seconds = [], "", 0, 0, 0.0
    if start in ("scratch", "scratch-he"):
        init = str(random_checkpoint(args, he=start == "scratch-he"))
        step0 = segmenter_miou(init, f"{start}-step0", args)
    else:
        step0 = segmenter_miou(None, f"{start}-step0", args, start == "pretrained")
    points.append(("untrained, step 0", 0, 0.0, {"segmenter_miou": step0}))
    for steps in args.semantic_steps:
        name = f"{start}-sem{steps}"
        sets: dict[str, object] = {"stage": "semantic", "optim.iterations": steps - done,
                                   "model.pretrained": str(start == "pretrained").lower()}
        if init:
            sets["init"] = init
        init = str(train(name, sets, args, times))
        images += 4 * (steps - done)
        done = steps
        seconds += times.get(f"train {name}") or float("nan")
        report = evaluate(init, name, args, times)
        report["segmenter_miou"] = segmenter_miou(init, name, args)
        points.append((f"semantic, step {steps}", images, seconds, report))
    name = f"{start}-joint{args.joint_steps}"
    sets = {"stage": "joint", "init": init, "optim.iterations": args.joint_steps, "optim.batch_size": JOINT_BATCH,
            "optim.lr": JOINT_LR, "checkpoint_every": 100, "model.pretrained": str(start == "pretrained").lower()}
    final = train(name, sets, args, times)
    images += JOINT_BATCH * args.joint_steps
    seconds += times.get(f"train {name}") or float("nan")
    report = evaluate(final, name, args, times)
    report["segmenter_miou"] = segmenter_miou(final, name, args)
    points.append((f"+ joint, step {args.joint_steps}", images, seconds, report))
    return points


def row(report: dict) -> list[str]:
    """The table's metric cells; a point that was not evaluated (step 0) has only the segmenter's."""
    segmenter = f"{report['segmenter_miou']:.1f}"
    if "miou" not in report:
        return ["–"] * 6 + [segmenter]
    return [f"{report['part_ap_r']['0.5']:.1f}", f"{report['part_ap_r_vol']:.1f}", f"{report['person_ap_r']['0.5']:.1f}",
            f"{report['person_ap_r_vol']:.1f}", f"{report['miou']:.1f}", f"{report['box_ap']['ap']:.1f}", segmenter]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the data (unless given), runs, reports and table")
    parser.add_argument("--train", type=Path, help="training data, CIHP layout (default: OUT/synth-train, made if missing)")
    parser.add_argument("--test", type=Path, help="held-out data with a test split (default: OUT/synth-test, made if missing)")
    parser.add_argument("--train-num", type=int, default=1200)
    parser.add_argument("--test-num", type=int, default=100)
    parser.add_argument("--size", type=int, default=256, help="square image size of the generated data")
    parser.add_argument("--crop", type=int, default=256, help="training crop (data.crop)")
    parser.add_argument("--semantic-steps", type=int, nargs="+", default=[300, 1200],
                        help="cumulative semantic steps at which a run ends and is scored")
    parser.add_argument("--joint-steps", type=int, default=400)
    parser.add_argument("--starts", nargs="+", choices=sorted(STARTS), default=["pretrained", "scratch"])
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads of every command (OMP_NUM_THREADS); 0: torch's default")
    parser.add_argument("--no-shipped", action="store_true", help="do not score the shipped synthetic model")
    args = parser.parse_args()
    if sorted(args.semantic_steps) != args.semantic_steps or len(set(args.semantic_steps)) != len(args.semantic_steps) or args.semantic_steps[0] < 1:
        parser.error("--semantic-steps must be increasing positive step counts")
    args.out = args.out.resolve()
    args.train = (args.train or args.out / "synth-train").resolve()
    args.test = (args.test or args.out / "synth-test").resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        ENV["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    times = Times(args.out / "times.json")
    make_data(args.train, args.train_num, 1, args.size, "train", times)
    make_data(args.test, args.test_num, 2, args.size, "test", times)

    lines = ["| start | point | images seen | train wall (min) | part AP^r 0.5 | part AP^r_vol | person AP^r 0.5 | person AP^r_vol | mIoU | box AP | segmenter mIoU |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    if not args.no_shipped:
        report = evaluate("synthetic", "shipped", args, times)
        report["segmenter_miou"] = segmenter_miou("synthetic", "shipped", args)
        lines.append("| shipped synthetic model (BodyPix start, docs/default-model.md) | final (semantic 3000 steps, joint 1500) | 15000 | ~32 | " + " | ".join(row(report)) + " |")
    for start in args.starts:
        for point, images, seconds, report in curve(start, args, times):
            wall = f"{seconds / 60:.1f}" if math.isfinite(seconds) else "–"
            lines.append(f"| {STARTS[start]} | {point} | {images} | {wall} | " + " | ".join(row(report)) + " |")
    text = "\n".join(lines)
    threads = args.threads or "torch's default"
    text += f"\n\nTest: {args.test} ({args.test_num} images); threads: {threads}; wall times (s): " + json.dumps(times.data)
    print(text)
    (args.out / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
