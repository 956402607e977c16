#!/usr/bin/env bash
# Trunk training speed: metricbench-worker's training step (bench-trunk) against PML 2.9's
# MetricLossOnly with torchvision's resnet50 / pretrainedmodels' bninception, on the same batches
# (batch 32, 227 px), on the CPU with 2 threads and the same OpenMP policy on both sides.
#
#   scripts/bench/trunks/run.sh WORKER_BINARY [STEPS] [ROUNDS]
#
# Python: the reference environment (scripts/setup-pyref.sh: torch 2.13 = the worker's libtorch,
# torchvision, pretrainedmodels) plus PML installed without dependencies beside it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
worker="$1"
steps="${2:-5}"
rounds="${3:-2}"
warmup=1
py=$("$root/scripts/setup-pyref.sh" | tail -n 1)
pml_site="${METRICBENCH_CACHE:-$HOME/.cache/metricbench}/pml-site"
[ -d "$pml_site/pytorch_metric_learning" ] ||
    "$py" -m pip install -q --no-deps --target "$pml_site" pytorch-metric-learning==2.9.0
export PYTHONPATH="$pml_site${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE TQDM_DISABLE=1
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
"$py" "$here/gen_batches.py" "$data" 64 227
for round in $(seq "$rounds"); do
    for trunk in resnet50 bninception; do
        "$worker" bench-trunk --trunk "$trunk" --batch 32 --size 227 --steps "$steps" \
            --warmup "$warmup" --images "$data/images.npy" --labels "$data/labels.npy"
        "$py" "$here/pml_train.py" "$trunk" "$data/images.npy" "$data/labels.npy" "$steps" "$warmup"
    done
done
