#!/usr/bin/env bash
# Make the working tree fit a device run with PyAV, and put it back (issue 25).
#
#   bash tools/device_tree.sh prepare   # then: device run, carry [".whl"], bash tools/gpu_checks.sh
#   bash tools/device_tree.sh restore   # right after the last device run
#
# The GPU machine's python3 lacks PyAV and pycocotools, which `humanparse video` needs; they
# travel as wheels in .whl/ (ignored through .git/info/exclude). A call carries 64 MiB: the
# tracked tree is 48 MB and PyAV's wheel 35, so `prepare` also takes the pose-guided parser's
# three networks (29 MB; the GPU checks run the default parser) out of the index and ignores
# them, leaving the files where they are. `restore` puts them back in the index. Until then,
# do not commit: the commit would delete them.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=.git/info/exclude
networks=(humanparse/models/movenet-thunder.pt humanparse/models/movenet-multipose.pt humanparse/models/blazepose-full.pt)

case "${1:-}" in
prepare)
    grep -qxF "/.whl/" "$exclude" 2>/dev/null || echo "/.whl/" >>"$exclude"
    if ! ls .whl/av-*.whl .whl/pycocotools-*.whl >/dev/null 2>&1; then
        # The machine runs CPython 3.12 on x86-64 (the device tool's KINDS.md).
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .whl "av>=11" "pycocotools>=2.0.7"
    fi
    for path in "${networks[@]}"; do
        grep -qxF "/$path" "$exclude" || echo "/$path" >>"$exclude"
    done
    git rm -q --cached -- "${networks[@]}" 2>/dev/null || true
    travelling=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    wheels=$(du -cb .whl/*.whl | tail -1 | cut -f1)
    echo "travels: tree $((travelling / 1000000)) MB + wheels $((wheels / 1000000)) MB of 67 MB (64 MiB)"
    ;;
restore)
    git reset -q -- "${networks[@]}"
    for path in "${networks[@]}"; do
        grep -vxF "/$path" "$exclude" >"$exclude.tmp" || true
        mv "$exclude.tmp" "$exclude"
    done
    git status --short -- "${networks[@]}"
    echo "restored: the pose-guided networks are tracked again"
    ;;
*)
    echo "usage: bash tools/device_tree.sh prepare|restore" >&2
    exit 2
    ;;
esac
