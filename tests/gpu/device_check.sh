#!/usr/bin/env bash
# One-shot check on a machine with a real NVIDIA GPU (run by hand or by the device tool):
#  1. NVML discovery and CUDA_VISIBLE_DEVICES isolation (tests/gpu/test_nvml_device.py);
#  2. a real training run of examples/training/ddp on the GPU (NCCL backend, world of one).
# Uses whatever python3 has torch with CUDA; needs nvidia-ml-py, pytest, scikit-learn.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
"$PY" -m pytest -c /dev/null --rootdir . -q -p no:cacheprovider tests/gpu/test_nvml_device.py
pytest_rc=$?
ckpt=$(mktemp -d)
start=$(date +%s%N)
MASTER_ADDR=127.0.0.1 MASTER_PORT=29517 WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 CUDA_VISIBLE_DEVICES=0 \
    "$PY" examples/training/ddp/train.py --checkpoint-dir "$ckpt" 2>&1 | tail -n 6
train_rc=${PIPESTATUS[0]}
end=$(date +%s%N)
echo "{\"nvml_pytest_rc\": $pytest_rc, \"train_rc\": $train_rc, \"train_wall_ms\": $(( (end - start) / 1000000 ))}"
[ "$pytest_rc" -eq 0 ] && [ "$train_rc" -eq 0 ]
