#!/usr/bin/env bash
# Coordinator overhead per trial (docs/tuning.md): a 200-trial study driven by a worker that
# answers instantly. Prints wall time per trial, split into the time inside worker processes (as
# the coordinator measured it, spawn included) and the rest (suggestion + bookkeeping).
# Usage: scripts/bench/tune/run.sh [TRIALS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
trials="${1:-200}"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/metricbench/target}"
cargo build --release -p metricbench >&2
bin="$CARGO_TARGET_DIR/release/metricbench"
out="$(mktemp -d)"
start=$(date +%s.%N)
"$bin" tune --experiment_name overhead --root_experiment_folder "$out" --bayes_opt_iters "$trials" \
    --worker_command "[sh, $here/instant_worker.sh]" --x~BAYESIAN~ "[0, 1]" \
    --eval_metric_for_best_epoch m > /dev/null 2> "$out/stderr.log"
end=$(date +%s.%N)
python3 - "$out/overhead/trials.csv" "$start" "$end" "$trials" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
wall = float(sys.argv[3]) - float(sys.argv[2])
n = int(sys.argv[4])
worker = sum(float(r["duration_s"]) for r in rows)
print(f"trials: {len(rows)} ({sum(r['state'] == 'completed' for r in rows)} completed)")
print(f"wall time per trial: {1000 * wall / n:.1f} ms")
print(f"  inside worker processes (spawn to exit): {1000 * worker / n:.1f} ms")
print(f"  coordinator (suggest + bookkeeping): {1000 * (wall - worker) / n:.1f} ms")
PY
rm -rf "$out"
