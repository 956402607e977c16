#!/usr/bin/env bash
# GPU check of the device kNN (docs/metrics.md, "On the GPU"), on a lent GPU machine with a CUDA
# build of metricbench-worker for its PyTorch (docs/building.md, "A CUDA worker for another
# PyTorch"):
#
#   here:  scripts/device/build_worker_for_torch.sh 2.11.0        # .devcarry/ and .whl/
#   there: scripts/device/knn_check.sh .devcarry/metricbench-worker [N] [D]   # carry both
#
# For two clustered N x D sets (default 120,000 x 512; 1,000 classes, so k = max_bin_count = 119,
# and 22,634 classes as Stanford Online Products, k = 5), it runs eval-embeddings with the
# embeddings on the GPU (the device kNN) and on the CPU (the CPU paths, all cores) and checks that
# the metrics are identical, then times PML 2.9's AccuracyCalculator on the GPU on the same set
# (faiss-gpu where importable, else PML's CustomKNN with a torch distance; pml_knn_gpu.py) and
# prints the values side by side. Exits 1 if a device run fails or differs from the CPU path.
# About 3-5 minutes on an H200 with 16 CPU cores.
set -uo pipefail
worker=${1:?worker binary}
n=${2:-120000}
d=${3:-512}
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
status=0
work=$(mktemp -d)
# eval-embeddings with the given flags on DIR; JSON to OUT.json, its timing line to OUT.log.
evaluate() { # dir, out, flags...
    local dir=$1 out=$2
    shift 2
    "$worker" eval-embeddings --embeddings "$dir/e.npy" --labels "$dir/l.npy" \
        --exclude NMI,AMI "$@" >"$out.json" 2>"$out.log"
    local rc=$?
    grep -h "evaluated in" "$out.log" || tail -n 5 "$out.log"
    return $rc
}
for classes in 1000 22634; do
    data="$work/set_${n}_${d}_$classes"
    python3 "$here/scripts/bench/eval/gen_embeddings.py" "$n" "$d" "$classes" "$data" 1.5
    echo "== $n x $d, $classes classes: device kNN (--device cuda), twice"
    evaluate "$data" "$data/gpu1" --device cuda || status=1
    evaluate "$data" "$data/gpu" --device cuda || status=1
    echo "== the same with 2,048-row blocks"
    evaluate "$data" "$data/gpu_big" --device cuda --block_rows 2048 || status=1
    echo "== CPU path ($(nproc) cores)"
    evaluate "$data" "$data/cpu" --device cpu || status=1
    echo "== PML 2.9 AccuracyCalculator on the GPU"
    timeout 300 python3 "$here/scripts/device/pml_knn_gpu.py" "$data" >"$data/pml.json" 2>"$data/pml.log" ||
        { echo "PML failed:"; tail -n 5 "$data/pml.log"; }
    python3 - "$data" <<'PY' || status=1
import json, os, sys
folder = sys.argv[1]
def load(name):
    path = os.path.join(folder, name + ".json")
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None
cpu, gpu, big, pml = load("cpu"), load("gpu"), load("gpu_big"), load("pml")
ok = cpu is not None and gpu is not None and big is not None
for name, run in (("device", gpu), ("device, 2048-row blocks", big)):
    if ok and run["metrics"] != cpu["metrics"]:
        print(f"DIFFERENT: {name} kNN vs CPU path")
        ok = False
print("identical metrics, device kNN and CPU path:", ok)
if cpu is not None:
    print(f'{"metric":30} {"metricbench":>22} {"PML GPU":>22}')
    for metric, value in sorted(cpu["metrics"].items()):
        ref = pml["metrics"].get(metric) if pml else None
        print(f"{metric:30} {value!r:>22} {ref!r:>22}")
if pml:
    print(f'PML: {pml["knn"]}, {pml["seconds"]:.2f} s')
sys.exit(0 if ok else 1)
PY
done
exit $status
