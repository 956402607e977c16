#!/usr/bin/env bash
# Builds metricbench and metricbench-worker (debug profile; pass --release for optimised binaries).
# Prints the folder holding both binaries on its last line.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$METRICBENCH_ROOT"
profile=debug
for arg in "$@"; do [ "$arg" = "--release" ] && profile=release; done
echo "[metricbench] building the workspace ($profile; the first build compiles libtorch's C++ glue, ~7 min on 2 cores)" >&2
cargo build --workspace "$@" >&2
echo "$CARGO_TARGET_DIR/$profile"
