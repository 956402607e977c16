#!/usr/bin/env bash
# Runs every test: installs libtorch if needed, builds both binaries (the coordinator's end-to-end
# tests drive the real worker next to it), then the whole workspace's test suite.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$METRICBENCH_ROOT"
command -v python3 >/dev/null || { echo "[metricbench] python3 is needed for the plugin-worker tests" >&2; exit 1; }
# Tests that compare with Python (scipy's MATLAB writer, torchvision/PIL transforms, pretrained
# trunks) find the reference interpreter through METRICBENCH_PYREF. The report tests check TensorBoard's reading of our event files with the real TensorBoard, and
# open every report page in headless Chromium; both are provisioned here (the tests skip, saying
# so, when run without these variables).
METRICBENCH_PYREF=$("$METRICBENCH_ROOT/scripts/setup-pyref.sh" | tail -n 1)
METRICBENCH_CHROMIUM=$("$METRICBENCH_ROOT/scripts/setup-chromium.sh" | tail -n 1)
export METRICBENCH_PYREF METRICBENCH_CHROMIUM
echo "[metricbench] building" >&2
cargo build --workspace
echo "[metricbench] testing" >&2
cargo test --workspace "$@"
