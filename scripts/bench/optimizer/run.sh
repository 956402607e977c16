#!/usr/bin/env bash
# Optimiser benchmark: our GP-LogEI against Optuna GPSampler, Optuna TPE, Ax's default strategy
# and random search, 40 evaluations each. Prints one markdown table (median final simple regret,
# median suggestion time). Suites (--suite): noiseless test functions (default), the same with
# Gaussian noise whose sd is told to ours and Ax as the SEM (regret at each method's
# recommendation), and a mixed space (log float, log int, float, 3-way choice; ours, Optuna GP and
# TPE). scripts/bench/optimizer/tune_noisy.sh runs a noisy study through `metricbench tune`.
#
#   scripts/bench/optimizer/run.sh [--suite noiseless|noisy|mixed] [--seeds N] [--ref-seeds M]
#                                  [--methods optuna_gp,tpe,ax,random] [--no-reference] [--out DIR]
#
# The reference side needs `optuna ax-platform` in $HOME/.cache/metricbench/bench-venv; it is
# created on first use (pip install; Ax pulls torch and is slow). Set BENCH_VENV to use another.
set -euo pipefail
cd "$(dirname "$0")/../../.."

SEEDS=20
REF_SEEDS=20
SUITE=noiseless
METHODS=optuna_gp,tpe,ax,random
REFERENCE=1
OUT=${OUT:-/tmp/metricbench-optimizer-bench}
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) SEEDS=$2; shift 2 ;;
    --ref-seeds) REF_SEEDS=$2; shift 2 ;;
    --no-reference) REFERENCE=0; shift ;;
    --suite) SUITE=$2; shift 2 ;;
    --methods) METHODS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-optimizer}

cargo build --release -p metricbench --example bench_optimizer
"$CARGO_TARGET_DIR/release/examples/bench_optimizer" --suite "$SUITE" --seeds "$SEEDS" --scale --json "$OUT/ours.json" | tee "$OUT/ours.txt"

files=("$OUT/ours.json")
if [ "$REFERENCE" = 1 ]; then
  VENV=${BENCH_VENV:-$HOME/.cache/metricbench/bench-venv}
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install optuna==5.0.0 ax-platform==1.3.1
  fi
  "$VENV/bin/python" scripts/bench/optimizer/reference.py --suite "$SUITE" --methods "$METHODS" --seeds "$REF_SEEDS" --json "$OUT/reference.json" | tee "$OUT/reference.txt"
  files+=("$OUT/reference.json")
fi
python3 scripts/bench/optimizer/table.py "${files[@]}" | tee "$OUT/table.md"
