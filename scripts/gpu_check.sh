#!/usr/bin/env bash
# On a machine with a CUDA GPU and PyTorch: the GPU tests, then the profile benchmark on the
# GPU and on the CPU. Needs only torch, numpy, xxhash and pytest (no Jupyter):
#     bash scripts/gpu_check.sh [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/repro-gpu}}
mkdir -p "$out"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=$(command -v python3 || command -v python)
nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
"$py" -c "import torch, repro; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" | tee -a "$out/gpu.txt"
"$py" -m pytest tests/test_gpu.py -v -p no:cacheprovider -o addopts="-ra --strict-markers" 2>&1 | tee "$out/gpu-tests.txt"
tests=${PIPESTATUS[0]}
{
    "$py" benchmarks/bench_profiles.py --device cuda --width 64 --batch 64 --size 64 --rounds 3 --steps 20
    "$py" benchmarks/bench_profiles.py --device cpu --threads 2 --rounds 3 --steps 12
} 2>&1 | tee "$out/profiles.txt"
exit "$tests"
