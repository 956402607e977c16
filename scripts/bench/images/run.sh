#!/usr/bin/env bash
# Image-pipeline benchmark: decode + the default train transforms + batching, images per second,
# metricbench's pipeline (`metricbench-worker load-images`, release build) against PyTorch's
# DataLoader + torchvision + Pillow with the same number of workers, on the same generated
# CUB-like JPEGs, alternating runs, then the median of each. Also the CPU time per image (user +
# system, every thread and worker process: what the work costs, unlike images per second
# independent of other load on the machine), peak memory (PSS of the process tree) and the scaling
# from 1 to 2 workers. Both sides run their per-worker operations on one thread
# (OMP_NUM_THREADS=1; the DataLoader's workers also set torch to one thread).
#
#   scripts/bench/images/run.sh [COUNT] [BATCHES] [REPEATS]
#
# Needs a build of the worker (cargo build --release -p metricbench-worker, with CARGO_TARGET_DIR
# set if you use one; PROFILE=debug for the everyday build, whose image code is optimised too) and
# the reference Python (scripts/setup-pyref.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../../.."
COUNT=${1:-3000} BATCHES=${2:-40} REPEATS=${3:-3} BATCH=32
py=${PYTHON:-$("$root/scripts/setup-pyref.sh" | tail -n 1)}
target=${CARGO_TARGET_DIR:-$root/target}
worker="$target/${PROFILE:-release}/metricbench-worker"
data=${DATA:-/tmp/imagebench_$COUNT}
[ -d "$data" ] || "$py" "$here/gen_images.py" "$data" "$COUNT"
out=$(mktemp -d)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
echo "images in $data: $(find "$data" -name '*.jpg' | wc -l), $(du -sh "$data" | cut -f1)" >&2
for rep in $(seq "$REPEATS"); do
  for workers in 1 2; do
    "$py" "$here/peak_mem.py" "$worker" load-images --folder "$data" --workers "$workers" \
      --batch-size $BATCH --batches "$BATCHES" >>"$out/ours_$workers.jsonl" 2>>"$out/ours_$workers.mem"
    "$py" "$here/peak_mem.py" "$py" "$here/torch_loader.py" "$data" "$workers" $BATCH "$BATCHES" \
      >>"$out/torch_$workers.jsonl" 2>>"$out/torch_$workers.mem"
  done
done
"$py" - "$out" <<'PY'
import json, statistics, sys, os
out = sys.argv[1]
def rates(name):
    return [json.loads(l)["images_per_s"] for l in open(os.path.join(out, name + ".jsonl"))]
def mem(name):
    return max(json.loads(l)["peak_pss_mib"] for l in open(os.path.join(out, name + ".mem"))
               if l.startswith("{"))
def cpu_ms(name):
    runs = [json.loads(l) for l in open(os.path.join(out, name + ".jsonl"))]
    return statistics.median(r["cpu_seconds"] * 1e3 / r["images"] for r in runs)
print("| workers | metricbench images/s (median; runs) | PyTorch DataLoader images/s | ratio | CPU ms/image ours / PyTorch | CPU ratio | peak PSS ours / PyTorch |")
print("|---|---|---|---|---|---|---|")
med = {}
for w in (1, 2):
    o, t = rates(f"ours_{w}"), rates(f"torch_{w}")
    med[w] = (statistics.median(o), statistics.median(t))
    co, ct = cpu_ms(f"ours_{w}"), cpu_ms(f"torch_{w}")
    print(f"| {w} | {med[w][0]:.0f} ({', '.join(f'{x:.0f}' for x in o)}) | "
          f"{med[w][1]:.0f} ({', '.join(f'{x:.0f}' for x in t)}) | {med[w][0] / med[w][1]:.2f}x | "
          f"{co:.2f} / {ct:.2f} | {ct / co:.2f}x | "
          f"{mem(f'ours_{w}'):.0f} / {mem(f'torch_{w}'):.0f} MiB |")
print(f"\nscaling 1 -> 2 workers: metricbench {med[2][0] / med[1][0]:.2f}x, "
      f"PyTorch {med[2][1] / med[1][1]:.2f}x")
PY
