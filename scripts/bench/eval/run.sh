#!/usr/bin/env bash
# Evaluation-engine benchmark: `metricbench eval-embeddings` (release build) against PML 2.9's
# AccuracyCalculator with faiss-cpu, same embeddings, same machine, one after the other.
#
#   scripts/bench/eval/run.sh N D C [--with-clustering]
#
# Needs: a release build (cargo build --release -p metricbench -p metricbench-worker, with
# CARGO_TARGET_DIR set if you use one) and a Python with pytorch-metric-learning and faiss-cpu:
#   python -m venv --system-site-packages /tmp/evalvenv
#   /tmp/evalvenv/bin/pip install pytorch-metric-learning faiss-cpu
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
N=${1:?N} D=${2:?D} C=${3:?C}
clustering=${4:-}
py=${PYTHON:-/tmp/evalvenv/bin/python}
target=${CARGO_TARGET_DIR:-$here/../../../target}
out=${OUT:-/tmp/evalbench_${N}_${D}_${C}}
"$py" "$here/gen_embeddings.py" "$N" "$D" "$C" "$out" "${NOISE:-1.5}"
metrics=(--exclude NMI,AMI)
[[ "$clustering" == --with-clustering ]] && metrics=()
/usr/bin/time -v "$target/release/metricbench" eval-embeddings --embeddings "$out/e.npy" \
  --labels "$out/l.npy" --k max_bin_count "${metrics[@]}" >"$out/ours.json" 2>"$out/ours.time"
/usr/bin/time -v "$py" "$here/pml_eval.py" "$out" $clustering >"$out/pml.json" 2>"$out/pml.time"
"$py" "$here/compare.py" "$out"
