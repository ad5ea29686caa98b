"""The command line: a thin click layer, one library call per command, rich output."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import click
from rich.console import Console
from rich.table import Table

from .build import AUTO_POSE_RULE, DETECT_EVERY, POSE_CHOICES, POSE_NETWORKS, checkpoint_help
from .config import MAX_CRF_ITERATIONS
from .errors import HumanParseError, OptionError
from .interrupts import StopRequests
from .version import __version__

MAX_SYNTH_SIDE = 4096  # rendering peaks at 1.9 GB for an image and 2.2 GB for a video at 4096x4096 (6.7 GB at 8192)


class _Group(click.Group):
    """Turns the project's errors and the file system's into one line on stderr and exit
    status 1, and Ctrl-C before a job has anything to finish (loading a model) into exit
    status 130."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OptionError as exc:
            raise click.UsageError(str(exc), ctx) from None
        except HumanParseError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            # The file system's own failures (a full disk, a read-only one) where no job
            # names them more precisely: one line, not a traceback.
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None
        except KeyboardInterrupt:
            _ignore_stop_signals()
            click.echo("interrupted", err=True)
            raise SystemExit(130) from None
        except SystemExit as exc:
            if exc.code == 130:
                _ignore_stop_signals()
            raise


_owns_process = False  # set by run(): the command line is the whole process


def run() -> None:
    """The ``humanparse`` program (console script and ``python -m humanparse``)."""
    import signal

    global _owns_process
    _owns_process = True
    from .interrupts import taken_stop_signals

    # SIGTERM (kill, a service manager, a batch system's time limit) and SIGHUP (the
    # terminal closed; not under nohup) stop a command as Ctrl-C does: the jobs that stop at
    # a safe point take all three (StopRequests); every other command cleans up on the
    # KeyboardInterrupt and exits 130, never half-written.
    for signum in taken_stop_signals():
        if signum != signal.SIGINT:
            signal.signal(signum, signal.default_int_handler)
    try:
        main()
    finally:
        # The command has finished (or stopped) and its files are whole: a signal during the
        # interpreter's shutdown, where Python restores the default handlers, would kill the
        # process with the signal's status instead of 0 or 130.
        _ignore_stop_signals()


def _ignore_stop_signals() -> None:
    """A job stopped by a signal has finished its outputs and the process is on its way
    out: a second Ctrl-C now (within the ~100 ms that exit takes) would otherwise kill it
    with SIGINT's status instead of 130. Only where the command is the process: a program
    that calls ``main`` keeps its own Ctrl-C."""
    import signal

    from .interrupts import STOP_SIGNALS

    if _owns_process:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="humanparse")
def main() -> None:
    """Instance-level human parsing: body parts and person identities for every pixel.

    \b
    Examples:
      humanparse images photo.jpg --out runs/photo      # parts, person ids, keypoints
      humanparse video clip.mp4 --out runs/clip         # tracked people, overlay MP4, MOTS
      humanparse info                                   # versions, device, the model and its licenses
      humanparse synth images data/synth-train --num 2000 --seed 1 --size 512x512 --preview
    """
    import cv2

    from .runtime import tune_allocator

    tune_allocator()
    # OpenCV logs its decoders' complaints (a damaged TIFF) to stderr, lines beside the
    # one-line error the job gives for the same file.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@main.command()
