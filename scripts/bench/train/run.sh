#!/usr/bin/env bash
# Training throughput: metricbench-worker versus pytorch-metric-learning's MetricLossOnly trainer on
# the same job, both on 2 CPU threads, plus the same job as a plain tch loop (worker/examples/
# plain_train.rs: the model, loss arithmetic and libtorch's own C++ RMSprop, no worker machinery).
# Usage: scripts/bench/train/run.sh WORKER_BINARY [ITERATIONS] [PLAIN_TRAIN_BINARY]
# Python: a venv with pytorch-metric-learning on the same torch 2.13 the worker links (pip would
# otherwise pull the newest torch), e.g.
#   python3.11 -m venv /tmp/trainvenv213
#   /tmp/trainvenv213/bin/pip install --no-deps pytorch-metric-learning==2.9.0
#   /tmp/trainvenv213/bin/pip install numpy scikit-learn tqdm
#   echo "$HOME/.cache/metricbench/torch-2.13.0/lib/python3.11/site-packages" \
#     > /tmp/trainvenv213/lib/python3.11/site-packages/torch213.pth
# The plain loop: cargo build -p metricbench-worker --example plain_train
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
worker="$1"
iterations="${2:-300}"
plain="${3:-}"
python="${PYTHON:-/tmp/trainvenv213/bin/python}"
# PASSIVE (OpenMP threads sleep when idle) is what the coordinator gives every worker it starts;
# both sides get it. With spinning threads a shared or oversubscribed machine is dominated by spin
# loops (two workers side by side: 6 it/s each spinning, 129-141 it/s each sleeping).
# TQDM_DISABLE silences PML's bar.
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OMP_WAIT_POLICY=${OMP_WAIT_POLICY-PASSIVE} TQDM_DISABLE=1
[ -z "$OMP_WAIT_POLICY" ] && unset OMP_WAIT_POLICY
# Alternate them so slow phases of a shared machine hit all alike.
for round in 1 2 3; do
    "$python" "$here/worker_train.py" "$worker" "$iterations"
    "$python" "$here/pml_train.py" "$iterations"
    if [ -n "$plain" ]; then
        PLAIN_THREADS=2 "$plain" "$iterations"
    fi
done
