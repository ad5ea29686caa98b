#!/usr/bin/env bash
# The GPU checks in one run, for a lent device machine (issue 25): the CUDA tests, then
# benchmarks/bench_cuda.py (the whole `humanparse video` at 640x360 and 1920x1080 on CUDA and
# on the CPU, the parser alone, the CRF and the segmenters). About 6 minutes on an H100:
#
#   here:         bash tools/device_tree.sh prepare
#   device run:   bash tools/gpu_checks.sh     (carry [".whl"], timeout_s 600)
#   here:         bash tools/device_tree.sh restore
#
# The machine's python3 holds PyTorch with CUDA and OpenCV, not PyAV or pycocotools: they
# come as wheels in .whl/ (device_tree.sh), installed here into /tmp/site. Without them the
# CUDA tests still run (they decode with OpenCV) and bench_cuda leaves its video rows out.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-checks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=$PWD:/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -rs -p no:cacheprovider -k cuda tests/test_predictor.py tests/test_matching.py \
    tests/modeling/test_crf.py tests/modeling/test_lattice.py tests/modeling/test_instances.py 2>&1 | tee "$out/cuda_tests.log"
python3 benchmarks/bench_cuda.py --frames "${FRAMES:-80}" 2>&1 | tee "$out/bench_cuda.log"
