#!/usr/bin/env bash
# The main job: trains and evaluates an experiment on the embedded Synthetic dataset (no downloads)
# and prints its results table. Everything it needs is installed on first use.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$METRICBENCH_ROOT"
bin="$("$METRICBENCH_ROOT/scripts/build.sh" | tail -n 1)"
name="demo_$(date +%Y%m%d_%H%M%S)"
echo "[metricbench] running experiment $name in ./experiments" >&2
mkdir -p experiments
"$bin/metricbench" run --experiment_name "$name" --root_experiment_folder experiments "$@"