@click.option("--checkpoint", default=None, help="Describe this model: bodypix (the default), pose-guided, synthetic, or a checkpoint file.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def info(checkpoint: str | None, device: str) -> None:
    """Versions, the device that would be used, and the model, with its licenses.

    \b
    Examples:
      humanparse info
      humanparse info --checkpoint synthetic
      humanparse info --checkpoint model.pt
    """
    import torch

    from .build import describe
    from .device import resolve_device
    from .pretrained.registry import MODELS_DIR, NETWORKS

    dev = resolve_device(device)
    table = Table(show_header=False, box=None)
    table.add_row("humanparse", __version__)
    table.add_row("python", platform.python_version())
    for package in ("torch", "torchvision", "av", "opencv-python", "numpy", "scipy"):
        table.add_row(package, _version(package))
    if dev.type == "cuda":
        table.add_row("device", f"{dev} ({torch.cuda.get_device_name(dev)}, mixed precision)")
    else:
        table.add_row("device", f"cpu ({torch.get_num_threads()} threads)")
    for row in describe(checkpoint):
        table.add_row(*row)
    for network_name, network in NETWORKS.items():
        shipped = (MODELS_DIR / network.file).is_file()
        table.add_row(f"pretrained {network_name}", f"{network.what}; {network.license} ({network.upstream})" + ("" if shipped else "; MISSING from this installation"))
    Console().print(table)


def _size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 512x512") from None
    if not (8 <= width <= MAX_SYNTH_SIDE and 8 <= height <= MAX_SYNTH_SIDE):
        raise click.BadParameter(f"{value!r}: width and height must be 8..{MAX_SYNTH_SIDE}")
    return width, height


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _loading(quiet: bool):
    """A spinner saying the model loads (a second or two before the first progress), off
    with --quiet or when stderr is not a terminal."""
    import contextlib

    console = Console(stderr=True)
    return contextlib.nullcontext() if quiet or not console.is_terminal else console.status("loading the model…")


def _progress(quiet: bool, description: str):
    """A rich progress bar, off with --quiet or when stderr is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=quiet or not console.is_terminal,
    )


@main.group()
def synth() -> None:
    """Procedural multi-person data with exact ground truth."""


@synth.command("images")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--num", default=100, show_default=True, type=click.IntRange(min=1), help="Number of images.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--size", default="512x512", show_default=True, help="WIDTHxHEIGHT in pixels.")
@click.option("--split", default="train", show_default=True, help="Name of the split list written (<split>_id.txt).")
@click.option("--preview", is_flag=True, help="Also write preview.png, a contact sheet with the ground truth.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth_images(out: str, num: int, seed: int, size: str, split: str, preview: bool, quiet: bool) -> None:
    """Render multi-person scenes into OUT in the CIHP layout.

    \b
    OUT/images/*.jpg, Category_ids/*.png (parts), Human_ids/*.png (persons),
    Instance_ids/*.png + *.txt, <split>_id.txt, meta.json.
    \b
    Example:
      humanparse synth images data/synth-val --num 500 --seed 2 --size 640x360 --preview
    """
    from .data.synth import write_image_dataset

    dims = _size(size)
    with _progress(quiet, "rendering") as bar:
        task = bar.add_task("rendering", total=num)
        write_image_dataset(out, num, seed, dims, split=split, preview=preview, progress=lambda done, total: bar.update(task, completed=done))
    Console().print(f"wrote {num} images to {out}", soft_wrap=True)


@synth.command("video")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--frames", default=150, show_default=True, type=click.IntRange(min=1), help="Number of frames.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same clip.")
@click.option("--size", default="640x360", show_default=True, help="WIDTHxHEIGHT in pixels (even).")
@click.option("--fps", default=25, show_default=True, type=click.IntRange(min=1, max=240))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth_video(out: str, frames: int, seed: int, size: str, fps: int, quiet: bool) -> None:
    """Render people walking, crossing, entering and leaving into OUT (an H.264 .mp4).

    \b
    The ground truth goes beside it in <stem>_gt/: Category_ids/ and Human_ids/ PNGs
    per frame (from 000001), gt.txt (MOTS text of the person tracks), meta.json.
    \b
    Example:
      humanparse synth video examples/crossing.mp4 --frames 100 --seed 3
    """
    from .data.synth_video import VideoConfig, write_video

    dims = _size(size)
    with _progress(quiet, "rendering") as bar:
        task = bar.add_task("rendering", total=frames)
        video, gt = write_video(out, frames, seed, dims, VideoConfig(fps=fps), progress=lambda done, total: bar.update(task, completed=done))
    Console().print(f"wrote {video} and its ground truth in {gt}", soft_wrap=True)


@main.group()
def data() -> None:
    """Datasets: conversion of real data sets to the CIHP layout."""


@data.group()
def convert() -> None:
    """Convert a data set's own format to the CIHP layout humanparse reads."""


@convert.command("pascal-part")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--annotations", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of Pascal-Part .mat files.")
@click.option("--images", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of the VOC JPEGImages.")
@click.option("--split", default="train", show_default=True, help="Name of the split list written.")
@click.option("--ids", "ids_file", type=click.Path(exists=True, dir_okay=False), help="Only the image names listed in this file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def convert_pascal(out: str, annotations: str, images: str, split: str, ids_file: str | None, quiet: bool) -> None:
    """Pascal-Part MAT annotations -> instance-level Pascal-Person-Part (six parts).

    \b
    Example:
      humanparse data convert pascal-part data/ppp-train \\
          --annotations Annotations_Part --images VOC2010/JPEGImages --ids train_id.txt
    """
    from .data.cihp import read_id_list
    from .data.pascal_part import convert_pascal_part

    ids = read_id_list(ids_file) if ids_file else None
    with _progress(quiet, "converting") as bar:
        task = bar.add_task("converting", total=None)
        convert_pascal_part(annotations, images, out, split=split, ids=ids, progress=lambda done, total: bar.update(task, completed=done, total=total))
    Console().print(f"wrote {out}", soft_wrap=True)


@convert.command("png")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--images", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of the JPEG images.")
@click.option("--labels", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of label PNGs, one per image.")
@click.option("--label-map", default="", help='Relabel values to Pascal-Person-Part: "SRC:DST,...", e.g. "1:4,2:1,3:5,4:2,5:6,6:3".')
@click.option("--split", default="train", show_default=True, help="Name of the split list written.")
def convert_png(out: str, images: str, labels: str, label_map: str, split: str) -> None:
    """Category-level label PNGs (no person ids) -> CIHP layout, for the semantic stage."""
    from .data.pascal_part import convert_png_release, parse_label_map

    convert_png_release(images, labels, out, parse_label_map(label_map), split=split)
    Console().print(f"wrote {out}", soft_wrap=True)


@main.command("export")
@click.argument("paths", nargs=-1, metavar="SOURCE TARGET | OUT")
@click.option("--format", "fmt", type=click.Choice(["checkpoint", "onnx", "torchscript"]), default="checkpoint", show_default=True,
              help="checkpoint: SOURCE (a training checkpoint) to TARGET for inference; onnx, torchscript: the networks of --checkpoint "
                   "into the folder OUT, with manifest.json (docs/export.md).")
@click.option("--checkpoint", default=None, help="With --format onnx or torchscript: the parser whose networks are exported (default: the default "
                                                 "parser, bodypix), or a holistic checkpoint file.")
@click.option("--half", is_flag=True, help="Store the weights as float16 (half the size; --format checkpoint).")
@click.option("--about", type=click.Path(exists=True, dir_okay=False), help="A JSON file of facts to keep with the model (trained_on, recipe, results, "
                                                                            "license), shown by `humanparse info` (--format checkpoint).")
@click.option("--overwrite", is_flag=True, help="Replace an existing TARGET or OUT.")
def export_command(paths: tuple[str, ...], fmt: str, checkpoint: str | None, half: bool, about: str | None, overwrite: bool) -> None:
    """Write a checkpoint for inference only (weights, config and labels, no optimiser
    state), or a parser's networks as ONNX or TorchScript files for other runtimes.

    \b
    Examples:
      humanparse export runs/joint/final.pt model.pt --half --about about.json
      humanparse export --format onnx runs/onnx                 # the default parser's networks
      humanparse export --format torchscript runs/ts --checkpoint synthetic
    """
    from pathlib import Path

    if fmt != "checkpoint":
        if len(paths) != 1:
            raise click.UsageError(f"--format {fmt} takes one folder, OUT; got {len(paths)} paths")
        if half or about:
            raise click.UsageError(f"--half and --about are for --format checkpoint, not {fmt}")
        from .build import DEFAULT_PARSER, PARSERS
        from .export import export_networks

        if Path(paths[0]).exists() and not Path(paths[0]).is_dir():
            raise click.BadParameter(f"{paths[0]} is a file; give a folder for the exported networks", param_hint="OUT")
        if Path(paths[0]).exists() and not overwrite:
            raise click.BadParameter(f"{paths[0]} already exists; choose another folder or pass --overwrite", param_hint="OUT")
        name = checkpoint or DEFAULT_PARSER
        if name not in PARSERS and not Path(name).is_file():
            raise click.BadParameter(f"{name!r} is neither a parser ({', '.join(PARSERS)}) nor a checkpoint file", param_hint="--checkpoint")
        written = export_networks(name, paths[0], fmt, overwrite=overwrite)
        Console().print(f"wrote {', '.join(n.file for n in written)} and manifest.json to {paths[0]}", soft_wrap=True)
        return
    if len(paths) != 2:
        raise click.UsageError(f"--format checkpoint takes SOURCE and TARGET; got {len(paths)} paths")
    if checkpoint:
        raise click.UsageError("--checkpoint is for --format onnx or torchscript; for a checkpoint give SOURCE")
    _export_checkpoint(*paths, half=half, about=about, overwrite=overwrite)


def _export_checkpoint(source: str, target: str, half: bool, about: str | None, overwrite: bool) -> None:
    import json
    from pathlib import Path

    from .modeling.checkpoints import load_checkpoint, save_checkpoint

    if not Path(source).is_file():
        raise click.BadParameter(f"{source} is not a file" if Path(source).exists() else f"{source} does not exist", param_hint="SOURCE")
    if Path(target).is_dir():
        raise click.BadParameter(f"{target} is a folder; give a file name", param_hint="TARGET")
    if Path(target).exists():
        if Path(target).resolve() == Path(source).resolve():
            raise click.BadParameter("is the checkpoint being exported; give another file", param_hint="TARGET")
        if not overwrite:
            raise click.BadParameter(f"{target} already exists; choose another file or pass --overwrite", param_hint="TARGET")
    facts = {}
    if about:
        try:
            facts = json.loads(Path(about).read_text())
        except ValueError as exc:
            raise click.ClickException(f"{about}: not valid JSON ({exc})") from None
        if not isinstance(facts, dict):
            raise click.ClickException(f"{about}: expected a JSON object")
    path = save_checkpoint(load_checkpoint(source), target, extra={"about": facts} if facts else None, half=half)
    Console().print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", soft_wrap=True)


@main.command("train")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False), help="A TOML file (see configs/).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. --set optim.lr=1e-3 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the run in the config's out folder from its last.pt.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_command(config_path: str, overrides: tuple[str, ...], resume: bool, quiet: bool) -> None:
    """Train one stage: semantic, instance (piecewise) or joint (end to end).

    \b
    Examples:
      humanparse train --config configs/synth-small.toml --set out=runs/sem
      humanparse train --config configs/synth-small.toml --set stage=joint \\
          --set init=runs/sem/final.pt --set out=runs/joint
      humanparse train --config configs/synth-small.toml --set out=runs/sem --resume
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .config import load_train_config
    from .train import TrainingStopped, train

    config = load_train_config(config_path, overrides)
    console = Console(stderr=True)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone shows progress
    columns = (TextColumn(f"{config.stage}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet or not main_rank or not console.is_terminal) as bar:
        task = bar.add_task(config.stage, total=config.optim.iterations, status="")
        validated = ""

        def show(report) -> None:
            nonlocal validated
            if report.validation is not None:
                validated = f"  val {100 * report.validation['score']:.1f}"
            status = f"loss {report.loss:.3f}  lr {report.lr:.2e}  {report.images_per_second:.1f} img/s{validated}"
            bar.update(task, completed=report.step, status=status)

        try:
            final = train(config, resume=resume, progress=show)
        except TrainingStopped as exc:  # says whether there is a checkpoint to resume from
            console.print(f"interrupted; {exc}", highlight=False, soft_wrap=True)
            raise SystemExit(130) from None
    if main_rank:
        Console().print(f"wrote {final}", soft_wrap=True)


POSE_HELP = "Keypoints per person: " + ", ".join(f"{name} ({entry.what})" for name, entry in POSE_NETWORKS.items()) + f", none. {AUTO_POSE_RULE}."


def _model_options(function):
    """Options shared by the commands that run a model: images, video and eval."""
    from .build import DEFAULT_PARSER
    from .modeling.parser import ParseOptions

    options = [
        click.option("--checkpoint", default=DEFAULT_PARSER, show_default=True, help=checkpoint_help()),
        click.option("--detector", default="builtin", show_default=True, help="builtin, nanodet, movenet, torchvision:NAME, file:PATH (COCO .json or MOT .txt), gt or sim[:SEED[:TRUNCATION]]."),
        click.option("--det-threshold", default=ParseOptions.det_threshold, show_default=True, type=click.FloatRange(0, 1), help="Minimum detection score."),
        click.option("--max-people", default=ParseOptions.max_people, show_default=True, type=click.IntRange(min=1), help="At most this many detections per image."),
        click.option("--nms-iou", default=ParseOptions.nms_iou, show_default=True, type=click.FloatRange(0, 1, min_open=True), help="Of two detections overlapping by more than this IoU, the lower-scoring goes."),
        click.option("--pose", default="auto", show_default=True, type=click.Choice(POSE_CHOICES), help=POSE_HELP),
        click.option("--crf-iterations", type=click.IntRange(0, MAX_CRF_ITERATIONS), help=f"Mean-field iterations, 0 to {MAX_CRF_ITERATIONS} (default: the model's)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--scale", default=ParseOptions.input_scale, show_default=True, type=click.FloatRange(0, 1, min_open=True), help="Run the segmenter and the built-in detector on the image scaled by this, for speed (bodypix: its 640-pixel working size scaled by this)."),
        click.option("--crf-scale", type=click.FloatRange(0, 1, min_open=True), help="Run the CRF on the image scaled by this, for speed  [default: the model's: 0.5 bodypix and pose-guided, 1 holistic]"),
        click.option(
            "--max-side", default=ParseOptions.max_side, show_default=True, type=click.IntRange(min=0),
            help="Parse images larger than this (longer side, pixels) at this size and map the results back, so memory stays bounded; 0: always at full size.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _predictor(checkpoint, detector, det_threshold, max_people, nms_iou, pose, crf_iterations, device, scale, crf_scale, max_side, data_root=None, job="images"):
    """The predictor the model options describe for ``job`` (images, video or eval)."""
    from .build import build_predictor

    return build_predictor(
        checkpoint, device, detector, pose, job, data_root,
        det_threshold=det_threshold, max_people=max_people, nms_iou=nms_iou, crf_iterations=crf_iterations, crf_scale=crf_scale, input_scale=scale, max_side=max_side or None,
    )


def _named(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An output folder given as "" (an unset shell variable) would be the working folder."""
    if value is not None and not value.strip():
        raise click.BadParameter("an empty name; give the output folder", ctx, param)
    return value


@main.command("images")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), callback=_named, help="Output folder (created; results already there for these images need --overwrite).")
@_model_options
@click.option("--save", default=",".join(("parts", "persons", "cihp", "overlay", "json")), show_default=True, help="Which files to write, comma-separated.")
@click.option("--overwrite", is_flag=True, help="Replace results of these images already in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def images_command(inputs, out, checkpoint, detector, det_threshold, max_people, nms_iou, pose, crf_iterations, device, scale, crf_scale, max_side, save, overwrite, quiet) -> None:
    """Parse images: files, folders (recursively), .txt lists or globs.

    \b
    Per image: parts/ (palette PNG of part labels), persons/ (person ids), cihp/ (the CIHP
    result layout), overlay/ (JPEG), json/ (persons and part instances with COCO RLE masks).
    Unreadable images are reported and skipped; the exit status is then 1.
    \b
    Examples:
      humanparse images photos/ --out runs/photos
      humanparse images "shots/*.png" --out runs/shots --save json,overlay --crf-scale 0.5
      torchrun --nproc_per_node=2 -m humanparse images photos/ --out runs/photos   # sharded
    """
    from pathlib import Path

    from .io.images import list_images
    from .io.results import OUTPUT_KINDS
    from .jobs.images import check_no_results, output_names, parse_images

    kinds = tuple(k.strip() for k in save.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(OUTPUT_KINDS))
    if unknown or not kinds:
        raise click.BadParameter(f"unknown kind {unknown[0]!r}; choose from {', '.join(OUTPUT_KINDS)}" if unknown else "nothing to save", param_hint="--save")
    paths = list_images(inputs, skip=out)
    if not overwrite:
        check_no_results(Path(out), output_names(paths), kinds)  # before the model loads
    with _loading(quiet):
        predictor = _predictor(checkpoint, detector, det_threshold, max_people, nms_iou, pose, crf_iterations, device, scale, crf_scale, max_side)
    with StopRequests():  # a second signal while reporting cannot undo the clean stop
        with _progress(quiet or os.environ.get("RANK", "0") != "0", "parsing") as bar:
            task = bar.add_task("parsing", total=None)
            summary = parse_images(predictor, paths, Path(out), kinds, progress=lambda done, total: bar.update(task, completed=done, total=total), overwrite=overwrite)
        console = Console(stderr=True)
        for path, reason in summary.failed:
            console.print(f"[yellow]skipped[/] {reason}", highlight=False, soft_wrap=True)
        Console().print(f"parsed {_count(summary.parsed, 'image')} ({_count(summary.persons, 'person')}) into {out}" + (f"; {len(summary.failed)} failed" if summary.failed else ""), soft_wrap=True)
        if summary.interrupted:
            console.print(f"interrupted: the results of the {summary.parsed} images parsed are complete", soft_wrap=True)
            raise SystemExit(130)
        if summary.failed:
            raise SystemExit(1)


@main.command("video")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(file_okay=False), callback=_named, help="Output folder.")
@_model_options
@click.option("--stride", default=1, show_default=True, type=click.IntRange(min=1), help="Parse every n-th frame.")
@click.option("--start", default=0.0, show_default=True, type=click.FloatRange(min=0), help="Start at this time, seconds (by the frames' own timestamps).")
@click.option("--end", type=click.FloatRange(min=0), help="Stop before this time, seconds.")
@click.option("--max-age", default=30, show_default=True, type=click.IntRange(min=0), help="Frames a lost track waits to be found again.")
@click.option("--min-iou", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True), help="Least mask IoU to continue a track.")
@click.option("--detect-every", default=DETECT_EVERY, show_default=True, type=click.IntRange(min=1), help="With the pose-guided parser: detect persons on every n-th frame (and after one is lost); in between each person's crop follows their keypoints. 1: detect on every frame.")
@click.option("--batch", type=click.IntRange(min=1), help="Frames per segmenter batch  [default: 4 on a GPU, 1 on the CPU]")
@click.option("--workers", type=click.IntRange(min=1), help="Frames parsed at once, sharing the CPU threads  [default: 2 on a CPU with two or more threads, else 1]")
@click.option("--save-frames", is_flag=True, help="Also write per-frame part and track-id PNGs to frames/.")
@click.option("--overwrite", is_flag=True, help="Replace the results of an earlier run in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def video_command(source, out, checkpoint, detector, det_threshold, max_people, nms_iou, pose, crf_iterations, device, scale, crf_scale, max_side, stride, start, end, max_age, min_iou, detect_every, batch, workers, save_frames, overwrite, quiet) -> None:
    """Parse a video and track every person: overlay MP4, tracks.json, MOTS text, summary.

    \b
    SOURCE is any file (or stream URL) FFmpeg reads. Outputs in --out: overlay.mp4 (H.264,
    no audio), tracks.json, tracks.mots.txt, summary.json, and frames/ with --save-frames.
    Ctrl-C stops cleanly, leaving valid files for the frames parsed.
    \b
    Examples:
      humanparse video clip.mp4 --out runs/clip
      humanparse video clip.mp4 --out runs/clip --stride 2 --start 10 --end 20 --crf-scale 0.5
    """
    import math

    import torch

    from .io.video import VideoReader
    from .jobs.video import VideoOptions, parse_video
    from .tracking import TrackerOptions

    for name, value in (("--start", start), ("--end", end)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise click.BadParameter(f"{value} is not a time in seconds (0 or more)", param_hint=name)
    if end is not None and end <= start:
        raise click.BadParameter(f"--end {end} must come after --start {start}", param_hint="--end")
    with VideoReader(source):  # a source that is no video fails now, not after the model loads
        pass
    with _loading(quiet):
        predictor = _predictor(checkpoint, detector, det_threshold, max_people, nms_iou, pose, crf_iterations, device, scale, crf_scale, max_side, job="video")
    gpu = predictor.device.type != "cpu"
    batch = batch or (4 if gpu else 1)
    workers = workers or (1 if gpu or torch.get_num_threads() < 2 else 2)
    options = VideoOptions(stride, start, end, TrackerOptions(max_age=max_age, min_iou=min_iou), save_frames, overwrite, batch, workers, detect_every)
    with StopRequests():  # a second signal, even while reporting, cannot undo a clean finish
        with _progress(quiet, "parsing") as bar:
            task = bar.add_task("parsing", total=None)
            summary = parse_video(predictor, source, out, options, progress=lambda done, total: bar.update(task, completed=done, total=total))
        _report_video(summary, source, out, predictor.labels)


def _report_video(summary, source: str, out: str, labels) -> None:
    """The tracks table and speed line of a video run (a jobs.video.VideoSummary); exit 130
    if it was interrupted, 1 if the video broke part-way."""
    table = Table(title=f"{summary.frames} frames of {source}, {len(summary.tracks)} tracks")
    for column in ("track", "frames", "first", "last", "area px", "parts seen"):
        table.add_column(column, justify="left" if column == "parts seen" else "right")
    every = tuple(range(1, labels.num_parts + 1))
    for track in summary.tracks:
        # "all" keeps a row on one line at 80 columns; the names are in summary.json.
        parts = f"all {len(every)}" if track.parts == every else ", ".join(labels.names[p] for p in track.parts)
        table.add_row(str(track.track_id), str(track.frames), str(track.first_frame), str(track.last_frame), f"{track.mean_area:.0f}", parts)
    Console().print(table)
    seconds = summary.seconds
    Console().print(
        f"{summary.frames / max(seconds['total'], 1e-9):.1f} frames/s; per frame: "
        + ", ".join(f"{name} {1000 * value / max(summary.frames, 1):.0f} ms" for name, value in seconds.items() if name != "total")
        + f"; wrote {out}",
        soft_wrap=True,  # one line in a log, whatever its width
    )
    if summary.interrupted:
        Console(stderr=True).print(f"interrupted: the outputs cover the {summary.frames} frames parsed", soft_wrap=True)
        raise SystemExit(130)
    if summary.error:
        Console(stderr=True).print(f"[yellow]warning[/] {source}: {summary.error}; the outputs cover the {summary.frames} frames that decoded", highlight=False, soft_wrap=True)
        raise SystemExit(1)


@main.command("eval")
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False), help="An annotated data set in the CIHP layout.")
@click.option("--split", default="val", show_default=True, help="The split list to use (<split>_id.txt); a data set without split files is scored whole.")
@click.option("--predictions", type=click.Path(exists=True, file_okay=False), help="Score the result files of an earlier `humanparse images` run instead of running a model.")
@_model_options
@click.option("--compare", type=click.Choice(["labels", "coarse"]), default="labels", show_default=True,
              help="labels: the ground truth is in the model's label set; coarse: both mapped onto head / upper body / lower body "
                   "(a Pascal-Person-Part model on CIHP, LIP or ATR maps; category-level metrics only).")
@click.option("--truth-labels", type=click.Choice(["pascal-person-part", "cihp", "lip", "atr"]),
              help="The ground truth's label set, where the data set's meta.json names none (LIP: lip, ATR: atr).")
@click.option("--out", "report_path", type=click.Path(dir_okay=False), help="Write the report as JSON here.")
@click.option("--heatmap", type=click.Path(dir_okay=False), help="Write per-class AP^r by IoU threshold as a PNG (the paper's Fig. 5).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out or --heatmap file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def eval_command(ctx, data_root, split, predictions, checkpoint, detector, det_threshold, max_people, nms_iou, pose, crf_iterations, device, scale, crf_scale, max_side,
                 compare, truth_labels, report_path, heatmap, overwrite, quiet) -> None:
    """AP^r of part instances and persons at IoU 0.1..0.9, AP^r_vol, AP^p, PCP, mIoU, box AP.

    Ground truth without person ids (Category_ids/ alone, or a folder of images/ and
    labels/) gives the mIoU and per-class IoU.

    \b
    Examples:
      humanparse eval --data data/synth-test --split test --checkpoint runs/joint/final.pt --out report.json --heatmap ap.png
      humanparse eval --data data/synth-test --split test --predictions runs/test-images
      humanparse eval --data cihp-photos --truth-labels cihp --compare coarse --checkpoint bodypix
    """
    from click.core import ParameterSource

    from .evaluate import check_eval_outputs, evaluate, evaluate_predictions, instance_truth, report_dict, write_report
    from .labels import get_label_set

    truth = get_label_set(truth_labels) if truth_labels else None
    if heatmap and not instance_truth(data_root, compare):
        raise click.BadParameter("per-class AP^r needs person ids (Human_ids/) and --compare labels", param_hint="--heatmap")

    if predictions:
        model_options = ("checkpoint", "detector", "det_threshold", "max_people", "nms_iou", "pose", "crf_iterations", "device", "scale", "crf_scale", "max_side")
        given = [f"--{name.replace('_', '-')}" for name in model_options if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT]
        if given:
            raise OptionError(f"{', '.join(given)}: no model runs with --predictions (the result files are scored as they are)")
    check_eval_outputs(report_path, heatmap, overwrite)  # before the evaluation, creating nothing
    with _progress(quiet, "evaluating") as bar:
        task = bar.add_task("evaluating", total=None)
        update = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
        if predictions:
            labels = _labels_of(predictions, data_root)
            report = evaluate_predictions(predictions, data_root, labels, split, progress=update, compare=compare, truth_labels=truth)
            source = predictions
        else:
            predictor = _predictor(checkpoint, detector, det_threshold, max_people, nms_iou, pose, crf_iterations, device, scale, crf_scale, max_side, data_root, job="eval")
            labels = predictor.labels
            report = evaluate(predictor, data_root, split, progress=update, compare=compare, truth_labels=truth)
            source = checkpoint
    data = report_dict(report, labels)
    table = Table(title=f"{source} on {data_root} ({split}, {report.images} images)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if report.parts is None:  # category-level: the mIoU and each class's IoU
        table.title = None  # a narrow table would wrap it
        for name, value in (("mIoU", data["miou"]), *((f"IoU {name}", value) for name, value in data["class_iou"].items())):
            table.add_row(name, str(value))
        Console().print(f"{source} on {data_root} ({report.images} images, {data['classes']} classes)", highlight=False, soft_wrap=True)
        Console().print(table)
        Console().print(f"({report.note})", highlight=False)
        write_report(report, labels, report_path, heatmap)
        return
    for name, value in (
        ("part AP^r @0.5 / 0.6 / 0.7", " / ".join(str(data["part_ap_r"][t]) for t in ("0.5", "0.6", "0.7"))),
        ("part AP^r_vol", data["part_ap_r_vol"]),
        ("person AP^r @0.5 / 0.7", f"{data['person_ap_r']['0.5']} / {data['person_ap_r']['0.7']}"),
        ("person AP^r_vol", data["person_ap_r_vol"]),
        ("AP^p @0.5 / AP^p_vol / PCP@0.5", f"{data['ap_p_50']} / {data['ap_p_vol']} / {data['pcp_50']}"),
        ("mIoU", data["miou"]),
        ("box AP / AP50", f"{data['box_ap']['ap']} / {data['box_ap']['ap50']}"),
    ):
        table.add_row(name, str(value))
    Console().print(table)
    write_report(report, labels, report_path, heatmap)


def _labels_of(predictions: str, data_root: str):
    """The label set named by the first result file, else by the data set's meta.json."""
    import json
    from pathlib import Path

    from .labels import get_label_set

    for source in [*sorted(Path(predictions, "json").glob("*.json"))[:1], Path(data_root, "meta.json")]:
        try:
            name = json.loads(source.read_text()).get("label_set")
        except (OSError, ValueError, AttributeError):
            continue
        if name:
            return get_label_set(name)
    return get_label_set("pascal-person-part")
