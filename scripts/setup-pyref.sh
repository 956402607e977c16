#!/usr/bin/env bash
# Provision the Python environment that tests and benchmarks compare against (reference values from
# PIL/torchvision, pretrainedmodels, scipy's MATLAB writer, TensorBoard's readers, ...).
#
# It is a virtual environment in the cache beside libtorch's, sharing that environment's torch 2.13
# through a .pth file instead of downloading torch a second time; a constraints file pins torch so pip
# never replaces it. Re-running is cheap: the package list is hashed, and the environment is rebuilt
# only when the list changes.
#
# Prints the Python interpreter's path on its last line of stdout:
#   PY=$(scripts/setup-pyref.sh | tail -n 1)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh" >/dev/null
say() { echo "[setup-pyref] $*" >&2; }

TORCH_VENV="$METRICBENCH_CACHE/torch-2.13.0"
PYREF="$METRICBENCH_CACHE/pyref"
# One package a line; keep versions that work with torch 2.13 (pip picks them under the constraint).
PACKAGES=(
    numpy
    pillow
    pretrainedmodels
    safetensors
    scipy
    six
    tensorboard
    torchvision
)
CONSTRAINTS="torch==2.13.0"

stamp=$(printf '%s\n' "${PACKAGES[@]}" "$CONSTRAINTS" | sha256sum | cut -c1-16)
marker="$PYREF/.metricbench-ready-$stamp"
if [ ! -f "$marker" ]; then
    if [ ! -x "$TORCH_VENV/bin/python" ]; then
        say "libtorch's environment is missing at $TORCH_VENV (scripts/setup-libtorch.sh makes it)"
        exit 1
    fi
    say "installing ${PACKAGES[*]} into $PYREF (first time only)"
    rm -rf "$PYREF"
    "$TORCH_VENV/bin/python" -m venv "$PYREF"
    site=$("$TORCH_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    own=$("$PYREF/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" > "$own/metricbench-torch.pth"
    echo "$CONSTRAINTS" > "$PYREF/constraints.txt"
    "$PYREF/bin/python" -m pip install --quiet --disable-pip-version-check --progress-bar off \
        -c "$PYREF/constraints.txt" "${PACKAGES[@]}" >&2
    touch "$marker"
fi
echo "$PYREF/bin/python"
