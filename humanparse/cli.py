"""The command line: a thin click layer, one library call per command, rich output."""

from __future__ import annotations

import platform
from importlib import metadata

import click
import torch
from rich.console import Console
from rich.table import Table

from . import __version__
from .device import resolve_device
from .errors import HumanParseError
from .runtime import tune_allocator


class _Group(click.Group):
    """Turns the project's errors into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HumanParseError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="humanparse")
def main() -> None:
    """Instance-level human parsing: body parts and person identities for every pixel.

    \b
    Examples:
      humanparse info
      humanparse info --checkpoint runs/synth/best.pt --device cpu
    """
    tune_allocator()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@main.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Describe this checkpoint.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def info(checkpoint: str | None, device: str) -> None:
    """Versions, the device that would be used, and the model.

    \b
    Example:
      humanparse info --checkpoint model.pt
    """
    from .model import read_checkpoint

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
    if checkpoint is None:
        table.add_row("model", "none shipped with this version: pass --checkpoint")
    else:
        payload = read_checkpoint(checkpoint)
        config, labels = payload["config"], payload["labels"]
        table.add_row("model", str(checkpoint))
        table.add_row("backbone", f"{config['backbone']} (output stride {config['output_stride']})")
        table.add_row("labels", f"{labels['name']}: {', '.join(labels['names'][1:])}")
        table.add_row("crf", f"{config['crf']['iterations']} mean-field iterations, global term {'on' if config['crf']['global_term'] else 'off'}")
        table.add_row("weights", f"{sum(t.numel() for t in payload['state_dict'].values() if t.is_floating_point()):,} values")
    Console().print(table)
