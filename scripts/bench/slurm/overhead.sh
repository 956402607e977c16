#!/usr/bin/env bash
# Coordinator overhead per trial, Slurm executor next to the local one, measured in the same run.
#
# Each trial runs the Python example worker (1 epoch, 1 fold, EPOCH_S seconds of "training")
# wrapped so that it records its own start and end; a trial's overhead is its duration in study.db
# (the coordinator's start of the trial to its result) minus the worker's own wall time. Trials run
# one at a time (--parallel 1) so queueing behind other trials does not count.
#
#   scripts/bench/slurm/overhead.sh [TRIALS] [EPOCH_S]     (needs scripts/slurm-local.sh up)
set -euo pipefail
cd "$(dirname "$0")/../../.."
TRIALS="${1:-8}"
EPOCH_S="${2:-0.5}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/metricbench/target}/debug/metricbench"
[ -x "$BIN" ] || { echo "build first: cargo build -p metricbench ($BIN missing)" >&2; exit 1; }
sinfo >/dev/null 2>&1 || { echo "no Slurm cluster: scripts/slurm-local.sh up" >&2; exit 1; }
WORK="$(mktemp -d /tmp/metricbench-slurm-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
WORKER="$PWD/scripts/examples/python_worker.py"

run() { # executor
    local exe="$1" log="$WORK/$1.times"
    # The wrapper appends "<cwd> <start> <end>" around the worker (stdin/stdout pass through).
    local wrapper="[sh, -c, 'f=\$(pwd); s=\$(date +%s.%N); python3 $WORKER; rc=\$?; echo \"\$f \$s \$(date +%s.%N)\" >> $log; exit \$rc']"
    "$BIN" tune --executor "$exe" --experiment_name "bench_$exe" --root_experiment_folder "$WORK" \
        --worker_command "$wrapper" --example_parameters "{x~BAYESIAN~: [0, 1]}" \
        --bayes_opt_iters "$TRIALS" --parallel 1 --num_epochs_train 1 --num_training_sets 1 \
        --example_seconds_per_epoch "$EPOCH_S" --slurm "{cpus_per_task: 1}" >/dev/null 2>"$WORK/$exe.err" ||
        { cat "$WORK/$exe.err" >&2; exit 1; }
}

summarise() { # executor
    python3 - "$WORK/bench_$1/study.db" "$WORK/$1.times" "$1" <<'PY'
import sqlite3, statistics, sys
db, times, name = sys.argv[1:]
# --parallel 1: the workers' lines and the trials come in the same order.
own = [float(e) - float(s) for _, s, e in (l.split() for l in open(times))]
rows = sqlite3.connect(db).execute(
    "SELECT duration_s FROM trials WHERE state = 'completed' ORDER BY started_at").fetchall()
# The best trial's test evaluations come after the search: its first lines are the trials'.
assert len(own) >= len(rows), (len(rows), len(own))
own = own[: len(rows)]
over = sorted(d - w for (d,), w in zip(rows, own))
print(f"{name}: {len(over)} trials, worker {statistics.median(own):.3f} s, "
      f"overhead median {statistics.median(over):.3f} s (min {over[0]:.3f}, max {over[-1]:.3f})")
PY
}

run local
run slurm
summarise local
summarise slurm
