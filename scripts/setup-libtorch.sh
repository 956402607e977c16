#!/usr/bin/env bash
# Provision libtorch for the worker crate (tch 0.26 needs PyTorch 2.13.0 exactly).
#
# The only source of libtorch reachable from our machines is the PyPI wheel `torch==2.13.0`, so it is
# installed into a virtual environment in a cache outside the clone (reused on every later run, so CI
# and re-runs cost seconds). A user who already has libtorch sets LIBTORCH=/path/to/libtorch and this
# script does nothing.
#
# Prints, on its last line of stdout, the environment to export for cargo, e.g.
#   eval "$(scripts/setup-libtorch.sh)"
set -euo pipefail

TORCH_VERSION="2.13.0"
CACHE_DIR="${METRICBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metricbench}"
VENV="$CACHE_DIR/torch-$TORCH_VERSION"

say() { echo "[setup-libtorch] $*" >&2; }

if [ -n "${LIBTORCH:-}" ]; then
    if [ ! -d "$LIBTORCH/lib" ]; then
        say "LIBTORCH=$LIBTORCH has no lib/ folder; expected an unpacked libtorch distribution"
        exit 1
    fi
    say "using the user's libtorch at LIBTORCH=$LIBTORCH"
    echo "export LIBTORCH='$LIBTORCH'"
    exit 0
fi

marker="$VENV/.metricbench-ready"
if [ -f "$marker" ]; then
    say "reusing torch $TORCH_VERSION from $VENV"
else
    python=$(command -v python3 || true)
    if [ -z "$python" ]; then
        say "python3 is needed to install the torch wheel from PyPI; install it and retry"
        exit 1
    fi
    mkdir -p "$CACHE_DIR"
    say "installing torch==$TORCH_VERSION from PyPI into $VENV"
    say "(first time only: ~4.7 GB including CUDA libraries, takes a few minutes)"
    # The marker file written last is the commit point: an interrupted install is wiped and redone.
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
        "torch==$TORCH_VERSION" numpy >&2
    touch "$marker"
fi

# torch imports NumPy when it can and warns "Failed to initialize NumPy" when it is missing. Nothing
# here needs NumPy, but the warning would alarm every user, so the environment has it (environments
# made before this line lack it and get it once).
if ! "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("numpy") is None)'; then
    say "installing numpy into $VENV (torch warns without it)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --progress-bar off numpy >&2
fi

"$VENV/bin/python" - <<'PY' >&2
import torch
print(f"[setup-libtorch] torch {torch.__version__} at {torch.__file__}")
PY
echo "export LIBTORCH_USE_PYTORCH=1 PATH='$VENV/bin':\"\$PATH\""
