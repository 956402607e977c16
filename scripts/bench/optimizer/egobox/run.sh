#!/usr/bin/env bash
# egobox 0.42 on the optimiser benchmark's functions (issue #8). Standalone crate, own target dir:
#   scripts/bench/optimizer/egobox/run.sh [--seeds N] [--json PATH]
# A cold build takes minutes (linfa, ndarray, argmin). RAYON_NUM_THREADS defaults to 1 so that
# egobox runs single-threaded like our optimiser; override it to measure its parallel speed.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-egobox}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
cargo build --release
"$CARGO_TARGET_DIR/release/bench-egobox" "$@"
