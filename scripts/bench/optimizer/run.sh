#!/usr/bin/env bash
# Optimiser benchmark (issue #8): our GP-LogEI against Optuna GPSampler, Optuna TPE, Ax's default
# strategy and random search on Branin, Hartmann-6, Ackley-5, Rosenbrock-4 and Levy-4, 40
# evaluations each. Prints one markdown table (median final simple regret, median suggestion time).
#
#   scripts/bench/optimizer/run.sh [--seeds N] [--ref-seeds M] [--no-reference] [--out DIR]
#
# The reference side needs `optuna ax-platform` in $HOME/.cache/metricbench/bench-venv; it is
# created on first use (pip install; Ax pulls torch and is slow). Set BENCH_VENV to use another.
set -euo pipefail
cd "$(dirname "$0")/../../.."

SEEDS=10
REF_SEEDS=5
REFERENCE=1
OUT=${OUT:-/tmp/metricbench-optimizer-bench}
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) SEEDS=$2; shift 2 ;;
    --ref-seeds) REF_SEEDS=$2; shift 2 ;;
    --no-reference) REFERENCE=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-optimizer}

cargo build --release -p metricbench --example bench_optimizer
"$CARGO_TARGET_DIR/release/examples/bench_optimizer" --seeds "$SEEDS" --scale --json "$OUT/ours.json" | tee "$OUT/ours.txt"

files=("$OUT/ours.json")
if [ "$REFERENCE" = 1 ]; then
  VENV=${BENCH_VENV:-$HOME/.cache/metricbench/bench-venv}
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install optuna ax-platform
  fi
  "$VENV/bin/python" scripts/bench/optimizer/reference.py --seeds "$REF_SEEDS" --json "$OUT/reference.json" | tee "$OUT/reference.txt"
  files+=("$OUT/reference.json")
fi
python3 scripts/bench/optimizer/table.py "${files[@]}" | tee "$OUT/table.md"
