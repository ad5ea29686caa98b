"""The paper's Table 1 ablation on the synthetic benchmark: box term only / box + global,
piecewise / end to end, with and without OHEM, under simulated detections that truncate
people.

    python benchmarks/table1_ablation.py --init runs/semantic2/final.pt \
        --train data/synth-train4k --test data/synth-test --out runs/table1 [--steps 400]

Every variant starts from the same semantic-stage checkpoint (``--init``) and trains with
the same backbone and schedule (``configs/synth-small.toml``, ``--steps`` steps of 2 images,
lr 0.002, simulated detections with the default noise: 15 % of boxes cut short by 20-50 %,
jitter, misses, false positives). Each is then scored by ``humanparse eval`` on the
held-out test split with simulated detections of another seed, once with the default
truncation rate and once with half of all boxes truncated. Runs and reports already in
``--out`` are reused, so an interrupted ablation picks up where it stopped. Run it once per
training seed (``--seed``, each with its own ``--out``), then ``--combine OUT...`` prints
the tables as mean ± half the range over the seeds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    name: str
    row: str
    stage: str  # instance (piecewise: segmenter frozen) or joint (end to end)
    global_term: bool
    ohem: bool


VARIANTS = (
    Variant("piecewise-box", "piecewise, box term only", "instance", False, False),
    Variant("piecewise", "piecewise", "instance", True, False),
    Variant("end-to-end", "end to end", "joint", True, False),
    Variant("piecewise-box-ohem", "piecewise, box term only, OHEM", "instance", False, True),
    Variant("piecewise-ohem", "piecewise, OHEM", "instance", True, True),
    Variant("end-to-end-ohem", "end to end, OHEM", "joint", True, True),
)


def humanparse(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "humanparse", *args], check=True, cwd=ROOT)


def train(variant: Variant, args: argparse.Namespace) -> tuple[Path, float]:
    out = args.out / variant.name
    final = out / "final.pt"
    if final.is_file():
        return final, float("nan")
    sets = {
        "out": out,
        "stage": variant.stage,
        "init": args.init,
        "seed": args.seed,
        "data.root": args.train,
        "data.detector": "sim",
        "model.crf.global_term": str(variant.global_term).lower(),
        "loss.ohem": str(variant.ohem).lower(),
        "optim.iterations": args.steps,
        "optim.batch_size": 2,
        "optim.lr": 0.002,
        "checkpoint_every": 100,
    }
    command = ["train", "--config", str(ROOT / "configs" / "synth-small.toml"), "--quiet"]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    if (out / "last.pt").is_file():
        command.append("--resume")
    start = time.perf_counter()
    humanparse(*command)
    return final, time.perf_counter() - start


def evaluate(checkpoint: Path, report: Path, truncation: float, args: argparse.Namespace) -> dict:
    if not report.is_file():
        detector = f"sim:{args.test_seed}:{truncation}"
        humanparse("eval", "--data", str(args.test), "--split", "test", "--checkpoint", str(checkpoint), "--detector", detector, "--out", str(report), "--quiet")
    return json.loads(report.read_text())


METRICS = (("part_ap_r", "0.5"), ("part_ap_r", "0.6"), ("part_ap_r", "0.7"), ("part_ap_r_vol", None), ("person_ap_r", "0.5"), ("person_ap_r_vol", None), ("miou", None))
COLUMNS = ["part AP^r 0.5", "0.6", "0.7", "part AP^r_vol", "person AP^r 0.5", "person AP^r_vol", "mIoU"]


def values(report: dict) -> list[float]:
    return [float(report[key] if sub is None else report[key][sub]) for key, sub in METRICS]


def cells(runs: list[list[float]]) -> list[str]:
    """One seed: the value; several: mean ± half the range."""
    columns = list(zip(*runs))
    if len(runs) == 1:
        return [f"{c[0]:.1f}" for c in columns]
    return [f"{sum(c) / len(c):.1f} ± {(max(c) - min(c)) / 2:.1f}" for c in columns]


def table(outs: list[Path], truncations: list[float], steps: int) -> str:
    """Markdown tables from the reports in ``outs`` (one folder per training seed)."""
    slugs = [("stage 1 only (CRF untrained)", "stage1")] + [(v.row, v.name) for v in VARIANTS]
    seeds = f"mean ± half the range over {len(outs)} training seeds" if len(outs) > 1 else "one training seed"
    lines = []
    for truncation in truncations:
        lines.append(f"\nSimulated test detections, {truncation:.0%} of boxes truncated ({steps} steps × 2 images per variant; {seeds})\n")
        lines.append("| variant | " + " | ".join(COLUMNS) + " |")
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        for name, slug in slugs:
            runs = [values(json.loads((out / f"{slug}-trunc{truncation}.json").read_text())) for out in outs]
            lines.append(f"| {name} | " + " | ".join(cells(runs)) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", type=Path, help="the semantic-stage checkpoint every variant starts from")
    parser.add_argument("--train", type=Path, help="training data (CIHP layout)")
    parser.add_argument("--test", type=Path, help="held-out data with a test split")
    parser.add_argument("--out", type=Path, help="folder for the runs and reports of one training seed")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--test-seed", type=int, default=100, help="seed of the simulated test detections")
    parser.add_argument("--truncation", type=float, nargs="+", default=[0.15, 0.5], help="truncation rates to score under")
    parser.add_argument("--combine", type=Path, nargs="+", metavar="OUT", help="only print the tables of finished runs, one --out per seed")
    args = parser.parse_args()
    if args.combine:
        print(table(args.combine, args.truncation, args.steps))
        return
    for name in ("init", "train", "test", "out"):
        if getattr(args, name) is None:
            parser.error(f"--{name} is required unless --combine is given")
        setattr(args, name, getattr(args, name).resolve())
    args.out.mkdir(parents=True, exist_ok=True)

    seconds = {}
    for variant in VARIANTS:
        checkpoint, seconds[variant.row] = train(variant, args)
        for truncation in args.truncation:
            evaluate(checkpoint, args.out / f"{variant.name}-trunc{truncation}.json", truncation, args)
    for truncation in args.truncation:
        evaluate(args.init, args.out / f"stage1-trunc{truncation}.json", truncation, args)
    text = table([args.out], args.truncation, args.steps)
    text += "\n\ntraining time per variant (s): " + ", ".join(f"{name}: {s:.0f}" for name, s in seconds.items())
    print(text)
    (args.out / "table1.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
