#!/usr/bin/env bash
# The optimiser through `metricbench tune` on a noisy objective: a study of TRIALS trials (default
# 40) with the Python plugin worker (scripts/examples/python_worker.py), whose score
# exp(-sum((v - 0.5)^2) / 0.1) over three searched numbers gets Gaussian noise of sd NOISE (default
# 0.1) per fold, 4 folds: each trial reports a mean and a real SEM over folds. Prints the study's
# chosen best trial (default rule: the model's posterior mean, as SEMs are reported) and the trial
# with the highest observed mean, each with its TRUE (noise-free) score, for SEEDS study seeds.
# Usage: scripts/bench/optimizer/tune_noisy.sh [TRIALS] [NOISE] [SEEDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
trials="${1:-40}"
noise="${2:-0.1}"
seeds="${3:-3}"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/metricbench/target}"
cargo build --release -p metricbench --bin metricbench >&2
bin="$CARGO_TARGET_DIR/release/metricbench"
out="$(mktemp -d)"
for seed in $(seq 0 $((seeds - 1))); do
  "$bin" tune --experiment_name noisy$seed --root_experiment_folder "$out" --bayes_opt_iters "$trials" \
      --worker_command "[python3, $root/scripts/examples/python_worker.py]" \
      --example_parameters "{a~BAYESIAN~: [0, 1], b~BAYESIAN~: [0, 1], c~BAYESIAN~: [0, 1]}" \
      --example_noise_sd "$noise" --num_training_sets 4 --num_epochs_train 1 --seed "$seed" \
      --eval_metric_for_best_epoch mean_average_precision_at_r > "$out/noisy$seed.log" 2>&1 \
    || { echo "study $seed failed:"; tail -20 "$out/noisy$seed.log"; exit 1; }
  grep "best trial:" "$out/noisy$seed.log" | sed "s/^/seed $seed: /"
  python3 - "$out/noisy$seed" "$seed" <<'PY'
import csv, json, os, sys
folder, seed = sys.argv[1], sys.argv[2]
rows = [r for r in csv.DictReader(open(os.path.join(folder, "trials.csv"))) if r["state"] == "completed"]
true = {r["name"]: json.load(open(os.path.join(folder, r["name"], "python_worker_result.json")))["true_objective"] for r in rows}

import re
text = open(os.path.join(folder, "best_parameters.yaml")).read()
chosen = re.search(r"best_sub_experiment_name: (\S+)", text).group(1)
observed = max(rows, key=lambda r: float(r["mean_average_precision_at_r"]))["name"]
top = max(true.values())
print(f"seed {seed}: chosen (model) {chosen}: true {true[chosen]:.4f}; highest observed {observed}: true {true[observed]:.4f}; best true of any trial {top:.4f}; optimum 0.5000")
PY
done
rm -rf "$out"
