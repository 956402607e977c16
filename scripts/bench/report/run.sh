#!/usr/bin/env bash
# `metricbench report` speed (issue: reports people look at): a 1,000-epoch, 4-fold experiment
# (100 iterations per epoch: 400,000 loss rows, 800,000 learning-rate rows) and a 200-trial study
# (3 parameters, intermediate values per epoch and fold). Target: under 2 s each.
# Reference, measured in the same run: reading the same record files with Python's csv module
# (the experiment) and with sqlite3 + csv (the study), i.e. the cost of merely loading the data.
# Usage: scripts/bench/report/run.sh   (prints a table; median of 3 runs each; SKIP_BUILD=1 uses
# the binary already in $CARGO_TARGET_DIR/debug)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/metricbench/target}"
[ -n "${SKIP_BUILD:-}" ] || cargo build -p metricbench >&2
bin="$CARGO_TARGET_DIR/debug/metricbench"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python3 "$here/make_experiment.py" "$out/exp" 1000 100 4
"$bin" tune --experiment_name study --root_experiment_folder "$out" --bayes_opt_iters 200 \
    --worker_command "[python3, $root/tests/fixtures/quadratic_worker.py]" \
    --eval_metric_for_best_epoch m \
    --example_parameters "{x~BAYESIAN~: [0, 1], ignored~BAYESIAN~: [0, 1]}" \
    --optimizers "{trunk_optimizer: {Adam: {lr~LOG_BAYESIAN~: [0.0001, 0.1]}}}" \
    > /dev/null 2> "$out/tune.log"
median() { sort -g | sed -n 2p; }
# CPU seconds (user + system) and wall seconds of a command, medians of 3 runs, as "CPU WALL": on a
# shared machine wall time measures the other tenants, so CPU time is the comparable figure; all
# timed programs here are single-threaded, so on an idle machine the two agree.
timed() { for _ in 1 2 3; do
    /usr/bin/time -f "%U %S %e" -o "$out/time" "$@" > /dev/null
    awk '{print $1 + $2, $3}' "$out/time"; done > "$out/runs"
    echo "$(cut -d' ' -f1 "$out/runs" | median) $(cut -d' ' -f2 "$out/runs" | median)"; }
read -r exp_report exp_report_wall <<< "$(timed "$bin" report "$out/exp")"
read -r exp_ref _ <<< "$(timed python3 -c '
import csv, glob, sys
for p in glob.glob(sys.argv[1] + "/*/saved_csvs/*.csv"):
    rows = [[float(c) if c else None for c in r] for r in list(csv.reader(open(p)))[1:]]
' "$out/exp")"
read -r study_report study_report_wall <<< "$(timed "$bin" report "$out/study")"
read -r study_ref _ <<< "$(timed python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1] + "/study.db")
t = c.execute("select * from trials").fetchall(); i = c.execute("select * from intermediate").fetchall()
' "$out/study")"
printf '| case | metricbench report (CPU s) | its wall time (s) | reference: load only (CPU s) | ratio (CPU) |\n|---|---|---|---|---|\n'
printf '| 1,000-epoch experiment, 4 folds | %.2f | %.2f | %.2f | %.1fx |\n' "$exp_report" "$exp_report_wall" "$exp_ref" "$(echo "$exp_report / $exp_ref" | bc -l)"
printf '| 200-trial study | %.2f | %.2f | %.2f | %.1fx |\n' "$study_report" "$study_report_wall" "$study_ref" "$(echo "$study_report / $study_ref" | bc -l)"
