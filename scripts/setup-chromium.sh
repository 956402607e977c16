#!/usr/bin/env bash
# Provision a headless Chromium for the report page checks (scripts/check-report-pages.py): Debian's
# `chromium` package, installed with apt-get when missing. Prints the browser's path on its last line
# of stdout:
#   CHROMIUM=$(scripts/setup-chromium.sh | tail -n 1)
set -euo pipefail
say() { echo "[setup-chromium] $*" >&2; }
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null; then
        command -v "$name"
        exit 0
    fi
done
if ! command -v apt-get >/dev/null; then
    say "no chromium and no apt-get to install it; install Chromium and put it on PATH"
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
say "installing Debian's chromium (first time only)"
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >&2
command -v chromium
