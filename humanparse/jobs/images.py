"""``humanparse images``: parse many images and write their result files.

Under ``torchrun`` (or any launcher that sets RANK and WORLD_SIZE) each process takes
every WORLD_SIZE-th image starting at its RANK, so that no two write the same file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..detectors.files import CocoResultsDetector
from ..errors import HumanParseError
from ..interrupts import StopRequests
from ..io.files import FolderLock, check_writable
from ..io.images import read_image
from ..io.results import OUTPUT_KINDS, existing_outputs, write_outputs
from ..predictor import Predictor


@dataclass(frozen=True)
class ImagesSummary:
    parsed: int
    failed: tuple[tuple[Path, str], ...]  # (image, one-line reason)
    persons: int  # over all parsed images
    interrupted: bool = False  # Ctrl-C or SIGTERM stopped the run after the image in flight


def output_names(paths: Sequence[Path]) -> list[str]:
    """Unique output names: each path relative to the inputs' common folder, without its
    extension (with it, where two files differ only by extension)."""
    if not paths:
        return []
    resolved = [p.resolve() for p in paths]
    root = Path(os.path.commonpath([p.parent for p in resolved]))
    names = [p.relative_to(root).with_suffix("").as_posix() for p in resolved]
    clashes = {n for n in names if names.count(n) > 1}
    return [p.relative_to(root).as_posix().replace(".", "_") if n in clashes else n for p, n in zip(resolved, names)]


def shard(items: Sequence, rank: int | None = None, world: int | None = None) -> list:
    """This process's share of ``items`` (all of them outside a distributed launch)."""
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world = int(os.environ.get("WORLD_SIZE", "1")) if world is None else world
    if not 0 <= rank < world:
        raise HumanParseError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return list(items[rank::world])


def check_no_results(out: Path, names: Sequence[str], kinds: tuple[str, ...] = OUTPUT_KINDS) -> None:
    """Fail if ``out`` already holds results of the images of these output names
    (:func:`output_names`): they are replaced only with ``overwrite`` (``--overwrite``), as
    in video."""
    present = existing_outputs(Path(out), shard(names), kinds)  # this rank's: the others may be writing theirs
    if present:
        raise HumanParseError(f"{out} already holds results for these images ({present[0].relative_to(out)}, ...); choose another --out or pass --overwrite")


def parse_images(
    predictor: Predictor,
    paths: Sequence[Path],
    out: str | Path,
    kinds: tuple[str, ...] = OUTPUT_KINDS,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> ImagesSummary:
    """Parse ``paths`` (this rank's share) and write the ``kinds`` of files under ``out``.

    An image that cannot be read is skipped and reported in the summary; an output that
    cannot be written stops the run (HumanParseError), keeping what was written. Results
    already in ``out`` for these images are an error unless ``overwrite`` (as for video).
    Ctrl-C and SIGTERM stop the run once the image in flight is written
    (``summary.interrupted``), as in video: every image's files are then whole.
    """
    unknown = sorted(set(kinds) - set(OUTPUT_KINDS))
    if unknown:
        raise HumanParseError(f"unknown output kind {unknown[0]!r}; choose from {', '.join(OUTPUT_KINDS)}")
    out = Path(out)
    if isinstance(predictor.detector, CocoResultsDetector):
        predictor.detector.check_known([str(path) for path in paths])  # another set's detections
    names = output_names(paths)
    if not overwrite:
        check_no_results(out, names, kinds)
    check_writable(out)
    mine = shard(list(zip(paths, names)))
    failed: list[tuple[Path, str]] = []
    parsed = persons = 0
    # One run at a time in a folder (the ranks of one distributed run share it by design):
    # a second one would replace the first's files, each thinking them its own.
    alone = int(os.environ.get("WORLD_SIZE", "1")) == 1
    with StopRequests() as stops, (FolderLock(out, None, "images run") if alone else contextlib.nullcontext()):
        for k, (path, name) in enumerate(mine):
            try:
                image = read_image(path)
            except HumanParseError as exc:
                failed.append((path, str(exc)))
            else:
                result = predictor(image, key=path.stem)
                write_outputs(out, name, image, result, kinds)
                parsed += 1
                persons += len(result.ids)
            if progress is not None:
                progress(k + 1, len(mine))
            if stops.requested:
                break
    return ImagesSummary(parsed, tuple(failed), persons, stops.requested)
