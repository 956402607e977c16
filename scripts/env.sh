# Sourced by the other scripts: provisions libtorch (scripts/setup-libtorch.sh) and exports what
# cargo needs to build the worker against it. The cargo target directory lives in the same cache
# outside the clone by default, so a fresh clone on the same machine reuses the ~7-minute libtorch
# glue build instead of repeating it. Set CARGO_TARGET_DIR to override.
set -euo pipefail
METRICBENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export METRICBENCH_CACHE="${METRICBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metricbench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$METRICBENCH_CACHE/target}"
if ! command -v cargo >/dev/null 2>&1; then
    echo "[metricbench] cargo is not on PATH; install Rust (rustup) first" >&2
    exit 1
fi
eval "$("$METRICBENCH_ROOT/scripts/setup-libtorch.sh")"
# The worker's JPEG decoder assembles its SIMD code with nasm when it is there (setup-nasm.sh).
"$METRICBENCH_ROOT/scripts/setup-nasm.sh"
