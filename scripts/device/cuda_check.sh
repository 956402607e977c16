#!/usr/bin/env bash
# GPU check of a CUDA build of metricbench-worker, on a machine lent with an NVIDIA GPU and a
# PyTorch whose libtorch the worker was built against (docs/building.md, "CUDA"):
#
#   scripts/device/cuda_check.sh WORKER [ITERATIONS]
#
# Runs the training-throughput job of scripts/bench/train on the GPU and on the CPU, with the
# worker and with PML 2.9's trainer (the PML wheel is installed from .whl/ when PML is missing),
# the same job scaled up to GPU size (WIDTH=4096, BATCH=200), then eval-embeddings on a
# 20,000 x 128 set with both kNN screens. Prints what it measured.
set -uo pipefail
worker=${1:?worker binary}
iterations=${2:-600}
here="$(cd "$(dirname "$0")/../.." && pwd)"
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
nvidia-smi -L
if ! python3 -c 'import pytorch_metric_learning' 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site "$here"/.whl/*.whl &&
        export PYTHONPATH=/tmp/site
fi
echo "== libraries the worker loads"
ldd "$worker" | grep -E 'torch|c10|cuda|not found'
export TQDM_DISABLE=1
threads=$(nproc)
for device in cuda cpu; do
    echo "== training, device $device, $iterations iterations, $threads CPU threads"
    DEVICE=$device OMP_NUM_THREADS=$threads python3 "$here/scripts/bench/train/worker_train.py" "$worker" "$iterations"
    DEVICE=$device THREADS=$threads python3 "$here/scripts/bench/train/pml_train.py" "$iterations"
done
echo "== training, GPU-sized job (trunk 64-2048-4096-4096, batch 200), 300 iterations, cuda"
DEVICE=cuda WIDTH=4096 BATCH=200 python3 "$here/scripts/bench/train/worker_train.py" "$worker" 300
DEVICE=cuda WIDTH=4096 BATCH=200 THREADS=$threads python3 "$here/scripts/bench/train/pml_train.py" 300
echo "== the same job on the CPU, $threads threads, 30 iterations"
DEVICE=cpu WIDTH=4096 BATCH=200 OMP_NUM_THREADS=$threads python3 "$here/scripts/bench/train/worker_train.py" "$worker" 30
DEVICE=cpu WIDTH=4096 BATCH=200 THREADS=$threads python3 "$here/scripts/bench/train/pml_train.py" 30
data=/tmp/evalbench_20000_128_200
python3 "$here/scripts/bench/eval/gen_embeddings.py" 20000 128 200 "$data" 1.5
for screen in int8 float32 int8 float32; do
    echo "== eval-embeddings 20000 x 128, --knn_screen $screen"
    "$worker" eval-embeddings --embeddings "$data/e.npy" --labels "$data/l.npy" \
        --exclude NMI,AMI --knn_screen "$screen"
done
grep -m1 -o -E 'avx512_vnni|avx_vnni' /proc/cpuinfo | head -1 || echo "no VNNI on this CPU"
