#!/usr/bin/env bash
# Builds metricbench-worker (release) against the libtorch of another PyTorch release, for a
# machine whose PyTorch is not the 2.13 that tch 0.26 expects (the lent GPU machines have 2.11),
# and leaves it in .devcarry/ (git-ignored), with PML's wheel in .whl/, for
# `scripts/device/cuda_check.sh` there (carry both folders):
#
#   scripts/device/build_worker_for_torch.sh [TORCH_VERSION]     # default 2.11.0
#
# 1. downloads the PyPI wheel torch==VERSION (CPython 3.12, manylinux x86-64; a CUDA 13 build)
#    into ~/.cache/metricbench and unpacks its lib/ and include/;
# 2. builds with LIBTORCH pointing there and LIBTORCH_BYPASS_VERSION_CHECK=1; tch's generated C++
#    wrappers name operators newer than that libtorch, so the C++ functions that fail to compile
#    are replaced by ones that raise an error (none of them is used by the worker), in a patched
#    copy of torch-sys given to cargo with --config patch.crates-io (Cargo.lock is restored);
# 3. links with --allow-shlib-undefined (the CUDA runtime libraries live in other wheels, present
#    only on the target machine). The binary's rpath points into this machine's cache, so the
#    target needs LD_LIBRARY_PATH at its own torch/lib (cuda_check.sh sets it).
set -euo pipefail
version=${1:-2.11.0}
here="$(cd "$(dirname "$0")/../.." && pwd)"
cache=${METRICBENCH_CACHE:-$HOME/.cache/metricbench}
torch_dir="$cache/torch-$version"
if [ ! -f "$torch_dir/.unpacked" ]; then
    mkdir -p "$torch_dir/wheel"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 -d "$torch_dir/wheel" "torch==$version"
    (cd "$torch_dir" && unzip -q -o wheel/torch-*.whl 'torch/lib/*' 'torch/include/*' 'torch/version.py')
    touch "$torch_dir/.unpacked"
fi
registry_copy=$(ls -d "$HOME"/.cargo/registry/src/*/torch-sys-0.26.0 | head -1)
patched="$cache/torch-sys-0.26.0-for-$version"
[ -d "$patched" ] || cp -r "$registry_copy" "$patched"
target="$cache/target-torch-$version"
log="$target.log"
cp "$here/Cargo.lock" "$here/.Cargo.lock.before-torch-$version"
restore() { mv "$here/.Cargo.lock.before-torch-$version" "$here/Cargo.lock"; }
trap restore EXIT
build() {
    (cd "$here" && env -u LIBTORCH_USE_PYTORCH LIBTORCH="$torch_dir/torch" LIBTORCH_BYPASS_VERSION_CHECK=1 \
        CARGO_TARGET_DIR="$target" RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined" \
        cargo build --release -p metricbench-worker \
        --config "patch.crates-io.torch-sys.path=\"$patched\"" >"$log" 2>&1)
}
if ! build; then
    # Stub every generated wrapper whose body failed to compile, then try once more.
    grep -oE 'torch_api_generated.cpp:[0-9]+:[0-9]+: error' "$log" | cut -d: -f2 | sort -un \
        >"$target.errors" || true
    [ -s "$target.errors" ] || { tail -30 "$log"; exit 1; }
    python3 - "$patched/libtch/torch_api_generated.cpp" "$target.errors" <<'PY'
import sys
path, errors = sys.argv[1], sys.argv[2]
lines = open(path).read().split("\n")
spans = set()
for line_no in sorted({int(x) for x in open(errors).read().split()}):
    start = line_no - 1
    while not ("atg_" in lines[start] and lines[start].rstrip().endswith("{")
               and not lines[start].startswith(" ")):
        start -= 1
    end = line_no - 1
    while lines[end] != "}":
        end += 1
    spans.add((start, end))
for start, end in sorted(spans, reverse=True):
    lines[start + 1:end] = ['  PROTECT(throw std::invalid_argument('
                            '"not in the libtorch this worker was built against");)']
open(path, "w").write("\n".join(lines))
print(f"stubbed {len(spans)} generated wrappers missing from this libtorch")
PY
    build || { tail -30 "$log"; exit 1; }
fi
mkdir -p "$here/.devcarry" "$here/.whl"
cp "$target/release/metricbench-worker" "$here/.devcarry/metricbench-worker"
# PML for cuda_check.sh's reference runs (the lent machines have PyTorch but not PML).
python3 -m pip download -q --no-deps --only-binary=:all: -d "$here/.whl" pytorch-metric-learning==2.9.0
echo "$here/.devcarry/metricbench-worker (libtorch $version; log $log)"
