#!/usr/bin/env bash
# The GPU checks in one run, for a lent device machine (issue 25): the CUDA tests, then
# benchmarks/bench_cuda.py. About 5 minutes on an H100; run it with timeout_s 600:
#
#   device run:  bash tools/gpu_checks.sh
#
# The machine's python3 holds PyTorch with CUDA, OpenCV and onnxruntime, but not PyAV. PyAV
# cannot travel there: the tracked tree (48 MB, mostly the shipped weights) and its 36 MB
# wheel exceed the 64 MiB a call carries. So the CUDA tests (which decode with OpenCV) and
# bench_cuda's "parser" rows run there, and its `humanparse video` rows are left out.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-checks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -rs -p no:cacheprovider -k cuda tests/test_predictor.py tests/test_matching.py \
    tests/modeling/test_crf.py tests/modeling/test_lattice.py tests/modeling/test_instances.py 2>&1 | tee "$out/cuda_tests.log"
python3 benchmarks/bench_cuda.py --frames "${FRAMES:-80}" 2>&1 | tee "$out/bench_cuda.log"
