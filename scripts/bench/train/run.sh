#!/usr/bin/env bash
# Training throughput: metricbench-worker versus pytorch-metric-learning's MetricLossOnly trainer on
# the same job, both on 2 CPU threads. Usage: scripts/bench/train/run.sh WORKER_BINARY [ITERATIONS]
# Python: a venv with torch 2.13 and pytorch-metric-learning, e.g.
#   /root/.cache/metricbench/torch-2.13.0/bin/python -m venv --system-site-packages /tmp/trainvenv
#   /tmp/trainvenv/bin/pip install pytorch-metric-learning
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
worker="$1"
iterations="${2:-300}"
python="${PYTHON:-/tmp/trainvenv/bin/python}"
# PASSIVE: on a shared, oversubscribed machine OpenMP's spinning barriers otherwise dominate both
# runs (perf showed 77% of the worker's samples in libgomp spin loops); TQDM_DISABLE silences PML's bar.
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE TQDM_DISABLE=1
# Alternate the two so slow phases of a shared machine hit both alike.
for round in 1 2 3; do
    "$python" "$here/worker_train.py" "$worker" "$iterations"
    "$python" "$here/pml_train.py" "$iterations"
done
