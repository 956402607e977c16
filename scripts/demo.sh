#!/usr/bin/env bash
# The main job: a short tuning study on the embedded Synthetic dataset (no downloads). It searches
# ContrastiveLoss's margins and both learning rates (configs/*/bayes_example.yaml) with Bayesian
# optimisation, two trials at a time, then tests the best trial, retrains it twice, and prints the
# results table. Everything it needs is installed on first use. Extra flags are passed to `tune`.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$METRICBENCH_ROOT"
bin="$("$METRICBENCH_ROOT/scripts/build.sh" | tail -n 1)"
name="demo_$(date +%Y%m%d_%H%M%S)"
echo "[metricbench] tuning study $name in ./experiments (report: experiments/$name/report.html)" >&2
mkdir -p experiments
"$bin/metricbench" tune --experiment_name "$name" --root_experiment_folder experiments \
    --config_loss_and_miners default bayes_example --config_optimizers default bayes_example \
    --bayes_opt_iters 10 --parallel 2 --reproductions 2 "$@"
