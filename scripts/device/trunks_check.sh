#!/usr/bin/env bash
# GPU check of the image trunks, on a lent GPU machine with a CUDA build of metricbench-worker for
# its PyTorch (docs/building.md, "A CUDA worker for another PyTorch"):
#
#   scripts/device/trunks_check.sh WORKER [STEPS]
#
# Trains resnet50 and bninception at batch 32 / 227 px on cuda: the worker's training step
# (`bench-trunk`, fp32, bf16 and fp16 autocast) and, when torchvision is importable, PML 2.9's
# MetricLossOnly with torchvision's resnet50 on the same batches (fp32, bf16 autocast), then prints
# a summary table with the worker/PML ratios. About 2-4 minutes on an H200.
set -euo pipefail
worker=${1:?worker binary}
steps=${2:-30}
here="$(cd "$(dirname "$0")/../.." && pwd)"
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TQDM_DISABLE=1
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
nvidia-smi -L || true
if ! python3 -c 'import pytorch_metric_learning' 2>/dev/null; then
    if ls "$here"/.whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --target /tmp/site "$here"/.whl/*.whl &&
            export PYTHONPATH=/tmp/site
    fi
fi
data=$(mktemp -d)
results="$data/results.jsonl"
python3 "$here/scripts/bench/trunks/gen_batches.py" "$data" 64 227
run() { # label, command...
    local label=$1
    shift
    echo "== $label"
    if out=$("$@" 2>"$data/err"); then
        echo "$out" | tail -n 1 | tee -a "$results"
    else
        echo "FAILED: $label"
        tail -n 5 "$data/err"
    fi
}
for trunk in resnet50 bninception; do
    for mp in none bf16 fp16; do
        flags=()
        [ "$mp" != none ] && flags=(--mixed_precision "$mp")
        run "worker $trunk cuda $mp" "$worker" bench-trunk --trunk "$trunk" --device cuda \
            --batch 32 --size 227 --steps "$steps" --warmup 3 \
            --images "$data/images.npy" --labels "$data/labels.npy" "${flags[@]}"
    done
done
if python3 -c 'import pytorch_metric_learning, torchvision' 2>/dev/null; then
    for mp in "" bf16; do
        run "PML resnet50 cuda ${mp:-fp32}" python3 "$here/scripts/bench/trunks/pml_train.py" \
            resnet50 "$data/images.npy" "$data/labels.npy" "$steps" 3 cuda $mp
    done
else
    echo "== PML or torchvision is not importable here: no PML reference"
fi
echo "== summary (images/s, batch 32, 227 px)"
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
pml = {(r["trunk"], r["mixed_precision"]): r["images_per_s"] for r in rows if r["side"] == "pml"}
for r in rows:
    key = (r["trunk"], r["mixed_precision"])
    ratio = ""
    if r["side"] == "metricbench" and key in pml:
        ratio = f'  {r["images_per_s"] / pml[key]:.2f}x PML'
    print(f'{r["side"]:12} {r["trunk"]:12} {str(r["mixed_precision"] or "fp32"):5} '
          f'{r["images_per_s"]:8.1f} img/s  loss {r["last_loss"]:.4f}{ratio}')
PY
