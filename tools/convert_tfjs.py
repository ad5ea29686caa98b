"""Convert any TF.js graph model to a checkpoint humanparse runs with torch alone.

    python tools/convert_tfjs.py MODEL.json OUT.pt [--meta KEY=VALUE ...]

The weight files MODEL.json lists must lie beside it. The checkpoint loads with
``humanparse.pretrained.load_network(OUT.pt)`` (``torch.load(..., weights_only=True)``). A
model using an op the runner lacks is refused with the ops' names. Development-time tooling:
the shipped networks are rebuilt by tools/convert_pretrained.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanparse.errors import HumanParseError  # noqa: E402
from humanparse.pretrained.tfjs import convert  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the TF.js model.json")
    parser.add_argument("out", type=Path, help="the checkpoint to write")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="provenance to store (license=..., source=...)")
    args = parser.parse_args()
    meta = dict(item.partition("=")[::2] for item in args.meta)
    if not args.out.parent.is_dir():
        sys.exit(f"error: {args.out.parent} is not a folder")
    try:
        stored = convert(args.model, args.out, meta)
    except HumanParseError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {args.out}: {sum(stored['ops'].values())} nodes, {len(stored['ops'])} op types")


if __name__ == "__main__":
    main()
