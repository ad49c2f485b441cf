set -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for py in python3 python /usr/bin/python3; do command -v $py >/dev/null && $py -c "import sys,torch;print(sys.executable, torch.__version__, torch.cuda.is_available())" 2>&1 | tail -1; done
PY=""
for py in python3 python; do if command -v $py >/dev/null && $py -c "import torch,sklearn; assert torch.cuda.is_available()" 2>/dev/null; then PY=$py; break; fi; done
if [ -z "$PY" ]; then echo "no python with CUDA torch + sklearn"; pip list 2>/dev/null | grep -i -E "^torch|scikit" ; exit 3; fi
cd "$(pwd)"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
start=$(date +%s.%N)
$PY -m torch.distributed.run --standalone --nproc-per-node 1 examples/training/ddp/train.py --epochs 15 --checkpoint-dir "$OUT/ckpt" > "$OUT/nccl.log" 2>&1
echo "exit=$? wall=$(echo "$(date +%s.%N) - $start" | bc)"
grep -v "^epoch=[0-9] \|^epoch=1[0-4] " "$OUT/nccl.log" | tail -5
ls "$OUT/ckpt"
# resume: one more run with more epochs resumes from epoch 15
$PY -m torch.distributed.run --standalone --nproc-per-node 1 examples/training/ddp/train.py --epochs 17 --checkpoint-dir "$OUT/ckpt" 2>&1 | grep -E "resumed|final|backend"
