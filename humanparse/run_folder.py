"""A training run's folder: what it may hold, the lock that keeps it to one run at a time,
its log, and what a resume starts from (last.pt's state, checked) and may change.

    <out>/config.toml    the resolved config (also inside every last.pt)
    <out>/log.jsonl      one JSON object a line, each with the "step" it belongs to
    <out>/last.pt, best.pt, final.pt, curves.png
    <out>/train.lock     locked (flock) by the process training there; holds its id
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig, load_train_config, parse_train_config
from .errors import CheckpointError, ConfigError, HumanParseError
from .io.files import FolderLock
from .modeling.checkpoints import read_checkpoint

LOCK = "train.lock"
CHECKPOINTS = ("last.pt", "final.pt", "best.pt")
# What a run that stopped before its first checkpoint leaves behind: a new run may start
# over it. The lock file marks the folder as a run's (a user's own config.toml is no run's).
STARTED = ("config.toml", "log.jsonl", "curves.png", LOCK)
# Settings a resume may change: where the run lives and how it reports, not what it
# computes. optim.iterations may change too with the fixed schedule (see resume_changes).
OPERATIONAL = ("out", "device", "log_every", "checkpoint_every")


def check_new_run(out: Path) -> None:
    """Fail unless a new run may start in ``out``: missing, empty, or left by a run that
    stopped before its first checkpoint. Never over a run's checkpoints nor a folder of
    other files (a user's own ``config.toml`` and ``log.jsonl`` among them)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise HumanParseError(f"out={out} is a file; a run needs a folder")
    names = sorted(p.name for p in out.iterdir())
    if set(names) & set(CHECKPOINTS):
        raise HumanParseError(f"{out} already holds a run; use --resume to continue it or choose another --out")
    others = [name for name in names if not _is_run_file(name)]
    if others or (names and LOCK not in names):
        shown = ", ".join((others or names)[:3]) + (", ..." if len(others or names) > 3 else "")
        raise HumanParseError(f"{out} is not empty and holds no training run ({shown}); choose another out, or empty it")


def _is_run_file(name: str) -> bool:
    """One of the files a run writes, or what a kill leaves of writing one: an atomic
    write's temporary sibling, the write test's probe."""
    ours = STARTED + CHECKPOINTS
    return name in ours or any(name.startswith(f".{n}.") and name.endswith(".tmp") for n in ours) or name.startswith(".humanparse-write-test-")


class RunLock(FolderLock):
    """The lock that keeps a run folder to one ``train`` at a time (``train.lock``)."""

    def __init__(self, out: Path) -> None:
        super().__init__(out, LOCK, "training run")


def read_log(path: Path, upto: int) -> str:
    """The text of ``log.jsonl`` that a resume from step ``upto`` keeps: the lines of later
    steps go (those steps run again), and so does a last line cut short without its newline,
    which is what a crash mid-write leaves. Such a line is always of a step after last.pt
    (a step is logged before it is checkpointed), so dropping it loses nothing. Any other
    line that is not a JSON object with a step is damage no crash explains: an error."""
    if not path.is_file():
        return ""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HumanParseError(f"{path}: not UTF-8 text (byte offset {exc.start}); the log is damaged") from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    kept = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise HumanParseError(f"{path}:{number}: not a log line (a JSON object with a step); the log is damaged, remove the line to resume")
        if record["step"] <= upto:
            kept.append(line)
    return "".join(kept)


def resume_changes(run: TrainConfig, asked: TrainConfig, step: int) -> dict[str, list[Any]]:
    """The settings ``asked`` of a resume changes from the ``run``'s own, as
    ``{key: [run's, asked]}``, when each may change: the operational ones, and the number
    of iterations with the fixed schedule (the rate of the steps done and to come is the
    same) as long as it is not below the ``step`` reached. A change of anything else (the
    rate, the seed, the model, the data, ...) would make the resumed run no longer the run
    that was stopped, and with the poly schedule so would other iterations (they reshape
    the rate of every step to come): a ConfigError naming each key and both values."""
    before, after = _flat(dataclasses.asdict(run)), _flat(dataclasses.asdict(asked))
    changed = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
    refused = [key for key in changed if key not in OPERATIONAL]
    iterations = "optim.iterations"
    if iterations in refused and run.optim.schedule == asked.optim.schedule == "fixed" and asked.optim.iterations >= step:
        refused.remove(iterations)
    if refused:
        listed = "; ".join(f"{key} {changed[key][1]!r} (the run has {changed[key][0]!r})" for key in refused)
        out = Path(asked.out)
        raise ConfigError(
            f"--resume continues the run in {out} as it was set up, but {listed}; resume with the run's values "
            f"(--config {out / 'config.toml'}), or start a new run from its weights with init={out / 'last.pt'}"
        )
    return changed


def _flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resume_state(last: Path, ids: list[str], world: int) -> dict:
    """What last.pt's ``extra`` holds for an exact resume, checked: the step, the sampler's
    place, the optimiser, every rank's generators, the thread count, the run's config (None
    in checkpoints from before it was kept there), on the same split as before."""
    extra = read_checkpoint(last)["extra"]
    kinds = {"step": int, "epoch": int, "position": int, "optimiser": dict, "generators": str}
    for key, kind in kinds.items():
        value = extra.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise CheckpointError(f"{last}: no {key!r} to resume from (a checkpoint of `humanparse export`, or damaged); it is no run's last.pt")
    state = {key: extra[key] for key in kinds}
    threads = extra.get("threads")  # missing in checkpoints from before it was kept
    state["threads"] = threads if isinstance(threads, int) and threads >= 1 else torch.get_num_threads()
    try:
        state["generators"] = json.loads(extra["generators"])
    except ValueError:
        raise CheckpointError(f"{last}: the random generators' states are damaged") from None
    if not isinstance(state["generators"], list) or not all(isinstance(g, dict) for g in state["generators"]):
        raise CheckpointError(f"{last}: the random generators' states are damaged")
    if len(state["generators"]) != world:
        raise HumanParseError(f"{last} was written by a run on {len(state['generators'])} process(es); resume it on as many, not {world}")
    best = extra.get("best")
    state["best"] = float(best) if isinstance(best, (int, float)) and not isinstance(best, bool) else None
    state["config"] = parse_train_config(extra["config"], f"{last}: config") if isinstance(extra.get("config"), str) else None
    # The sampler's place is a place in this list of images: another list has other places.
    split = extra.get("split")
    per_rank = -(-len(ids) // world)
    changed = split != split_digest(ids) if isinstance(split, dict) else state["position"] > per_rank
    if changed:
        then = f"{split.get('size')} images then, " if isinstance(split, dict) else ""
        raise HumanParseError(
            f"the split's list of images changed since {last} was written ({then}{len(ids)} now): a resume continues over the same "
            f"images; restore the list, or start a new run from these weights with init={last}"
        )
    return state


def split_digest(ids: list[str]) -> dict:
    return {"size": len(ids), "sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest()}


def recorded_config(out: Path) -> TrainConfig:
    """The run's config from its config.toml, for a last.pt from before checkpoints kept it."""
    return load_train_config(out / "config.toml")


def config_file_holds(out: Path, config: TrainConfig) -> bool:
    """Whether ``<out>/config.toml`` reads back as ``config`` (it may be missing or damaged)."""
    try:
        return parse_train_config((out / "config.toml").read_text(encoding="utf-8"), "config.toml") == config
    except (OSError, ValueError, HumanParseError):
        return False


def identity(path: Path) -> tuple:
    """Which file is at ``path``: checkpoints are replaced whole, never written in place."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns
